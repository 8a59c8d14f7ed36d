"""The HA pair under faults, in order. Every wait is bounded; traffic goes only to the
molecule nodes' addresses on their own Docker network.

Tests run in file order and each leaves the state the next one starts from.
"""
import json
import subprocess
import sys
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
    return [json.loads(line) for line in res.stdout.splitlines() if line.strip()]


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


def test_planned_handover_back_to_primary():
    # What failback.yml automates: the standby's keepalived steps down, the healthy primary takes over.
    NODES["ha2"].check_output("systemctl restart keepalived")
    assert wait_for(lambda: holders() == ["ha1"], 15), holders()
    assert wait_for(lambda: speak()["instance"] == "tts-primary", 10)


def test_primary_node_down_standby_holds_vip():
    subprocess.run(["docker", "stop", "-t", "1", "tts-ha-mol-ha1"], check=True, capture_output=True)
    try:
        assert wait_for(lambda: holders() == ["ha2"], 15), holders()
        result = wait_for(lambda: speak()["healthy"] and speak(), 10)
        assert result and result["instance"] == "tts-standby"
    finally:
        subprocess.run(["docker", "start", "tts-ha-mol-ha1"], check=True, capture_output=True)
