"""API behaviour of the reference TTS server, against real server processes (Piper + espeak-ng)."""

from __future__ import annotations

import http.client
import json
import socket
import time

import pytest

from tts_srv_helpers import (
    LONG_SENTENCE,
    assert_speech_wav,
    http_request,
    load_tts_probe,
    metric,
    parse_wav,
    rms,
)

# ---- probes -------------------------------------------------------------------------------


def test_health_and_ready(primary):
    h = primary.get("/health")
    assert h.status == 200 and h.json()["status"] == "ok"
    r = primary.get("/ready")
    assert r.status == 200, r
    d = r.json()
    assert d["ready"] is True
    assert d["instance"] == "tts-primary-test"
    assert set(d["voices"]) == {"joe", "espeak"}
    assert d["webui"] is True and d["cache"] is True
    assert d["warmup_seconds"] is not None and d["load_seconds"] is not None
    assert "CPUExecutionProvider" in d["providers"]


def test_head_on_probe_has_no_body(primary):
    r = http_request(primary.port, "HEAD", "/health")
    assert r.status == 200 and r.body == b""
    assert int(r.header("content-length")) > 0


def test_voices_lists_engines_and_aliases(primary):
    d = primary.get("/voices").json()
    by_id = {v["id"]: v for v in d["voices"]}
    assert d["default"] == "joe"
    assert by_id["joe"]["engine"] == "piper" and by_id["joe"]["available"]
    assert {"male", "default"} <= set(by_id["joe"]["aliases"])
    assert by_id["espeak"]["engine"] == "espeak-ng" and by_id["espeak"]["available"]
    assert "female" in by_id["espeak"]["aliases"]
    assert d["openai_voices"]["alloy"] == "joe"


# ---- synthesis ----------------------------------------------------------------------------


@pytest.mark.parametrize("voice,expect", [(None, "joe"), ("joe", "joe"), ("male", "joe"), ("default", "joe"),
                                          ("espeak", "espeak"), ("female", "espeak")])
def test_tts_returns_speech_wav(primary, voice, expect):
    fields = {} if voice is None else {"voice": voice}
    r = primary.tts("The standby instance is warm and ready.", **fields)
    assert r.status == 200, r
    assert r.header("content-type") == "audio/wav"
    assert r.header("x-tts-voice") == expect
    rate, seconds, level = assert_speech_wav(r.body, min_seconds=0.8)
    assert rate == 22050
    assert abs(seconds - float(r.header("x-tts-audio-seconds"))) < 0.01


def test_probe_text_a_is_fast_and_audible(primary):
    r = primary.tts("a", no_cache=True)
    assert r.status == 200
    assert_speech_wav(r.body, min_seconds=0.1, min_rms=100)
    r = primary.tts("a", voice="female", no_cache=True)
    assert r.status == 200
    assert_speech_wav(r.body, min_seconds=0.05, min_rms=100)


def test_speed_changes_duration(primary):
    text = "Speed changes how long this sentence takes to say."
    durations = {}
    for voice in ("joe", "espeak"):
        for speed in (0.5, 2.0):
            r = primary.tts(text, voice=voice, speed=speed)
            assert r.status == 200, r
            durations[voice, speed] = assert_speech_wav(r.body)[1]
        assert durations[voice, 0.5] > 1.6 * durations[voice, 2.0], durations


def test_shared_probe_library_calls_it_healthy(primary, standby):
    tts_probe = load_tts_probe()
    if tts_probe is None:
        pytest.skip("module_utils/tts_probe.py has not landed yet")
    for voice in ("joe", "female"):
        r = primary.tts("Probe says this is real speech.", voice=voice)
        assert r.status == 200
        info = tts_probe.analyze_audio(r.body)
        assert info["error"] is None and info["format"] == "wav", info
        assert info["duration_s"] > 0.5 and info["rms_dbfs"] > -40, info
    for server in (primary, standby):
        for voice in ("joe", "female"):
            result = tts_probe.probe(server.base_url + "/tts", payload={"text": "a", "voice": voice},
                                     headers={"Cache-Control": "no-cache"}, timeout=10)
            assert result["healthy"] is True, result
            assert result["instance"] == server.name


