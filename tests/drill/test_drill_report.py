"""Drill report maths on synthetic request and transition logs (times relative to the fault)."""

import json

import pytest
from tts_drill import report as drill_report
from tts_drill.report import ReportInputError, build_report, load_requests, load_transitions
from tts_drill_testlib import FAULT_AT, events, synth_requests, transitions, write_jsonl


def failover(t):
    """Primary until the fault, refused connections for 1 s, then the backup."""
    if t < 0:
        return "ok", "tts-primary", 0.08
    if t < 1.0:
        return "connection_error", None, 0.001
    return "ok", "tts-backup", 0.1


def vip_failover():
    return {"node1": transitions("node1", (-100, "MASTER"), (0.3, "FAULT")),
            "node2": transitions("node2", (-100, "BACKUP"), (0.7, "MASTER"))}


def test_clean_failover_figures_are_exact():
    report = build_report(synth_requests(failover), vip_failover(), events(restored=5), {}, 10)
    figures = report["figures"]
    assert figures["rto_first_ok_s"] == 1.1  # first ok starts at 1.0 and takes 0.1 s
    assert figures["rto_steady_s"] == 1.0
    assert (figures["total"], figures["ok"], figures["failed"]) == (150, 140, 10)
    assert figures["failed_after_fault"] == 10
    assert figures["by_outcome"]["connection_error"] == 10
    assert figures["client_outage"] is True
    assert report["outage_window"]["start_rel"] == 0.0
    assert report["outage_window"]["end_rel"] == 0.901  # last failure started 0.9, took 1 ms
    assert report["outage_window"]["failed"] == 10
    assert report["served_by"] == {"before_fault": {"tts-primary": 50}, "outage": {},
                                   "after_recovery": {"tts-backup": 90}}
    assert [(s["t_rel"], s["from"], s["to"]) for s in report["switches"]] == [
        (1.1, "tts-primary", "tts-backup")]  # when the client saw the backup answer
    assert figures["detection_s"] == 0.7
    assert figures["vip_moved"] is True
    assert figures["split_brain_s"] == 0.0
    assert figures["no_holder_s"] == 0.4  # node1 FAULT at 0.3, node2 MASTER at 0.7
    assert figures["auto_failback"] is False
    assert figures["false_failovers"] == 0
    assert report["vip"]["holders_at_fault"] == ["node1"]
    assert [(h["t_rel"], h["hosts"]) for h in report["vip"]["holders_over_time"]] == [
        (-5.0, ["node1"]), (0.3, []), (0.7, ["node2"])]
    assert report["summary"] == ("drill crash: PASS rto_first_ok=1.10s rto_steady=1.00s failed=10/150"
                                 " split_brain=0.0s detection=0.70s auto_failback=no")


def test_request_in_flight_at_the_fault_counts_but_outage_starts_at_the_fault():
    def behaviour(t):
        if -0.15 < t < 0:
            return "timeout", None, 3.0  # started before the fault, hit by it
        return failover(t)
    report = build_report(synth_requests(behaviour), vip_failover(), events(), {}, 10)
    assert report["figures"]["failed_after_fault"] == 11
    assert report["outage_window"]["start_rel"] == 0.0
    assert report["outage_window"]["end_rel"] == 2.9
    assert report["figures"]["rto_first_ok_s"] == 1.1


def test_completion_order_in_the_file_does_not_matter():
    def slow_failures(t):
        outcome, instance, _latency = failover(t)
        return outcome, instance, 2.5 if outcome != "ok" else 0.1
    ordered = build_report(synth_requests(slow_failures), vip_failover(), events(), {}, 10)
    shuffled = build_report(synth_requests(slow_failures, shuffle=True), vip_failover(), events(), {}, 10)
    assert shuffled["figures"] == ordered["figures"]
    assert shuffled["switches"] == ordered["switches"]
    assert ordered["figures"]["rto_first_ok_s"] == 1.1


def test_router_hides_the_crash_no_client_visible_outage():
    def behaviour(t):
        return "ok", "tts-primary" if t < 0 else "tts-backup", 0.1
    stays = {"node1": transitions("node1", (-100, "MASTER")),
             "node2": transitions("node2", (-100, "BACKUP"))}
    report = build_report(synth_requests(behaviour), stays, events(), {"max_rto_s": 0.5}, 10)
    figures = report["figures"]
    assert (figures["rto_first_ok_s"], figures["rto_steady_s"], figures["failed"]) == (0.0, 0.0, 0)
    assert figures["client_outage"] is False and report["outage_window"] is None
    assert figures["detection_s"] is None and figures["vip_moved"] is False
    assert report["served_by"]["outage"] == {}
    assert report["passed"] is True
    assert "rto_first_ok=0.00s" in report["summary"] and "detection=n/a" in report["summary"]
    assert "No client-visible outage" in drill_report.render_markdown(report)


