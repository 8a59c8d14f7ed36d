"""The HA pair under faults, in order. Every wait is bounded; traffic goes only to the
molecule nodes' addresses on their own Docker network.

Tests run in file order and each leaves the state the next one starts from.
"""
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import testinfra

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "module_utils"))
import tts_probe  # noqa: E402  (the kit's one probe implementation)

VIP = "172.29.79.100"
URL = f"http://{VIP}:8000/tts"
NODES = {"ha1": testinfra.get_host("docker://tts-ha-mol-ha1"),
         "ha2": testinfra.get_host("docker://tts-ha-mol-ha2")}


def holders():
    """Nodes that have the VIP on an interface right now."""
    out = []
    for name, node in NODES.items():
        res = node.run("ip -4 -o addr show")
        if res.rc == 0 and f" {VIP}/" in res.stdout:
            out.append(name)
    return out


def wait_for(predicate, timeout, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def speak():
    return tts_probe.probe(URL, timeout=5)


def transitions(node):
    res = NODES[node].run("cat /var/log/tts-ha/keepalived-transitions.jsonl")
    records = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
    # The resident prober's verdict lines (type PROBER) share the log; these tests read VRRP's.
    return [r for r in records if r.get("type") != "PROBER"]


def test_vip_on_primary_and_speech_is_real():
    assert wait_for(lambda: holders() == ["ha1"], 20), holders()
    result = speak()
    assert result["healthy"], result["reason"]
    assert result["instance"] == "tts-primary"
    assert [t["state"] for t in transitions("ha1")][-1] == "MASTER"


def test_crash_primary_container_moves_vip():
    t0 = time.time()
    NODES["ha1"].check_output("docker kill tts-primary")
    assert wait_for(lambda: holders() == ["ha2"], 15), holders()
    moved = time.time() - t0
    result = wait_for(lambda: speak()["healthy"] and speak(), 10)
    assert result and result["instance"] == "tts-standby"
    assert wait_for(lambda: "FAULT" in [t["state"] for t in transitions("ha1")], 10), transitions("ha1")
    print(f"VIP moved {moved:.2f} s after the crash")


def test_recovered_primary_does_not_take_the_vip_back():
    NODES["ha1"].check_output("docker start tts-primary")
    ok = wait_for(lambda: tts_probe.probe("http://172.29.79.11:8000/tts", timeout=5)["healthy"], 60, 1)
    assert ok, "primary did not recover"
    # keepalived's rise (2 checks) plus a margin: ha1 must settle in BACKUP, not preempt.
    assert wait_for(lambda: [t["state"] for t in transitions("ha1")][-1] == "BACKUP", 15)
    time.sleep(3)
    assert holders() == ["ha2"]
    assert speak()["instance"] == "tts-standby"


def test_planned_handover_back_to_primary_loses_no_request():
    """What failback.yml automates, under traffic: keepalived-handover on ha2 holds new
    connections off, lets the requests in flight finish, then steps down; the primary takes over."""
    results = []

    def load():  # bounded: 32 requests, one every 0.25 s at most
        for _ in range(32):
            started = time.monotonic()
            results.append(tts_probe.probe(URL, timeout=5))
            time.sleep(max(0.0, 0.25 - (time.monotonic() - started)))

    alerts_before = {node: len(alerts(node)) for node in NODES}
    worker = threading.Thread(target=load)
    worker.start()
    time.sleep(2)
    moved = handover("ha2")
    worker.join(60)
    # A planned move is no split brain: the watches (one ARP probe round) raise nothing.
    time.sleep(3)
    assert {node: alerts(node)[alerts_before[node]:] for node in NODES} == {"ha1": [], "ha2": []}
    assert moved["ok"] and moved["left_in_flight"] == 0, moved
    assert holders() == ["ha1"]
    failed = [r["reason"] for r in results if not r["healthy"]]
    assert len(results) == 32 and not failed, failed
    assert results[-1]["instance"] == "tts-primary"
    assert NODES["ha2"].run("iptables -t raw -S PREROUTING").stdout.count("tts-ha-handover") == 0
    assert wait_for(lambda: [t["state"] for t in transitions("ha2")][-1] == "BACKUP", 10)


def handover(node):
    out = NODES[node].check_output(f"/usr/local/lib/tts-ha/keepalived-handover --vip {VIP} --port 8000")
    return json.loads(out)


def test_killed_keepalived_comes_back_and_clears_its_stale_vip():
    """SIGKILL leaves the VIP on ha1's interface while ha2 takes over; systemd restarts keepalived
    a second later (role drop-in), it comes up in BACKUP and removes the stale address."""
    NODES["ha1"].check_output("pkill -KILL -x keepalived")
    assert wait_for(lambda: "ha2" in holders(), 10), holders()
    assert wait_for(lambda: holders() == ["ha2"], 15), holders()
    assert NODES["ha1"].service("keepalived").is_running
    assert wait_for(lambda: [t["state"] for t in transitions("ha1")][-1] == "BACKUP", 10)
    assert speak()["instance"] == "tts-standby"
    assert handover("ha2")["ok"] and holders() == ["ha1"]


def alerts(node):
    return [t["state"] for t in transitions(node) if t.get("type") == "ALERT"]


def test_partition_split_brain_is_alerted_by_the_watch():
    """VRRP dropped both ways: both nodes become MASTER and no transition says so; the split-brain
    watch on each node finds the other holder by ARP and alerts, then clears once VRRP is back."""
    # An earlier split brain (the killed keepalived's stale VIP, if a probe caught it) must be
    # over first: a watch alerts once per split brain, and clears it when it ends.
    assert wait_for(lambda: all(alerts(n)[-1:] != ["SPLIT_BRAIN"] for n in NODES), 20), \
        {node: alerts(node) for node in NODES}
    before = {node: len(alerts(node)) for node in NODES}
    peer = {"ha1": "172.29.79.12", "ha2": "172.29.79.11"}
    rule = "INPUT -p 112 -s {} -j DROP -m comment --comment tts-ha-test"
    for node in NODES:
        NODES[node].check_output(f"iptables -I {rule.format(peer[node])}")
    try:
        assert wait_for(lambda: holders() == ["ha1", "ha2"], 10), holders()
        for node in NODES:
            assert wait_for(lambda n=node: "SPLIT_BRAIN" in alerts(n)[before[n]:], 15), alerts(node)
    finally:
        for node in NODES:
            NODES[node].run(f"iptables -D {rule.format(peer[node])}")
    # The higher priority (ha1) stays MASTER; the watch says the split brain is over.
    assert wait_for(lambda: holders() == ["ha1"], 10), holders()
    for node in NODES:
        assert wait_for(lambda n=node: alerts(n)[-1] == "SPLIT_BRAIN_CLEARED", 15), alerts(node)


def test_primary_node_down_standby_holds_vip():
    subprocess.run(["docker", "stop", "-t", "1", "tts-ha-mol-ha1"], check=True, capture_output=True)
    try:
        assert wait_for(lambda: holders() == ["ha2"], 15), holders()
        result = wait_for(lambda: speak()["healthy"] and speak(), 10)
        assert result and result["instance"] == "tts-standby"
    finally:
        subprocess.run(["docker", "start", "tts-ha-mol-ha1"], check=True, capture_output=True)
