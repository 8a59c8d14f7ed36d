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


class Client:
    """Real synthesis through the router at ~4 requests/s, bounded in time, in a thread."""

    def __init__(self, limit_s):
        self.results, self.stop = [], threading.Event()
        self.thread = threading.Thread(target=self.run, args=(limit_s,), daemon=True)
        self.thread.start()

    def run(self, limit_s):
        deadline = time.monotonic() + limit_s
        while not self.stop.is_set() and time.monotonic() < deadline:
            self.results.append(tts_probe.probe(ROUTER, timeout=10, payload={"text": "Still here."}))
            time.sleep(0.25)

    def finish(self):
        self.stop.set()
        self.thread.join(30)
        return self.results


def test_killing_the_primary_costs_no_request():
    client = Client(25)
    time.sleep(2)
    NODE.check_output("docker kill tts-primary")
    time.sleep(8)
    results = client.finish()
    assert len(results) >= 10, len(results)
    # The request in flight at the kill is re-sent: its connection error marks the primary down
    # at once (on-error mark-down), so the retry goes to the standby.
    failed = [r["reason"] for r in results if not r["healthy"]]
    print(f"{len(failed)} of {len(results)} requests failed across the crash: {failed}")
    assert not failed, failed
    served = [r["instance"] for r in results]
    assert "tts-primary" in served and served[-1] == "tts-standby", served


def test_recovered_primary_gets_traffic_back_without_a_failed_request():
    client = Client(60)
    NODE.check_output("docker start tts-primary")
    deadline = time.monotonic() + 50
    while time.monotonic() < deadline and not (client.results and client.results[-1]["instance"] == "tts-primary"):
        time.sleep(0.5)
    time.sleep(2)
    results = client.finish()
    failed = [r["reason"] for r in results if not r["healthy"]]
    assert not failed, failed
    served = [r["instance"] for r in results]
    # the standby kept serving while the primary loaded its model, then HAProxy returned
    assert served[0] == "tts-standby" and served[-1] == "tts-primary", served
