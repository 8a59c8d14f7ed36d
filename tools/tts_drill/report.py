"""Failover drill report: figures, a pass/fail verdict, report.json, report.md and timeline.png.

Inputs are the load generator's request log, the Keepalived transition log of every node and the
drill's events (fault and restore times). ``build_report()`` holds all the maths and is importable;
the CLI adds file handling and prints one summary line.
Exit codes: 0 every threshold met, 1 a threshold missed, 2 bad input.

All times are epoch seconds; figures named ``*_rel`` are seconds relative to the fault.

Definitions (F = fault_at; "failed" = outcome other than ok; requests ordered by start time):
- failed_before_restore: hit requests that started before restored_at (all of them without one).
- hit: failed requests that ended after F (those in flight at F count too).
- stalled: ok requests that ended after F, took longer than the stall bound, max(stall_min_s,
  3 x p95 latency of the ok requests before F), and started before the first request after F
  that was answered within the bound: e.g. SYNs that waited for the VIP to move. Ok, not failed,
  but the clients saw the service stop. A slow answer once the service answers again is load.
- disrupted: hit + stalled. None: no client-visible outage, both RTOs are 0.
- outage begins at max(F, start of the first disrupted request). Recovery is looked for only among
  requests starting from then on, so a fault that bites a little after F cannot shorten the RTO.
- rto_first_ok_s: F -> the earliest end of an ok request starting after the outage began.
- rto_steady_s: F -> start of the first request that opens steady_window consecutive ok requests
  that are not stalled.
- rto_sampled_s: rto_first_ok_s of the recovery sampler's log (tts_drill.loadgen --samples-out:
  the contract's short probe text every 0.25 s from just before the fault), by the same rules.
  The load's own RTO waits for the next request its schedule sends (1/rate) and for a whole
  sentence; the sampled one resolves the moment short requests are answered again. None without
  a sampler log (the sampler was not armed).
- outage window: outage begin -> latest end of a disrupted request that started before steady state.
- serving switches: changes of X-TTS-Instance between consecutive ok responses, timed at the end
  of the first response from the new instance (a request in flight at F that a router re-sends
  to the standby switches when the client sees it, after F).
- VIP holders: a node's state lasts from one logged transition to its next (UNKNOWN before its
  first, or without a log); a VIP move is a node becoming MASTER while another held it last.
- detection_s: F -> first moment a node other than the MASTER at F is MASTER, before the
  restore and the planned failback.
- carried (did the survivor carry the load): the requests that started in [steady state, restored_at)
  (to the end without a restore) next to those that ended by F (one in flight at F was hit by
  the fault, not a sign of the load before it): served ratio (ok / all, a
  client_saturated slot counts as not served), p50/p95 latency of the ok ones, offered rate. None
  when the window holds no request (e.g. no steady state before the restore): the survivor was
  not seen carrying anything, which fails min_served_ratio_after_recovery.
- auto_failback: after F and before failback_at, the serving instance switched back to the
  expected primary, or the VIP moved back to the node that held it at F.
- false failovers: serving switches and VIP moves before F, and for faults that must not fail
  over (FAULTS_WITHOUT_FAILOVER, or events "expect_failover": false) any before failback_at.
"""

import argparse
import json
import math
import os
import sys

from tts_drill import OUTCOMES, percentile

# Fault kinds that must not move the VIP nor the serving instance (any move is a false failover).
FAULTS_WITHOUT_FAILOVER = frozenset({"overload"})
VRRP_STATES = ("MASTER", "BACKUP", "FAULT", "STOP")
# Alert lines (type ALERT) in the same logs, from the nodes' split-brain watch.
ALERT_STATES = ("SPLIT_BRAIN", "SPLIT_BRAIN_CLEARED")
# The resident prober's verdict changes (tts_prober.py), kept in the same log; the report ignores them.
PROBER_STATES = ("UP", "DOWN", "UNKNOWN", "STOPPED", "RESTARTING", "RESUMED")
UNKNOWN = "UNKNOWN"  # a node's state before its first logged transition, or without a log
PHASES = ("before_fault", "outage", "after_recovery")
DEFAULT_STEADY_WINDOW = 10
DEFAULT_STALL_MIN_S = 1.0

# threshold name -> (figure it limits, comparison); a figure that is None (never observed, e.g.
# no recovery) fails a "max_" limit.
THRESHOLDS = {
    "max_rto_s": ("rto_first_ok_s", "<="),
    "max_rto_steady_s": ("rto_steady_s", "<="),
    "max_rto_sampled_s": ("rto_sampled_s", "<="),
    "max_failed": ("failed", "<="),
    "max_failed_before_restore": ("failed_before_restore", "<="),
    "max_invalid_audio": ("invalid_audio", "<="),
    "max_split_brain_s": ("split_brain_s", "<="),
    "max_false_failovers": ("false_failovers", "<="),
    "max_detection_s": ("detection_s", "<="),
    "min_requests": ("total", ">="),
    # The survivor served this share of the requests sent while it carried the load alone.
    "min_served_ratio_after_recovery": ("served_ratio_after_recovery", ">="),
    "no_auto_failback": ("auto_failback", "is false"),
    # With routers, the serving instance returns to the primary by design; only the VIP waits.
    "no_vip_auto_failback": ("vip_auto_failback", "is false"),
    "no_vip_move": ("vip_moved", "is false"),
    # A split brain that no node's split-brain watch alerted about.
    "no_unalerted_split_brain": ("split_brain_unalerted", "is false"),
}


