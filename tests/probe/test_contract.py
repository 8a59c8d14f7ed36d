"""The TTS API contract: presets, request building, and every probe verdict for each API shape.

A loopback stub speaks each preset's API the way the real server does (method, route, where the
text travels, content type, format) and refuses anything else the way such servers do (404 on
an unknown route, 405 on a wrong method, 400/422 naming a missing field). Each test sets what
the stub answers: good audio, silence, a streamed WAV with placeholder sizes, a stream cut
before any audio, a truncated WAV, a wrong type, or a stall.
"""

import array
import email.parser
import email.policy
import json
import math
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from tts_probe_testlib import riff_wav, sine_wav

import tts_probe

RATE = 22050


def pcm_sine(seconds=0.3, amplitude=0.5, rate=RATE):
    frames = int(seconds * rate)
    return array.array("h", (round(amplitude * 32767 * math.sin(2 * math.pi * i / 50))
                             for i in range(frames))).tobytes()


def streamed_wav(pcm, size=0xFFFFFFFF):
    """A WAV as streaming writers send it: header sizes they could not patch."""
    return riff_wav(pcm, data_size=size, riff_size=size)


class Stub:
    behaviour = "good"
    last_request = None


def _text_of(handler, shape, body):
    """The text as the real server would read it, or an error (status, message)."""
    contract = tts_probe.resolve_contract(shape)
    placement, field = contract["text"]["in"], contract["text"].get("field")
    query = parse_qs(urlsplit(handler.path).query)
    ctype = handler.headers.get("Content-Type", "")
    if placement == "query":
        values = {k: v[0] for k, v in query.items()}
    elif placement == "json":
        try:
            values = json.loads(body or b"null")
        except ValueError:
            return None, (400, b'{"detail": "invalid JSON"}')
        if not isinstance(values, dict):
            return None, (400, b'{"detail": "body must be an object"}')
    elif placement == "multipart":
        if not ctype.startswith("multipart/form-data"):
            return None, (415, b"expected multipart/form-data")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
        values = {part.get_param("name", header="content-disposition"): part.get_content()
                  for part in message.iter_parts()}
    elif placement == "form":
        values = {k: v[0] for k, v in parse_qs(body.decode()).items()}
    else:
        values = {None: body.decode()}
    missing = [name for name in [field] + list(contract["fields"]) if name not in values]
    if missing:
        # FastAPI-style validation answer naming the field.
        return None, (422, json.dumps({"detail": [{"loc": ["body", missing[0]],
                                                    "msg": "field required"}]}).encode())
    return values[field], None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._handle()

    def do_POST(self):
        self._handle()

    def _send(self, status, body, ctype=None, chunked=False, length=None):
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(body) if length is None else length))
        self.send_header("Connection", "close")
        self.end_headers()
        if chunked:
            for start in range(0, len(body), 4096):
                piece = body[start:start + 4096]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(body)
        self.close_connection = True

    def _handle(self):
        shape, _, rest = self.path.lstrip("/").partition("/")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        Stub.last_request = {"method": self.command, "path": self.path, "headers": dict(self.headers),
                             "body": body}
        if shape not in tts_probe.PRESETS:
            return self._send(404, b"not found", "text/plain")
        contract = tts_probe.resolve_contract(shape)
        if "/" + rest.split("?")[0] != contract["path"]:
            return self._send(404, b'{"detail": "Not Found"}', "application/json")
        if self.command != contract["method"]:
            return self._send(405, b'{"detail": "Method Not Allowed"}', "application/json")
        text, error = _text_of(self, shape, body)
        if error:
            return self._send(error[0], error[1], "application/json")
        answer = contract["answer"]
        fmt = answer["format"]
        ctype = {"": None}.get(answer["content_type"], "audio/wav" if fmt != "pcm" else "audio/pcm")
        behaviour = Stub.behaviour
        good = pcm_sine() if fmt == "pcm" else sine_wav(0.3)
        if behaviour == "good":
            return self._send(200, good, ctype)
        if behaviour == "chunked":
            return self._send(200, good, ctype, chunked=True)
        if behaviour == "silent":
            silence = bytes(len(pcm_sine()))
            return self._send(200, silence if fmt == "pcm" else riff_wav(silence), ctype)
        if behaviour == "streamed":
            return self._send(200, streamed_wav(pcm_sine()), ctype, chunked=True)
        if behaviour == "streamed_7ffff000":
            return self._send(200, streamed_wav(pcm_sine(), 0x7FFFF000), ctype, chunked=True)
        if behaviour == "streamed_empty":
            return self._send(200, streamed_wav(b""), ctype, chunked=True)
        if behaviour == "truncated":
            wav = sine_wav(0.3)
            return self._send(200, wav[:len(wav) // 2], ctype)
        if behaviour == "html":
            return self._send(200, b"<!doctype html><p>oops</p>", "text/html")
        if behaviour == "mp3_for_wav":
            return self._send(200, b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes(400), ctype)
        if behaviour == "error500":
            return self._send(500, b'{"message": "tts failed"}', "application/json")
        if behaviour == "busy503":
            return self._send(503, b"queue full", "text/plain")
        if behaviour == "slow":
            time.sleep(1.5)
            return self._send(200, good, ctype)
        raise AssertionError(behaviour)


@pytest.fixture(scope="module")
def stub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def run(stub, shape, behaviour, overrides=None, timeout=1.0, text=None):
    Stub.behaviour = behaviour
    contract = tts_probe.resolve_contract(shape, overrides)
    arguments = tts_probe.contract_probe_arguments(contract, f"{stub}/{shape}", text)
    return tts_probe.probe(**arguments, timeout=timeout)


SHAPES = sorted(tts_probe.PRESETS)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("behaviour", ["good", "chunked", "streamed", "streamed_7ffff000"])
def test_real_audio_is_healthy_for_every_shape(stub, shape, behaviour):
    if tts_probe.resolve_contract(shape)["answer"]["format"] == "pcm" and behaviour.startswith("streamed"):
        pytest.skip("a headerless PCM server never writes a WAV header")
    result = run(stub, shape, behaviour)
    assert result["healthy"], result["reason"]
    assert result["duration_s"] == pytest.approx(0.3, abs=0.01)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("behaviour, words", [
    ("silent", "silent"),
    ("streamed_empty", "before any audio"),
    ("truncated", "truncated"),
    ("error500", "status 500"),
    ("slow", "timed out"),
])
def test_broken_answers_fail_for_every_shape(stub, shape, behaviour, words):
    fmt = tts_probe.resolve_contract(shape)["answer"]["format"]
    if fmt == "pcm" and behaviour in ("streamed_empty", "truncated"):
        pytest.skip("headerless PCM has no header to cut or to leave empty")
    result = run(stub, shape, behaviour)
    assert not result["healthy"]
    assert words in result["reason"], result["reason"]
    assert result["definitive"] is None  # none of these is the contract's fault


@pytest.mark.parametrize("shape", [s for s in SHAPES if tts_probe.resolve_contract(s)["answer"]["content_type"]])
def test_wrong_content_type_fails_where_the_contract_names_one(stub, shape):
    result = run(stub, shape, "html")
    assert not result["healthy"] and "content type 'text/html'" in result["reason"]


def test_server_without_a_content_type_is_judged_by_its_bytes(stub):
    # piper_http answers WAV as text/html: the bytes decide.
    assert run(stub, "piper_http", "good")["healthy"]
    result = run(stub, "piper_http", "html")
    assert not result["healthy"] and "not recognised audio" in result["reason"]


def test_declared_format_must_match(stub):
    result = run(stub, "reference", "mp3_for_wav")
    assert not result["healthy"] and "expected wav audio (answer.format), got mp3" in result["reason"]
    # A contract that accepts any format takes MP3 on recognition.
    assert run(stub, "reference", "mp3_for_wav", {"answer": {"format": "any"}})["healthy"]


@pytest.mark.parametrize("shape, overrides, field", [
    ("reference", {"path": "/speak"}, "path"),
    ("coqui", {"method": "POST", "text": {"in": "json"}}, "method"),
    ("openai", {"text": {"field": "text"}}, "text.field"),
    ("gpt_sovits", {"fields": {"text_lang": "en"}}, "text.field"),
])
def test_definitive_answers_name_the_contract_field(stub, shape, overrides, field):
    contract = tts_probe.resolve_contract(shape)
    if field == "text.field" and shape == "gpt_sovits":
        # The stub demands every preset field; a contract that forgot one gets a 422 naming it.
        contract["fields"].pop("ref_audio_path")
        arguments = tts_probe.contract_probe_arguments(contract, f"{stub}/{shape}")
        Stub.behaviour = "good"
        result = tts_probe.probe(**arguments, timeout=1.0)
    else:
        result = run(stub, shape, "good", overrides)
    assert not result["healthy"]
    assert result["definitive"] and result["definitive"].startswith(field.split(".")[0]), result
    assert "will not improve by waiting" in result["reason"]


def test_coqui_gets_the_text_in_the_query_string(stub):
    assert run(stub, "coqui", "good", text="Hello there")["healthy"]
    assert Stub.last_request["method"] == "GET"
    assert Stub.last_request["path"].endswith("/api/tts?text=Hello+there")
    assert Stub.last_request["body"] == b""


def test_cosyvoice_gets_multipart_fields_and_answers_raw_pcm(stub):
    assert run(stub, "cosyvoice", "good", text="hi")["healthy"]
    body = Stub.last_request["body"]
    assert b'name="tts_text"\r\n\r\nhi\r\n' in body and b'name="spk_id"' in body
    # Declared rate decides the duration of headerless PCM.
    result = run(stub, "cosyvoice", "good", {"answer": {"pcm": {"rate": 44100}}})
    assert result["duration_s"] == pytest.approx(0.15, abs=0.01)


def test_auth_token_and_probe_headers_are_sent(stub):
    contract = tts_probe.resolve_contract("openai", {"auth": {"token": "s3cr3t-value"}})
    request = tts_probe.build_request(contract, "x", probe_request=True)
    assert request["headers"]["Authorization"] == "Bearer s3cr3t-value"
    reference = tts_probe.build_request(tts_probe.resolve_contract("reference"), "x", probe_request=True)
    assert reference["headers"]["X-TTS-Probe"] == "1"
    client = tts_probe.build_request(tts_probe.resolve_contract("reference"), "x")
    assert "X-TTS-Probe" not in client["headers"]


@pytest.mark.parametrize("preset, overrides, field", [
    ("nope", {}, "preset"),
    ("reference", {"text": {"in": "header"}}, "text.in"),
    ("reference", {"text": {"in": "json", "field": ""}}, "text.field"),
    ("coqui", {"method": "HEAD", "text": {"in": "json"}}, "text.in"),  # a body on HEAD
    ("openai", {"auth": {"token": "CHANGE_ME"}}, "auth.token"),
    ("openai", {"auth": {"token": "<your token>"}}, "auth.token"),
    ("reference", {"answer": {"format": "aiff"}}, "answer.format"),
    ("cosyvoice", {"answer": {"pcm": {"rate": 0}}}, "answer.pcm.rate"),
    ("reference", {"port": 70000}, "port"),
    ("reference", {"path": "tts"}, "path"),
    ("reference", {"probe": {"text": " "}}, "probe.text"),
    ("reference", {"bogus": 1}, "bogus"),
    ("reference", {"answer": {"status": ["ok"]}}, "answer.status"),
])
def test_bad_contracts_are_refused_naming_the_field(preset, overrides, field):
    with pytest.raises(tts_probe.ContractError) as caught:
        tts_probe.resolve_contract(preset, overrides)
    assert caught.value.field == field


def test_haproxy_check_is_stable_and_quoted():
    for shape in SHAPES:
        first = tts_probe.haproxy_check(tts_probe.resolve_contract(shape))
        assert first == tts_probe.haproxy_check(tts_probe.resolve_contract(shape))
        assert "\n" not in first["send"] and "$" not in first["send"].replace("\\$", "")
    coqui = tts_probe.haproxy_check(tts_probe.resolve_contract("coqui"))
    assert coqui["send"].startswith('meth GET uri "/api/tts?text=a"') and " body " not in coqui["send"]
    assert coqui["expect"] == ["status 200", 'hdr name content-type value -m beg "audio/"']
    piper = tts_probe.haproxy_check(tts_probe.resolve_contract("piper_http"))
    assert piper["expect"] == ["status 200"]


def test_streamed_wav_with_placeholder_sizes_is_measured():
    for size in (0xFFFFFFFF, 0x7FFFF000, 0x7FFFFFFF):
        info = tts_probe.analyze_audio(streamed_wav(pcm_sine(0.5), size))
        assert info["error"] is None and info["streaming"] and info["duration_s"] == pytest.approx(0.5, abs=0.01)
    # espeak-ng --stdout: RIFF size 0 with data size 0, audio to the end.
    info = tts_probe.analyze_audio(riff_wav(pcm_sine(0.2), data_size=0, riff_size=0))
    assert info["error"] is None and info["duration_s"] == pytest.approx(0.2, abs=0.01)
    # A real size that is not met is still truncation.
    info = tts_probe.analyze_audio(riff_wav(pcm_sine(0.2), data_size=100000))
    assert "truncated" in info["error"]


def test_headerless_pcm_widths_and_channels():
    info = tts_probe.analyze_audio(pcm_sine(0.4), "pcm", {"rate": 22050, "width": 2, "channels": 1})
    assert info["error"] is None and info["duration_s"] == pytest.approx(0.4, abs=0.01)
    assert -10 < info["rms_dbfs"] < -5
    stereo = tts_probe.analyze_audio(pcm_sine(0.4), "pcm", {"rate": 22050, "width": 2, "channels": 2})
    assert stereo["duration_s"] == pytest.approx(0.2, abs=0.01)
    assert tts_probe.analyze_audio(b"", "pcm", {"rate": 22050, "width": 2, "channels": 1})["error"] == "empty body"
    silence = tts_probe.analyze_audio(bytes(8820), "pcm", {"rate": 22050, "width": 2, "channels": 1})
    assert silence["rms_dbfs"] == tts_probe.SILENCE_FLOOR_DBFS


def test_definitive_failure_rules():
    assert tts_probe.definitive_failure(404, b"") .startswith("path")
    assert tts_probe.definitive_failure(405, b"").startswith("method")
    assert tts_probe.definitive_failure(501, b"").startswith("method")
    assert tts_probe.definitive_failure(401, b"").startswith("auth.token")
    assert tts_probe.definitive_failure(400, b'{"message": "ref_audio_path is required"}')
    # GPT-SoVITS's failed synthesis is a 400 that names no field: not the contract's fault.
    assert tts_probe.definitive_failure(400, b'{"message": "tts failed", "Exception": "CUDA"}') is None
    assert tts_probe.definitive_failure(500, b"missing field") is None
    assert tts_probe.definitive_failure(503, b"") is None


def test_evidence_counter_and_busy_rule(tmp_path):
    state = tmp_path / "evidence.json"
    assert tts_probe.record_evidence(str(state), 10.0, now=100.0) is None
    assert tts_probe.record_evidence(str(state), 10.0, now=101.0) is None  # standing still
    assert tts_probe.record_evidence(str(state), 12.0, now=102.0) == pytest.approx(1.0)
    assert tts_probe.record_evidence(str(state), 12.0, now=104.5) == pytest.approx(3.5)
    busy = {"healthy": False, "status": None, "reason": "timed out after 1 s waiting for response headers"}
    assert tts_probe.is_busy_not_broken(busy)
    assert tts_probe.is_busy_not_broken({**busy, "status": 503, "reason": "status 503 not in expected [200]"})
    for reason in ("connection refused by 127.0.0.1:8000", "timed out after 1 s connecting to 127.0.0.1:8000",
                   "audio is silent: rms -120.0 dBFS < min_rms_dbfs -60 dBFS"):
        assert not tts_probe.is_busy_not_broken({**busy, "reason": reason})
