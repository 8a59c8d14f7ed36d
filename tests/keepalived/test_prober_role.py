"""The keepalived role's prober wiring, rendered here: keepalived.conf tracks the prober's file with
weight 0 (init_file 1, so a missing file is no health), the one-shot vrrp_script stays available;
the unit restarts the prober, watches it and marks the node failed when it ends; the settings file
is what tts_prober.Settings accepts; HAProxy reads the probers with agent-check when asked.
keepalived 2.2.7 itself accepted the rendered track_file (keepalived -t) when this was written;
the node-level behaviour (kill -9, watchdog) is drilled on the lab (docs/detection.md)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "module_utils"))

PLAYBOOK = """
- hosts: tts_nodes
  gather_facts: false
  vars_files:
    - {root}/roles/keepalived/defaults/main.yml
    - {root}/roles/keepalived/vars/main.yml
    - {root}/roles/tts_router/defaults/main.yml
  tasks:
    - ansible.builtin.template:
        src: {root}/roles/keepalived/templates/keepalived.conf.j2
        dest: "{out}/keepalived.conf"
        mode: "0644"
    - ansible.builtin.template:
        src: {root}/roles/keepalived/templates/tts-ha-prober.service.j2
        dest: "{out}/tts-ha-prober.service"
        mode: "0644"
    - ansible.builtin.template:
        src: {root}/roles/tts_router/templates/haproxy.cfg.j2
        dest: "{out}/haproxy.cfg"
        mode: "0644"
      vars:
        tts_api_contract: {{probe: {{lane: true}}}}
        tts_api_haproxy_check: {{send: "meth POST uri /tts", expect: ["status 200"]}}
        tts_router_servers:
          - {{name: tts-primary_node1, address: 10.0.0.11, port: 8000, backup: false}}
          - {{name: tts-standby_node2, address: 10.0.0.12, port: 8000, backup: true}}