class ReportInputError(ValueError):
    """Unusable input; the message names the file or field."""


# --------------------------------------------------------------------------------------------
# The maths
# --------------------------------------------------------------------------------------------

def build_report(requests, transitions, events, thresholds=None, steady_window=DEFAULT_STEADY_WINDOW,
                 stall_min_s=DEFAULT_STALL_MIN_S, samples=None):
    """Compute every drill figure and the verdict.

    requests: load generator records (any order). transitions: {host: [transition records] or
    None when the node's log is missing}. events: the drill's events dict (fault, fault_at
    required). thresholds: {name: limit} from THRESHOLDS, absent names not enforced.
    stall_min_s: the least latency (s) that makes an ok answer after the fault a stall.
    samples: the recovery sampler's records (same shape as requests), or None.
    Raises ReportInputError for unusable events or thresholds.
    """
    events = _check_events(events)
    thresholds = _check_thresholds(thresholds or {})
    if not isinstance(steady_window, int) or steady_window < 1:
        raise ReportInputError(f"steady_window must be a positive integer, got {steady_window!r}")
    if not _is_number(stall_min_s) or stall_min_s <= 0:
        raise ReportInputError(f"stall_min_s must be a positive number of seconds, got {stall_min_s!r}")
    fault_at = events["fault_at"]
    ordered = sorted(requests, key=lambda r: (r["t_start"], r.get("seq") or 0))
    window = _window(ordered, events)
    warnings = []
    alerts = sorted(({"t": r["ts"], "t_rel": _round(r["ts"] - fault_at), "host": r["host"], "state": r["state"]}
                     for records in transitions.values() for r in records or []
                     if r.get("type") == "ALERT" and window[0] <= r["ts"] <= window[1]),
                    key=lambda a: a["t"])
    transitions = {host: None if records is None else [r for r in records if r.get("type", "INSTANCE") == "INSTANCE"]
                   for host, records in transitions.items()}

    client = _client_figures(ordered, fault_at, events.get("restored_at"), steady_window, stall_min_s, warnings)
    sampled = None
    if samples:
        sample_warnings = []
        sampled = _client_figures(sorted(samples, key=lambda r: (r["t_start"], r.get("seq") or 0)), fault_at,
                                  events.get("restored_at"), steady_window, stall_min_s, sample_warnings)
        warnings += [f"recovery sampler: {w}" for w in sample_warnings]
    serving = _serving(ordered, events, client["steady_at"], warnings)
    carried = _carried(ordered, fault_at, client["steady_at"], events.get("restored_at"))
    vip = _vip(transitions, events, window, warnings)
    failovers_expected = events.get("expect_failover", events["fault"] not in FAULTS_WITHOUT_FAILOVER)
    false_events = _false_failovers(serving["switches"], vip["moves"], events, failovers_expected)
    auto_failback_times = [t for t in (serving["auto_failback_at"], vip["auto_failback_at"]) if t is not None]

    figures = {
        **client["figures"],
        "rto_sampled_s": sampled and sampled["figures"]["rto_first_ok_s"],
        "samples": len(samples or ()),
        "samples_failed": sampled["figures"]["failed"] if sampled else 0,
        "served_ratio_before_fault": carried["before_fault"]["served_ratio"],
        "served_ratio_after_recovery": carried["after_recovery"]["served_ratio"],
        "split_brain_s": vip["split_brain_s"],
        "no_holder_s": vip["no_holder_s"],
        "detection_s": vip["detection_s"],
        "vip_moved": vip["vip_moved"],
        "serving_auto_failback": serving["auto_failback_at"] is not None,
        "vip_auto_failback": vip["auto_failback_at"] is not None,
        "auto_failback": bool(auto_failback_times),
        "false_failover": bool(false_events),
        "false_failovers": len(false_events),
        "split_brain_alerted": any(a["state"] == "SPLIT_BRAIN" for a in alerts),
    }
    figures["split_brain_unalerted"] = bool(vip["split_brain_s"]) and not figures["split_brain_alerted"]
    checks = [_check(name, limit, figures) for name, limit in thresholds.items()]
    report = {
        "fault": events["fault"],
        "passed": all(check["pass"] for check in checks),
        "checks": checks,
        "figures": figures,
        "times": {
            "fault_at": fault_at,
            "restored_at": events.get("restored_at"),
            "failback_at": events.get("failback_at"),
            "first_ok_at": client["first_ok_at"],
            "steady_at": client["steady_at"],
            "auto_failback_at": min(auto_failback_times, default=None),
            "window": window,
        },
        "steady_window": steady_window,
        "failovers_expected": failovers_expected,
        "latency_ms": client["latency_ms"],
        "carried": carried,
        "outage_window": client["outage_window"],
        "sampled_outage_window": sampled and sampled["outage_window"],
        "expected_primary": serving["expected_primary"],
        "expected_primary_source": serving["expected_primary_source"],
        "served_by": serving["served_by"],
        "failed_by_instance": serving["failed_by_instance"],
        "switches": serving["switches"],
        "vip": vip["detail"],
        "false_failover_events": false_events,
        "alerts": alerts,
        "settings": events.get("settings") or {},
        "events": events,
        "warnings": warnings,
    }
    report["summary"] = summary_line(report)
    return report