def test_router_resending_the_request_in_flight_and_returning_by_design():
    """A request in flight at the kill, re-sent by HAProxy to the standby, is a switch after the
    fault (not a false failover); the router's return to the primary is an automatic failback of
    the serving instance, which the VIP thresholds leave alone."""
    def behaviour(t):
        if -0.1 <= t < 0:
            return "ok", "tts-backup", 0.4  # started before the kill, answered by the standby
        return "ok", "tts-primary" if t < 0 or t >= 6 else "tts-backup", 0.1
    stays = {"node1": transitions("node1", (-100, "MASTER")),
             "node2": transitions("node2", (-100, "BACKUP"))}
    router = {"max_rto_s": 1, "max_failed": 0, "no_vip_move": True, "no_vip_auto_failback": True}
    report = build_report(synth_requests(behaviour), stays, events(restored=10), router, 10)
    assert [(s["t_rel"], s["to"]) for s in report["switches"]] == [(0.3, "tts-backup"), (6.1, "tts-primary")]
    assert report["false_failover_events"] == []
    figures = report["figures"]
    assert figures["serving_auto_failback"] is True and figures["vip_auto_failback"] is False
    assert report["passed"] is True
    assert not build_report(synth_requests(behaviour), stays, events(restored=10),
                            {"no_auto_failback": True}, 10)["passed"]
    # The same thresholds fail when the VIP moved.
    moved = build_report(synth_requests(behaviour), vip_failover(), events(restored=10), router, 10)
    assert [c["name"] for c in moved["checks"] if not c["pass"]] == ["no_vip_move"]


def test_failures_after_the_restore_are_counted_apart():
    def behaviour(t):
        if 6.0 <= t < 6.5:
            return "http_error", "tts-backup", 0.01  # standby starved while the primary reboots
        return failover(t)
    limits = {"max_failed_before_restore": 10, "max_failed": 12}
    report = build_report(synth_requests(behaviour), vip_failover(), events(restored=5), limits, 10)
    figures = report["figures"]
    assert (figures["failed"], figures["failed_before_restore"]) == (15, 10)
    assert [c["name"] for c in report["checks"] if not c["pass"]] == ["max_failed"]


def test_rto_is_the_first_valid_synthesis_back_not_the_first_sent():
    """A request sent right after the outage began whose SYN waited 1 s for the VIP to move ends
    after later ones: recovery is when the first valid synthesis came back."""
    def behaviour(t):
        if 0 <= t < 0.1:
            return "connection_error", None, 0.001
        if 0.1 <= t < 0.2:
            return "ok", "tts-backup", 1.3  # sent at 0.1, answered at 1.4
        return "ok", "tts-primary" if t < 0 else "tts-backup", 0.1
    report = build_report(synth_requests(behaviour), vip_failover(), events(), {}, 10)
    assert report["figures"]["rto_first_ok_s"] == 0.3  # sent at 0.2, answered at 0.3


def test_requests_stalled_across_a_vip_move_are_an_outage_even_when_none_failed():
    """Host loss: SYNs sent while no node holds the VIP are retransmitted 1 s later and succeed.
    Nothing failed, yet the clients waited: the outage starts with the first stalled request."""
    def behaviour(t):
        if 0 <= t < 0.6:
            return "ok", "tts-backup", 1.1  # SYN lost, retransmitted after the VIP moved
        return "ok", "tts-primary" if t < 0 else "tts-backup", 0.1
    report = build_report(synth_requests(behaviour), vip_failover(), events(), {"max_rto_s": 0.5}, 10)
    figures = report["figures"]
    assert figures["failed"] == 0 and figures["client_outage"] is True
    assert (figures["stalled_after_fault"], figures["stall_s"]) == (6, 1.0)
    assert figures["rto_first_ok_s"] == 0.7  # sent at 0.6, answered at 0.7: before the stalled ones
    assert figures["rto_steady_s"] == 0.6  # stalled answers do not open steady state
    assert report["outage_window"] == {**report["outage_window"], "start_rel": 0.0, "end_rel": 1.6,
                                       "failed": 0, "stalled": 6}
    assert [c["name"] for c in report["checks"] if not c["pass"]] == ["max_rto_s"]
    assert "No client-visible outage" not in drill_report.render_markdown(report)


