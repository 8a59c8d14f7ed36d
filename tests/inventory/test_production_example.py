"""The production example inventory parses, names two GPU hosts and a VIP, and site.yml accepts it."""
import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
ENV = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))


def test_inventory_shape():
    out = subprocess.run([str(BIN / "ansible-inventory"), "-i", "inventories/production", "--list"],
                         cwd=ROOT, env=ENV, capture_output=True, text=True, check=True).stdout
    inv = json.loads(out)
    hosts = inv["tts_nodes"]["hosts"]
    assert len(hosts) == 2
    hv = inv["_meta"]["hostvars"]
    profiles = sorted(i["profile"] for h in hosts for i in hv[h]["tts_service_instances"])
    assert profiles == ["primary", "standby"]
    assert all(hv[h]["nvidia_gpu_enabled"] is True and hv[h]["keepalived_vip"] == "10.20.0.100" for h in hosts)
    assert len({hv[h]["keepalived_priority"] for h in hosts}) == 2


def test_playbooks_syntax_with_production_inventory():
    for book in ("site.yml", "failover_drill.yml", "failback.yml", "lab.yml"):
        proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "inventories/production", "--syntax-check",
                               f"playbooks/{book}"], cwd=ROOT, env=ENV, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
