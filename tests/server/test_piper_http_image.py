"""The piper-http image: Piper's own HTTP server (piper-tts 1.8.0), built offline, unmodified.

Builds images/piper-http (cached by tag), runs it hardened on a network this module creates with
its port published on loopback only, and records the upstream API as it really behaves:
POST /synthesize with JSON {"text"} answers a complete WAV labelled text/html; bad input is a
generic 500; the server is threaded. Every wait is bounded; containers and the network are
removed at the end.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import uuid

import pytest

from tts_srv_helpers import LONG_SENTENCE, REPO, http_request, load_tts_probe, post_json

pytestmark = pytest.mark.slow

BASE_IMAGE = "tts-ha/debian:bookworm"
IMAGE_DIR = REPO / "images" / "piper-http"
PIPER_VERSION = "1.8.0"
TAG = f"tts-ha/piper-http:{PIPER_VERSION}"
PORT = 5000
# What upstream 1.8.0 sends with the WAV (Flask's default for a bytes return value).
UPSTREAM_CONTENT_TYPE = "text/html; charset=utf-8"
SENTENCE = "The container speaks with a real voice, from a server this project did not write."


def _docker(*args, timeout=120, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=check)


@pytest.fixture(scope="module")
def image():
    if shutil.which("docker") is None:
        pytest.skip("docker CLI not installed")
    if _docker("info", check=False, timeout=30).returncode != 0:
        pytest.skip("docker engine not reachable")
    if _docker("image", "inspect", BASE_IMAGE, check=False).returncode != 0:
        pytest.skip(f"base image {BASE_IMAGE} not built yet")
    build = subprocess.run([str(IMAGE_DIR / "build.sh")], cwd=str(REPO), capture_output=True, text=True,
                           timeout=1500)
    assert build.returncode == 0, build.stderr[-3000:] + build.stdout[-3000:]
    # cached by tag: a second run is a no-op
    t0 = time.monotonic()
    again = subprocess.run([str(IMAGE_DIR / "build.sh")], cwd=str(REPO), capture_output=True, text=True,
                           timeout=60)
    assert again.returncode == 0 and "nothing to do" in again.stderr, again.stderr
    assert time.monotonic() - t0 < 30
    return TAG


@pytest.fixture(scope="module")
def network(image):
    name = f"tts-ha-piper-test-{uuid.uuid4().hex[:10]}"
    _docker("network", "create", "--label", "tts-ha.test=piper-http", name)
    try:
        yield name
    finally:
        _docker("network", "rm", name, check=False, timeout=60)


def _port(name):
    out = _docker("port", name, f"{PORT}/tcp").stdout.strip().splitlines()
    host, _, port = out[0].rpartition(":")
    assert host in ("127.0.0.1", "::1", "[::1]"), f"published beyond loopback: {out}"
    return int(port)


def _wait_listening(name, port, timeout=120.0):
    """Until GET /info answers (the model is loaded before the server binds); bounded."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        state = json.loads(_docker("inspect", "-f", "{{json .State}}", name).stdout)
        assert state["Running"], (state, _docker("logs", name, check=False).stderr[-2000:])
        try:
            last = http_request(port, "GET", "/info", timeout=5)
            if last.status == 200:
                return last
        except OSError as exc:
            last = exc
        time.sleep(1)
    raise AssertionError(f"{name} not answering after {timeout:.0f} s: {last!r}")


def _container(image, network):
    name = f"tts-piper-test-{uuid.uuid4().hex[:10]}"
    run = _docker("run", "-d", "--name", name, "--network", network, "--read-only",
                  "--tmpfs", "/tmp:rw,noexec,nosuid,size=64m", "--user", "10001:10001",
                  "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                  "-p", f"127.0.0.1::{PORT}", "--memory", "1500m",
                  "--health-interval", "3s", "--health-start-period", "60s",
                  "--label", "tts-ha.test=piper-http", image, check=False)
    assert run.returncode == 0, run.stderr
    try:
        port = _port(name)
        _wait_listening(name, port)
        yield name, port
    finally:
        _docker("rm", "-f", name, check=False, timeout=60)


@pytest.fixture(scope="module")
def server(image, network):
    """A hardened container like tts_service runs them; a fast health interval so the image's own
    HEALTHCHECK command is exercised within seconds."""
    yield from _container(image, network)


