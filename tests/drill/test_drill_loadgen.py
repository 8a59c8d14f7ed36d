"""The load generator against a switchable TTS stand-in on 127.0.0.1."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from tts_drill import loadgen
from tts_drill.loadgen import LoadGenerator
from tts_drill_testlib import TOOLS, SwitchableServer, read_jsonl

RECORD_KEYS = {"seq", "t_start", "t_end", "latency_ms", "status", "ok", "outcome", "reason", "instance",
               "bytes", "audio_duration_s"}


@pytest.fixture
def server():
    with SwitchableServer() as test_server:
        yield test_server


def run(server_url, tmp_path, **options):
    out = tmp_path / "requests.jsonl"
    generator = LoadGenerator(server_url, str(out), **options)
    summary = generator.run()
    assert generator.error is None
    return summary, sorted(read_jsonl(out), key=lambda r: r["t_start"])


@pytest.mark.parametrize("mode, outcome, status", [
    ("ok", "ok", 200),
    ("error500", "http_error", 500),
    ("silence", "invalid_audio", 200),
    ("html", "invalid_audio", 200),
    ("hang", "timeout", None),
    ("refuse", "connection_error", None),
])
def test_outcomes_are_classified(server, tmp_path, mode, outcome, status):
    if mode == "refuse":
        server.refuse()
    else:
        server.mode = mode
    summary, records = run(server.url, tmp_path, rate=20, max_requests=4, timeout=0.4)
    assert len(records) == 4 and summary["scheduled"] == 4
    for record in records:
        assert set(record) == RECORD_KEYS
        assert (record["outcome"], record["status"], record["ok"]) == (outcome, status, outcome == "ok")
        assert record["t_end"] >= record["t_start"]
    answered = mode not in ("hang", "refuse")
    assert {r["instance"] for r in records} == {"tts-primary" if answered else None}
    if outcome == "ok":
        assert records[0]["audio_duration_s"] == 0.2 and records[0]["bytes"] > 6000
        assert summary["failed"] == 0 and summary["p50_ms"] > 0
    else:
        assert summary["failed_by_outcome"] == {outcome: 4}
    if mode == "silence":
        assert "silent" in records[0]["reason"]
    if mode == "hang":
        assert all(390 <= r["latency_ms"] < 1000 for r in records)


def test_failover_mid_run_is_recorded_in_order(server, tmp_path):
    def take_over():
        server.instance = "tts-backup"
        server.resume()
    timers = [threading.Timer(0.5, server.refuse), threading.Timer(1.0, take_over)]
    for timer in timers:
        timer.start()
    try:
        summary, records = run(server.url, tmp_path, rate=20, duration=1.5, timeout=0.5)
    finally:
        for timer in timers:
            timer.cancel()
    assert {r["outcome"] for r in records} == {"ok", "connection_error"}
    assert (records[0]["outcome"], records[0]["instance"]) == ("ok", "tts-primary")
    assert (records[-1]["outcome"], records[-1]["instance"]) == ("ok", "tts-backup")
    failures = [r["t_start"] for r in records if r["outcome"] == "connection_error"]
    primary = [r["t_start"] for r in records if r["instance"] == "tts-primary"]
    backup = [r["t_start"] for r in records if r["instance"] == "tts-backup"]
    assert max(primary) < min(failures) and max(failures) < min(backup)
    assert sorted(r["seq"] for r in records) == list(range(summary["scheduled"]))


def test_rate_is_honoured_and_duration_stops_it(server, tmp_path):
    started = time.monotonic()
    summary, records = run(server.url, tmp_path, rate=20, duration=2.0, timeout=1.0)
    assert time.monotonic() - started < 3.5
    assert 35 <= len(records) <= 45 and summary["stopped_by"] == "duration"
    assert 1.7 <= records[-1]["t_start"] - records[0]["t_start"] <= 2.1


def test_max_requests_stops_it(server, tmp_path):
    summary, records = run(server.url, tmp_path, rate=50, duration=30, max_requests=7)
    assert [r["seq"] for r in records] == list(range(7))
    assert summary["stopped_by"] == "max_requests" and summary["ok"] == 7


def test_stop_file_stops_it(server, tmp_path):
    stop_file = tmp_path / "stop"
    timer = threading.Timer(0.5, stop_file.touch)
    timer.start()
    started = time.monotonic()
    try:
        summary, records = run(server.url, tmp_path, rate=20, duration=30, stop_file=str(stop_file))
    finally:
        timer.cancel()
    assert summary["stopped_by"] == "stop_file"
    assert time.monotonic() - started < 1.5  # 0.5 s, plus at most ~0.2 s to notice, plus the last reply
    assert 8 <= len(records) <= 16


def test_full_pool_records_client_saturated(server, tmp_path):
    server.mode = "hang"
    summary, records = run(server.url, tmp_path, rate=20, max_requests=6, timeout=1.0, max_in_flight=2)
    assert [r["outcome"] for r in sorted(records, key=lambda r: r["seq"])] == (
        ["timeout"] * 2 + ["client_saturated"] * 4)
    saturated = [r for r in records if r["outcome"] == "client_saturated"]
    assert all(r["status"] is None and r["latency_ms"] is None and r["bytes"] == 0 for r in saturated)
    assert summary["sent"] == 2 and summary["failed_by_outcome"] == {"timeout": 2, "client_saturated": 4}


def test_cli_texts_headers_and_summary(server, tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("# drill texts\nFirst sentence.\n\nSecond sentence.\n")
    out = tmp_path / "requests.jsonl"
    code = loadgen.main(["--url", server.url, "--rate", "50", "--max-requests", "3", "--texts-file",
                         str(texts), "--out", str(out), "--header", "X-Drill: failover",
                         "--min-rms-dbfs", "-40"])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert (summary["scheduled"], summary["sent"], summary["ok"], summary["failed"]) == (3, 3, 3, 0)
    assert summary["stopped_by"] == "max_requests" and summary["out"] == str(out)
    assert sorted(body["text"] for _headers, body in server.received) == [
        "First sentence.", "First sentence.", "Second sentence."]
    headers = server.received[0][0]
    assert headers["X-Drill"] == "failover" and headers["Connection"] == "close"
    assert headers["User-Agent"] == loadgen.USER_AGENT
    assert len(read_jsonl(out)) == 3


def test_default_texts_rotate(server, tmp_path):
    run(server.url, tmp_path, rate=100, max_requests=25)
    sent = [body["text"] for _headers, body in server.received]
    assert len(set(sent)) == len(loadgen.DEFAULT_TEXTS) == 20


@pytest.mark.parametrize("argv, message", [
    (["--rate", "0"], "--rate: must be > 0"),
    (["--header", "nocolon"], "expected NAME:VALUE"),
    (["--texts-file", "/nonexistent/texts"], "cannot read"),
])
def test_cli_bad_arguments_exit_2(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exited:
        loadgen.main(["--url", "http://127.0.0.1:9/tts", "--out", str(tmp_path / "r.jsonl")] + argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_url_refused_by_the_probe_exits_2(tmp_path, capsys):
    code = loadgen.main(["--url", "ftp://127.0.0.1/tts", "--max-requests", "3",
                         "--out", str(tmp_path / "r.jsonl")])
    assert code == 2
    captured = capsys.readouterr()
    assert "invalid argument: url:" in captured.err
    assert json.loads(captured.out)["stopped_by"] == "error"


def test_sigterm_stops_cleanly_and_in_flight_requests_finish(server, tmp_path):
    server.mode = "slow"  # every request is still in flight 0.3 s after it starts
    out = tmp_path / "requests.jsonl"
    env = {**os.environ, "PYTHONPATH": str(TOOLS)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tts_drill.loadgen", "--url", server.url, "--rate", "20", "--duration", "30",
         "--timeout", "2", "--out", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 3):
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["stopped_by"] == "SIGTERM"
    records = read_jsonl(out)
    # Nothing in flight was lost: every launched request finished and was logged as ok.
    assert len(records) == summary["scheduled"] >= 4
    assert all(r["outcome"] == "ok" for r in records)


def test_probe_found_through_the_environment(monkeypatch, tmp_path):
    import tts_drill
    monkeypatch.setenv(tts_drill.MODULE_UTILS_ENV, str(TOOLS.parent / "module_utils"))
    assert tts_drill.import_probe().probe is loadgen.tts_probe.probe
    monkeypatch.setenv(tts_drill.MODULE_UTILS_ENV, str(tmp_path))
    with pytest.raises(ImportError, match=f"tts_probe.py not found in {tmp_path}"):
        tts_drill.import_probe()


def test_recovery_sampler_sees_what_a_slow_schedule_cannot(server, tmp_path, monkeypatch):
    """Load at 1/s, the sampler every 0.05 s from the arm file: a 0.5 s outage falls between two
    of the load's requests, the sampler records it and stops once answered fast again after the
    fault file (SAMPLE_HOLD_S shortened for the test), long before the load ends."""
    from tts_drill.report import build_report  # noqa: PLC0415
    from tts_drill_testlib import events  # noqa: PLC0415

    monkeypatch.setattr(loadgen, "SAMPLE_HOLD_S", 0.5)
    arm, fault_file, samples_out = tmp_path / "arm", tmp_path / "fault", tmp_path / "samples.jsonl"
    fault = {}

    def inject():
        fault["at"] = time.time()
        server.refuse()
        fault_file.touch()

    def take_over():
        server.instance = "tts-backup"
        server.resume()
    timers = [threading.Timer(0.3, arm.touch), threading.Timer(0.45, inject), threading.Timer(0.95, take_over)]
    for timer in timers:
        timer.start()
    try:
        summary, records = run(server.url, tmp_path, rate=1, duration=3.0, timeout=0.5,
                               samples_out=str(samples_out), arm_file=str(arm), fault_file=str(fault_file),
                               sample_interval=0.05, sample_window=10)
    finally:
        for timer in timers:
            timer.cancel()
    samples = sorted(read_jsonl(samples_out), key=lambda r: r["t_start"])
    assert summary["samples"] == len(samples) > 10
    assert all(r["outcome"] == "ok" for r in records)  # the load's requests at 0, 1, 2 s saw nothing
    assert {r["outcome"] for r in samples} == {"ok", "connection_error"}
    assert samples[0]["t_start"] >= fault["at"] - 0.2  # nothing before the arm file
    assert samples[-1]["t_start"] - fault["at"] < 2.0  # stopped after the hold, not at the window
    assert samples[-1]["instance"] == "tts-backup"
    sampled = [h for h, body in server.received if body["text"] == loadgen.DEFAULT_TEXTS[-1]]
    assert sampled and all(h["Cache-Control"] == "no-cache" for h in sampled)  # no audio cache hit
    report = build_report(records, {}, events(fault_at=fault["at"], drill_started_at=fault["at"] - 0.5,
                                              drill_ended_at=fault["at"] + 3), samples=samples)
    fig = report["figures"]
    assert fig["rto_first_ok_s"] == 0 and not fig["client_outage"]
    assert 0.45 <= fig["rto_sampled_s"] <= 0.8 and fig["samples_failed"] >= 5
    assert "rto_sampled=" in report["summary"]


def test_recovery_sampler_never_armed_sends_nothing(server, tmp_path):
    samples_out = tmp_path / "samples.jsonl"
    summary, records = run(server.url, tmp_path, rate=20, max_requests=5, timeout=0.5,
                           samples_out=str(samples_out), arm_file=str(tmp_path / "arm"),
                           fault_file=str(tmp_path / "fault"))
    assert len(records) == 5 and summary["samples"] == 0
    assert samples_out.read_text() == ""
    assert len(server.received) == 5


def test_cli_sampler_files_go_together(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        loadgen.main(["--url", "http://127.0.0.1:9/tts", "--out", str(tmp_path / "r.jsonl"),
                      "--samples-out", str(tmp_path / "s.jsonl")])
    assert exited.value.code == 2
    assert "--samples-out, --arm-file and --fault-file go together" in capsys.readouterr().err
