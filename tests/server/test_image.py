"""The tts-server image: offline build (cached by tag) and a hardened container that speaks."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid

import pytest

from tts_srv_helpers import REPO, SERVER_DIR, assert_speech_wav, http_request, load_tts_probe, post_json

pytestmark = pytest.mark.slow

BASE_IMAGE = "tts-ha/debian:bookworm"


def _version() -> str:
    for line in (SERVER_DIR / "tts_server" / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split('"')[1]
    raise AssertionError("no __version__")


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
    tag = f"tts-ha/tts-server:{_version()}"
    build = subprocess.run([str(SERVER_DIR / "build.sh")], cwd=str(REPO), capture_output=True, text=True,
                           timeout=1500)
    assert build.returncode == 0, build.stderr[-3000:] + build.stdout[-3000:]
    # cached by tag: a second run is a no-op
    t0 = time.monotonic()
    again = subprocess.run([str(SERVER_DIR / "build.sh")], cwd=str(REPO), capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "nothing to do" in again.stderr
    assert time.monotonic() - t0 < 30
    return tag


@pytest.fixture
def container(image):
    name = f"tts-srv-test-{uuid.uuid4().hex[:10]}"
    run = _docker("run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp", "--user", "10001",
                  "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "-p", "127.0.0.1::8000",
                  "-e", f"TTS_INSTANCE_NAME={name}", "--memory", "1500m", image, check=False)
    assert run.returncode == 0, run.stderr
    try:
        yield name
    finally:
        _docker("rm", "-f", name, check=False, timeout=60)


def _health(name):
    out = _docker("inspect", "-f", "{{json .State}}", name).stdout
    return json.loads(out)


def test_image_metadata(image):
    cfg = json.loads(_docker("image", "inspect", image).stdout)[0]["Config"]
    assert cfg["User"] == "10001:10001"
    assert "8000/tcp" in cfg["ExposedPorts"]
    assert cfg["StopSignal"] == "SIGTERM"
    assert "tts-synthesis-check" in " ".join(cfg["Healthcheck"]["Test"])
    assert cfg["Healthcheck"]["StartPeriod"] >= 30 * 10**9
    assert cfg["Labels"]["org.opencontainers.image.version"] == _version()
    assert cfg["Labels"]["io.tts-ha.component"] == "tts-server"
    size_mib = int(_docker("image", "inspect", "-f", "{{.Size}}", image).stdout) / 2**20
    assert size_mib < 700, f"image grew to {size_mib:.0f} MiB"


def test_hardened_container_becomes_healthy_and_speaks(container):
    deadline = time.monotonic() + 240
    state = _health(container)
    while time.monotonic() < deadline:
        state = _health(container)
        assert state["Running"], state
        if state.get("Health", {}).get("Status") == "healthy":
            break
        time.sleep(1)
    assert state["Health"]["Status"] == "healthy", state
    port = int(_docker("port", container, "8000/tcp").stdout.strip().splitlines()[0].rsplit(":", 1)[1])

    for voice in ("joe", "female"):
        r = post_json(port, "/tts", {"text": "The container speaks with a real voice.", "voice": voice})
        assert r.status == 200, r
        assert r.header("x-tts-instance") == container
        assert_speech_wav(r.body, min_seconds=1.0)
    tts_probe = load_tts_probe()
    if tts_probe is not None:
        result = tts_probe.probe(f"http://127.0.0.1:{port}/tts", timeout=10)
        assert result["healthy"], result
    ready = http_request(port, "GET", "/ready").json()
    assert ready["ready"] and set(ready["voices"]) == {"joe", "espeak"}

    # runs as 10001 on a read-only root; the fault file lives on the /tmp tmpfs
    assert _docker("exec", container, "id", "-u").stdout.strip() == "10001"
    assert _docker("exec", container, "touch", "/opt/tts/x", check=False).returncode != 0
    _docker("exec", container, "sh", "-c", "echo silence > /tmp/tts-fault")
    check = _docker("exec", container, "tts-synthesis-check", "--url", "http://127.0.0.1:8000/tts", check=False)
    assert check.returncode == 1 and json.loads(check.stdout)["healthy"] is False
    _docker("exec", container, "rm", "-f", "/tmp/tts-fault")
    check = _docker("exec", container, "tts-synthesis-check", "--url", "http://127.0.0.1:8000/tts", check=False)
    assert check.returncode == 0, check.stdout

    # graceful stop: SIGTERM, drain, exit 0
    _docker("stop", "-t", "30", container, timeout=60)
    assert _health(container)["ExitCode"] == 0
    logs = _docker("logs", container).stderr
    assert '"event":"stopped"' in logs
