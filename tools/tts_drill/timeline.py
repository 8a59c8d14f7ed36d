"""Drill timeline PNG: every request's latency over time (top), VIP holder per node (bottom).

The x axis is seconds relative to the fault in both panels, so a failed request, the moment a
node took the VIP and the recovery lines can be read against each other.
"""

import matplotlib

matplotlib.use("Agg")  # no display on the controller; must precede pyplot

from matplotlib import pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import LogFormatter  # noqa: E402

from tts_drill import OUTCOMES  # noqa: E402

OUTCOME_COLOURS = {
    "ok": "#2ca02c", "http_error": "#d62728", "timeout": "#ff7f0e",
    "connection_error": "#9467bd", "invalid_audio": "#e377c2", "client_saturated": "#7f7f7f",
}
INSTANCE_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">")
NO_INSTANCE_MARKER = "x"  # no response headers at all (refused, timed out before them)
STATE_STYLES = {  # facecolour, hatch, edgecolour
    "MASTER": ("#1f4e9c", None, "#1f4e9c"),
    "BACKUP": ("#b9d3ee", None, "#8fb3d9"),
    "FAULT": ("#c8c8c8", "///", "#6e6e6e"),
    "STOP": ("#6e6e6e", None, "#6e6e6e"),
    "UNKNOWN": ("#ffffff", "..", "#c8c8c8"),
}
OUTAGE_COLOUR = "#d62728"
SPLIT_BRAIN_FILL = (0.84, 0.15, 0.16, 0.25)  # RGBA: the hatch keeps full opacity
SPLIT_BRAIN_EDGE = "#d62728"
SIZE_IN = (14, 8)
DPI = 100


def _event_lines(report):
    """(time relative to the fault, label, colour, linestyle) for each drill event that happened."""
    times = report["times"]
    fault_at = times["fault_at"]
    lines = [(0.0, f"fault ({report['fault']})", "#d62728", "--")]
    for key, label, colour, style in (
            ("first_ok_at", "first ok response", "#2ca02c", "-"),
            ("steady_at", f"steady ({report['steady_window']} ok)", "#2ca02c", ":"),
            ("restored_at", "restored", "#1f77b4", "-."),
            ("failback_at", "planned failback", "#17becf", ":"),
            ("auto_failback_at", "automatic failback" if report["figures"]["vip_auto_failback"]
             else "back on the primary (router)", "#8c564b", "--")):
        # Without a client-visible outage, first ok and steady state are the fault itself.
        if times[key] is not None and (key not in ("first_ok_at", "steady_at")
                                       or report["figures"]["client_outage"]):
            lines.append((times[key] - fault_at, f"{label} {times[key] - fault_at:+.2f} s", colour, style))
    return lines


def _title(report):
    figures = report["figures"]

    def seconds(value):
        return "n/a" if value is None else f"{value:.2f} s"
    verdict = "PASS" if report["passed"] else "FAIL: " + ", ".join(
        c["name"] for c in report["checks"] if not c["pass"])
    return (f"Failover drill '{report['fault']}' — {verdict}\n"
            f"RTO first ok {seconds(figures['rto_first_ok_s'])}, steady {seconds(figures['rto_steady_s'])}"
            + (f", sampled {seconds(figures['rto_sampled_s'])}" if figures.get("samples") else "") +
            f"  ·  failed {figures['failed']}/{figures['total']}"
            f"  ·  split brain {figures['split_brain_s']:.1f} s  ·  detection {seconds(figures['detection_s'])}"
            f"  ·  auto failback {'yes' if figures['auto_failback'] else 'no'}")


def _plot_requests(axis, report, requests):
    fault_at = report["times"]["fault_at"]
    latencies = [r["latency_ms"] for r in requests if r.get("latency_ms")]
    # Requests without a latency (client_saturated) sit on a floor line under all the others.
    floor = min(latencies, default=1.0) / 2
    instances = sorted({r["instance"] for r in requests if r.get("instance")})
    markers = {name: INSTANCE_MARKERS[i % len(INSTANCE_MARKERS)] for i, name in enumerate(instances)}
    groups = {}
    for record in requests:
        key = (record["outcome"], record.get("instance"))
        groups.setdefault(key, ([], []))
        groups[key][0].append(record["t_start"] - fault_at)
        groups[key][1].append(record.get("latency_ms") or floor)
    # ok first, so that failures are drawn on top of the dense ok cloud
    for (outcome, instance), (xs, ys) in sorted(groups.items(), key=lambda g: (g[0][0] != "ok", str(g[0]))):
        marker = markers.get(instance, NO_INSTANCE_MARKER)
        axis.scatter(xs, ys, s=30 if outcome == "ok" else 46, marker=marker, c=OUTCOME_COLOURS[outcome],
                     edgecolors="none" if marker != NO_INSTANCE_MARKER else None,
                     alpha=0.75 if outcome == "ok" else 0.95, zorder=3 if outcome == "ok" else 4)
    axis.set_yscale("log")
    # Plain numbers ("300", not "3x10^2"); minor ticks are labelled only over short ranges.
    axis.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    axis.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))
    axis.set_ylabel("request latency (ms, log)")
    axis.grid(True, which="major", alpha=0.3)

    counts = report["figures"]["by_outcome"]
    handles = [_header("outcome")]
    handles += [Line2D([], [], linestyle="none", marker="o", markersize=8, color=OUTCOME_COLOURS[o],
                       label=f"{o.replace('_', ' ')} ({counts[o]})") for o in OUTCOMES if counts[o]]
    handles.append(_header("answered by"))
    handles += [Line2D([], [], linestyle="none", marker=markers[i], markersize=8, color="#444444",
                       label=i) for i in instances]
    if any(not r.get("instance") for r in requests):
        handles.append(Line2D([], [], linestyle="none", marker=NO_INSTANCE_MARKER, markersize=8,
                              color="#444444", label="(no response)"))
    handles.append(_header("events"))
    handles += [Line2D([], [], color=c, linestyle=s, linewidth=2, label=lab)
                for _x, lab, c, s in _event_lines(report)]
    if report["outage_window"]:
        handles.append(Patch(facecolor=OUTAGE_COLOUR, alpha=0.15, label="client-visible outage"))
    _legend(axis, handles)