def test_a_slow_answer_once_the_service_answers_again_is_no_stall():
    """Router crash on a busy lab: the standby answers at once, then one answer takes 1.1 s."""
    def behaviour(t):
        if 0.8 <= t < 0.85:
            return "ok", "tts-backup", 1.1
        return "ok", "tts-primary" if t < 0 else "tts-backup", 0.3
    report = build_report(synth_requests(behaviour), vip_failover(), events(), {"max_rto_s": 1}, 10)
    figures = report["figures"]
    assert (figures["stalled_after_fault"], figures["client_outage"], figures["rto_first_ok_s"]) == (0, False, 0.0)
    assert report["passed"] is True


def test_stall_bound_follows_the_latency_before_the_fault():
    """Where 0.8 s answers are normal, a 1.1 s answer is no stall: the bound is 3 x p95 (2.4 s)."""
    def behaviour(t):
        if 0 <= t < 0.6:
            return "ok", "tts-backup", 1.1
        return "ok", "tts-primary" if t < 0 else "tts-backup", 0.8
    report = build_report(synth_requests(behaviour), vip_failover(), events(), {}, 10)
    assert report["figures"]["stall_s"] == 2.4
    assert report["figures"]["client_outage"] is False and report["figures"]["rto_first_ok_s"] == 0.0
    stricter = build_report(synth_requests(behaviour), vip_failover(), events(), {}, 10, stall_min_s=0.1)
    assert stricter["figures"]["stall_s"] == 2.4
    with pytest.raises(ReportInputError, match="stall_min_s must be a positive number"):
        build_report(synth_requests(behaviour), vip_failover(), events(), {}, 10, stall_min_s=0)


def test_fault_taking_effect_late_does_not_shorten_the_rto():
    def behaviour(t):
        if 0.5 <= t < 1.5:
            return "http_error", "tts-primary", 0.01
        return "ok", "tts-primary" if t < 0.5 else "tts-backup", 0.1
    report = build_report(synth_requests(behaviour), vip_failover(), events(), {}, 10)
    assert report["figures"]["rto_first_ok_s"] == 1.6
    assert report["figures"]["rto_steady_s"] == 1.5
    assert report["outage_window"]["start_rel"] == 0.5


def test_steady_state_needs_the_window_of_consecutive_ok_requests():
    def flapping(t):
        if 0 <= t < 1.0 or 1.5 <= t < 2.0:
            return "timeout", None, 0.5
        return "ok", "tts-primary" if t < 0 else "tts-backup", 0.1
    report = build_report(synth_requests(flapping), vip_failover(), events(), {}, 10)
    assert report["figures"]["rto_first_ok_s"] == 1.1
    assert report["figures"]["rto_steady_s"] == 2.0
    assert report["outage_window"]["end_rel"] == 2.4
    assert report["figures"]["failed_after_steady"] == 0
    short = build_report(synth_requests(flapping), vip_failover(), events(), {}, 3)
    assert short["figures"]["rto_steady_s"] == 1.0
    assert short["figures"]["failed_after_steady"] == 5


def test_never_recovered_fails_rto_thresholds():
    def down(t):
        return ("ok", "tts-primary", 0.1) if t < 0 else ("timeout", None, 3.0)
    report = build_report(synth_requests(down), vip_failover(), events(),
                          {"max_rto_s": 10, "max_rto_steady_s": 10}, 10)
    assert report["figures"]["rto_first_ok_s"] is None and report["figures"]["rto_steady_s"] is None
    assert [(c["name"], c["value"], c["pass"]) for c in report["checks"]] == [
        ("max_rto_s", None, False), ("max_rto_steady_s", None, False)]
    assert any("did not recover" in w for w in report["warnings"])
    assert "rto_first_ok=n/a" in report["summary"]


def test_load_stopped_before_the_fault_measures_no_recovery():
    report = build_report(synth_requests(failover, end=-1.0), vip_failover(), events(), {"max_rto_s": 3}, 10)
    assert report["figures"]["rto_first_ok_s"] is None and report["figures"]["client_outage"] is False
    assert report["passed"] is False
    assert "no request started after the fault: recovery not measured" in report["warnings"]


def test_split_brain_overlapping_masters():
    nodes = {"node1": transitions("node1", (-100, "MASTER")),
             "node2": transitions("node2", (-100, "BACKUP"), (2.0, "MASTER"), (3.5, "BACKUP")),
             "node3": transitions("node3", (-100, "BACKUP"), (3.0, "MASTER"), (3.25, "BACKUP"))}
    report = build_report(synth_requests(failover), nodes, events(), {"max_split_brain_s": 0}, 10)
    intervals = report["vip"]["split_brain_intervals"]
    assert [(s["start_rel"], s["end_rel"], s["hosts"]) for s in intervals] == [
        (2.0, 3.0, ["node1", "node2"]), (3.0, 3.25, ["node1", "node2", "node3"]),
        (3.25, 3.5, ["node1", "node2"])]
    assert report["figures"]["split_brain_s"] == 1.5
    assert report["passed"] is False
    assert report["summary"].startswith("drill crash: FAIL(max_split_brain_s)")
    assert "split_brain=1.5s" in report["summary"]