# ---- OpenAI-compatible endpoint -----------------------------------------------------------


def test_openai_sdk_speech_wav(primary):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=primary.base_url + "/v1", api_key="x", timeout=60, max_retries=0)
    resp = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello from the OpenAI client.",
                                      response_format="wav")
    data = resp.read() if hasattr(resp, "read") else resp.content
    assert_speech_wav(data, min_seconds=0.8)


def test_openai_sdk_pcm_and_default_format(primary):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=primary.base_url + "/v1", api_key="x", timeout=60, max_retries=0)
    pcm = client.audio.speech.create(model="whatever", voice="nova", input="Raw samples please.",
                                     response_format="pcm", speed=1.25).read()
    assert len(pcm) > 22050 and len(pcm) % 2 == 0
    # no response_format at all -> wav
    r = primary.post("/v1/audio/speech", {"model": "tts-1", "input": "Default format.", "voice": "female"})
    assert r.status == 200 and r.header("content-type") == "audio/wav"
    assert r.header("x-tts-voice") == "espeak"
    assert_speech_wav(r.body)


def test_openai_unsupported_format_names_supported(primary):
    r = primary.post("/v1/audio/speech", {"model": "tts-1", "input": "x", "voice": "alloy", "response_format": "mp3"})
    assert r.status == 400
    body = r.json()
    assert body["field"] == "response_format"
    assert "wav" in body["error"] and "pcm" in body["error"]


# ---- bad input ----------------------------------------------------------------------------

JSON = {"Content-Type": "application/json"}
BAD_REQUESTS = [
    # id, method, path, body(bytes|obj), headers, status, field
    ("empty-text", "POST", "/tts", {"text": ""}, JSON, 400, "text"),
    ("whitespace-text", "POST", "/tts", {"text": " \n\t "}, JSON, 400, "text"),
    ("missing-text", "POST", "/tts", {"voice": "joe"}, JSON, 400, "text"),
    ("text-not-string", "POST", "/tts", {"text": 42}, JSON, 400, "text"),
    ("too-long-text", "POST", "/tts", {"text": "a" * 2001}, JSON, 400, "text"),
    ("unknown-voice", "POST", "/tts", {"text": "hi", "voice": "darth"}, JSON, 400, "voice"),
    ("voice-not-string", "POST", "/tts", {"text": "hi", "voice": 3}, JSON, 400, "voice"),
    ("openai-voice-only-on-v1", "POST", "/tts", {"text": "hi", "voice": "alloy"}, JSON, 400, "voice"),
    ("speed-too-low", "POST", "/tts", {"text": "hi", "speed": 0.1}, JSON, 400, "speed"),
    ("speed-too-high", "POST", "/tts", {"text": "hi", "speed": 2.5}, JSON, 400, "speed"),
    ("speed-string", "POST", "/tts", {"text": "hi", "speed": "fast"}, JSON, 400, "speed"),
    ("speed-bool", "POST", "/tts", {"text": "hi", "speed": True}, JSON, 400, "speed"),
    ("speed-nan", "POST", "/tts", b'{"text": "hi", "speed": NaN}', JSON, 400, "speed"),
    ("bad-json", "POST", "/tts", b'{"text": "hi"', JSON, 400, None),
    ("json-array", "POST", "/tts", b'["hi"]', JSON, 400, None),
    ("not-utf8", "POST", "/tts", b'{"text": "\xff"}', JSON, 400, None),
    ("wrong-content-type", "POST", "/tts", b"text=hi", {"Content-Type": "application/x-www-form-urlencoded"}, 415, None),
    ("no-content-type", "POST", "/tts", b'{"text": "hi"}', {}, 415, None),
    ("text-plain", "POST", "/tts", b'{"text": "hi"}', {"Content-Type": "text/plain"}, 415, None),
    ("unknown-path", "GET", "/nope", None, {}, 404, None),
    ("unknown-post-path", "POST", "/v1/audio/transcriptions", {"x": 1}, JSON, 404, None),
    ("get-on-tts", "GET", "/tts", None, {}, 405, None),
    ("delete-on-tts", "DELETE", "/tts", None, {}, 405, None),
    ("post-on-health", "POST", "/health", {}, JSON, 405, None),
    ("put-on-speech", "PUT", "/v1/audio/speech", {}, JSON, 405, None),
    ("openai-missing-input", "POST", "/v1/audio/speech", {"model": "tts-1", "voice": "alloy"}, JSON, 400, "input"),
    ("openai-unknown-voice", "POST", "/v1/audio/speech", {"input": "hi", "voice": "robot"}, JSON, 400, "voice"),
    ("openai-bad-speed", "POST", "/v1/audio/speech", {"input": "hi", "speed": 4.0}, JSON, 400, "speed"),
    ("openai-format-type", "POST", "/v1/audio/speech", {"input": "hi", "response_format": 1}, JSON, 400,
     "response_format"),
]


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_input_is_4xx_json(primary, case):
    _, method, path, body, headers, status, field = case
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
    r = http_request(primary.port, method, path, body=body, headers=headers)
    assert r.status == status, r
    assert r.header("content-type") == "application/json"
    assert r.header("x-tts-instance") == "tts-primary-test"
    err = r.json()
    assert isinstance(err["error"], str) and err["error"]
    assert err["field"] == field
    if status == 405:
        assert r.header("allow")


