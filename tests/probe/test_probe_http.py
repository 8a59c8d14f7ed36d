"""probe() against the in-process server: one verdict and reason per case."""

import math
import time

import pytest
import tts_probe
from tts_probe_testlib import GOOD_WAV, INSTANCE, RATE, TRUNCATED_WAV, closed_port

RESULT_KEYS = {
    "healthy", "reason", "url", "status", "content_type", "bytes", "latency_ms", "audio_format",
    "sample_rate", "channels", "duration_s", "rms_dbfs", "instance", "checks", "definitive",
}


def run(server, path, **kwargs):
    kwargs.setdefault("timeout", 2.0)
    result = tts_probe.probe(server.url + path, **kwargs)
    assert set(result) == RESULT_KEYS
    assert isinstance(result["latency_ms"], float)
    return result


def test_good_wav_is_healthy_with_figures(server):
    result = run(server, "/wav")
    assert result["healthy"] is True, result["reason"]
    assert result["reason"] == "ok"
    assert (result["status"], result["content_type"], result["bytes"]) == (200, "audio/wav", len(GOOD_WAV))
    assert (result["audio_format"], result["sample_rate"], result["channels"]) == ("wav", RATE, 1)
    assert result["duration_s"] == pytest.approx(0.3, abs=1e-3)
    assert result["rms_dbfs"] == pytest.approx(-9.03, abs=0.05)
    assert result["instance"] == INSTANCE
    assert result["checks"] == dict.fromkeys(
        ("request", "status", "content_type", "audio", "duration", "rms"), True)
    assert 0 < result["latency_ms"] < 2000


@pytest.mark.parametrize(("path", "audio_format"), [("/mp3", "mp3"), ("/ogg", "ogg"), ("/flac", "flac")])
def test_compressed_audio_is_healthy_on_recognition(server, path, audio_format):
    result = run(server, path)
    assert result["healthy"] is True, result["reason"]
    assert result["audio_format"] == audio_format
    assert result["duration_s"] is None and result["rms_dbfs"] is None
    assert "duration" not in result["checks"] and "rms" not in result["checks"]


def test_html_page_with_200_is_not_health(server):
    result = run(server, "/html")
    assert result["healthy"] is False
    assert "content type 'text/html; charset=utf-8' does not start with 'audio/'" in result["reason"]
    assert "body is not recognised audio (starts with '<!DOCTYPE html>" in result["reason"]
    assert result["checks"] == {"request": True, "status": True, "content_type": False, "audio": False}


def test_json_error_500_names_status_and_body(server):
    result = run(server, "/error500")
    assert result["healthy"] is False
    assert result["reason"] == "status 500 not in expected [200] (body '{\"error\": \"model not loaded\"}')"
    assert result["checks"] == {"request": True, "status": False}
    assert result["instance"] == INSTANCE  # known even for failures: which node is broken


def test_silence_is_rejected_with_its_level(server):
    result = run(server, "/silence")
    assert result["healthy"] is False
    assert result["rms_dbfs"] == -120.0
    assert result["reason"] == "audio is silent: rms -120.0 dBFS < min_rms_dbfs -60 dBFS"
    assert result["checks"]["rms"] is False and result["checks"]["duration"] is True


def test_silence_passes_when_the_level_check_allows_it(server):
    assert run(server, "/silence", min_rms_dbfs=-120.0)["healthy"] is True
    assert run(server, "/silence", min_rms_dbfs=None)["healthy"] is True


def test_truncated_wav_names_declared_and_received_sizes(server):
    declared = len(GOOD_WAV) - 44
    present = len(TRUNCATED_WAV) - 44
    result = run(server, "/truncated")
    assert result["healthy"] is False
    assert result["reason"] == (f"WAV data chunk declares {declared} bytes but only {present}"
                                " are present (truncated)")
    assert result["checks"]["audio"] is False


def test_too_short_audio(server):
    result = run(server, "/short")
    assert result["healthy"] is False
    assert result["reason"] == "audio too short: 0.005 s < min_duration 0.02 s"
    assert run(server, "/short", min_duration_s=0.001)["healthy"] is True


def test_slow_response_is_cut_at_the_timeout(server):
    started = time.monotonic()
    result = run(server, "/slow", timeout=0.5)
    elapsed = time.monotonic() - started
    assert result["healthy"] is False
    assert result["reason"] == "timed out after 0.5 s waiting for response headers"
    assert result["checks"] == {"request": False}
    assert 0.45 <= elapsed < 0.8