def test_split_brain_alert_from_the_watch_is_reported_and_required(tmp_path):
    """ALERT lines (the nodes' split-brain watch) share the transition logs: they never count as
    VRRP states, and `no_unalerted_split_brain` fails a split brain nobody alerted about."""
    def alert(host, t, state):
        return {"ts": FAULT_AT + t, "host": host, "instance": "VI_TTS", "type": "ALERT", "state": state,
                "priority": None}
    split = {"node1": transitions("node1", (-100, "MASTER")),
             "node2": transitions("node2", (-100, "BACKUP"), (2.0, "MASTER"), (6.0, "BACKUP"))}
    need = {"no_unalerted_split_brain": True}
    silent = build_report(synth_requests(failover), split, events(fault="partition"), need, 10)
    assert silent["figures"]["split_brain_unalerted"] is True and silent["passed"] is False

    split["node2"] += [alert("node2", 2.5, "SPLIT_BRAIN"), alert("node2", 6.1, "SPLIT_BRAIN_CLEARED")]
    paths = []
    for host, records in split.items():
        write_jsonl(tmp_path / f"{host}.jsonl", records)
        paths.append(f"{host}={tmp_path / f'{host}.jsonl'}")
    loaded, notes, warnings = load_transitions(paths)
    assert warnings == [] and all(note["corrupt_lines"] == 0 for note in notes)
    report = build_report(synth_requests(failover), loaded, events(fault="partition"), need, 10)
    assert report["figures"]["split_brain_s"] == 4.0  # the ALERT lines are not VRRP states
    assert report["figures"]["split_brain_alerted"] is True and report["passed"] is True
    assert [(a["t_rel"], a["host"], a["state"]) for a in report["alerts"]] == [
        (2.5, "node2", "SPLIT_BRAIN"), (6.1, "node2", "SPLIT_BRAIN_CLEARED")]
    assert "split_brain=4.0s (alerted)" in report["summary"]
    assert "| 2.5 | node2 | SPLIT_BRAIN |" in drill_report.render_markdown(report)


def test_split_brain_that_started_before_the_window_is_clipped_to_it():
    nodes = {"node1": transitions("node1", (-100, "MASTER")),
             "node2": transitions("node2", (-50, "MASTER"), (1.0, "BACKUP"))}
    report = build_report(synth_requests(failover), nodes, events(), {}, 10)
    assert report["figures"]["split_brain_s"] == 6.0  # window starts at -5


def test_detection_is_the_first_takeover_by_another_node():
    nodes = {"node1": transitions("node1", (-100, "MASTER"), (0.2, "FAULT"), (0.9, "MASTER")),
             "node2": transitions("node2", (-100, "BACKUP"), (0.85, "MASTER"), (0.9, "BACKUP"))}
    report = build_report(synth_requests(failover), nodes, events(), {"max_detection_s": 0.8}, 10)
    assert report["figures"]["detection_s"] == 0.85
    assert [c["pass"] for c in report["checks"]] == [False]
    # node1 taking the VIP back at 0.9 is a VIP failback (no planned failback in the events)
    assert report["figures"]["vip_auto_failback"] is True


def test_takeover_after_the_restore_is_not_detection():
    nodes = {"node1": transitions("node1", (-100, "MASTER"), (6.0, "BACKUP")),
             "node2": transitions("node2", (-100, "BACKUP"), (6.0, "MASTER"))}
    report = build_report(synth_requests(failover), nodes, events(restored=5), {}, 10)
    assert report["figures"]["detection_s"] is None
    assert report["figures"]["vip_moved"] is True


def test_unknown_master_at_fault_is_warned():
    nodes = {"node1": transitions("node1", (0.5, "FAULT")), "node2": transitions("node2", (0.8, "MASTER"))}
    report = build_report(synth_requests(failover), nodes, events(), {}, 10)
    assert report["figures"]["detection_s"] == 0.8 and report["figures"]["vip_moved"] is True
    assert any("no node is known to have been MASTER" in w for w in report["warnings"])
    assert report["vip"]["nodes"]["node2"]["intervals"][0]["state"] == "UNKNOWN"


def back_to_primary(t):
    """Failover to the backup at 1 s, then the primary serves again from 6 s."""
    if t >= 6.0:
        return "ok", "tts-primary", 0.1
    return failover(t)