def synth(port, obj, timeout=60.0, headers=None):
    return post_json(port, "/synthesize", obj, headers=headers, timeout=timeout)


def test_image_metadata(image):
    cfg = json.loads(_docker("image", "inspect", image).stdout)[0]["Config"]
    assert cfg["User"] == "10001:10001"
    assert f"{PORT}/tcp" in cfg["ExposedPorts"]
    assert cfg["StopSignal"] == "SIGINT"
    assert cfg["Cmd"] == ["python", "-m", "piper.http_server", "-m", "en_US-joe-medium",
                          "--host", "0.0.0.0", "--port", str(PORT)]
    check = " ".join(cfg["Healthcheck"]["Test"])
    assert "tts-synthesis-check" in check and f"127.0.0.1:{PORT}/synthesize" in check
    labels = cfg["Labels"]
    assert labels["org.opencontainers.image.version"] == PIPER_VERSION
    assert labels["io.tts-ha.component"] == "piper-http"
    assert len(labels["io.tts-ha.sources-sha256"]) == 64
    assert labels["io.tts-ha.upstream"].startswith(f"piper-tts=={PIPER_VERSION} piper/http_server.py sha256:")
    size_mib = int(_docker("image", "inspect", "-f", "{{.Size}}", image).stdout) / 2**20
    assert size_mib < 600, f"image grew to {size_mib:.0f} MiB"


# Runs inside the image: every file of the installed piper package against the wheel's RECORD.
_VERIFY_RECORD = r"""
import base64, hashlib, json, pathlib, piper, sys
site = pathlib.Path(piper.__file__).parent.parent
record = next(site.glob("piper_tts-*.dist-info")) / "RECORD"
checked, bad = 0, []
for line in record.read_text().splitlines():
    path, digest, _size = line.rsplit(",", 2)
    if not path.startswith("piper/") or not digest:
        continue
    algo, _, want = digest.partition("=")
    data = (site / path).read_bytes()
    got = base64.urlsafe_b64encode(hashlib.new(algo, data).digest()).rstrip(b"=").decode()
    checked += 1
    if got != want:
        bad.append(path)
server = (site / "piper" / "http_server.py").read_bytes()
print(json.dumps({"checked": checked, "bad": bad, "server_sha256": hashlib.sha256(server).hexdigest(),
                  "record": str(record)}))
"""


def test_upstream_server_is_installed_unmodified(image):
    out = _docker("run", "--rm", "--network", "none", "--read-only", "--entrypoint", "python", image,
                  "-c", _VERIFY_RECORD, timeout=120)
    result = json.loads(out.stdout)
    assert result["checked"] > 50 and result["bad"] == [], result
    assert result["record"].endswith(f"piper_tts-{PIPER_VERSION}.dist-info/RECORD")
    label = json.loads(_docker("image", "inspect", image).stdout)[0]["Config"]["Labels"]["io.tts-ha.upstream"]
    assert label.endswith("sha256:" + result["server_sha256"])


def test_synthesis_returns_real_wav(server, record_property):
    name, port = server
    tts_probe = load_tts_probe()
    assert tts_probe is not None, "module_utils/tts_probe.py missing"
    r = synth(port, {"text": SENTENCE})
    assert r.status == 200, r
    content_type = r.header("content-type")
    record_property("piper_http_content_type", content_type)
    # Upstream sends the WAV with Flask's default type: a contract must not require audio/*.
    assert content_type == UPSTREAM_CONTENT_TYPE, content_type
    assert r.header("content-length") == str(len(r.body))
    audio = tts_probe.analyze_audio(r.body)
    assert audio["error"] is None, audio
    assert audio["format"] == "wav" and audio["encoding"] == "pcm" and audio["bits_per_sample"] == 16
    assert audio["sample_rate"] == 22050 and audio["channels"] == 1
    assert not audio["streaming"], "complete WAV expected (sizes patched), got streaming placeholders"
    assert audio["duration_s"] >= 2.0, audio
    assert audio["rms_dbfs"] > -40.0, audio

    # Same through the shared probe, as the kit's checks would do it (no content-type requirement).
    result = tts_probe.probe(f"http://127.0.0.1:{port}/synthesize", content_type_prefix="", timeout=15)
    assert result["healthy"], result
    strict = tts_probe.probe(f"http://127.0.0.1:{port}/synthesize", timeout=15)
    assert not strict["healthy"] and "content type" in strict["reason"], strict

    # The JSON body is read whatever the (non-form) request content type says.
    plain = http_request(port, "POST", "/synthesize", json.dumps({"text": "Plain text type."}).encode(),
                         {"Content-Type": "text/plain"})
    assert plain.status == 200 and tts_probe.analyze_audio(plain.body)["error"] is None, plain
    # An unknown voice is not an error: the default voice speaks.
    other = synth(port, {"text": "Unknown voice.", "voice": "xx_XX-nobody-low"})
    assert other.status == 200 and tts_probe.analyze_audio(other.body)["error"] is None, other