"""

CLUSTER = {"keepalived_cluster": [{"host": "node1", "address": "10.0.0.11", "priority": 150},
                                  {"host": "node2", "address": "10.0.0.12", "priority": 140}],
           "keepalived_address": "10.0.0.11", "keepalived_interface": "eth0", "keepalived_vip": "10.0.0.100"}


def render(tmp_path, **extra_vars):
    out = tmp_path / "out"
    out.mkdir(parents=True)
    (tmp_path / "render.yml").write_text(PLAYBOOK.format(root=ROOT, out=out))
    (tmp_path / "hosts.ini").write_text(
        f"[tts_nodes]\nnode1 ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}")
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", str(tmp_path / "hosts.ini"),
                           str(tmp_path / "render.yml"), "-e", json.dumps({**CLUSTER, **extra_vars})],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return {name: (out / name).read_text() for name in ("keepalived.conf", "tts-ha-prober.service", "haproxy.cfg")}


def test_default_tracks_the_prober_file_with_weight_0(tmp_path):
    files = render(tmp_path)
    conf = files["keepalived.conf"]
    assert 'track_file tts_prober {\n  file "/run/tts-ha-prober/verdict"\n  weight 0\n  init_file 1\n}' in conf
    assert "  track_file {\n    tts_prober weight 0\n  }" in conf
    assert "vrrp_script" not in conf and "track_script" not in conf
    unit = files["tts-ha-prober.service"]
    for line in ("Type=notify", "WatchdogSec=2", "WatchdogSignal=SIGKILL", "Restart=always", "RestartSec=0.5", "User=keepalived_script",
                 "ExecStopPost=/usr/local/lib/tts-ha/tts-ha-prober-mark-failed /run/tts-ha-prober/verdict"
                 " /var/log/tts-ha/keepalived-transitions.jsonl node1 /run/tts-ha-prober/state.json 3.0 2",
                 "TimeoutStartSec=10", "ExecReload=/bin/kill -HUP $MAINPID", "ProtectSystem=strict", "NoNewPrivileges=yes",
                 "ReadWritePaths=/run/tts-ha-prober /var/log/tts-ha", "StartLimitIntervalSec=0"):
        assert line in unit.splitlines(), line
    haproxy = files["haproxy.cfg"]
    assert "option httpchk" in haproxy and "agent-check" not in haproxy


def test_the_one_shot_script_can_be_kept_alone_or_with_the_prober(tmp_path):
    alone = render(tmp_path / "a", keepalived_prober=False)["keepalived.conf"]
    assert "vrrp_script chk_tts_synthesis {" in alone and "    chk_tts_synthesis\n" in alone
    assert "track_file" not in alone
    both = render(tmp_path / "b", keepalived_check_script=True)["keepalived.conf"]
    assert "vrrp_script chk_tts_synthesis {" in both and "tts_prober weight 0" in both


def test_unit_without_namespacing(tmp_path):
    unit = render(tmp_path, keepalived_prober_hardening=False)["tts-ha-prober.service"]
    assert "ProtectSystem" not in unit and "WatchdogSec=2" in unit


def test_probe_lane_checks_take_a_hung_primary_out_on_one_slow_probe(tmp_path):
    # A hung primary accepts TCP and answers nothing: its check times out after the probe
    # timeout (not the 2 s of servers without a lane) and one such check takes it out.
    haproxy = render(tmp_path, tts_router_probe_timeout="1s")["haproxy.cfg"]
    backend = haproxy.split("backend tts", 1)[1]
    assert "    timeout check 1s\n" in backend
    assert "server tts-primary_node1 10.0.0.11:8000 check observe layer7 error-limit 1 on-error mark-down fall 1" in backend
    assert "server tts-standby_node2 10.0.0.12:8000 check backup observe layer4 error-limit 1 on-error fastinter\n" in backend
    no_lane = render(tmp_path / "n", tts_api_contract={"probe": {"lane": False}})["haproxy.cfg"]
    assert "timeout check 1s" not in no_lane and "fall 1" not in no_lane


def test_agent_check_replaces_the_routers_syntheses(tmp_path):
    haproxy = render(tmp_path, tts_router_agent_check=True)["haproxy.cfg"]
    assert "option httpchk" not in haproxy and "http-check send" not in haproxy
    assert "server tts-primary_node1 10.0.0.11:8000 check agent-check agent-addr 10.0.0.11 agent-port 8765" \
           " agent-inter 250ms observe layer7" in haproxy


def test_settings_file_keys_are_the_probers():
    import tts_prober
    import yaml

    role_vars = yaml.safe_load((ROOT / "roles" / "keepalived" / "vars" / "main.yml").read_text())
    keys = set(role_vars["keepalived_prober_settings"])
    # ... and they reach the host: the settings file is one of the role's files.
    assert any(f["path"] == "{{ keepalived_prober_config }}" and "keepalived_prober_settings" in f["content"]
               for f in role_vars["keepalived_files_prober"])
    assert keys <= set(tts_prober.DEFAULTS), keys - set(tts_prober.DEFAULTS)


def test_every_new_default_is_in_the_argument_spec():
    import yaml

    defaults = yaml.safe_load((ROOT / "roles" / "keepalived" / "defaults" / "main.yml").read_text())
    spec = yaml.safe_load((ROOT / "roles" / "keepalived" / "meta" / "argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    missing = [name for name in defaults if name not in options]
    assert not missing, missing


def test_mark_failed_hook_writes_1_and_a_stopped_line_fast(tmp_path):
    track = tmp_path / "verdict"
    track.write_text("0\n")
    log = tmp_path / "t.jsonl"
    env = dict(os.environ, SERVICE_RESULT="signal", EXIT_STATUS="KILL")
    import time
    started = time.monotonic()
    done = subprocess.run([str(ROOT / "roles" / "keepalived" / "files" / "tts-ha-prober-mark-failed"), str(track),
                           str(log), "node1"], env=env, capture_output=True, text=True, timeout=10)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert track.read_text() == "1\n"
    line = json.loads(log.read_text())
    assert line["state"] == "STOPPED" and line["type"] == "PROBER" and line["host"] == "node1"
    assert "signal" in line["reason"] and "KILL" in line["reason"] and isinstance(line["ts"], float)
    assert elapsed < 2, elapsed
    assert subprocess.run([str(ROOT / "roles" / "keepalived" / "files" / "tts-ha-prober-mark-failed")],
                          capture_output=True, timeout=10).returncode == 2


HOOK = ROOT / "roles" / "keepalived" / "files" / "tts-ha-prober-mark-failed"


def hook(tmp_path, result, resume_s="3", state_age_s=0.1, track="0"):
    """Run the stop hook as systemd would after the prober ended with SERVICE_RESULT=result."""
    import time
    (tmp_path / "verdict").write_text(f"{track}\n")
    state = tmp_path / "state.json"
    state.write_text("{}")
    os.utime(state, (time.time() - state_age_s,) * 2)
    env = dict(os.environ, SERVICE_RESULT=result, EXIT_STATUS="KILL")
    done = subprocess.run([str(HOOK), str(tmp_path / "verdict"), str(tmp_path / "t.jsonl"), "node1", str(state),
                           resume_s, "2"], env=env, capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr
    last = json.loads((tmp_path / "t.jsonl").read_text().splitlines()[-1])
    return (tmp_path / "verdict").read_text().strip(), last


def test_hook_keeps_a_healthy_verdict_for_the_restart_after_an_unexpected_death(tmp_path):
    value, line = hook(tmp_path, "signal")
    assert value == "0" and line["state"] == "RESTARTING" and "at most 3 s" in line["reason"]
    first = float((tmp_path / "resume").read_text())
    value, line = hook(tmp_path, "exit-code")  # died again on its restart: same window
    assert value == "0" and float((tmp_path / "resume").read_text()) == first
    (tmp_path / "resume").write_text(f"{first - 5}\n")  # the window is spent
    value, line = hook(tmp_path, "signal")
    assert value == "1" and line["state"] == "STOPPED" and not (tmp_path / "resume").exists()


@pytest.mark.parametrize("result, kwargs", [
    ("success", {}),                      # systemctl stop: no restart comes
    ("watchdog", {}),                     # wedged: its verdict is stale
    ("signal", {"state_age_s": 5}),       # the state file is stale
    ("signal", {"track": "1"}),           # the node was not healthy
    ("signal", {"resume_s": "0"}),        # resume turned off
])
def test_hook_fails_the_node_at_once_otherwise(tmp_path, result, kwargs):
    value, line = hook(tmp_path, result, **kwargs)
    assert value == "1" and line["state"] == "STOPPED" and not (tmp_path / "resume").exists()


def test_hook_refuses_bad_seconds(tmp_path):
    done = subprocess.run([str(HOOK), str(tmp_path / "verdict"), "", "n", str(tmp_path / "s"), "3s", "2"],
                          capture_output=True, text=True, timeout=10)
    assert done.returncode == 2 and "RESUME_S and FRESH_S must be seconds" in done.stderr
