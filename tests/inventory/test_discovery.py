"""Cluster discovery has one home (playbooks/group_vars/all/tts_ha.yml): each node's address and
the entry URL clients use, read through hostvars by site.yml, the router, drills and rollouts."""
import json
import os
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
FIELDS = ("tts_ha_node_address", "tts_ha_entry_url", "tts_router_backend_address")


def discovered(tmp_path, hosts, group_vars=None):
    """{host: {field: value}} as a play would read them through hostvars (no host is contacted)."""
    inv = {"all": {"children": {"tts_nodes": {"vars": group_vars or {}, "hosts": hosts}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inv))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json",
               PATH=f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}")
    msg = "{{ {" + ", ".join(f"'{f}': {f}" for f in FIELDS) + "} | to_json }}"
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible"), "--playbook-dir", "playbooks",
                           "-i", str(tmp_path / "hosts.yml"), "tts_nodes", "-c", "local",
                           "-m", "ansible.builtin.debug", "-a", f"msg={msg}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]
    return {host: json.loads(r["msg"]) for host, r in results.items()}


def test_pair_behind_a_vip(tmp_path):
    got = discovered(tmp_path, {
        "a": {"tts_node_address": "10.0.0.11", "tts_service_instances": [{"name": "p", "profile": "primary", "port": 8000}]},
        "b": {"ansible_host": "10.0.0.12", "tts_service_instances": [{"name": "s", "profile": "standby", "port": 8000}]},
    }, {"keepalived_vip": "10.0.0.100"})
    assert got["a"] == {"tts_ha_node_address": "10.0.0.11", "tts_ha_entry_url": "http://10.0.0.100:8000",
                        "tts_router_backend_address": "10.0.0.11"}
    # No tts_node_address: the connection address, as every consumer now agrees.
    assert got["b"]["tts_ha_node_address"] == got["b"]["tts_router_backend_address"] == "10.0.0.12"


def test_router_on_the_pair_moves_the_entry_port(tmp_path):
    # Host vars: an inventory file's group vars rank below the kit's group_vars/all.
    router = {"keepalived_vip": "10.0.0.100", "tts_ha_router": True, "tts_router_bind_port": 9090}
    got = discovered(tmp_path, {"a": {"tts_node_address": "10.0.0.11", **router}, "b": router})
    assert got["a"]["tts_ha_entry_url"] == "http://10.0.0.100:9090"
    assert got["b"]["tts_ha_node_address"] == "b"  # nothing else known: the inventory name


def test_single_host_is_its_own_entry(tmp_path):
    got = discovered(tmp_path, {"solo": {"tts_node_address": "192.0.2.5"}})
    assert got["solo"]["tts_ha_entry_url"] == "http://192.0.2.5:8080"  # the router of a single host