def test_auto_failback_after_restore():
    nodes = {"node1": transitions("node1", (-100, "MASTER"), (0.3, "FAULT"), (6.0, "MASTER")),
             "node2": transitions("node2", (-100, "BACKUP"), (0.7, "MASTER"), (6.0, "BACKUP"))}
    report = build_report(synth_requests(back_to_primary), nodes, events(restored=5),
                          {"no_auto_failback": True}, 10)
    figures = report["figures"]
    assert figures["serving_auto_failback"] is True and figures["vip_auto_failback"] is True
    assert report["times"]["auto_failback_at"] == FAULT_AT + 6.0
    assert report["passed"] is False
    assert report["summary"].endswith("auto_failback=yes")


def test_planned_failback_is_not_automatic():
    nodes = {"node1": transitions("node1", (-100, "MASTER"), (0.3, "FAULT"), (6.0, "MASTER")),
             "node2": transitions("node2", (-100, "BACKUP"), (0.7, "MASTER"), (6.0, "BACKUP"))}
    report = build_report(synth_requests(back_to_primary), nodes, events(restored=5, failback=5.5),
                          {"no_auto_failback": True, "max_false_failovers": 0}, 10)
    assert report["figures"]["auto_failback"] is False
    assert report["passed"] is True


def test_auto_failback_found_without_expected_primary_in_events():
    evts = events(restored=5)
    del evts["expected_primary"]
    report = build_report(synth_requests(back_to_primary), vip_failover(), evts, {}, 10)
    assert (report["expected_primary"], report["expected_primary_source"]) == ("tts-primary", "inferred")
    assert report["figures"]["serving_auto_failback"] is True


def test_overload_must_not_fail_over():
    def overload(t):
        return "ok", "tts-backup" if t >= 3.0 else "tts-primary", 0.9 if t >= 0 else 0.1
    nodes = {"node1": transitions("node1", (-100, "MASTER"), (3.2, "BACKUP")),
             "node2": transitions("node2", (-100, "BACKUP"), (3.2, "MASTER"))}
    report = build_report(synth_requests(overload), nodes, events("overload"),
                          {"max_false_failovers": 0}, 10)
    assert report["failovers_expected"] is False
    assert report["figures"]["false_failover"] is True
    assert [(e["kind"], e["t_rel"]) for e in report["false_failover_events"]] == [
        ("vip_move", 3.2), ("serving_switch", 3.9)]
    assert report["passed"] is False
    assert report["latency_ms"]["after_recovery"]["p50"] == 900.0

    steady = build_report(synth_requests(lambda t: ("ok", "tts-primary", 0.9)),
                          {"node1": transitions("node1", (-100, "MASTER"))}, events("overload"),
                          {"max_false_failovers": 0}, 10)
    assert steady["figures"]["false_failovers"] == 0 and steady["passed"] is True


def test_switch_before_the_fault_is_a_false_failover_for_any_fault():
    def early(t):
        return failover(t) if t >= 0 else ("ok", "tts-backup" if -2 <= t < -1 else "tts-primary", 0.1)
    report = build_report(synth_requests(early), vip_failover(), events(), {}, 10)
    assert [(e["kind"], e["t_rel"]) for e in report["false_failover_events"]] == [
        ("serving_switch", -1.9), ("serving_switch", -0.9)]
    assert report["figures"]["rto_first_ok_s"] == 1.1  # the real failover is not affected


def test_thresholds_checked_one_by_one():
    limits = {"max_rto_s": 1.0, "max_rto_steady_s": 1.0, "max_failed": 10, "max_invalid_audio": 0,
              "max_split_brain_s": 0, "max_false_failovers": 0, "max_detection_s": 1,
              "min_requests": 151, "no_auto_failback": True}
    report = build_report(synth_requests(failover), vip_failover(), events(), limits, 10)
    assert {c["name"]: (c["value"], c["pass"]) for c in report["checks"]} == {
        "max_rto_s": (1.1, False), "max_rto_steady_s": (1.0, True), "max_failed": (10, True),
        "max_invalid_audio": (0, True), "max_split_brain_s": (0.0, True),
        "max_false_failovers": (0, True), "max_detection_s": (0.7, True),
        "min_requests": (150, False), "no_auto_failback": (False, True)}
    assert report["summary"].startswith("drill crash: FAIL(max_rto_s,min_requests) ")


@pytest.mark.parametrize("thresholds, message", [
    ({"max_rto": 3}, "unknown 'max_rto'"),
    ({"max_failed": "5"}, "max_failed must be a number"),
    ({"no_auto_failback": 1}, "no_auto_failback must be true or false"),
])
def test_bad_thresholds_are_refused(thresholds, message):
    with pytest.raises(ReportInputError, match=message):
        build_report(synth_requests(failover), {}, events(), thresholds, 10)