def _plot_vip(axis, report):
    nodes = report["vip"]["nodes"]
    hosts = list(nodes)
    for row, host in enumerate(hosts):
        for interval in nodes[host]["intervals"]:
            face, hatch, edge = STATE_STYLES[interval["state"]]
            axis.broken_barh([(interval["start_rel"], interval["end_rel"] - interval["start_rel"])],
                             (row - 0.32, 0.64), facecolors=face, edgecolors=edge, hatch=hatch,
                             linewidth=0.8, zorder=2)
    for segment in report["vip"]["split_brain_intervals"]:
        # Light fill plus hatching over the bars: the nodes' states stay readable underneath.
        axis.axvspan(segment["start_rel"], segment["end_rel"], facecolor=SPLIT_BRAIN_FILL,
                     edgecolor=SPLIT_BRAIN_EDGE, hatch="xx", linewidth=1.2, zorder=3)
    axis.set_yticks(range(len(hosts)), [h if nodes[h]["log"] == "present" else f"{h}\n({nodes[h]['log']} log)"
                                        for h in hosts])
    axis.set_ylim(max(1, len(hosts)) - 0.5, -0.5)  # first node on top
    axis.set_xlabel("seconds relative to the fault")
    axis.grid(True, axis="x", alpha=0.3)
    if not hosts:
        axis.text(0.5, 0.5, "no Keepalived transition logs", transform=axis.transAxes,
                  ha="center", va="center", color="#666666")
    handles = [_header("VRRP state")]
    states = {i["state"] for node in nodes.values() for i in node["intervals"]}
    for state, (face, hatch, edge) in STATE_STYLES.items():
        if state in states or state in ("MASTER", "BACKUP"):
            handles.append(Patch(facecolor=face, hatch=hatch, edgecolor=edge, label=state.lower()))
    handles.append(Patch(facecolor=SPLIT_BRAIN_FILL, edgecolor=SPLIT_BRAIN_EDGE, hatch="xx",
                         label=f"split brain ({report['figures']['split_brain_s']:.1f} s)"))
    _legend(axis, handles)


def _header(text):
    """An empty legend entry used as a bold section title."""
    return Line2D([], [], linestyle="none", label=text, gid="header")


def _legend(axis, handles):
    legend = axis.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                         frameon=False, fontsize=10, handlelength=2.2, borderaxespad=0)
    for handle, text in zip(handles, legend.get_texts(), strict=True):
        if handle.get_gid() == "header":
            text.set_fontweight("bold")


def render_timeline(report, requests, path):
    """Write the timeline PNG (~1400x800 px) for build_report()'s report and its requests."""
    fault_at = report["times"]["fault_at"]
    start, end = (t - fault_at for t in report["times"]["window"])
    rows = max(1, len(report["vip"]["nodes"]))
    plt.rcParams.update({"font.size": 11})
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=SIZE_IN, dpi=DPI, sharex=True,
        gridspec_kw={"height_ratios": [3.2, 0.6 + 0.45 * rows], "hspace": 0.08})
    try:
        _plot_requests(top, report, requests)
        _plot_vip(bottom, report)
        outage = report["outage_window"]
        for axis in (top, bottom):
            if outage:
                axis.axvspan(outage["start_rel"], outage["end_rel"], color=OUTAGE_COLOUR, alpha=0.12, zorder=1)
            for x, _label, colour, style in _event_lines(report):
                axis.axvline(x, color=colour, linestyle=style, linewidth=1.8, zorder=5)
        margin = max(0.5, (end - start) * 0.01)
        top.set_xlim(start - margin, end + margin)
        figure.suptitle(_title(report), fontsize=13, x=0.01, ha="left")
        figure.subplots_adjust(left=0.08, right=0.79, top=0.89, bottom=0.08)
        figure.savefig(path, dpi=DPI)
    finally:
        plt.close(figure)
    return path