def test_trickling_body_cannot_stretch_the_deadline(server):
    # Each read gets bytes within 50 ms, so only a deadline for the whole probe stops it.
    started = time.monotonic()
    result = run(server, "/trickle", timeout=0.6)
    elapsed = time.monotonic() - started
    assert result["healthy"] is False
    assert result["reason"].startswith("timed out after 0.6 s reading the body (")
    assert result["status"] == 200 and 0 < result["bytes"] < len(GOOD_WAV)
    assert f"({result['bytes']} bytes received)" in result["reason"]
    assert 0.55 <= elapsed < 0.9


def test_redirect_is_not_followed_by_default(server):
    result = run(server, "/redirect")
    assert result["healthy"] is False
    assert result["status"] == 302
    assert result["reason"] == "redirect 302 to '/wav' not followed (follow_redirects is off)"


def test_followed_redirect_repeats_the_synthesis_request(server):
    # /wav answers 400 unless it gets the POSTed text, so this proves method and body survive.
    result = run(server, "/redirect", follow_redirects=True)
    assert result["healthy"] is True, result["reason"]
    assert result["status"] == 200


def test_see_other_is_fetched_with_get(server):
    result = run(server, "/see-other", follow_redirects=True)
    assert result["healthy"] is True, result["reason"]


def test_redirect_loop_is_bounded(server):
    result = run(server, "/redirect-loop", follow_redirects=True)
    assert result["healthy"] is False
    assert result["reason"] == "more than 5 redirects"


def test_wrong_content_type_with_real_wav(server):
    result = run(server, "/wrong-type")
    assert result["healthy"] is False
    assert result["reason"] == "content type 'application/octet-stream' does not start with 'audio/'"
    assert result["checks"]["content_type"] is False and result["checks"]["audio"] is True
    assert run(server, "/wrong-type", content_type_prefix=None)["healthy"] is True


def test_instance_header_is_echoed(server):
    assert run(server, "/instance")["instance"] == INSTANCE
    assert run(server, "/instance", instance_header="x-backend")["instance"] == "tts-node-b:8000"
    assert run(server, "/instance", instance_header=None)["instance"] is None


def test_connection_refused(server):
    port = closed_port()
    started = time.monotonic()
    result = tts_probe.probe(f"http://127.0.0.1:{port}/tts", timeout=2.0)
    assert time.monotonic() - started < 1.0
    assert result["healthy"] is False
    assert result["reason"] == f"connection refused by 127.0.0.1:{port}"
    assert (result["status"], result["bytes"], result["checks"]) == (None, 0, {"request": False})


def test_unresolvable_host_is_unhealthy_within_the_timeout():
    started = time.monotonic()
    result = tts_probe.probe("http://tts-probe-test.invalid/tts", timeout=1.0)
    assert time.monotonic() - started < 1.5
    assert result["healthy"] is False
    assert result["reason"].startswith(("cannot resolve tts-probe-test.invalid",
                                        "timed out after 1 s resolving tts-probe-test.invalid"))


def test_garbage_instead_of_http(server):
    result = run(server, "/garbage")
    assert result["healthy"] is False
    assert result["reason"].startswith("invalid HTTP response waiting for response headers: BadStatusLine")


def test_connection_closed_mid_body(server):
    result = run(server, "/short-body")
    assert result["healthy"] is False
    assert result["reason"] == (f"response body truncated: connection closed after 100 bytes,"
                                f" {len(GOOD_WAV) - 100} more were announced")


def test_chunked_body_cut_short(server):
    result = run(server, "/chunked-cut")
    assert result["healthy"] is False
    assert result["reason"] == "response body truncated: connection closed after 4096 bytes"


def test_chunked_response_is_read_completely(server):
    result = run(server, "/chunked")
    assert result["healthy"] is True, result["reason"]
    assert result["bytes"] == len(GOOD_WAV)


@pytest.mark.parametrize(("path", "reason"), [
    ("/wav", f"Content-Length {len(GOOD_WAV)} exceeds max_bytes 1000"),
    ("/chunked", "response body exceeds max_bytes 1000"),
])
def test_body_size_is_capped(server, path, reason):
    result = run(server, path, max_bytes=1000)
    assert (result["healthy"], result["reason"]) == (False, reason)