def _client_figures(ordered, fault_at, restored_at, steady_window, stall_min_s, warnings):
    """RTOs, outage window, counts and latencies from the request records."""
    by_outcome = dict.fromkeys(OUTCOMES, 0)
    for record in ordered:
        by_outcome[record["outcome"]] += 1
    baseline = [r["t_end"] - r["t_start"] for r in ordered if r["t_end"] <= fault_at and r["outcome"] == "ok"]
    stall_s = max(stall_min_s, 3 * percentile(baseline, 0.95)) if baseline else stall_min_s
    # Requests still in flight at the fault can be hit by it as much as later ones.
    hit = [r for r in ordered if r["t_end"] > fault_at and r["outcome"] != "ok"]
    answered_again = next((r["t_start"] for r in ordered if r["t_start"] >= fault_at and r["outcome"] == "ok"
                           and r["t_end"] - r["t_start"] <= stall_s), math.inf)

    def is_stalled(r):
        return (r["outcome"] == "ok" and r["t_end"] > fault_at and r["t_end"] - r["t_start"] > stall_s
                and r["t_start"] < answered_again)
    stalled = [r for r in ordered if is_stalled(r)]
    disrupted = sorted(hit + stalled, key=lambda r: r["t_start"])
    outage_window = None
    if disrupted:
        # Recovery only counts once the outage has begun: a fault may take effect a little after
        # fault_at, and the ok requests in between prove nothing about recovery.
        outage_begins = max(fault_at, disrupted[0]["t_start"])
        candidates = [r for r in ordered if r["t_start"] >= outage_begins]
        # The first valid synthesis the clients got back: the earliest end, since a request sent
        # earlier may have waited longer (e.g. a SYN retransmitted across a VIP move).
        first_ok = min((r for r in candidates if r["outcome"] == "ok"), key=lambda r: r["t_end"], default=None)
        steady = _first_steady_run(candidates, steady_window, is_stalled)
        in_outage = [r for r in disrupted if steady is None or r["t_start"] < steady["t_start"]]
        end = max(r["t_end"] for r in in_outage)
        outage_window = {"start": outage_begins, "end": end, "duration_s": _round(end - outage_begins),
                         "start_rel": _round(outage_begins - fault_at), "end_rel": _round(end - fault_at),
                         "failed": sum(1 for r in in_outage if r["outcome"] != "ok"),
                         "stalled": sum(1 for r in in_outage if r["outcome"] == "ok")}
        if first_ok is None:
            warnings.append("no request succeeded after the outage began: the service did not recover"
                            " while the load ran")
        elif steady is None:
            warnings.append(f"no {steady_window} consecutive ok requests after the outage began:"
                            " steady state not observed")
        first_ok_at = first_ok and first_ok["t_end"]
        steady_at = steady and steady["t_start"]
    elif any(r["t_start"] >= fault_at for r in ordered):
        first_ok_at = steady_at = fault_at  # no client-visible outage: nothing to recover from
    else:
        first_ok_at = steady_at = None
        warnings.append("no request started after the fault: recovery not measured")
    phase_of = _phase_classifier(fault_at, steady_at)
    latencies = {phase: [] for phase in PHASES}
    for record in ordered:
        if record["outcome"] == "ok" and record.get("latency_ms") is not None:
            latencies[phase_of(record)].append(record["latency_ms"])
    failed = len(ordered) - by_outcome["ok"]
    figures = {
        "client_outage": bool(disrupted),
        "rto_first_ok_s": None if first_ok_at is None else _round(first_ok_at - fault_at),
        "rto_steady_s": None if steady_at is None else _round(steady_at - fault_at),
        "outage_s": outage_window["duration_s"] if outage_window else 0.0,
        "total": len(ordered),
        "ok": by_outcome["ok"],
        "failed": failed,
        "failed_after_fault": len(hit),
        "stalled_after_fault": len(stalled),
        "stall_s": _round(stall_s),
        # Apart from those after the restore (on a shared lab machine a rebooting node starves
        # the standby of CPU).
        "failed_before_restore": sum(1 for r in hit if restored_at is None or r["t_start"] < restored_at),
        "failed_after_steady": 0 if steady_at is None else sum(
            1 for r in hit if r["t_start"] >= steady_at),
        "invalid_audio": by_outcome["invalid_audio"],
        "by_outcome": by_outcome,
    }
    return {
        "figures": figures, "first_ok_at": first_ok_at, "steady_at": steady_at,
        "outage_window": outage_window,
        "latency_ms": {phase: _latency_stats(values) for phase, values in latencies.items()},
    }


def _carried(ordered, fault_at, steady_at, restored_at):
    """Served ratio, latency and rate before the fault and while the survivor carried the load."""
    until = math.inf if restored_at is None else restored_at
    windows = {"before_fault": [r for r in ordered if r["t_end"] <= fault_at],
               "after_recovery": [] if steady_at is None else
               [r for r in ordered if steady_at <= r["t_start"] < until]}
    return {phase: _load_window(records, fault_at) for phase, records in windows.items()}


def _load_window(records, fault_at):
    ok = [r for r in records if r["outcome"] == "ok"]
    latencies = [r["latency_ms"] for r in ok if r.get("latency_ms") is not None]
    start = records[0]["t_start"] if records else None
    end = records[-1]["t_start"] if records else None
    span = None if start is None else end - start
    instances = {}
    for record in ok:
        if record.get("instance"):
            instances[record["instance"]] = instances.get(record["instance"], 0) + 1
    return {
        "requests": len(records), "ok": len(ok), "failed": len(records) - len(ok),
        "served_ratio": _round(len(ok) / len(records), 4) if records else None,
        "p50_ms": _round(percentile(latencies, 0.5), 1), "p95_ms": _round(percentile(latencies, 0.95), 1),
        # Requests launched per second over the window (starts of the first and last request).
        "rate_per_s": _round((len(records) - 1) / span, 2) if span else None,
        "start_rel": None if start is None else _round(start - fault_at),
        "end_rel": None if end is None else _round(end - fault_at),
        "served_by": instances,
    }


