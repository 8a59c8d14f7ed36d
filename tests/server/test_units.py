"""Fast unit tests of tts_server building blocks (no model, no subprocess)."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from tts_srv_helpers import SERVER_DIR, parse_metrics, parse_wav

sys.path.insert(0, str(SERVER_DIR))

from tts_server import config, wav  # noqa: E402
from tts_server.admission import Admission, QueueFull  # noqa: E402
from tts_server.cache import AudioCache  # noqa: E402
from tts_server.faults import FaultFile  # noqa: E402
from tts_server.metrics import Registry  # noqa: E402


def test_config_defaults():
    s = config.load({})
    assert (s.host, s.port, s.enable_webui, s.disable_audio_cache) == ("0.0.0.0", 8000, True, False)
    assert s.max_text_chars == 2000 and s.fault_file == "/tmp/tts-fault" and s.drain_timeout == 20.0
    assert s.use_cuda == "auto" and 1 <= s.concurrency <= 2 and s.cache_enabled
    assert s.instance  # hostname


def test_config_standby_style():
    s = config.load({"ENABLE_WEBUI": "false", "DISABLE_AUDIO_CACHE": "true", "TTS_INSTANCE_NAME": "b",
                     "TTS_PORT": "8001", "TTS_USE_CUDA": "FALSE", "TTS_CONCURRENCY": "3"})
    assert not s.enable_webui and not s.cache_enabled and s.instance == "b" and s.port == 8001
    assert s.use_cuda == "false" and s.concurrency == 3


@pytest.mark.parametrize("env", [{"TTS_PORT": "x"}, {"TTS_PORT": "70000"}, {"TTS_QUEUE_MAX": "-1"},
                                 {"DISABLE_AUDIO_CACHE": "perhaps"}, {"TTS_DRAIN_TIMEOUT": "soon"},
                                 {"TTS_USE_CUDA": "gpu"}, {"TTS_INSTANCE_NAME": "a\r\nX-Evil: 1"},
                                 {"TTS_INSTANCE_NAME": "主实例"}])
def test_config_rejects_bad_values(env):
    with pytest.raises(config.ConfigError):
        config.load(env)


def test_wav_roundtrip_and_streamed_header():
    pcm = bytes(range(256)) * 10
    data = wav.encode(pcm, 22050)
    rate, channels, width, samples = parse_wav(data)
    assert (rate, channels, width, len(samples)) == (22050, 1, 2, len(pcm) // 2)
    assert wav.decode_pcm16(data) == (pcm, 22050, 1)
    # espeak-ng writing to a pipe leaves the sizes at 0x7fffffff: data runs to the end
    streamed = data[:40] + (0x7FFFFFFF).to_bytes(4, "little") + pcm
    assert wav.decode_pcm16(streamed)[0] == pcm
    with pytest.raises(ValueError):
        wav.decode_pcm16(b"<html>nope</html>")


def test_cache_is_lru_and_bounded_by_entries_and_bytes():
    c = AudioCache(max_entries=3, max_bytes=100)
    for k in "abc":
        assert c.put(k, b"x" * 10, 22050)
    assert c.get("a") is not None  # a is now most recent
    c.put("d", b"x" * 10, 22050)   # evicts b
    assert c.get("b") is None and c.get("a") is not None
    assert not c.put("huge", b"x" * 101)
    c.put("e", b"x" * 90)           # byte bound evicts older entries
    st = c.stats()
    assert st["bytes"] <= 100 and st["entries"] <= 3 and st["evictions"] >= 2
    assert st["hits"] == 2 and st["misses"] == 1


def hold_worker(adm):
    """Occupy one worker of adm from a thread; returns (release event, thread)."""
    entered, release = threading.Event(), threading.Event()

    def hold():
        with adm.slot():
            entered.set()
            release.wait(5)

    t = threading.Thread(target=hold)
    t.start()
    assert entered.wait(5)
    return release, t


def test_admission_rejects_when_queue_full_and_times_out():
    adm = Admission(workers=1, queue_max=1, queue_timeout=0.3)
    release, t = hold_worker(adm)
    waiter_result = {}

    def wait_in_queue():
        try:
            with adm.slot():
                waiter_result["ok"] = True
        except QueueFull as exc:
            waiter_result["err"] = exc

    w = threading.Thread(target=wait_in_queue)
    w.start()
    deadline = time.monotonic() + 5
    while adm.waiting < 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    t0 = time.monotonic()
    with pytest.raises(QueueFull) as info:
        with adm.slot():
            pass
    assert time.monotonic() - t0 < 0.05 and info.value.retry_after >= 1
    w.join(5)
    assert isinstance(waiter_result.get("err"), QueueFull)  # waited 0.3 s, then gave up
    release.set()
    t.join(5)
    assert adm.active == 0 and adm.waiting == 0 and adm.rejected == 2
    with adm.slot():
        assert adm.active == 1


def test_fault_file_rereads_only_on_change(tmp_path):
    path = tmp_path / "fault"
    invalid = []
    f = FaultFile(str(path), on_invalid=invalid.append)
    assert f.mode() == "none"
    path.write_text("silence\n")
    assert f.mode() == "silence"
    path.write_text("error500")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert f.mode() == "error500"
    path.write_text("explode")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 2 * 10**9))
    assert f.mode() == "none" and invalid == ["explode"]
    path.unlink()
    assert f.mode() == "none"


def test_metrics_render_is_prometheus_text():
    r = Registry()
    c = r.counter("t_requests_total", "help")
    c.inc(path="/tts", status="200")
    c.inc(2, path="/tts", status="200")
    h = r.histogram("t_latency_seconds", "help", (0.01, 0.1))
    h.observe(0.005, path="/a")
    h.observe(0.05, path="/a")
    h.observe(5, path="/a")
    r.gauge("t_info", "help", lambda: [({"instance": 'we"ird\\name'}, 1)])
    text = r.render()
    assert "# TYPE t_requests_total counter" in text and "# TYPE t_latency_seconds histogram" in text
    m = parse_metrics(text)
    assert m[("t_requests_total", (("path", "/tts"), ("status", "200")))] == 3
    assert m[("t_latency_seconds_bucket", (("le", "0.01"), ("path", "/a")))] == 1
    assert m[("t_latency_seconds_bucket", (("le", "0.1"), ("path", "/a")))] == 2
    assert m[("t_latency_seconds_bucket", (("le", "+Inf"), ("path", "/a")))] == 3
    assert m[("t_latency_seconds_count", (("path", "/a"),))] == 3
    assert m[("t_info", (("instance", 'we"ird\\name'),))] == 1


def test_admission_probe_lane_bypasses_a_full_queue():
    """A health check is admitted while real work fills every worker and the queue."""
    adm = Admission(workers=1, queue_max=0, queue_timeout=0.3, probe_lane=1)
    release, t = hold_worker(adm)
    try:
        with pytest.raises(QueueFull):  # ordinary work is turned away ...
            with adm.slot():
                pass
        with adm.slot(probe=True):  # ... a probe is not
            assert adm.probe_active == 1
            # the lane is bounded too: a second concurrent probe falls back to the queue
            with pytest.raises(QueueFull):
                with adm.slot(probe=True):
                    pass
        assert adm.probe_active == 0
    finally:
        release.set()
        t.join(5)
