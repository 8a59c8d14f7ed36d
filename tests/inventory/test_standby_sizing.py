"""site.yml's preflight refuses a standby that cannot carry its primary's load alone.

A standby with fewer workers (TTS_CONCURRENCY), a shorter queue (TTS_QUEUE_MAX) or fewer CPUs
than a primary, on the same host or another one, stops the run before any host changes, naming
the variables, unless tts_ha_accept_reduced_standby is true. Same harness as
test_bad_inventory.py: hosts point at Docker containers that do not exist.
"""
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PRIMARY = {"name": "tts-primary", "profile": "primary", "port": 8000}
STANDBY = {"name": "tts-standby", "profile": "standby", "port": 8001}
# The profiles before issue 14: half the workers, half the queue, 3/4 of the CPUs.
REDUCED = {"primary": {"env": {"TTS_CONCURRENCY": "2", "TTS_QUEUE_MAX": "16"}, "memory": "2g", "cpus": 2.0},
           "standby": {"env": {"TTS_CONCURRENCY": "1", "TTS_QUEUE_MAX": "8"}, "memory": "1g", "cpus": 1.5}}
ADVICE = "set tts_ha_accept_reduced_standby: true"


def run_site(tmp_path, hosts, group_vars=None, inventory=None, extra_vars=None):
    """hosts: {name: host vars}; every host is a Docker container that does not exist."""
    if inventory is None:
        inv = {"all": {"children": {"tts_nodes": {"vars": group_vars or {}, "hosts": {
            name: dict(ansible_connection="community.docker.docker_api",
                       ansible_host=f"tts-ha-no-such-{name}", **host_vars)
            for name, host_vars in hosts.items()}}}}}
        (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inv))
        inventory = str(tmp_path / "hosts.yml")
    # ANSIBLE_TIMEOUT: the production example's hosts are addresses nothing answers here; the
    # preflight is done by then, and ssh need not wait ansible.cfg's 30 s to say so.
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_TIMEOUT="3",
               PATH=f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}")
    extra = ["-e", json.dumps(extra_vars)] if extra_vars else []
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", inventory, *extra,
                           str(ROOT / "playbooks" / "site.yml")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def passed_preflight(out):
    return "PLAY [Validate the network settings]" in out


def test_default_profiles_pass(tmp_path):
    rc, out = run_site(tmp_path, {"node1": {"tts_service_instances": [PRIMARY, STANDBY]}})
    assert rc != 0 and passed_preflight(out), out[-2500:]  # then cannot reach the ghost host
    assert "must carry the peak load alone" not in out


def test_reduced_standby_refused_naming_the_variables(tmp_path):
    rc, out = run_site(tmp_path, {"node1": {"tts_service_instances": [PRIMARY, STANDBY]}},
                       {"tts_service_profiles": REDUCED})
    assert rc != 0 and not passed_preflight(out), out[-2500:]
    assert "A standby must carry the peak load alone" in out
    for expected in ("tts-standby (profile standby) has TTS_CONCURRENCY 1, tts-primary on node1 has 2",
                     "has TTS_QUEUE_MAX 8, tts-primary on node1 has 16",
                     "has cpus 1.5, tts-primary on node1 has 2.0", "tts_service_profiles", ADVICE):
        assert expected in out, out[-2500:]


def test_reduced_standby_on_another_host_refused(tmp_path):
    standby = dict(STANDBY, port=8000)
    rc, out = run_site(tmp_path, {"node1": {"tts_service_instances": [PRIMARY]},
                                  "node2": {"tts_service_instances": [standby]}},
                       {"tts_service_profiles": REDUCED})
    assert rc != 0 and not passed_preflight(out), out[-2500:]
    assert "yet on node2: tts-standby (profile standby) has TTS_CONCURRENCY 1, tts-primary on node1 has 2" in out


def test_fewer_cpus_on_the_instance_itself_refused(tmp_path):
    rc, out = run_site(tmp_path, {"node1": {"tts_service_instances": [PRIMARY, dict(STANDBY, cpus=1.0)]}})
    assert rc != 0 and not passed_preflight(out), out[-2500:]
    assert "tts-standby (profile standby) has cpus 1.0, tts-primary on node1 has 2.0" in out
    assert "TTS_CONCURRENCY" not in out.split("peak load alone")[1].split(". Give")[0]


def test_standby_limited_while_the_primary_is_not_refused(tmp_path):
    profiles = {"primary": {"env": {}}, "standby": {"env": {}, "cpus": 4}}
    rc, out = run_site(tmp_path, {"node1": {"tts_service_instances": [PRIMARY, STANDBY]}},
                       {"tts_service_profiles": profiles})
    assert rc != 0 and "has cpus 4, tts-primary on node1 has no CPU limit" in out, out[-2500:]


def test_larger_standby_passes(tmp_path):
    profiles = {"primary": REDUCED["standby"], "standby": REDUCED["primary"]}
    rc, out = run_site(tmp_path, {"node1": {"tts_service_instances": [PRIMARY, STANDBY]}},
                       {"tts_service_profiles": profiles})
    assert passed_preflight(out), out[-2500:]


@pytest.mark.parametrize("accept", [True, "yes"])
def test_reduced_standby_accepted_knowingly(tmp_path, accept):
    rc, out = run_site(tmp_path, {"node1": {"tts_service_instances": [PRIMARY, STANDBY]}},
                       {"tts_service_profiles": REDUCED, "tts_ha_accept_reduced_standby": accept})
    assert rc != 0 and passed_preflight(out), out[-2500:]
    assert "must carry the peak load alone" not in out


def test_production_example_sizes_its_standby_like_the_primary(tmp_path):
    # The example's secrets live in a vault the test does not have.
    rc, out = run_site(tmp_path, {}, inventory=str(ROOT / "inventories" / "production"),
                       extra_vars={"vault_tts_api_token": "test-token"})
    assert rc != 0 and passed_preflight(out), out[-2500:]  # then cannot reach gpu-a/gpu-b
    assert "must carry the peak load alone" not in out
