"""VRRP's own faults on the private lab's pair, whatever TTS server is deployed: a keepalived killed
by a signal comes back by itself and clears the VIP it left behind; a VRRP partition (split brain)
is alerted by the split-brain watch on both nodes and cleared once VRRP is back.

(The other pair behaviours -- crash, hang and host loss move the VIP, no automatic failback, the
gated handover loses no request -- are the drills of test_drill.) Each test starts from the VIP
on the primary's node and leaves it there. Every wait is bounded; traffic goes only to the lab."""
import json
import subprocess
import time
from urllib.parse import urlsplit

import pytest

from conftest import LAB_NAME, LAB_VARS, vip_holders, why

pytestmark = pytest.mark.lab
NODES = (f"{LAB_NAME}-node1", f"{LAB_NAME}-node2")
PRIMARY, STANDBY = NODES
LIB = "/usr/local/lib/tts-ha"
VIP = LAB_VARS["lab_vip"]


def node_run(node, *argv, check=True):
    return subprocess.run(["docker", "exec", node, *argv], capture_output=True, text=True, timeout=60, check=check)


def wait_for(predicate, timeout, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def address(node):
    out = subprocess.run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", node],
                         capture_output=True, text=True, check=True).stdout.split()
    return out[0]


def transitions(node):
    """keepalived's transition log (VRRP states and the watch's alerts; not the prober's lines)."""
    out = node_run(node, "cat", "/var/log/tts-ha/keepalived-transitions.jsonl").stdout
    return [r for r in map(json.loads, filter(str.strip, out.splitlines())) if r.get("type") != "PROBER"]


def alerts(node):
    return [t["state"] for t in transitions(node) if t.get("type") == "ALERT"]


def handover_from(node):
    """The kit's planned handover (drained, no request lost) from the node that holds the VIP."""
    out = node_run(node, f"{LIB}/keepalived-handover", "--vip", VIP, "--port", str(client_port(node)), check=False)
    return json.loads(out.stdout or "{}")


def client_port(node):
    """The port clients call on the VIP: the node's instance port its prober checks (one per node here)."""
    return urlsplit(json.loads(node_run(node, "cat", "/etc/tts-ha/prober.json").stdout)["url"]).port


def speaks_through_the_vip(node):
    """The kit's own check, with the node's API contract, through the VIP: True when real speech
    comes back (the answering instance's name when the server says it, as the reference one does)."""
    out = node_run(node, f"{LIB}/tts-synthesis-check", "--url", f"http://{VIP}:{client_port(node)}",
                   "--api-file", "/etc/tts-ha/tts-api.json", "--timeout", "5", check=False)
    result = json.loads(out.stdout)
    return (result.get("instance") or True) if result.get("healthy") else None


@pytest.fixture
def vip_on_the_primary(site):
    rc, out, _ = site
    assert rc == 0, why(out)
    if vip_holders() == [STANDBY]:
        assert handover_from(STANDBY).get("ok")
    assert wait_for(lambda: vip_holders() == [PRIMARY], 20), vip_holders()
    yield
    if vip_holders() == [STANDBY]:
        handover_from(STANDBY)


def test_killed_keepalived_comes_back_and_clears_its_stale_vip(vip_on_the_primary):
    """SIGKILL leaves the VIP on node1's interface while node2 takes over; systemd restarts
    keepalived (the role's drop-in), it comes up in BACKUP and removes the stale address."""
    node_run(PRIMARY, "pkill", "-KILL", "-x", "keepalived")
    assert wait_for(lambda: STANDBY in vip_holders(), 10), vip_holders()
    assert wait_for(lambda: vip_holders() == [STANDBY], 15), vip_holders()
    assert node_run(PRIMARY, "systemctl", "is-active", "keepalived", check=False).stdout.strip() == "active"
    assert wait_for(lambda: [t["state"] for t in transitions(PRIMARY)][-1] == "BACKUP", 10), transitions(PRIMARY)[-3:]
    assert wait_for(lambda: speaks_through_the_vip(STANDBY) in ("tts-standby", True), 10)
    assert handover_from(STANDBY).get("ok") and vip_holders() == [PRIMARY]


def test_partition_split_brain_is_alerted_by_the_watch(vip_on_the_primary):
    """VRRP dropped both ways: both nodes become MASTER and no transition says so; the split-brain
    watch on each node finds the other holder by ARP and alerts, then clears once VRRP is back."""
    # An earlier split brain must be over first: a watch alerts once per split brain.
    assert wait_for(lambda: all(alerts(n)[-1:] != ["SPLIT_BRAIN"] for n in NODES), 20), \
        {node: alerts(node) for node in NODES}
    before = {node: len(alerts(node)) for node in NODES}
    peer = {PRIMARY: address(STANDBY), STANDBY: address(PRIMARY)}
    rule = ["INPUT", "-p", "112", "-s", "{}", "-j", "DROP", "-m", "comment", "--comment", "tts-ha-test"]
    for node in NODES:
        node_run(node, "iptables", "-I", *[peer[node] if a == "{}" else a for a in rule])
    try:
        assert wait_for(lambda: sorted(vip_holders()) == sorted(NODES), 10), vip_holders()
        for node in NODES:
            assert wait_for(lambda n=node: "SPLIT_BRAIN" in alerts(n)[before[n]:], 15), alerts(node)
    finally:
        for node in NODES:
            node_run(node, "iptables", "-D", *[peer[node] if a == "{}" else a for a in rule], check=False)
    # The higher priority (node1) stays MASTER; the watch says the split brain is over.
    assert wait_for(lambda: vip_holders() == [PRIMARY], 10), vip_holders()
    for node in NODES:
        assert wait_for(lambda n=node: alerts(n)[-1] == "SPLIT_BRAIN_CLEARED", 15), alerts(node)
