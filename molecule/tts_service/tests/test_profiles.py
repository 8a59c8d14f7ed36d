"""tts_service on one node: both profiles run hardened, differ as specified, and speak for real."""
import json
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "module_utils"))
import tts_probe  # noqa: E402  (the kit's one probe implementation)

INSTANCES = {"tts-primary": 8000, "tts-standby": 8001}


@pytest.fixture(scope="module")
def node_ip(host):
    return host.interface("eth0").addresses[0]


def inspect(host, name):
    return json.loads(host.check_output(f"docker inspect {name}"))[0]


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"metric {name} not exposed")


@pytest.mark.parametrize("name", INSTANCES)
def test_container_is_hardened(host, name):
    c = inspect(host, name)
    hc = c["HostConfig"]
    assert c["State"]["Running"]
    assert c["Config"]["User"] == "10001:10001"
    assert hc["ReadonlyRootfs"] is True
    assert hc["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in hc["SecurityOpt"]
    assert hc["RestartPolicy"]["Name"] == "unless-stopped"
    assert hc["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "3", "max-size": "10m"}}
    assert c["Config"]["Labels"]["tts-ha.instance"] == name


def test_profiles_differ(host):
    env = {n: dict(e.split("=", 1) for e in inspect(host, n)["Config"]["Env"]) for n in INSTANCES}
    assert env["tts-primary"]["ENABLE_WEBUI"] == "true" and env["tts-primary"]["DISABLE_AUDIO_CACHE"] == "false"
    assert env["tts-standby"]["ENABLE_WEBUI"] == "false" and env["tts-standby"]["DISABLE_AUDIO_CACHE"] == "true"
    # Sizing rule (issue 14): the standby carries the primary's load after a failover, so it
    # never gets fewer workers, a shorter queue, fewer CPUs or a lower memory ceiling.
    for key in ("TTS_CONCURRENCY", "TTS_QUEUE_MAX"):
        assert int(env["tts-standby"][key]) >= int(env["tts-primary"][key]), key
    hc = {n: inspect(host, n)["HostConfig"] for n in INSTANCES}
    assert hc["tts-standby"]["NanoCpus"] >= hc["tts-primary"]["NanoCpus"] > 0
    assert hc["tts-standby"]["Memory"] >= hc["tts-primary"]["Memory"] > 0


@pytest.mark.parametrize("name, port", INSTANCES.items())
def test_real_synthesis(node_ip, name, port):
    result = tts_probe.probe(f"http://{node_ip}:{port}/tts", timeout=10)
    assert result["healthy"], result["reason"]
    assert result["instance"] == name
    assert result["audio_format"] == "wav" and result["rms_dbfs"] > -60


def test_webui_only_on_primary(node_ip):
    status, body = get(f"http://{node_ip}:8000/")
    assert status == 200 and "<audio" in body
    status, _ = get(f"http://{node_ip}:8001/")
    assert status == 404


def test_cache_only_on_primary(node_ip):
    hits = {}
    text = f"cache me {uuid.uuid4().hex[:8]}"  # never seen before, so exactly one hit is possible
    for name, port in INSTANCES.items():
        before = metric(get(f"http://{node_ip}:{port}/metrics")[1], "tts_cache_hits_total")
        for _ in range(2):
            req = urllib.request.Request(f"http://{node_ip}:{port}/tts", method="POST",
                                         data=json.dumps({"text": text}).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=20) as resp:
                assert resp.status == 200
        hits[name] = metric(get(f"http://{node_ip}:{port}/metrics")[1], "tts_cache_hits_total") - before
    assert hits == {"tts-primary": 1, "tts-standby": 0}
