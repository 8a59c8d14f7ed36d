"""The resident prober (module_utils/tts_prober.py, bin/tts-ha-prober) against loopback stubs:
hysteresis in time, a crash fails at once, a stall is judged by the timeouts, busy but speaking
is kept, the verdict goes stale into a failure when the prober dies, agent-check answers, the
synthetic probe backs off while real traffic proves the instance, router mode."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import tts_probe
import tts_prober
from prober_testlib import REPO, StubTTS, free_port

PROBER = REPO / "bin" / "tts-ha-prober"


def settings(tmp_path, url, **extra):
    values = dict(url=url, track_file=str(tmp_path / "verdict"), state_file=str(tmp_path / "state.json"),
                  evidence_state=str(tmp_path / "evidence.json"), transition_log=str(tmp_path / "t.jsonl"),
                  rise_s=0.0, watchdog=False)
    values.update(extra)
    return tts_prober.Settings(**values)


def contract_file(tmp_path, lane):
    contract = tts_probe.resolve_contract("reference", {"probe": {"lane": lane}})
    path = tmp_path / "api.json"
    path.write_text(json.dumps(contract))
    return str(path)


def track(tmp_path):
    return (tmp_path / "verdict").read_text().strip()


def tick_until(prober, predicate, limit_s=5.0):
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        prober.tick()
        if predicate():
            return time.monotonic() - started
        time.sleep(prober.s.interval)
    return None


# --- hysteresis in time (a fake clock) ----------------------------------------------------------

class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_fall_needs_failures_spanning_fall_s_and_a_success_resets_the_streak():
    clock, changes = FakeClock(), []
    verdict = tts_prober.Verdict("instance", fall_s=0.4, rise_s=1.0, clock=clock,
                                 on_change=lambda v, old, new, why: changes.append((old, new)))
    verdict.observe(True, "ok")
    clock.now += 0.5
    verdict.observe(True, "ok")
    assert verdict.state == "UNKNOWN"  # 0.5 s of successes < rise_s
    clock.now += 0.5
    verdict.observe(True, "ok")
    assert verdict.state == "UP" and changes == [("UNKNOWN", "UP")]
    verdict.observe(False, "bad", at=clock.now + 0.1)
    verdict.observe(False, "bad", at=clock.now + 0.3)  # 0.2 s of failures: not yet
    assert verdict.state == "UP"
    verdict.observe(True, "ok", at=clock.now + 0.35)   # a success resets the streak
    verdict.observe(False, "bad", at=clock.now + 0.4)
    verdict.observe(False, "bad", at=clock.now + 0.7)
    assert verdict.state == "UP"
    verdict.observe(False, "bad", at=clock.now + 0.8)  # 0.4 s since the streak began
    assert verdict.state == "DOWN" and changes[-1] == ("UP", "DOWN")
    verdict.observe(True, "ok", at=clock.now + 1.0)
    verdict.observe(True, "ok", at=clock.now + 1.9)
    assert verdict.state == "DOWN"  # rise_s is 1.0 s of successes
    verdict.observe(True, "ok", at=clock.now + 2.0)
    assert verdict.state == "UP"


def test_crash_bypasses_fall():
    clock = FakeClock()
    verdict = tts_prober.Verdict("instance", fall_s=5.0, rise_s=0.0, clock=clock, on_change=lambda *a: None)
    verdict.observe(True, "ok")
    verdict.fail_now("crash: connection refused")
    assert verdict.state == "DOWN"


@pytest.mark.parametrize("reason, kind", [
    ("connection refused by 127.0.0.1:8000", "crash"),
    ("network error waiting for response headers: Remote end closed connection without response", "crash"),
    ("network error reading the body: [Errno 104] Connection reset by peer", "crash"),
    ("response body truncated: connection closed after 10 bytes, 90 more were announced", "crash"),
    ("timed out after 0.5 s waiting for response headers", "busy"),
    ("timed out after 0.5 s connecting to 10.0.0.1:8000", "fail"),
    ("audio is silent: rms -120.0 dBFS < min_rms_dbfs -60 dBFS", "fail"),
])
def test_classify_failure(reason, kind):
    assert tts_prober.classify_failure({"healthy": False, "reason": reason, "status": None}) == kind


def test_503_is_busy_not_a_crash():
    assert tts_prober.classify_failure({"healthy": False, "reason": "status 503", "status": 503}) == "busy"


# --- against the stub ---------------------------------------------------------------------------

def test_healthy_stub_is_up_and_track_file_says_0(stub, tmp_path):
    prober = tts_prober.Prober(settings(tmp_path, stub.url))
    prober.tick()
    assert prober.instance.state == "UP" and track(tmp_path) == "0"
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["verdict"] == "UP" and state["track_value"] == 0
    assert state["last_synthesis"]["healthy"] and state["counts"]["syntheses"] == 1
    assert state["ping_url"].endswith("/metrics")


@pytest.mark.parametrize("how", ["refused", "reset"])
def test_crash_fails_at_once(tmp_path, how):
    stub = StubTTS().start()
    prober = tts_prober.Prober(settings(tmp_path, stub.url, fall_s=5.0))
    prober.tick()
    assert prober.instance.state == "UP"
    if how == "refused":
        stub.stop()
    else:
        stub.set_mode("reset")
    started = time.monotonic()
    prober.tick()
    elapsed = time.monotonic() - started
    assert prober.instance.state == "DOWN", prober.instance.reason
    assert prober.instance.reason.startswith("crash:")
    assert track(tmp_path) == "1"
    assert elapsed < 0.25, "a crash must not wait for a timeout"
    lines = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert [(r["type"], r["state"]) for r in lines] == [("PROBER", "UP"), ("PROBER", "DOWN")]
    assert all(isinstance(r["ts"], float) and r["host"] for r in lines)
    if how == "reset":
        stub.stop()


def test_stall_is_judged_by_the_timeouts(stub, tmp_path):
    prober = tts_prober.Prober(settings(tmp_path, stub.url, timeout=0.5, ping_timeout=0.25, fall_s=0.4))
    prober.tick()
    assert prober.instance.state == "UP"
    stub.set_mode("hang")
    elapsed = tick_until(prober, lambda: prober.instance.state == "DOWN", limit_s=4)
    assert elapsed is not None and elapsed < 1.6, elapsed
    assert "timed out" in prober.instance.reason
    assert track(tmp_path) == "1"
    stub.set_mode("ok")
    assert tick_until(prober, lambda: prober.instance.state == "UP", limit_s=3) is not None


def test_silence_fails_after_fall_s_not_at_once(stub, tmp_path):
    prober = tts_prober.Prober(settings(tmp_path, stub.url, fall_s=0.4, interval=0.1))
    prober.tick()
    stub.set_mode("silence")
    prober.tick()
    assert prober.instance.state == "UP"  # one wrong answer is not yet a verdict
    elapsed = tick_until(prober, lambda: prober.instance.state == "DOWN", limit_s=3)
    assert elapsed is not None and "silent" in prober.instance.reason


@pytest.mark.parametrize("busy_kind", ["503", "stall"])
def test_busy_but_speaking_is_not_failed_without_a_lane(stub, tmp_path, busy_kind):
    stub.busy_kind = busy_kind
    prober = tts_prober.Prober(settings(tmp_path, stub.url, api_file=contract_file(tmp_path, lane=False),
                                        fall_s=0.2, interval=0.1, synthesis_interval=0.1,
                                        backoff_window=0.0))
    prober.tick()
    stub.set_mode("busy")  # syntheses refused or queued, the counter of real answers keeps growing
    for _ in range(6):
        prober.tick()
        time.sleep(0.1)
    assert prober.instance.state == "UP", prober.instance.reason
    assert "busy but speaking" in prober.instance.reason
    assert prober.counts["busy_passes"] >= 3


def test_busy_fails_with_a_probe_lane(stub, tmp_path):
    stub.busy_kind = "503"
    prober = tts_prober.Prober(settings(tmp_path, stub.url, api_file=contract_file(tmp_path, lane=True),
                                        fall_s=0.2, interval=0.1))
    prober.tick()
    stub.set_mode("busy")
    assert tick_until(prober, lambda: prober.instance.state == "DOWN", limit_s=3) is not None


def test_hang_is_not_busy_when_the_counter_stands_still(stub, tmp_path):
    prober = tts_prober.Prober(settings(tmp_path, stub.url, api_file=contract_file(tmp_path, lane=False),
                                        fall_s=0.4, busy_window=0.5))
    prober.tick()
    stub.set_mode("hang")
    assert tick_until(prober, lambda: prober.instance.state == "DOWN", limit_s=5) is not None


def test_synthesis_backs_off_while_real_traffic_proves_the_instance(stub, tmp_path):
    def run(traffic):
        stub.syntheses = 0
        prober = tts_prober.Prober(settings(tmp_path, stub.url, interval=0.1, synthesis_interval=0.3,
                                            backoff_interval=5.0, backoff_window=1.0))
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            if traffic:
                stub.counter += 1.0  # real answers between two pings
            prober.tick()
            time.sleep(0.1)
        return stub.syntheses, prober

    quiet, _ = run(traffic=False)
    busy, prober = run(traffic=True)
    assert quiet >= 4, quiet
    assert busy <= 2, busy
    assert prober.counts["backed_off"] > 0 and prober.instance.state == "UP"


# --- the agent port -----------------------------------------------------------------------------

def agent(port):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        data = b""
        while True:
            chunk = sock.recv(100)
            if not chunk:
                return data.decode()
            data += chunk


def test_agent_check_answers_up_then_down(tmp_path):
    stub = StubTTS().start()
    port = free_port()
    prober = tts_prober.Prober(settings(tmp_path, stub.url, agent_port=port, agent_bind="127.0.0.1"))
    prober.start_agent()
    try:
        assert agent(port) == "down\n"  # UNKNOWN before the first verdict
        prober.tick()
        assert agent(port) == "up ready\n"
        stub.stop()
        prober.tick()
        assert agent(port) == "down\n"
    finally:
        prober.stop_agent()


def test_reload_opens_closes_and_moves_the_agent_port(tmp_path):
    # A pair switched to agent-check mode by site.yml: the prober is reloaded, not restarted
    # (a restart fails the node), and must then answer its routers.
    stub = StubTTS().start()
    prober = tts_prober.Prober(settings(tmp_path, stub.url))
    prober.start_agent()
    port, other = free_port(), free_port()
    try:
        prober.tick()
        prober.reload(settings(tmp_path, stub.url, agent_port=port, agent_bind="127.0.0.1"))
        assert agent(port) == "up ready\n"  # the verdict survived the reload
        prober.reload(settings(tmp_path, stub.url, agent_port=other, agent_bind="127.0.0.1"))
        assert agent(other) == "up ready\n"
        with pytest.raises(ConnectionRefusedError):
            agent(port)
        # A port that cannot be bound refuses the reload and keeps the old one.
        with socket.create_server(("127.0.0.1", port)):
            with pytest.raises(OSError):
                prober.reload(settings(tmp_path, stub.url, agent_port=port, agent_bind="127.0.0.1"))
        assert prober.s.agent_port == other and agent(other) == "up ready\n"
        prober.reload(settings(tmp_path, stub.url))
        with pytest.raises(ConnectionRefusedError):
            agent(other)
    finally:
        prober.stop_agent()
        stub.stop()


# --- router mode --------------------------------------------------------------------------------

CSV_HEADER = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx\n"


class Stats(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), StatsHandler)
        self.primary = "UP"
        self.answers = 0


class StatsHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        s = self.server
        s.answers += 1

        def row(px, sv, status):
            cells = [px, sv] + [""] * 15 + [status] + [""] * 22 + [str(s.answers)]
            return ",".join(cells) + "\n"

        body = (CSV_HEADER + row("tts", "FRONTEND", "OPEN") + row("tts", "tts-primary", s.primary)
                + row("tts", "tts-standby", "DOWN") + row("tts", "BACKEND", "UP")).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_router_mode_judges_the_router_and_its_servers(tmp_path):
    stats = Stats()
    threading.Thread(target=stats.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{stats.server_address[1]}/;csv"
    try:
        prober = tts_prober.Prober(settings(tmp_path, "", router_stats_url=url, fall_s=0.0))
        prober.tick()
        assert prober.router.state == "UP" and track(tmp_path) == "0"
        assert prober.counts["syntheses"] == 0  # the router judges its instances, not us
        stats.primary = "DOWN"
        prober.tick()
        assert prober.router.state == "DOWN" and "no server UP" in prober.router.reason
        stats.primary = "UP"
        prober.tick()
        assert prober.router.state == "UP"
    finally:
        stats.shutdown()
        stats.server_close()
    prober.tick()  # the router is gone: refused is a crash
    assert prober.router.state == "DOWN" and prober.router.reason.startswith("crash:")
    assert track(tmp_path) == "1"


# --- taking over after a death or a re-exec (resume_s) ------------------------------------------

def resume_mark(tmp_path, age_s, published="0"):
    (tmp_path / "verdict").write_text(f"{published}\n")
    (tmp_path / "resume").write_text(f"{time.time() - age_s}\n")


def test_a_restarted_prober_keeps_the_healthy_verdict_and_confirms_it(stub, tmp_path):
    resume_mark(tmp_path, 0.5)
    prober = tts_prober.Prober(settings(tmp_path, stub.url, resume_s=3.0, rise_s=1.0))
    assert prober.published.state == "UP" and prober.resumed_from is not None
    prober.tick()  # its own synthesis confirms: no moment of 1 in the track file, no rise to wait
    assert track(tmp_path) == "0" and prober.resumed_from is None and not (tmp_path / "resume").exists()
    lines = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert [(x["state"], x["previous"]) for x in lines] == [("RESUMED", "UNKNOWN"), ("UP", "RESUMED")]
    assert "confirmed" in lines[1]["reason"]


def test_a_kept_verdict_falls_at_once_on_a_dead_instance(stub, tmp_path):
    resume_mark(tmp_path, 0.2)
    prober = tts_prober.Prober(settings(tmp_path, stub.url, resume_s=3.0))
    stub.set_mode("reset")
    prober.tick()
    assert prober.published.state == "DOWN" and track(tmp_path) == "1"
    assert not (tmp_path / "resume").exists()


def test_a_kept_verdict_not_confirmed_in_time_fails(stub, tmp_path):
    resume_mark(tmp_path, 0.0)
    prober = tts_prober.Prober(settings(tmp_path, stub.url, resume_s=0.3, fall_s=60.0))
    stub.set_mode("silence")  # failures, but fall_s is far away: only the resume bound can end it
    prober.tick()
    assert prober.published.state == "UP" and track(tmp_path) == "0"
    time.sleep(0.35)
    prober.tick()
    assert prober.published.state == "DOWN" and "could not confirm" in prober.published.reason
    assert track(tmp_path) == "1"


@pytest.mark.parametrize("age_s, published, resume_s", [(5.0, "0", 3.0), (0.1, "1", 3.0), (0.1, "0", 0.0)])
def test_no_resume_when_late_failed_or_off(stub, tmp_path, age_s, published, resume_s):
    resume_mark(tmp_path, age_s, published)
    prober = tts_prober.Prober(settings(tmp_path, stub.url, resume_s=resume_s, rise_s=1.0))
    assert prober.published.state == "UNKNOWN"
    prober.tick()
    assert track(tmp_path) == "1"  # rise_s still ahead: a fresh start claims nothing


def test_a_reload_with_new_code_re_executes_without_failing_the_node(stub, tmp_path):
    # The role installs a new library, then reloads: the same PID runs the new code, the track
    # file never shows 1, and the new image confirms the kept verdict.
    code = tmp_path / "code"
    code.mkdir()
    for name in ("tts_prober.py", "tts_probe.py"):
        (code / name).write_bytes((REPO / "module_utils" / name).read_bytes())
    (code / "tts-ha-prober").write_bytes(PROBER.read_bytes())
    config = tmp_path / "prober.json"
    config.write_text(json.dumps({
        "url": stub.url, "track_file": str(tmp_path / "verdict"), "state_file": str(tmp_path / "state.json"),
        "evidence_state": str(tmp_path / "e.json"), "transition_log": str(tmp_path / "t.jsonl"),
        "rise_s": 0.5, "resume_s": 3.0, "host": "node1", "watchdog": False}))
    proc = subprocess.Popen([sys.executable, str(code / "tts-ha-prober"), "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (tmp_path / "verdict").exists() or track(tmp_path) != "0":
            assert time.monotonic() < deadline, "the prober never reached UP"
            time.sleep(0.05)
        started = json.loads((tmp_path / "state.json").read_text())["started"]
        with open(code / "tts_prober.py", "a") as handle:
            handle.write("\n# new code\n")
        proc.send_signal(signal.SIGHUP)
        seen, deadline = set(), time.monotonic() + 10
        while time.monotonic() < deadline:
            seen.add(track(tmp_path))
            state = json.loads((tmp_path / "state.json").read_text())
            if state["started"] != started and not (tmp_path / "resume").exists():
                break
            time.sleep(0.02)
        assert state["started"] != started, "no re-exec"
        assert proc.poll() is None and seen == {"0"}, seen
        states = [json.loads(line)["state"] for line in (tmp_path / "t.jsonl").read_text().splitlines()]
        assert states == ["UP", "RESUMED", "UP"], states
    finally:
        proc.kill()
        proc.wait(5)


def test_switching_router_mode_by_reload_carries_a_healthy_verdict_over(stub, tmp_path):
    # site.yml turning the router on: keepalived now reads the router verdict, never judged yet.
    stats = Stats()
    threading.Thread(target=stats.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{stats.server_address[1]}/;csv"
    try:
        prober = tts_prober.Prober(settings(tmp_path, stub.url, resume_s=3.0, rise_s=1.0))
        tick_until(prober, lambda: prober.instance.state == "UP")
        prober.reload(settings(tmp_path, "", router_stats_url=url, resume_s=3.0, rise_s=1.0))
        assert prober.published is prober.router and prober.router.state == "UP"
        prober.tick()  # the router's first check confirms: the track file never showed 1
        assert track(tmp_path) == "0" and prober.resumed_from is None
        # ...and back to the plain deployment: the instance verdict, stale since, is re-checked.
        prober.instance.state = "UNKNOWN"
        prober.reload(settings(tmp_path, stub.url, resume_s=3.0, rise_s=1.0))
        assert prober.published.state == "UP" and prober.resumed_from is not None
        prober.tick()
        assert track(tmp_path) == "0" and prober.resumed_from is None
        # Without resume_s the switch publishes the unjudged verdict, as before.
        prober.router.state = "UNKNOWN"
        prober.reload(settings(tmp_path, "", router_stats_url=url, resume_s=0.0, rise_s=1.0))
        prober.tick()
        assert track(tmp_path) == "1"
    finally:
        stats.shutdown()
        stats.server_close()


# --- the daemon: watchdog, death, settings ------------------------------------------------------

def test_daemon_notifies_systemd_and_a_killed_prober_goes_stale_into_a_failure(stub, tmp_path):
    notify_path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(notify_path)
    listener.settimeout(5)
    config = tmp_path / "prober.json"
    config.write_text(json.dumps({
        "url": stub.url, "track_file": str(tmp_path / "verdict"), "state_file": str(tmp_path / "state.json"),
        "evidence_state": str(tmp_path / "e.json"), "transition_log": str(tmp_path / "t.jsonl"),
        "rise_s": 0.0, "host": "node1"}))
    env = dict(os.environ, NOTIFY_SOCKET=notify_path)
    proc = subprocess.Popen([sys.executable, str(PROBER), "--config", str(config)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        messages = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and sum("WATCHDOG=1" in m for m in messages) < 4:
            messages.append(listener.recv(512).decode())
        assert messages[0].startswith("READY=1")
        assert sum("WATCHDOG=1" in m for m in messages) >= 4
        assert track(tmp_path) == "0"
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        assert track(tmp_path) == "0"  # the dead process cannot say so: systemd's ExecStopPost does
        env = dict(os.environ, SERVICE_RESULT="signal", EXIT_STATUS="KILL")
        done = subprocess.run([sys.executable, str(PROBER), "--config", str(config), "--mark-failed"],
                              env=env, capture_output=True, text=True, timeout=10)
        assert done.returncode == 0, done.stderr
        assert track(tmp_path) == "1"
        last = json.loads((tmp_path / "t.jsonl").read_text().splitlines()[-1])
        assert last["state"] == "STOPPED" and "signal" in last["reason"] and last["host"] == "node1"
    finally:
        proc.kill()
        proc.wait(5)
        listener.close()


def test_status_prints_the_state(stub, tmp_path):
    prober = tts_prober.Prober(settings(tmp_path, stub.url))
    prober.tick()
    done = subprocess.run([sys.executable, str(PROBER), "--state-file", str(tmp_path / "state.json"), "--status"],
                          capture_output=True, text=True, timeout=10)
    assert done.returncode == 0
    state = json.loads(done.stdout)
    assert state["verdict"] == "UP" and state["age_s"] < 5


@pytest.mark.parametrize("config, needle", [
    ({"interval": 0}, "interval must be a positive number"),
    ({"fall_s": -1}, "fall_s must be seconds"),
    ({"agent_port": 70000}, "agent_port must be a TCP port"),
    ({"intervall": 1}, "unknown setting 'intervall'"),
    ({"evidence_kind": "csv"}, "evidence_kind must be haproxy or metrics"),
])
def test_bad_settings_are_refused(tmp_path, config, needle):
    path = tmp_path / "prober.json"
    path.write_text(json.dumps(config))
    done = subprocess.run([sys.executable, str(PROBER), "--config", str(path)], capture_output=True,
                          text=True, timeout=10)
    assert done.returncode == 2
    assert needle in json.loads(done.stdout)["error"]


def test_the_transition_log_lines_do_not_disturb_the_drill_report(stub, tmp_path):
    sys.path.insert(0, str(REPO / "tools"))
    from tts_drill import report

    prober = tts_prober.Prober(settings(tmp_path, stub.url, host="node1"))
    prober.tick()
    stub.set_mode("reset")
    prober.tick()
    with open(tmp_path / "t.jsonl", "a", encoding="utf-8") as log:
        log.write(json.dumps({"ts": time.time(), "host": "node1", "instance": "VI_TTS", "type": "INSTANCE",
                              "state": "FAULT", "priority": 150}) + "\n")
    transitions, notes, warnings = report.load_transitions([f"node1={tmp_path / 't.jsonl'}"])
    assert [r["state"] for r in transitions["node1"]] == ["FAULT"]
    assert notes[0]["corrupt_lines"] == 0, notes
    assert not warnings


def test_a_fault_is_dated_at_the_prober_verdict_that_caused_it(tmp_path):
    """keepalived goes FAULT on the track file's inotify event; its notify line comes later. The
    report dates the FAULT at the prober's DOWN line, so the notify latency is no split brain."""
    sys.path.insert(0, str(REPO / "tools"))
    from tts_drill import report

    lines = [
        {"ts": 100.0, "host": "node1", "type": "INSTANCE", "instance": "VI_TTS", "state": "MASTER", "priority": 150},
        {"ts": 110.876, "host": "node1", "type": "PROBER", "instance": "instance", "state": "DOWN",
         "published": True, "priority": None},
        {"ts": 111.062, "host": "node1", "type": "INSTANCE", "instance": "VI_TTS", "state": "FAULT", "priority": 150},
        {"ts": 130.0, "host": "node1", "type": "INSTANCE", "instance": "VI_TTS", "state": "FAULT", "priority": 150},
    ]
    path = tmp_path / "node1.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    transitions, _notes, _warnings = report.load_transitions([f"node1={path}"])
    faults = [r for r in transitions["node1"] if r["state"] == "FAULT"]
    assert faults[0]["ts"] == 110.876 and faults[0]["ts_logged"] == 111.062
    assert faults[1]["ts"] == 130.0 and "ts_logged" not in faults[1]  # no prober verdict before it