def test_oversized_body_is_413_and_server_survives(primary):
    big = json.dumps({"text": "a" * (70 * 1024)}).encode()
    r = http_request(primary.port, "POST", "/tts", body=big, headers=JSON)
    assert r.status == 413, r
    assert r.json()["field"] is None
    assert "exceeds" in r.json()["error"]


def test_malformed_http_and_unknown_method_still_json(primary):
    r = http_request(primary.port, "BREW", "/tts")
    assert r.status == 501 and r.header("x-tts-instance") == "tts-primary-test"
    assert "error" in r.json()
    with socket.create_connection(("127.0.0.1", primary.port), timeout=10) as s:
        s.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        data = s.recv(65536)
    assert data.startswith(b"HTTP/1.1 400") and b"X-TTS-Instance: tts-primary-test" in data


def test_server_keeps_serving_after_bad_input(primary):
    for case in BAD_REQUESTS[:6]:
        http_request(primary.port, case[1], case[2], json.dumps(case[3]).encode(), case[4])
    assert primary.get("/health").status == 200
    r = primary.tts("Still talking after all that.")
    assert r.status == 200
    assert_speech_wav(r.body)


def test_keepalive_connection_serves_many_requests(primary):
    conn = http.client.HTTPConnection("127.0.0.1", primary.port, timeout=30)
    try:
        for i in range(5):
            conn.request("POST", "/tts", body=json.dumps({"text": f"Number {i}."}), headers=JSON)
            resp = conn.getresponse()
            data = resp.read()
            assert resp.status == 200 and data[:4] == b"RIFF"
            conn.request("GET", "/health")
            resp = conn.getresponse()
            assert resp.status == 200 and resp.read()
    finally:
        conn.close()


def test_x_tts_instance_on_every_response(primary, standby):
    checks = [
        primary.get("/health"), primary.get("/ready"), primary.get("/metrics"), primary.get("/voices"),
        primary.get("/"), primary.get("/missing"), primary.tts("hi"), primary.tts(""),
        http_request(primary.port, "GET", "/tts"),
        primary.post("/v1/audio/speech", {"input": "hi", "response_format": "pcm"}),
    ]
    for r in checks:
        assert r.header("x-tts-instance") == "tts-primary-test", r
    for r in (standby.get("/"), standby.get("/health"), standby.tts("hi")):
        assert r.header("x-tts-instance") == "tts-standby-test", r