@pytest.mark.parametrize("change, message", [
    ({"fault_at": None}, "'fault_at'"), ({"fault": ""}, "'fault'"),
    ({"restored_at": "soon"}, "'restored_at'"),
])
def test_bad_events_are_refused(change, message):
    with pytest.raises(ReportInputError, match=message):
        build_report(synth_requests(failover), {}, {**events(), **change}, {}, 10)


# --------------------------------------------------------------------------------------------
# Files and the CLI
# --------------------------------------------------------------------------------------------

def test_corrupt_request_lines_are_counted(tmp_path):
    path = tmp_path / "requests.jsonl"
    good = synth_requests(failover)
    lines = [json.dumps(r) for r in good[:100]] + ["not json", '{"t_start": 1}', '[1, 2]'] + [
        json.dumps(r) for r in good[100:]]
    path.write_text("\n".join(lines) + "\n" + json.dumps(good[0])[:40])  # cut off mid-write
    records, corrupt = load_requests(path)
    assert (len(records), corrupt) == (150, 4)


def test_requests_file_with_nothing_usable_is_bad_input(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("x\ny\n")
    with pytest.raises(ReportInputError, match="empty.jsonl: no usable request records"):
        load_requests(empty)
    with pytest.raises(ReportInputError, match="all 2 lines are corrupt"):
        load_requests(garbage)
    with pytest.raises(ReportInputError, match="missing.jsonl: cannot read"):
        load_requests(tmp_path / "missing.jsonl")


def test_missing_and_empty_transition_logs_mean_unknown(tmp_path):
    node1 = write_jsonl(tmp_path / "node1.jsonl", vip_failover()["node1"] + [
        {"ts": "x", "host": "node1", "state": "MASTER"},
        {"ts": FAULT_AT, "host": "node1", "type": "GROUP", "instance": "G", "state": "BACKUP"}])
    (tmp_path / "node2.jsonl").write_text("")
    found, notes, warnings = load_transitions([node1, tmp_path / "node2.jsonl", tmp_path / "node3.jsonl"])
    assert found == {"node1": vip_failover()["node1"], "node2": [], "node3": None}
    assert [n["status"] for n in notes] == ["read", "read", "missing"]
    assert notes[0]["corrupt_lines"] == 1
    assert any("1 corrupt lines" in w for w in warnings)
    report = build_report(synth_requests(failover), found, events(), {}, 10)
    assert {h: n["log"] for h, n in report["vip"]["nodes"].items()} == {
        "node1": "present", "node2": "empty", "node3": "missing"}
    assert report["vip"]["nodes"]["node3"]["intervals"] == [
        {"state": "UNKNOWN", "start": FAULT_AT - 5, "end": FAULT_AT + 10, "start_rel": -5.0,
         "end_rel": 10.0}]
    assert report["figures"]["detection_s"] is None  # nobody else is known to take over


def test_transition_logs_named_by_host(tmp_path):
    # As fetched from every node: the same file name, told apart by the records or HOST=.
    for host, records in vip_failover().items():
        (tmp_path / host).mkdir()
        write_jsonl(tmp_path / host / "keepalived-transitions.jsonl", records)
    (tmp_path / "node3").mkdir()
    (tmp_path / "node3" / "keepalived-transitions.jsonl").write_text("")
    specs = [f"{host}={tmp_path / host / 'keepalived-transitions.jsonl'}"
             for host in ("node1", "node2", "node3", "node4")]
    found, notes, _warnings = load_transitions(specs)
    assert found == {**vip_failover(), "node3": [], "node4": None}
    assert [(n["node"], n["status"]) for n in notes] == [
        ("node1", "read"), ("node2", "read"), ("node3", "read"), ("node4", "missing")]


def test_transitions_of_one_vrrp_instance(tmp_path):
    mixed = write_jsonl(tmp_path / "node1.jsonl", transitions("node1", (-100, "MASTER"))
                        + transitions("node1", (1.0, "BACKUP"), instance="VI_OTHER"))
    found, _notes, warnings = load_transitions([mixed])
    assert len(found["node1"]) == 2 and any("mix VRRP instances" in w for w in warnings)
    found, _notes, warnings = load_transitions([mixed], vrrp_instance="VI_TTS")
    assert len(found["node1"]) == 1 and not warnings


def write_drill(tmp_path, behaviour=failover, thresholds=None):
    write_jsonl(tmp_path / "requests.jsonl", synth_requests(behaviour, shuffle=True))
    for host, records in vip_failover().items():
        write_jsonl(tmp_path / f"{host}.jsonl", records)
    (tmp_path / "events.json").write_text(json.dumps(events(restored=5, settings={"advert_int": 1})))
    argv = ["--requests", str(tmp_path / "requests.jsonl"), "--events", str(tmp_path / "events.json"),
            "--transitions", str(tmp_path / "node1.jsonl"), str(tmp_path / "node2.jsonl"),
            "--out-dir", str(tmp_path / "out")]
    return argv + (["--thresholds", json.dumps(thresholds)] if thresholds is not None else [])


def test_cli_pass_writes_the_report(tmp_path, capsys):
    code = drill_report.main(write_drill(tmp_path, thresholds={"max_rto_s": 3, "max_failed": 10}))
    out = capsys.readouterr().out
    assert code == 0
    assert out == ("drill crash: PASS rto_first_ok=1.10s rto_steady=1.00s failed=10/150 split_brain=0.0s"
                   " detection=0.70s auto_failback=no\n")
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["passed"] is True and saved["inputs"]["requests"]["records"] == 150
    markdown = (tmp_path / "out" / "report.md").read_text()
    for expected in ("| rto_first_ok_s | 1.1 |", "| max_rto_s | rto_first_ok_s | 3 | 1.1 | pass |",
                     "| node2 | present | MASTER | 0.7 |", "| 1.1 | tts-primary | tts-backup |",
                     "| advert_int | 1 |"):
        assert expected in markdown
    assert (tmp_path / "out" / "timeline.png").stat().st_size > 10_000


def test_cli_missed_threshold_exits_1(tmp_path, capsys):
    thresholds = tmp_path / "thresholds.json"
    thresholds.write_text(json.dumps({"max_failed": 5}))
    argv = write_drill(tmp_path) + ["--thresholds", str(thresholds)]
    assert drill_report.main(argv) == 1
    assert capsys.readouterr().out.startswith("drill crash: FAIL(max_failed) ")


@pytest.mark.parametrize("breakage, message", [
    (lambda d: (d / "requests.jsonl").unlink(), "requests file .*requests.jsonl: cannot read"),
    (lambda d: (d / "requests.jsonl").write_text("garbage\n"), "all 1 lines are corrupt"),
    (lambda d: (d / "events.json").write_text("{"), "events file .*events.json: not valid JSON"),
    (lambda d: (d / "events.json").write_text("{}"), "'fault'"),
])
def test_cli_bad_input_exits_2(tmp_path, capsys, breakage, message):
    argv = write_drill(tmp_path, thresholds={"max_failed": 5})
    breakage(tmp_path)
    assert drill_report.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("drill report: bad input: ")
    assert __import__("re").search(message, captured.err)


def test_cli_bad_thresholds_json_exits_2(tmp_path, capsys):
    assert drill_report.main(write_drill(tmp_path) + ["--thresholds", "{max_failed: 5}"]) == 2
    assert "--thresholds: not valid JSON" in capsys.readouterr().err


def test_cli_corrupt_lines_reported_not_fatal(tmp_path, capsys):
    argv = write_drill(tmp_path)
    with open(tmp_path / "requests.jsonl", "a") as handle:
        handle.write("{broken\n")
    assert drill_report.main(argv) == 0
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["inputs"]["requests"]["corrupt_lines"] == 1
    assert saved["warnings"][0].endswith("1 corrupt lines ignored")
    assert "1 corrupt lines ignored" in (tmp_path / "out" / "report.md").read_text()


# --------------------------------------------------------------------------------------------
# Did the survivor carry the load
# --------------------------------------------------------------------------------------------

def test_survivor_carried_the_load_figures():
    report = build_report(synth_requests(failover), vip_failover(), events(restored=5),
                          {"min_served_ratio_after_recovery": 0.99}, 10)
    before, after = report["carried"]["before_fault"], report["carried"]["after_recovery"]
    assert (before["requests"], before["ok"], before["served_ratio"]) == (50, 50, 1.0)
    assert (before["p50_ms"], before["p95_ms"], before["rate_per_s"]) == (80.0, 80.0, 10.0)
    assert before["served_by"] == {"tts-primary": 50}
    # From steady state (1.0) until the restore (5.0): 40 requests, all from the standby.
    assert (after["requests"], after["ok"], after["served_ratio"]) == (40, 40, 1.0)
    assert (after["start_rel"], after["end_rel"]) == (1.0, 4.9)
    assert (after["p50_ms"], after["p95_ms"]) == (100.0, 100.0)
    assert after["served_by"] == {"tts-backup": 40}
    assert report["figures"]["served_ratio_after_recovery"] == 1.0
    assert report["figures"]["served_ratio_before_fault"] == 1.0
    assert report["passed"] is True


def standby_queue_fills(t):
    """Failover as above, then the standby's queue fills from 3 s on: one request in 4 gets a 503."""
    outcome, instance, latency = failover(t)
    if t >= 3.0 and round(t * 10) % 4 == 0:
        return "http_error", "tts-backup", 0.01
    if t >= 3.0:
        return outcome, instance, 2.0
    return outcome, instance, latency


def test_survivor_that_drops_requests_fails_the_threshold():
    report = build_report(synth_requests(standby_queue_fills), vip_failover(), events(restored=5),
                          {"min_served_ratio_after_recovery": 0.99, "max_rto_s": 3}, 10)
    after = report["carried"]["after_recovery"]
    assert (after["requests"], after["failed"]) == (40, 5)  # 3.0, 3.2 ... 4.8 where t*10 % 4 == 0
    assert after["served_ratio"] == 0.875
    assert after["p95_ms"] == 2000.0 and report["carried"]["before_fault"]["p95_ms"] == 80.0
    check = next(c for c in report["checks"] if c["name"] == "min_served_ratio_after_recovery")
    assert (check["figure"], check["value"], check["pass"]) == ("served_ratio_after_recovery", 0.875, False)
    assert report["passed"] is False
    assert "FAIL(min_served_ratio_after_recovery)" in report["summary"]
    markdown = drill_report.render_markdown(report)
    assert "## Did the survivor carry the load?" in markdown
    assert ("Served 87.5 % of 40 requests after recovery (before the fault 100.0 %); p95 2000 ms"
            " (before 80 ms). Threshold 99.0 %: FAIL.") in markdown
    assert "| after recovery | 1 | 4.9 | 40 | 35 | 87.5 % | 100 | 2000 | 10 | tts-backup 35 |" in markdown


def test_a_request_in_flight_at_the_fault_is_not_the_load_before_it():
    def behaviour(t):
        if -0.15 < t < 0:
            return "connection_error", None, 0.5  # in flight at the fault, cut by it
        return failover(t)
    report = build_report(synth_requests(behaviour), vip_failover(), events(restored=5), {}, 10)
    before = report["carried"]["before_fault"]
    assert (before["requests"], before["served_ratio"], before["end_rel"]) == (49, 1.0, -0.2)


def test_failures_after_the_restore_are_not_the_survivors():
    def restore_hurts(t):
        if t >= 6.0:
            return "timeout", None, 3.0
        return failover(t)
    report = build_report(synth_requests(restore_hurts), vip_failover(), events(restored=5),
                          {"min_served_ratio_after_recovery": 0.99}, 10)
    assert report["figures"]["served_ratio_after_recovery"] == 1.0
    without_restore = build_report(synth_requests(restore_hurts), vip_failover(), events(), {}, 10)
    # Without a restore the window runs to the end of the load.
    assert without_restore["carried"]["after_recovery"]["requests"] == 90
    assert without_restore["figures"]["served_ratio_after_recovery"] == round(50 / 90, 4)


def test_no_recovery_before_the_restore_fails_the_served_ratio():
    def down_until_restore(t):
        if t < 0:
            return "ok", "tts-primary", 0.08
        if t < 6.0:
            return "connection_error", None, 0.001
        return "ok", "tts-primary", 0.08
    report = build_report(synth_requests(down_until_restore), vip_failover(), events(restored=5),
                          {"min_served_ratio_after_recovery": 0.99}, 10)
    assert report["carried"]["after_recovery"]["requests"] == 0
    assert report["figures"]["served_ratio_after_recovery"] is None
    assert report["passed"] is False
    assert "Not seen: no request started between steady state and the restore." in (
        drill_report.render_markdown(report))


def test_no_outage_the_window_starts_at_the_fault():
    def behaviour(t):
        return "ok", "tts-primary" if t < 0 else "tts-backup", 0.1
    report = build_report(synth_requests(behaviour), vip_failover(), events(restored=5),
                          {"min_served_ratio_after_recovery": 0.99}, 10)
    assert report["carried"]["after_recovery"]["requests"] == 50
    assert report["carried"]["after_recovery"]["start_rel"] == 0.0
    assert report["passed"] is True


@pytest.mark.parametrize("limit", [True, "0.99", None])
def test_served_ratio_threshold_must_be_a_number(limit):
    with pytest.raises(ReportInputError, match="min_served_ratio_after_recovery must be a number"):
        build_report(synth_requests(failover), vip_failover(), events(),
                     {"min_served_ratio_after_recovery": limit}, 10)