@pytest.mark.parametrize("method, path, body, headers, status", [
    ("GET", "/synthesize", None, {}, 405),
    ("GET", "/synthesize?text=hello", None, {}, 405),
    ("POST", "/", b'{"text": "hello"}', {"Content-Type": "application/json"}, 405),  # 1.4 and older
    ("POST", "/tts", b'{"text": "hello"}', {"Content-Type": "application/json"}, 404),
    ("POST", "/synthesize", b'{"text": "   "}', {"Content-Type": "application/json"}, 500),
    ("POST", "/synthesize", b'{"input": "hello"}', {"Content-Type": "application/json"}, 500),
    ("POST", "/synthesize", b"not json", {"Content-Type": "application/json"}, 500),
    ("POST", "/synthesize", b'{"text": "hello"}', {"Content-Type": "application/x-www-form-urlencoded"}, 500),
])
def test_bad_requests(server, method, path, body, headers, status):
    """Upstream's error answers: 404/405 for a wrong route or method, a generic 500 (HTML, no
    field named) for every bad body; never 400."""
    _, port = server
    r = http_request(port, method, path, body, headers, timeout=30)
    assert r.status == status, r
    assert (r.header("content-type") or "").startswith("text/html")
    if status == 500:
        assert b"Internal Server Error" in r.body and b"text" not in r.body.split(b"</title>", 1)[1]


def test_threaded_without_limit(server):
    """Concurrent syntheses all answer (one thread each, no queue, no 429/503), and a tiny
    request is not held behind a long one."""
    _, port = server
    tts_probe = load_tts_probe()
    results, errors = [], []

    def one(text):
        try:
            results.append(synth(port, {"text": text}, timeout=120))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(LONG_SENTENCE,)) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.3)  # the three long ones are being synthesised
    short = synth(port, {"text": "a"}, timeout=60)
    for t in threads:
        t.join(timeout=150)
    assert not errors and len(results) == 3, errors
    long_elapsed = min(r.elapsed for r in results)
    assert all(r.status == 200 and tts_probe.analyze_audio(r.body)["error"] is None for r in results)
    assert short.status == 200 and tts_probe.analyze_audio(short.body)["error"] is None, short
    assert short.elapsed < long_elapsed, (short.elapsed, long_elapsed)


@pytest.fixture
def own_server(image, network):
    """A container of its own for the test that stops it."""
    yield from _container(image, network)


def test_hardened_container_healthcheck_and_stop(own_server):
    name, port = own_server
    # read-only root, uid 10001, writes only to the /tmp tmpfs
    assert _docker("exec", name, "id", "-u").stdout.strip() == "10001"
    assert _docker("exec", name, "touch", "/opt/piper/x", check=False).returncode != 0
    assert _docker("exec", name, "touch", "/tmp/x", check=False).returncode == 0
    info = http_request(port, "GET", "/info").json()
    assert info["voice"]["name"] == "en_US-joe-medium"

    # The image's own HEALTHCHECK command (run every 3 s here) reaches "healthy".
    deadline = time.monotonic() + 90
    state = {}
    while time.monotonic() < deadline:
        state = json.loads(_docker("inspect", "-f", "{{json .State}}", name).stdout)
        assert state["Running"], state
        if state.get("Health", {}).get("Status") == "healthy":
            break
        time.sleep(1)
    assert state.get("Health", {}).get("Status") == "healthy", state

    # docker stop sends the image's STOPSIGNAL (SIGINT): a clean exit 0, well before the timeout.
    t0 = time.monotonic()
    _docker("stop", "-t", "20", name, timeout=60)
    assert time.monotonic() - t0 < 10
    assert json.loads(_docker("inspect", "-f", "{{json .State}}", name).stdout)["ExitCode"] == 0