def _first_steady_run(candidates, steady_window, is_stalled):
    """First request opening steady_window consecutive ok, not stalled requests (by start time)."""
    run = 0
    for index, record in enumerate(candidates):
        run = run + 1 if record["outcome"] == "ok" and not is_stalled(record) else 0
        if run == steady_window:
            return candidates[index - steady_window + 1]
    return None


def _phase_classifier(fault_at, steady_at):
    recovered = math.inf if steady_at is None else steady_at

    def phase_of(record):
        if record["t_start"] < fault_at:
            return "before_fault"
        return "outage" if record["t_start"] < recovered else "after_recovery"
    return phase_of


def _latency_stats(values):
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    return {"n": len(values), "p50": _round(percentile(values, 0.5), 1),
            "p95": _round(percentile(values, 0.95), 1), "max": max(values)}


def _serving(ordered, events, steady_at, warnings):
    """Which instance answered when, its switches, and automatic failback to the primary."""
    fault_at = events["fault_at"]
    phase_of = _phase_classifier(fault_at, steady_at)
    served_by = {phase: {} for phase in PHASES}
    failed_by_instance = {}
    switches = []
    current = None
    for record in ordered:
        instance = record.get("instance")
        if record["outcome"] != "ok":
            key = instance or "(none)"
            failed_by_instance[key] = failed_by_instance.get(key, 0) + 1
            continue
        if instance is None:
            continue
        counts = served_by[phase_of(record)]
        counts[instance] = counts.get(instance, 0) + 1
        if current is not None and instance != current:
            switches.append({"t": record["t_end"], "t_rel": _round(record["t_end"] - fault_at),
                             "from": current, "to": instance})
        current = instance

    expected, source = events.get("expected_primary"), "events"
    if not expected:
        before = [r["instance"] for r in ordered
                  if r["t_start"] < fault_at and r["outcome"] == "ok" and r.get("instance")]
        expected, source = (before[-1], "inferred") if before else (None, None)
        if expected is None:
            warnings.append("expected_primary unknown (not in events, no ok request before the"
                            " fault): automatic failback of the serving instance not checked")
    failback_at = events.get("failback_at")
    back = next((s for s in switches if expected and s["to"] == expected and s["t"] >= fault_at
                 and (failback_at is None or s["t"] < failback_at)), None)
    return {"served_by": served_by, "failed_by_instance": failed_by_instance, "switches": switches,
            "expected_primary": expected, "expected_primary_source": source,
            "auto_failback_at": back and back["t"]}


def _window(ordered, events):
    """[start, end] of the drill: the events' times widened to cover every request."""
    starts = [events["fault_at"]] + [r["t_start"] for r in ordered[:1]]
    ends = [events["fault_at"]] + [r["t_end"] for r in ordered]
    for key, bucket in (("drill_started_at", starts), ("drill_ended_at", ends)):
        if events.get(key) is not None:
            bucket.append(events[key])
    return [min(starts), max(ends)]


def _vip(transitions, events, window, warnings):
    """VIP holders over time from the nodes' Keepalived transitions."""
    fault_at = events["fault_at"]
    start, end = window
    nodes = {}
    for host in sorted(transitions):
        records = transitions[host]
        if records is None:
            warnings.append(f"no transition log for {host}: its VRRP state is unknown")
        elif not records:
            warnings.append(f"empty transition log for {host}: its VRRP state is unknown")
        nodes[host] = {"log": "missing" if records is None else "present" if records else "empty",
                       "intervals": _node_intervals(records or [], start, end, fault_at)}

    holders = _holders_over_time(nodes, start, fault_at)
    split_brain = _segments(holders, end, fault_at, lambda hosts: len(hosts) > 1)
    no_holder = _segments(holders, end, fault_at, lambda hosts: not hosts)
    moves = _moves(holders, fault_at)
    at_fault = _last_holders_at(holders, fault_at)
    if nodes and not at_fault:
        warnings.append("no node is known to have been MASTER at the fault: detection time counts"
                        " the first MASTER transition after it")
    # A takeover after the restore or the planned failback is not the fault being detected.
    detect_until = min(t for t in (events.get("restored_at"), events.get("failback_at"), end)
                       if t is not None)
    takeover = next((h for h in holders if fault_at <= h["t"] < detect_until
                     and set(h["hosts"]) - at_fault), None)
    failback_at = events.get("failback_at")
    back = next((m for m in moves if m["t"] >= fault_at and m["host"] in at_fault
                 and (failback_at is None or m["t"] < failback_at)), None)
    return {
        "split_brain_s": _round(sum(s["duration_s"] for s in split_brain)),
        "no_holder_s": _round(sum(s["duration_s"] for s in no_holder)),
        "detection_s": takeover and _round(takeover["t"] - fault_at),
        "vip_moved": takeover is not None or any(m["t"] >= fault_at for m in moves),
        "auto_failback_at": back and back["t"],
        "moves": moves,
        "detail": {"nodes": nodes, "holders_at_fault": sorted(at_fault),
                   "holders_over_time": holders, "moves": moves,
                   "split_brain_intervals": split_brain, "no_holder_intervals": no_holder},
    }


