"""The timeline PNG is written, is a real PNG and has the intended size."""

import struct

from tts_drill.report import build_report
from tts_drill.timeline import render_timeline
from tts_drill_testlib import events, synth_requests, transitions

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def outage(t):
    if t < 0:
        return "ok", "tts-primary", 0.1
    if t < 0.5:
        return "timeout", None, 3.0
    if t < 1.0:
        return "http_error", "tts-primary", 0.01
    if t < 1.2:
        return "client_saturated", None, 0.0
    return "ok", "tts-backup", 0.12


def test_timeline_with_outage_split_brain_and_missing_log(tmp_path):
    requests = synth_requests(outage, shuffle=True)
    for record in requests:
        if record["outcome"] == "client_saturated":
            record["latency_ms"] = None
    nodes = {"node1": transitions("node1", (-100, "MASTER"), (0.3, "FAULT"), (6, "BACKUP")),
             "node2": transitions("node2", (-100, "BACKUP"), (0.7, "MASTER")),
             "node3": transitions("node3", (-100, "BACKUP"), (0.6, "MASTER"), (1.0, "BACKUP")),
             "node4": None}
    report = build_report(requests, nodes, events(restored=5, failback=8), {"max_rto_s": 1}, 10)
    path = render_timeline(report, requests, tmp_path / "timeline.png")
    assert png_size(path) == (1400, 800)
    assert path.stat().st_size > 20_000


def test_timeline_without_transitions_or_outage(tmp_path):
    requests = synth_requests(lambda t: ("ok", "tts-primary", 0.1))
    report = build_report(requests, {}, events("overload"), {}, 10)
    path = render_timeline(report, requests, tmp_path / "timeline.png")
    assert png_size(path) == (1400, 800)
