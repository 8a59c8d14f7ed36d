"""Single host behind HAProxy: both instances serve; killing the primary costs no request."""
import sys
import threading
import time
from pathlib import Path

import testinfra

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "module_utils"))
import tts_probe  # noqa: E402  (the kit's one probe implementation)

NODE = testinfra.get_host("docker://tts-ha-mol-single")
ROUTER = "http://172.29.80.11:8080/tts"


def test_haproxy_config_valid_and_running():
    assert NODE.service("haproxy").is_running
    NODE.check_output("haproxy -c -f /etc/haproxy/haproxy.cfg")
    assert not NODE.service("keepalived").is_running  # one node: no VIP to float


def test_router_serves_the_primary():
    result = tts_probe.probe(ROUTER, timeout=5)
    assert result["healthy"], result["reason"]
    assert result["instance"] == "tts-primary"


def test_killing_the_primary_costs_no_request():
    results, stop = [], threading.Event()

    def client():
        # ~4 requests/s for at most 25 s, or until told to stop.
        deadline = time.monotonic() + 25
        while not stop.is_set() and time.monotonic() < deadline:
            results.append(tts_probe.probe(ROUTER, timeout=10, payload={"text": "Still here."}))
            time.sleep(0.25)

    t = threading.Thread(target=client, daemon=True)
    t.start()
    time.sleep(2)
    NODE.check_output("docker kill tts-primary")
    time.sleep(8)
    stop.set()
    t.join(30)
    assert len(results) >= 15, len(results)
    failed = [r["reason"] for r in results if not r["healthy"]]
    assert not failed, failed
    served = [r["instance"] for r in results]
    assert "tts-primary" in served and served[-1] == "tts-standby", served


def test_router_stays_on_the_standby_after_the_primary_returns():
    NODE.check_output("docker start tts-primary")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if tts_probe.probe("http://172.29.80.11:8000/tts", timeout=5)["healthy"]:
            break
        time.sleep(1)
    time.sleep(4)  # HAProxy's rise (3 checks) has passed: the primary is up again
    stats = NODE.check_output(
        "python3 -c \"import socket; s=socket.socket(socket.AF_UNIX); s.connect('/run/haproxy/admin.sock');"
        " s.sendall(b'show servers state tts\\n'); print(s.recv(65536).decode())\"")
    assert "tts-primary" in stats
    # sticky: no failback by itself
    assert tts_probe.probe(ROUTER, timeout=5)["instance"] == "tts-standby"