def _node_intervals(records, start, end, fault_at):
    """[{state, start, end}] covering [start, end]; a state lasts until the node's next transition."""
    intervals = []
    state, since = UNKNOWN, start
    for record in sorted(records, key=lambda r: r["ts"]):
        ts = record["ts"]
        if ts >= end:
            break
        if record["state"] == state:
            continue
        if ts > since:
            intervals.append(_interval(state, since, ts, fault_at))
        state, since = record["state"], max(ts, start)
    intervals.append(_interval(state, since, end, fault_at))
    return intervals


def _interval(state, start, end, fault_at):
    return {"state": state, "start": start, "end": end,
            "start_rel": _round(start - fault_at), "end_rel": _round(end - fault_at)}


def _holders_over_time(nodes, start, fault_at):
    """[{t, t_rel, hosts}]: the set of MASTER nodes from each change until the next."""
    bounds = sorted({start, *(i["start"] for n in nodes.values() for i in n["intervals"])})
    holders = []
    for t in bounds:
        hosts = sorted(host for host, node in nodes.items() for i in node["intervals"]
                       if i["state"] == "MASTER" and i["start"] <= t < i["end"])
        if not holders or hosts != holders[-1]["hosts"]:
            holders.append({"t": t, "t_rel": _round(t - fault_at), "hosts": hosts})
    return holders


def _segments(holders, end, fault_at, predicate):
    segments = []
    for index, entry in enumerate(holders):
        if predicate(entry["hosts"]):
            until = holders[index + 1]["t"] if index + 1 < len(holders) else end
            segments.append({"start": entry["t"], "end": until, "duration_s": _round(until - entry["t"]),
                             "start_rel": entry["t_rel"], "end_rel": _round(until - fault_at),
                             "hosts": entry["hosts"]})
    return segments


def _moves(holders, fault_at):
    """A node becoming MASTER while the VIP was last held elsewhere (a node regaining the VIP
    after a gap with no holder is not a move)."""
    moves = []
    last_held = []
    for entry in holders:
        if entry is not holders[0]:
            for host in entry["hosts"]:
                if last_held and host not in last_held:
                    moves.append({"t": entry["t"], "t_rel": entry["t_rel"], "host": host,
                                  "from": last_held})
        if entry["hosts"]:
            last_held = entry["hosts"]
    return moves


def _last_holders_at(holders, t):
    """Hosts that last held the VIP at or before t (skipping moments with no holder)."""
    held = []
    for entry in holders:
        if entry["t"] > t:
            break
        if entry["hosts"]:
            held = entry["hosts"]
    return set(held)


def _false_failovers(switches, moves, events, failovers_expected):
    """Serving switches and VIP moves nothing justified: any before the fault, and any at all
    (planned failback aside) when the fault should not cause a failover."""
    fault_at = events["fault_at"]
    failback_at = events.get("failback_at")
    found = [{"kind": "serving_switch", "t": s["t"], "t_rel": s["t_rel"],
              "detail": f"{s['from']} -> {s['to']}"} for s in switches]
    found += [{"kind": "vip_move", "t": m["t"], "t_rel": m["t_rel"],
               "detail": f"{','.join(m['from'])} -> {m['host']}"} for m in moves]
    return sorted((e for e in found if e["t"] < fault_at or (
        not failovers_expected and (failback_at is None or e["t"] < failback_at))),
        key=lambda e: e["t"])


def _check(name, limit, figures):
    figure, comparison = THRESHOLDS[name]
    value = figures[figure]
    if comparison == "is false":
        passed = not limit or value is False
    elif value is None:
        passed = False
    else:
        passed = value <= limit if comparison == "<=" else value >= limit
    return {"name": name, "figure": figure, "limit": limit, "value": value, "pass": passed}


def _round(value, digits=3):
    return None if value is None else round(value, digits)


def summary_line(report):
    """One line: "drill crash: PASS rto_first_ok=0.84s ..." (FAIL(names) when a check failed)."""
    figures = report["figures"]

    def seconds(value):
        return "n/a" if value is None else f"{value:.2f}s"
    failed = [c["name"] for c in report["checks"] if not c["pass"]]
    verdict = "PASS" if not failed else f"FAIL({','.join(failed)})"
    return (f"drill {report['fault']}: {verdict} rto_first_ok={seconds(figures['rto_first_ok_s'])}"
            f" rto_steady={seconds(figures['rto_steady_s'])}"
            + (f" rto_sampled={seconds(figures['rto_sampled_s'])}" if figures.get("samples") else "") +
            f" failed={figures['failed']}/{figures['total']}"
            f" split_brain={figures['split_brain_s']:.1f}s"
            f"{' (alerted)' if figures.get('split_brain_alerted') else ''}"
            f" detection={seconds(figures['detection_s'])}"
            f" auto_failback={'yes' if figures['auto_failback'] else 'no'}")


# --------------------------------------------------------------------------------------------
# Input validation and loading
# --------------------------------------------------------------------------------------------

def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_events(events):
    if not isinstance(events, dict):
        raise ReportInputError("events: expected a JSON object")
    if not isinstance(events.get("fault"), str) or not events["fault"]:
        raise ReportInputError("events: 'fault' (the fault kind, e.g. \"crash\") is required")
    if not _is_number(events.get("fault_at")):
        raise ReportInputError("events: 'fault_at' (epoch seconds) is required")
    for key in ("restored_at", "failback_at", "drill_started_at", "drill_ended_at"):
        if events.get(key) is not None and not _is_number(events[key]):
            raise ReportInputError(f"events: {key!r} must be epoch seconds or null, got {events[key]!r}")
    if "expect_failover" in events and not isinstance(events["expect_failover"], bool):
        raise ReportInputError("events: 'expect_failover' must be true or false")
    return events