def test_payload_and_headers_reach_the_server(server):
    result = run(server, "/auth", payload={"input": "hello"}, headers={"X-Api-Key": "secret"})
    assert result["healthy"] is True, result["reason"]
    result = run(server, "/auth", payload={"input": "hello"})
    assert result["reason"].startswith("status 401 not in expected [200]")


def test_raw_string_payload_is_sent_as_is(server):
    result = run(server, "/wav", payload='{"text": "raw"}', headers={"Content-Type": "application/json"})
    assert result["healthy"] is True, result["reason"]
    assert run(server, "/wav", payload="text=raw")["status"] == 400


def test_expected_status_list(server):
    assert run(server, "/error500", expected_status=[200, 500])["checks"]["status"] is True


def test_latency_limit(server):
    result = run(server, "/wav", max_latency_ms=0.001)
    assert result["healthy"] is False
    assert result["reason"] == f"latency {result['latency_ms']:.1f} ms > max_latency_ms 0.001"
    assert run(server, "/wav", max_latency_ms=5000)["checks"]["latency"] is True


def test_self_signed_tls_is_rejected_unless_trusted(tls_server, tls_cert):
    result = run(tls_server, "/wav")
    assert result["healthy"] is False
    assert result["reason"].startswith("TLS certificate verification failed for 127.0.0.1:")
    assert run(tls_server, "/wav", validate_certs=False)["healthy"] is True
    assert run(tls_server, "/wav", ca_path=str(tls_cert[0]))["healthy"] is True


@pytest.mark.parametrize(("kwargs", "argument", "detail"), [
    ({"url": "ftp://x"}, "url", "must be an http:// or https:// URL with a host, got 'ftp://x'"),
    ({"url": "not a url"}, "url", "must be an http:// or https:// URL with a host, got 'not a url'"),
    ({"url": "http://"}, "url", "must be an http:// or https:// URL with a host, got 'http://'"),
    ({"url": "http://h:99999/"}, "url", "Port out of range 0-65535 in 'http://h:99999/'"),
    ({"url": None}, "url", "must be a string, got NoneType"),
    ({"timeout": -1}, "timeout", "must be > 0, got -1"),
    ({"timeout": 0}, "timeout", "must be > 0, got 0"),
    ({"timeout": math.nan}, "timeout", "must be a finite number, got nan"),
    ({"timeout": "3"}, "timeout", "must be a finite number, got '3'"),
    ({"method": "PO ST"}, "method", "must be an HTTP method name, got 'PO ST'"),
    ({"payload": 42}, "payload", "must be a dict or list (sent as JSON), str or bytes, got int"),
    ({"payload": {"t": {1, 2}}}, "payload", "cannot be encoded as JSON: Object of type set is not JSON serializable"),
    ({"headers": {"Bad Name": "x"}}, "headers", "invalid header name 'Bad Name'"),
    ({"headers": {"X-A": "a\r\nInjected: 1"}}, "headers", "value of X-A contains a line break or NUL"),
    ({"headers": ["X-A: b"]}, "headers", "must be a dict, got list"),
    ({"expected_status": []}, "expected_status", "must be one or more HTTP status codes (100-599), got []"),
    ({"expected_status": [99]}, "expected_status", "must be one or more HTTP status codes (100-599), got [99]"),
    ({"min_duration_s": -1}, "min_duration_s", "must be >= 0, got -1"),
    ({"max_latency_ms": 0}, "max_latency_ms", "must be > 0, got 0"),
    ({"max_bytes": 0}, "max_bytes", "must be a positive integer, got 0"),
    ({"ca_path": "/nonexistent/ca.pem"}, "ca_path", "'/nonexistent/ca.pem' does not exist"),
    ({"client_key": __file__}, "client_key", "needs client_cert"),
])
def test_invalid_arguments_raise_naming_the_argument(kwargs, argument, detail):
    kwargs = {"url": "http://127.0.0.1:9/tts", **kwargs}
    with pytest.raises(tts_probe.ProbeArgumentError) as raised:
        tts_probe.probe(**kwargs)
    assert isinstance(raised.value, ValueError)
    assert (raised.value.argument, raised.value.detail) == (argument, detail)
