"""Process lifecycle of the reference TTS server: readiness, back-pressure, graceful drain."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import sys
import time

import pytest

from tts_srv_helpers import LONG_SENTENCE, PYTHON, REPO, SERVER_DIR, TTSServer, assert_speech_wav, metric

pytestmark = pytest.mark.slow


def test_ready_is_503_until_model_loaded_and_warmed(tmp_path, espeak_bin):
    server = TTSServer(tmp_path, "tts-srv-ready")
    try:
        server.start(wait_ready=False)
        seen = []
        saw_health_while_loading = saw_tts_503 = False
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            r = server.get("/ready", timeout=5)
            seen.append(r.status)
            if r.status == 503:
                body = r.json()
                assert body["ready"] is False and body["reason"]
                assert r.header("retry-after")
                if not saw_health_while_loading:
                    saw_health_while_loading = server.get("/health").status == 200
                if not saw_tts_503:
                    t = server.tts("too early")
                    if t.status == 503:
                        assert t.header("retry-after") and "not ready" in t.json()["error"]
                        saw_tts_503 = True
            if r.status == 200:
                break
            time.sleep(0.02)
        assert seen and seen[0] == 503, seen
        assert seen[-1] == 200, seen
        assert set(seen) <= {200, 503}
        assert saw_health_while_loading, "liveness must be 200 while the model loads"
        ready = server.get("/ready").json()
        assert ready["warmup_seconds"] > 0 and ready["load_seconds"] > 0
        assert metric(server.metrics(), "tts_ready") == 1
        events = [r["event"] for r in server.log_records()]
        assert events.index("listening") < events.index("model_loaded") < events.index("ready")
    finally:
        assert server.stop() == 0


def test_full_queue_rejects_immediately_with_retry_after(tmp_path, espeak_bin):
    server = TTSServer(tmp_path, "tts-srv-queue", TTS_CONCURRENCY="1", TTS_QUEUE_MAX="1",
                       DISABLE_AUDIO_CACHE="true")
    server.start()
    try:
        n = 6
        barrier = threading.Barrier(n)
        results = [None] * n

        def fire(i):
            text = f"Request {i}. " + LONG_SENTENCE * 2
            barrier.wait(10)
            try:
                results[i] = server.tts(text, timeout=90)
            except Exception as exc:  # noqa: BLE001 - recorded and asserted below
                results[i] = exc

        threads = [threading.Thread(target=fire, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads)
        assert all(not isinstance(r, Exception) for r in results), results
        ok = [r for r in results if r.status == 200]
        busy = [r for r in results if r.status == 503]
        assert len(ok) + len(busy) == n, results
        # one synthesizing + one queued are served; the rest are turned away at once
        assert 1 <= len(ok) <= 2 + 1, results  # +1: a straggler may arrive after the first finished
        assert len(busy) >= n - 3, results
        for r in busy:
            assert int(r.header("retry-after")) >= 1
            assert r.elapsed < 2.0, f"rejection took {r.elapsed:.2f}s"
            assert "busy" in r.json()["error"]
            assert r.header("x-tts-instance") == "tts-srv-queue"
        for r in ok:
            assert_speech_wav(r.body, min_seconds=5)
        m = server.metrics()
        assert metric(m, "tts_queue_rejections_total") == len(busy)
        assert metric(m, "tts_http_requests_total", method="POST", path="/tts", status="503") == len(busy)
        assert metric(m, "tts_queue_depth") == 0 and metric(m, "tts_inflight_synthesis") == 0
        # and it recovers
        assert server.tts("after the storm", no_cache=True).status == 200
    finally:
        assert server.stop() == 0


def test_health_probe_is_not_starved_by_a_full_queue(tmp_path, espeak_bin):
    """Busy but speaking is healthy: with the queue full, the real-synthesis probe still passes."""
    sys.path.insert(0, str(REPO / "module_utils"))
    import tts_probe

    server = TTSServer(tmp_path, "tts-srv-lane", TTS_CONCURRENCY="1", TTS_QUEUE_MAX="1",
                       DISABLE_AUDIO_CACHE="true")
    server.start()
    try:
        busy = [threading.Thread(target=server.tts, args=(f"Busy {i}. " + LONG_SENTENCE * 2,),
                                 kwargs={"timeout": 90}, daemon=True) for i in range(3)]
        for t in busy:
            t.start()
        deadline = time.monotonic() + 10
        while metric(server.metrics(), "tts_queue_depth") < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{server.port}/tts"
        plain = tts_probe.probe(url, timeout=3)
        assert not plain["healthy"] and plain["status"] == 503, plain  # ordinary requests are refused now
        probe = tts_probe.probe(url, timeout=3, headers={"X-TTS-Probe": "1"})
        assert probe["healthy"], probe["reason"]
        for t in busy:
            t.join(120)
    finally:
        assert server.stop() == 0


def test_sigterm_drains_inflight_request_then_exits_zero(tmp_path, espeak_bin):
    server = TTSServer(tmp_path, "tts-srv-drain", TTS_DRAIN_TIMEOUT="20", DISABLE_AUDIO_CACHE="true")
    server.start()
    try:
        holder = {}

        def long_request():
            try:
                holder["resp"] = server.tts(LONG_SENTENCE * 3, timeout=60)
            except Exception as exc:  # noqa: BLE001
                holder["error"] = exc

        t = threading.Thread(target=long_request, daemon=True)
        t.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # wait until the request is being synthesized
            if metric(server.metrics(), "tts_inflight_synthesis") >= 1:
                break
            time.sleep(0.02)
        else:
            pytest.fail("long request never started synthesizing")
        t_sig = time.monotonic()
        server.signal(signal.SIGTERM)

        refused = False
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
            except ConnectionRefusedError:
                refused = True
                break
            except (ConnectionResetError, socket.timeout):
                pass  # caught the listener mid-close; keep polling until connect() is refused
            time.sleep(0.02)
        assert refused, "listener still accepting after SIGTERM"
        assert t.is_alive(), "the long request should still be in flight while the listener is closed"
        assert server.proc.poll() is None

        t.join(60)
        assert not t.is_alive()
        assert "error" not in holder, holder
        resp = holder["resp"]
        assert resp.status == 200
        assert_speech_wav(resp.body, min_seconds=10)
        rc = server.proc.wait(30)
        assert rc == 0
        assert time.monotonic() - t_sig < 25
        events = [r for r in server.log_records() if r.get("event") in ("signal", "draining", "stopped")]
        assert [e["event"] for e in events] == ["signal", "draining", "stopped"]
        assert events[-1]["drained"] is True
    finally:
        server.stop()


def test_drain_timeout_bounds_shutdown(tmp_path, espeak_bin):
    """A request that would outlive TTS_DRAIN_TIMEOUT does not keep the process alive."""
    server = TTSServer(tmp_path, "tts-srv-drain-timeout", TTS_DRAIN_TIMEOUT="1", DISABLE_AUDIO_CACHE="true",
                       TTS_CONCURRENCY="1")
    server.start()
    try:
        t = threading.Thread(target=lambda: _swallow(server.tts, LONG_SENTENCE * 8, timeout=60), daemon=True)
        t.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and metric(server.metrics(), "tts_inflight_synthesis") < 1:
            time.sleep(0.02)
        t0 = time.monotonic()
        server.signal(signal.SIGTERM)
        rc = server.proc.wait(15)
        assert rc == 0
        assert time.monotonic() - t0 < 5
        stopped = [r for r in server.log_records() if r.get("event") == "stopped"][-1]
        assert stopped["drained"] is False
    finally:
        server.stop()


def _swallow(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except Exception:  # noqa: BLE001 - the server may go away mid-request here, by design
        pass


@pytest.mark.parametrize("env,needle", [
    ({"TTS_PORT": "eighty"}, "TTS_PORT"),
    ({"TTS_CONCURRENCY": "0"}, "TTS_CONCURRENCY"),
    ({"ENABLE_WEBUI": "maybe"}, "ENABLE_WEBUI"),
    ({"TTS_USE_CUDA": "sometimes"}, "TTS_USE_CUDA"),
])
def test_bad_config_exits_2_with_json_error(env, needle):
    full_env = {"PYTHONPATH": str(SERVER_DIR), "PATH": "/usr/bin:/bin", **env}
    proc = subprocess.run([PYTHON, "-m", "tts_server"], cwd=str(REPO), env=full_env,
                          capture_output=True, timeout=30)
    assert proc.returncode == 2
    assert b'"event":"config_error"' in proc.stderr and needle.encode() in proc.stderr


def test_cuda_required_but_unavailable_fails_fast(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this host has a CUDA-capable onnxruntime")
    server = TTSServer(tmp_path, "tts-srv-cuda", TTS_USE_CUDA="true")
    server.start(wait_ready=False)
    try:
        rc = server.proc.wait(60)
    finally:
        server.stop()
    assert rc == 3
    assert any(r.get("event") == "model_load_failed" and "CUDA" in r.get("error", "")
               for r in server.log_records())


def test_a_request_whose_client_gave_up_while_queued_is_not_synthesised(tmp_path, espeak_bin):
    """After an outage the survivor's queue holds requests whose clients timed out: synthesising
    them only delays the ones behind, and the backlog never drains. They are dropped."""
    server = TTSServer(tmp_path, "tts-srv-abandon", TTS_CONCURRENCY="1", TTS_QUEUE_MAX="8",
                       DISABLE_AUDIO_CACHE="true")
    server.start()
    try:
        busy = threading.Thread(target=lambda: server.tts("Busy. " + LONG_SENTENCE * 3, timeout=90), daemon=True)
        busy.start()
        time.sleep(0.3)  # the worker is taken
        body = ('{"text": "' + "Abandoned. " + LONG_SENTENCE + '"}').encode()
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"POST /tts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            time.sleep(0.3)  # queued behind the busy request; then the client gives up
        busy.join(120)
        after = server.tts("after the abandoned one", no_cache=True)
        assert after.status == 200
        m = server.metrics()
        assert metric(m, "tts_abandoned_total") == 1
        # Only the busy request and the last one reached the model.
        assert metric(m, "tts_http_requests_total", method="POST", path="/tts", status="200") == 2
    finally:
        assert server.stop() == 0