def _check_thresholds(thresholds):
    if not isinstance(thresholds, dict):
        raise ReportInputError("thresholds: expected a JSON object")
    for name, limit in thresholds.items():
        if name not in THRESHOLDS:
            raise ReportInputError(f"thresholds: unknown {name!r} (known: {', '.join(THRESHOLDS)})")
        wanted_bool = THRESHOLDS[name][1] == "is false"
        if (isinstance(limit, bool) != wanted_bool) or not (wanted_bool or _is_number(limit)):
            kind = "true or false" if wanted_bool else "a number"
            raise ReportInputError(f"thresholds: {name} must be {kind}, got {limit!r}")
    return thresholds


def _valid_request(record):
    return (isinstance(record, dict) and _is_number(record.get("t_start"))
            and _is_number(record.get("t_end")) and record["t_end"] >= record["t_start"]
            and record.get("outcome") in OUTCOMES
            and (record.get("latency_ms") is None or _is_number(record["latency_ms"]))
            and (record.get("instance") is None or isinstance(record["instance"], str)))


def _json_lines(path, valid):
    """(valid records, corrupt line count) of a JSON-lines file; blank lines are skipped."""
    records, corrupt = [], 0
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                corrupt += 1
                continue
            if valid(record):
                records.append(record)
            else:
                corrupt += 1
    return records, corrupt


def load_requests(path):
    """(records, corrupt line count); ReportInputError if unreadable or nothing valid."""
    try:
        records, corrupt = _json_lines(path, _valid_request)
    except OSError as exc:
        raise ReportInputError(f"requests file {path}: cannot read: {exc.strerror or exc}") from None
    if not records:
        detail = f"all {corrupt} lines are corrupt" if corrupt else "it is empty"
        raise ReportInputError(f"requests file {path}: no usable request records ({detail})")
    return records, corrupt


def load_samples(path):
    """The recovery sampler's records: (records, corrupt line count); a missing or empty file
    (the sampler was never armed) is no samples, not an error."""
    if not os.path.exists(path):
        return [], 0
    try:
        return _json_lines(path, _valid_request)
    except OSError as exc:
        raise ReportInputError(f"samples file {path}: cannot read: {exc.strerror or exc}") from None


def _valid_transition(record):
    states = {"ALERT": ALERT_STATES, "PROBER": PROBER_STATES}.get(record.get("type"), VRRP_STATES) \
        if isinstance(record, dict) else ()
    return (isinstance(record, dict) and _is_number(record.get("ts"))
            and isinstance(record.get("host"), str) and record["host"]
            and record.get("state") in states)


# keepalived reads the resident prober's track file on its inotify event and goes to FAULT at
# once; the notify script that logs the FAULT line runs later (a process start, 0.1-0.25 s on a
# loaded node). A FAULT logged within this many seconds after the prober's published DOWN/STOPPED
# line on the same host is dated at that line, or the notify latency would read as split brain.
PROBER_FAULT_WINDOW_S = 1.0


def _fault_at_prober_verdict(records):
    """Date each logged FAULT at the prober verdict that caused it (see PROBER_FAULT_WINDOW_S);
    the logged time is kept as ts_logged."""
    failed = [r for r in records if r.get("type") == "PROBER" and r.get("published", True)
              and r.get("state") in ("DOWN", "STOPPED")]
    if not failed:
        return records
    dated = []
    for record in records:
        if record.get("type", "INSTANCE") == "INSTANCE" and record.get("state") == "FAULT":
            causes = [p["ts"] for p in failed if p["host"] == record["host"]
                      and 0 <= record["ts"] - p["ts"] <= PROBER_FAULT_WINDOW_S]
            if causes:
                record = dict(record, ts=max(causes), ts_logged=record["ts"])
        dated.append(record)
    return dated


def load_transitions(paths, vrrp_instance=None):
    """({host: records or None}, per-file notes, warnings) from one log file per node.

    Records are keyed by their own "host". Each path may be given as HOST=PATH: HOST names the
    node when its file is missing or holds no records (state unknown: None or []); without it
    the file name up to its first dot stands in ("node1.jsonl" -> node1). Sync-group lines (type
    GROUP) are ignored; the resident prober's lines (type PROBER) only date the FAULTs they caused.
    """
    transitions, notes, warnings = {}, [], []
    instances = set()
    for spec in map(str, paths):
        label, equals, path = spec.partition("=")
        if not equals or not label or "/" in label:
            label, path = os.path.basename(spec).split(".")[0] or spec, spec
        try:
            records, corrupt = _json_lines(path, _valid_transition)
        except OSError as exc:
            transitions.setdefault(label, None)
            notes.append({"file": path, "node": label, "status": "missing", "error": exc.strerror or str(exc)})
            continue
        records = _fault_at_prober_verdict(records)
        records = [r for r in records if r.get("type", "INSTANCE") in ("INSTANCE", "ALERT")]
        instances.update(r["instance"] for r in records if r.get("instance") is not None)
        if vrrp_instance is not None:
            records = [r for r in records if r.get("instance") == vrrp_instance]
        for record in records:
            transitions.setdefault(record["host"], []).append(record)
        if not records:
            transitions[label] = transitions.get(label) or []
        notes.append({"file": path, "node": label, "status": "read", "records": len(records),
                      "corrupt_lines": corrupt, "hosts": sorted({r["host"] for r in records})})
        if corrupt:
            warnings.append(f"transition log {path}: {corrupt} corrupt lines ignored")
    if vrrp_instance is None and len(instances) > 1:
        warnings.append(f"transition logs mix VRRP instances {sorted(map(str, instances))}:"
                        " pass --vrrp-instance to pick one")
    return transitions, notes, warnings