# ---- WebUI on/off -------------------------------------------------------------------------


def test_webui_enabled_serves_page(primary):
    r = primary.get("/")
    assert r.status == 200
    assert r.header("content-type").startswith("text/html")
    page = r.body.decode()
    for needle in ('<textarea id="text"', '<select id="voice"', '<audio id="player"', 'id="speak"', '"tts"'):
        assert needle in page


def test_webui_disabled_is_404_json(standby):
    r = standby.get("/")
    assert r.status == 404
    assert r.header("content-type") == "application/json"
    assert "ENABLE_WEBUI" in r.json()["error"]
    assert standby.get("/ready").json()["webui"] is False


# ---- cache on/off -------------------------------------------------------------------------


def test_cache_hits_counted_when_cache_on(primary):
    text = f"Cache me if you can {time.time_ns()}."
    before = primary.metrics()
    r1 = primary.tts(text)
    r2 = primary.tts(text)
    after = primary.metrics()
    assert r1.status == r2.status == 200
    assert r1.header("x-tts-cache") == "miss" and r2.header("x-tts-cache") == "hit"
    assert r1.body == r2.body
    assert metric(after, "tts_cache_hits_total") == metric(before, "tts_cache_hits_total") + 1
    assert metric(after, "tts_cache_misses_total") == metric(before, "tts_cache_misses_total") + 1
    assert metric(after, "tts_cache_entries") >= 1
    assert metric(after, "tts_cache_enabled") == 1
    # different speed or voice is a different entry
    assert primary.tts(text, speed=1.5).header("x-tts-cache") == "miss"
    assert primary.tts(text, voice="female").header("x-tts-cache") == "miss"
    # Cache-Control: no-cache forces real synthesis
    r3 = primary.tts(text, no_cache=True)
    assert r3.header("x-tts-cache") == "miss" and r3.header("x-tts-synthesis-ms")


def test_cache_off_never_hits(standby):
    text = "The standby never caches audio."
    for _ in range(3):
        r = standby.tts(text)
        assert r.status == 200 and r.header("x-tts-cache") == "off"
    m = standby.metrics()
    assert metric(m, "tts_cache_hits_total") == 0
    assert metric(m, "tts_cache_entries") == 0
    assert metric(m, "tts_cache_enabled") == 0
    info = [k for k in m if k[0] == "tts_info"]
    assert dict(info[0][1])["cache"] == "false" and dict(info[0][1])["webui"] == "false"


# ---- metrics & logs -----------------------------------------------------------------------


def test_metrics_exposition(primary):
    primary.tts("Metrics are counted.")
    r = primary.get("/metrics")
    assert r.status == 200 and r.header("content-type").startswith("text/plain; version=0.0.4")
    text = r.body.decode()
    for name in ("tts_http_requests_total", "tts_http_request_duration_seconds_bucket",
                 "tts_synthesis_seconds_total", "tts_audio_seconds_total", "tts_queue_depth",
                 "tts_inflight_synthesis", "tts_cache_hits_total", "tts_cache_misses_total",
                 "tts_cache_entries", "tts_ready", "tts_info"):
        assert f"\n{name}" in text, name
    m = primary.metrics()
    assert metric(m, "tts_ready") == 1
    assert metric(m, "tts_http_requests_total", method="POST", path="/tts", status="200") >= 1
    assert metric(m, "tts_audio_seconds_total", voice="joe") > 0
    assert metric(m, "tts_synthesis_seconds_total", voice="joe") > 0
    assert metric(m, "tts_http_request_duration_seconds_count", path="/tts") >= 1
    info = dict([k for k in m if k[0] == "tts_info"][0][1])
    assert info["instance"] == "tts-primary-test" and info["webui"] == "true" and info["cache"] == "true"
    for line in text.splitlines():  # every sample line is "name{labels} value"
        if line and not line.startswith("#"):
            float(line.rsplit(" ", 1)[1].replace("+Inf", "inf"))


