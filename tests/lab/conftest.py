"""A private lab for the test suite: its own name, subnet and VIP, so a user's lab is never touched."""
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
LAB_NAME = "tts-ha-pytest"
LAB_VARS = {
    "lab_subnet": "172.29.78.0/24",
    "lab_dynamic_range": "172.29.78.192/27",
    "lab_vip": "172.29.78.100",
}
# The lab runs the controller on the machine that also runs every "host": at a lower CPU
# priority, as if it were the separate machine it is in production, so ansible's own work does
# not take the CPU the nodes' speech needs (nodes' processes and their containers keep theirs).
CONTROLLER = ["nice", "-n", "19"]
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def lab_env():
    env = dict(os.environ, TTS_HA_LAB_NAME=LAB_NAME, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    env["PATH"] = f"{BIN}:{env['PATH']}"
    return env


def controller():
    """The prefix of every controller command: the engine lock (unless the caller holds it for
    the whole session: TTS_HA_LOCK_HELD=1, `flock ... pytest`) and the controller's priority."""
    lock = [] if os.environ.get("TTS_HA_LOCK_HELD") == "1" else ["flock", "-w", "1800", "/tmp/tts-ha-docker.lock"]
    return [*lock, *CONTROLLER]


def playbook(name, *extra, extra_vars=None, timeout=1500):
    """Run a playbook against the private lab; returns (rc, output, {host: recap})."""
    cmd = [*controller(), str(BIN / "ansible-playbook"),
           str(ROOT / "playbooks" / name), "-e", json.dumps(dict(LAB_VARS, **(extra_vars or {}))), *extra]
    proc = subprocess.run(cmd, cwd=ROOT, env=lab_env(), capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    recap = {m[0]: {"ok": int(m[1]), "changed": int(m[2]), "unreachable": int(m[3]), "failed": int(m[4])}
             for m in RECAP.findall(out)}
    return proc.returncode, out, recap


def why(out, limit=3000):
    """A failed playbook's output for an assertion message, the cause last: CI shows the last lines
    of a failure, and the PLAY RECAP (no cause in it) used to be all it showed. The output up to
    the recap, then every fatal/failed task's lines again."""
    body = out.split("\nPLAY RECAP", 1)[0]
    causes = re.findall(r"^(?:fatal|failed): .*(?:\n {4}.*)*", body, re.M)
    tail = "\n--- the failed tasks:\n" + "\n".join(c[-1500:] for c in causes[-2:]) if causes else ""
    return body[-max(limit - len(tail), 500):] + tail


def vip_holders():
    """The lab nodes that hold the private lab's VIP now (asked of the nodes)."""
    held = []
    for node in (f"{LAB_NAME}-node1", f"{LAB_NAME}-node2"):
        out = subprocess.run(["docker", "exec", node, "ip", "-4", "-o", "addr", "show"],
                             capture_output=True, text=True, check=True).stdout
        if f" {LAB_VARS['lab_vip']}/" in out:
            held.append(node)
    return held


def lab_objects():
    """Containers, networks and volumes that carry the private lab's label."""
    found = {}
    for kind in ("ps -a", "network ls", "volume ls"):
        out = subprocess.run(f"docker {kind} -q --filter label=tts-ha.lab={LAB_NAME}".split(),
                             capture_output=True, text=True, check=True).stdout.split()
        found[kind.split()[0]] = out
    return found


def boot_file():
    """Where tests/lab/boot.py leaves its results for the fixtures (set by scripts/run-tests.sh)."""
    return os.environ.get("TTS_HA_LAB_BOOT_FILE")


def booted(name):
    """What tests/lab/boot.py's run of this playbook gave, when make test ran it ahead of the lab
    tests (TTS_HA_LAB_BOOT_FILE, a file of that run only) and it passed; else None and the
    fixture runs the playbook itself. Its run is the first one on the private lab, so the
    fixtures' results (and the idempotence test's second run after them) stay what they were."""
    path = boot_file()
    if not path or not Path(path).is_file():
        return None
    result = json.loads(Path(path).read_text()).get(name)
    return tuple(result) if result and result[0] == 0 else None


@pytest.fixture(scope="session")
def lab():
    """The private lab, up for the session and always taken down afterwards; the teardown checks
    that make lab-down leaves nothing behind and that a second one changes nothing."""
    rc, out, recap = booted("lab.yml") or playbook("lab.yml")
    try:
        assert rc == 0, why(out)
        yield recap
    finally:
        rc, out, _ = playbook("lab.yml", extra_vars={"lab_state": "down"})
    assert rc == 0, why(out)
    assert lab_objects() == {"ps": [], "network": [], "volume": []}, lab_objects()
    rc, out, recap = playbook("lab.yml", extra_vars={"lab_state": "down"})
    assert rc == 0 and recap["localhost"]["changed"] == 0, why(out)


# What site.yml last deployed on the private lab. The test modules share one lab and run in any
# order: a module that needs a deployment asks for it with deploy(), which runs site.yml only when
# another one is there (a module that leaves the lab in an unknown state sets None).
DEPLOYED = {"label": None}


def deploy(label, extra_vars=None):
    """site.yml with these settings (label names them) unless they are what runs now."""
    if DEPLOYED["label"] == label:
        return
    DEPLOYED["label"] = None
    rc, out, _ = playbook("site.yml", extra_vars=extra_vars)
    assert rc == 0, why(out)
    DEPLOYED["label"] = label


@pytest.fixture(scope="session")
def site(lab):
    """site.yml deployed once on the private lab with the reference settings: (rc, output, recap)."""
    result = booted("site.yml") or playbook("site.yml")
    DEPLOYED["label"] = "reference" if result[0] == 0 else None
    return result


REPORTS = ROOT / "reports"


def latest_report(prefix):
    """The newest drill report of that kind (report.json), with its timeline drawn."""
    dirs = sorted(REPORTS.glob(f"{prefix}-*"), key=lambda p: p.stat().st_mtime)
    assert dirs, f"no {prefix} report written"
    report = json.loads((dirs[-1] / "report.json").read_text())
    assert (dirs[-1] / "timeline.png").stat().st_size > 10_000
    return report


def vip_back_on_the_primary(load):
    """The drill starts only from the primary holding the VIP (its preflight says so); on this
    loaded 2-core machine an earlier step can leave it on the standby (a track-script timeout
    while everything competes for CPU). failback.yml is the operator's way back; where the VIP
    is home already it would do nothing (test_drill.py checks that once), so it is not run."""
    if vip_holders() == [f"{LAB_NAME}-node1"]:
        return
    rc, out, _ = playbook("failback.yml", extra_vars=load, timeout=600)
    assert rc == 0, why(out)
    moved = re.findall(r"drill failback: [^\n']*", out)
    if moved:
        print("VIP was on the standby before the drill; failback:", moved[-1])


def measure_drill_load(label, extra_vars=None):
    """The drill load this machine can carry, by the kit's own rule (docs/capacity.md): half of
    what the standby sustains alone, measured here and now with playbooks/capacity.yml (the
    realistic corpus, p95 <= 2 s, 0 failed). The lab's 2 cores carry both nodes, so the figure
    is the machine's, not a constant: 3.05/s on one machine, 1.2/s on another. The drills then
    refuse a rate above the measured capacity (drill_capacity_check: refuse)."""
    path = ROOT / "reports" / f"capacity-pytest-{label}.json"
    rc, out, _ = playbook("capacity.yml", extra_vars=dict(
        extra_vars or {}, capacity_instances=["tts-standby"], drill_capacity_file=str(path)), timeout=900)
    assert rc == 0, why(out)
    report = json.loads(path.read_text())
    assert [i["name"] for i in report["instances"]] == ["tts-standby"], report  # capacity_instances
    standby, rate = report["instances"][0], report["drill_rate_per_s"]
    print(f"{label}: the standby sustains {standby['sustainable_rate_per_s']}/s alone"
          f" (p95 {standby['p95_ms']} ms); drill rate {rate}/s")
    return {"drill_rate": rate, "drill_capacity_file": str(path), "drill_capacity_check": "refuse"}


@pytest.fixture(scope="session")
def drill_load(site):
    """Drill variables for the reference deployment: the rate this machine carries."""
    rc, out, _ = site
    assert rc == 0, why(out)
    deploy("reference")
    return measure_drill_load("reference")


@pytest.fixture(scope="module")
def deployed(drill_load):
    """The reference deployment (deployed again if another module left another one), and the
    drill load this machine carries."""
    deploy("reference")
    return drill_load