def _load_json(path, what):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as exc:
        raise ReportInputError(f"{what} file {path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ReportInputError(f"{what} file {path}: not valid JSON: {exc}") from None


def _parse_thresholds(text):
    """Inline JSON object, or the path of a file holding one."""
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ReportInputError(f"--thresholds: not valid JSON: {exc}") from None
    return _load_json(text, "thresholds")


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------

def _fmt(value):
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines + [""]


def render_markdown(report):
    figures = report["figures"]
    times = report["times"]
    fault_at = times["fault_at"]

    def rel(t):
        return None if t is None else round(t - fault_at, 3)
    lines = [f"# Failover drill: {report['fault']} — {'PASS' if report['passed'] else 'FAIL'}", "",
             f"`{report['summary']}`", "", "Times are seconds relative to the fault.", ""]
    if not figures["client_outage"] and figures["rto_first_ok_s"] == 0:
        lines += ["No client-visible outage: no request failed or stalled after the fault, so both RTOs are 0.", ""]
    if report["warnings"]:
        lines += ["## Warnings", ""] + [f"- {w}" for w in report["warnings"]] + [""]

    lines += ["## Figures", ""]
    rows = [(name, value) for name, value in figures.items() if name != "by_outcome"]
    rows += [(f"outcome {name}", n) for name, n in figures["by_outcome"].items()]
    rows += [("first ok response at", rel(times["first_ok_at"])), ("steady state from", rel(times["steady_at"])),
             ("restored at", rel(times["restored_at"])), ("planned failback at", rel(times["failback_at"])),
             ("automatic failback at", rel(times["auto_failback_at"])),
             ("steady window (requests)", report["steady_window"]),
             ("failovers expected", report["failovers_expected"])]
    outage = report["outage_window"]
    if outage:
        rows.append(("outage window", f"{outage['start_rel']:.3f} .. {outage['end_rel']:.3f}"
                                      f" ({outage['failed']} failed, {outage['stalled']} stalled)"))
    sampled = report.get("sampled_outage_window")
    if sampled:
        rows.append(("sampled outage window", f"{sampled['start_rel']:.3f} .. {sampled['end_rel']:.3f}"
                                              f" ({sampled['failed']} failed, {sampled['stalled']} stalled)"))
    lines += _table(("figure", "value"), rows)

    lines += _carried_markdown(report)

    lines += ["## Thresholds", ""]
    if report["checks"]:
        lines += _table(("threshold", "figure", "limit", "value", "result"),
                        [(c["name"], c["figure"], c["limit"], c["value"], "pass" if c["pass"] else "FAIL")
                         for c in report["checks"]])
    else:
        lines += ["None given: nothing enforced.", ""]

    lines += ["## Serving instances", "",
              f"Expected primary: {_fmt(report['expected_primary'])}"
              f" ({report['expected_primary_source'] or 'unknown'}).", ""]
    instances = sorted({i for counts in report["served_by"].values() for i in counts})
    if instances:
        lines += _table(("ok responses from",) + PHASES,
                        [(i,) + tuple(report["served_by"][p].get(i, 0) for p in PHASES) for i in instances])
    if report["failed_by_instance"]:
        lines += _table(("failed responses from", "count"), sorted(report["failed_by_instance"].items()))
    lines += _table(("latency of ok responses (ms)", "n", "p50", "p95", "max"),
                    [(p,) + tuple(report["latency_ms"][p][k] for k in ("n", "p50", "p95", "max"))
                     for p in PHASES])
    if report["switches"]:
        lines += _table(("switch at", "from", "to"), [(s["t_rel"], s["from"], s["to"]) for s in report["switches"]])
    else:
        lines += ["No switch of serving instance.", ""]

    vip = report["vip"]
    lines += ["## VIP holders", "", f"MASTER at the fault: {', '.join(vip['holders_at_fault']) or 'none known'}.", ""]
    rows = [(host, node["log"], i["state"], i["start_rel"], i["end_rel"], round(i["end"] - i["start"], 3))
            for host, node in vip["nodes"].items() for i in node["intervals"]]
    lines += _table(("node", "log", "state", "from", "to", "seconds"), rows) if rows else ["No transition logs.", ""]
    if vip["split_brain_intervals"]:
        lines += _table(("split brain from", "to", "seconds", "MASTER nodes"),
                        [(s["start_rel"], s["end_rel"], s["duration_s"], ", ".join(s["hosts"]))
                         for s in vip["split_brain_intervals"]])
    if report.get("alerts"):
        lines += _table(("alert at", "node", "alert"), [(a["t_rel"], a["host"], a["state"]) for a in report["alerts"]])
    if vip["moves"]:
        lines += _table(("VIP moved at", "from", "to"),
                        [(m["t_rel"], ", ".join(m["from"]), m["host"]) for m in vip["moves"]])
    if report["false_failover_events"]:
        lines += _table(("false failover at", "kind", "detail"),
                        [(e["t_rel"], e["kind"], e["detail"]) for e in report["false_failover_events"]])

    lines += ["## Settings", ""]
    settings = report["settings"]
    lines += _table(("setting", "value"), sorted(settings.items())) if settings else ["None recorded.", ""]
    if report.get("inputs"):
        lines += ["## Inputs", "", "```json", json.dumps(report["inputs"], indent=2), "```", ""]
    return "\n".join(lines)


def _carried_markdown(report):
    carried = report.get("carried")
    if not carried:
        return []
    before, after = carried["before_fault"], carried["after_recovery"]
    check = next((c for c in report["checks"] if c["name"] == "min_served_ratio_after_recovery"), None)

    def percent(ratio):
        return "n/a" if ratio is None else f"{ratio * 100:.1f} %"
    if after["served_ratio"] is None:
        verdict = "Not seen: no request started between steady state and the restore."
    else:
        verdict = (f"Served {percent(after['served_ratio'])} of {after['requests']} requests after recovery"
                   f" (before the fault {percent(before['served_ratio'])});"
                   f" p95 {_fmt(after['p95_ms'])} ms (before {_fmt(before['p95_ms'])} ms).")
    if check:
        verdict += (f" Threshold {percent(check['limit'])}: {'pass' if check['pass'] else 'FAIL'}.")
    lines = ["## Did the survivor carry the load?", "", verdict, "",
             "After recovery: requests that started from steady state until the restore.", ""]
    lines += _table(("window", "from", "to", "requests", "ok", "served ratio", "p50 ms", "p95 ms",
                     "rate/s", "served by"),
                    [(name.replace("_", " "), w["start_rel"], w["end_rel"], w["requests"], w["ok"],
                      percent(w["served_ratio"]), w["p50_ms"], w["p95_ms"], w["rate_per_s"],
                      ", ".join(f"{i} {n}" for i, n in sorted(w["served_by"].items())) or "none")
                     for name, w in (("before_fault", before), ("after_recovery", after))])
    return lines


def write_outputs(report, requests, out_dir):
    """report.json, report.md and timeline.png in out_dir; returns their paths."""
    # Imported here so that build_report() stays usable where matplotlib is not installed.
    from tts_drill.timeline import render_timeline  # noqa: PLC0415

    os.makedirs(out_dir, exist_ok=True)
    paths = {name: os.path.join(out_dir, name) for name in ("report.json", "report.md", "timeline.png")}
    with open(paths["report.json"], "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
        handle.write("\n")
    with open(paths["report.md"], "w", encoding="utf-8") as handle:
        handle.write(render_markdown(report))
    render_timeline(report, requests, paths["timeline.png"])
    return paths


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m tts_drill.report",
        description="Judge a failover drill from its request log, Keepalived transition logs and"
                    " events. Prints one summary line; exit 0 pass, 1 threshold missed, 2 bad input.")
    parser.add_argument("--requests", required=True, help="load generator log (JSON lines)")
    parser.add_argument("--transitions", nargs="*", default=[], metavar="[HOST=]FILE",
                        help="Keepalived transition log per node (JSON lines); HOST names the node"
                             " if the file is missing or empty (its state is then unknown)")
    parser.add_argument("--events", required=True, help="drill events (JSON object)")
    parser.add_argument("--thresholds", help="JSON object, inline or a file path (default: none)")
    parser.add_argument("--out-dir", help="where report.json, report.md and timeline.png go"
                                          " (default: the requests file's directory)")
    parser.add_argument("--steady-window", type=int, default=DEFAULT_STEADY_WINDOW,
                        help=f"consecutive ok requests that make steady state (default {DEFAULT_STEADY_WINDOW})")
    parser.add_argument("--stall-min-s", type=float, default=DEFAULT_STALL_MIN_S,
                        help="an ok answer after the fault that took longer than this (or 3 x the p95"
                             f" latency before the fault, if more) is a stall (default {DEFAULT_STALL_MIN_S})")
    parser.add_argument("--samples", help="the recovery sampler's log (JSON lines, tts_drill.loadgen"
                                          " --samples-out); empty or absent: no rto_sampled_s")
    parser.add_argument("--vrrp-instance", help="only this VRRP instance's transitions (default: all)")
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        requests, corrupt = load_requests(args.requests)
        transitions, transition_notes, warnings = load_transitions(args.transitions, args.vrrp_instance)
        events = _load_json(args.events, "events")
        thresholds = _parse_thresholds(args.thresholds) if args.thresholds else {}
        samples, corrupt_samples = load_samples(args.samples) if args.samples else ([], 0)
        report = build_report(requests, transitions, events, thresholds, args.steady_window, args.stall_min_s,
                              samples)
    except ReportInputError as exc:
        print(f"drill report: bad input: {exc}", file=sys.stderr)
        return 2
    if corrupt:
        warnings.insert(0, f"requests file {args.requests}: {corrupt} corrupt lines ignored")
    if corrupt_samples:
        warnings.insert(0, f"samples file {args.samples}: {corrupt_samples} corrupt lines ignored")
    report["warnings"] = warnings + report["warnings"]
    report["inputs"] = {"requests": {"file": args.requests, "records": len(requests), "corrupt_lines": corrupt},
                        "samples": {"file": args.samples, "records": len(samples), "corrupt_lines": corrupt_samples},
                        "transitions": transition_notes, "events": args.events,
                        "thresholds": thresholds}
    write_outputs(report, requests, args.out_dir or os.path.dirname(os.path.abspath(args.requests)))
    print(report["summary"], flush=True)
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