def test_one_json_log_line_per_request(primary):
    marker = f"/log-marker-{time.time_ns()}"
    primary.get(marker)
    primary.tts("Logged request.")
    time.sleep(0.2)
    recs = [r for r in primary.log_records() if r.get("event") == "request"]
    mine = [r for r in recs if r.get("path") == marker]
    assert len(mine) == 1 and mine[0]["status"] == 404 and mine[0]["instance"] == "tts-primary-test"
    tts = [r for r in recs if r.get("path") == "/tts" and r.get("status") == 200]
    assert tts and {"ms", "voice", "cache", "audio_s"} <= set(tts[-1])


# ---- fault injection ----------------------------------------------------------------------


def _assert_probe_unhealthy(server, reason_part):
    tts_probe = load_tts_probe()
    if tts_probe is None:
        return
    result = tts_probe.probe(server.base_url + "/tts", headers={"Cache-Control": "no-cache"}, timeout=10)
    assert result["healthy"] is False and reason_part in result["reason"], result


@pytest.fixture
def faulty(primary):
    primary.clear_fault()
    yield primary
    primary.clear_fault()


def test_fault_silence(faulty):
    faulty.set_fault("silence")
    r = faulty.tts("This should have been speech.", no_cache=True)
    assert r.status == 200 and r.header("content-type") == "audio/wav"
    rate, _, _, samples = parse_wav(r.body)
    assert len(samples) > rate // 4 and rms(samples) == 0
    _assert_probe_unhealthy(faulty, "silent")


def test_fault_not_audio(faulty):
    faulty.set_fault("not_audio")
    r = faulty.tts("hello")
    assert r.status == 200 and r.header("content-type").startswith("text/html")
    assert b"<html" in r.body
    _assert_probe_unhealthy(faulty, "content type")


def test_fault_error500(faulty):
    faulty.set_fault("error500")
    r = faulty.tts("hello")
    assert r.status == 500 and r.json()["error"].startswith("injected fault")
    _assert_probe_unhealthy(faulty, "status 500")
    r = faulty.post("/v1/audio/speech", {"input": "hello"})
    assert r.status == 500
    # probes are not affected: liveness stays green, the drill relies on real synthesis checks
    assert faulty.get("/health").status == 200
    assert faulty.get("/ready").json()["fault"] == "error500"
    assert metric(faulty.metrics(), "tts_fault_mode", mode="error500") == 1


def test_fault_slow_then_recovers(faulty):
    faulty.set_fault("slow")  # TTS_FAULT_SLOW_SECONDS=2 on this instance
    r = faulty.tts("slow but correct", no_cache=True, timeout=30)
    assert r.status == 200 and r.elapsed >= 1.9
    assert_speech_wav(r.body)
    faulty.set_fault("none")
    r = faulty.tts("fast again", no_cache=True)
    assert r.status == 200 and r.elapsed < 1.9
    faulty.set_fault("bogus-mode")  # unknown content is ignored (logged), not fatal
    assert faulty.tts("still fine", no_cache=True).status == 200
    faulty.clear_fault()
    assert faulty.tts("fault file removed", no_cache=True).status == 200


def test_bad_input_still_4xx_during_fault(faulty):
    faulty.set_fault("error500")
    assert faulty.tts("").status == 400


def test_long_text_within_limit(primary):
    text = (LONG_SENTENCE * 3)[:600]
    r = primary.tts(text, no_cache=True, timeout=120)
    assert r.status == 200
    _, seconds, _ = assert_speech_wav(r.body, min_seconds=10)
    assert float(r.header("x-tts-synthesis-ms")) / 1000 < seconds  # faster than real time
