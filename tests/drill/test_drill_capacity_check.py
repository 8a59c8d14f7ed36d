"""The drill's preflight compares drill_rate with the standby's measured capacity (capacity.json).

Runs roles/tts_drill/tasks/capacity_check.yml in a throwaway play on localhost: no lab needed.
"""
import json
import os
import subprocess

import pytest
import yaml
from tts_drill_testlib import REPO

MEASURED = {"measured_at": 1_764_644_400.0, "instances": [
    {"name": "tts-primary", "profile": "primary", "sustainable_rate_per_s": 4.77},
    {"name": "tts-standby", "profile": "standby", "sustainable_rate_per_s": 3.05}]}


def run_check(tmp_path, rate, check, measured=MEASURED):
    capacity = tmp_path / "capacity.json"
    if measured is not None:
        capacity.write_text(json.dumps(measured))
    play = [{"name": "Check", "hosts": "localhost", "connection": "local", "gather_facts": False,
             "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}", "drill_rate": rate, "drill_capacity_check": check, "drill_capacity_file": str(capacity),
                      "tts_ha_standby": {"name": "tts-standby", "profile": "standby"}},
             "tasks": [{"name": "Capacity", "ansible.builtin.include_role":
                        {"name": "tts_drill", "tasks_from": "capacity_check"}}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,",
                           str(tmp_path / "play.yml")], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize("check", ["warn", "refuse"])
def test_rate_within_the_standby_capacity_passes_quietly(tmp_path, check):
    rc, out = run_check(tmp_path, 1.5, check)
    assert rc == 0, out[-2000:]
    assert "WARNING: " not in out and "exceeds" not in out


def test_rate_above_the_standby_capacity_warns(tmp_path):
    rc, out = run_check(tmp_path, 4, "warn")
    assert rc == 0, out[-2000:]
    assert "WARNING: drill_rate 4/s exceeds what the standby sustains alone, 3.05/s" in out
    assert "measured 2025-12-02 03:00 UTC" in out


def test_rate_above_the_standby_capacity_refused(tmp_path):
    rc, out = run_check(tmp_path, 4, "refuse")
    assert rc != 0
    assert "drill_rate 4/s exceeds what the standby sustains alone, 3.05/s" in out
    assert "(drill_capacity_check=refuse)" in out


def test_not_measured(tmp_path):
    rc, out = run_check(tmp_path, 2, "warn", measured=None)
    assert rc == 0 and "WARNING: the standby capacity is not measured" in out, out[-2000:]
    rc, out = run_check(tmp_path, 2, "refuse", measured=None)
    assert rc != 0 and "run playbooks/capacity.yml" in out


def test_a_standby_that_held_nothing_counts_as_zero(tmp_path):
    measured = {"measured_at": 0, "instances": [
        {"name": "tts-standby", "profile": "standby", "sustainable_rate_per_s": None}]}
    rc, out = run_check(tmp_path, 0.5, "refuse", measured)
    assert rc != 0 and "sustains alone, 0/s" in out, out[-2000:]


def test_off_skips_it(tmp_path):
    rc, out = run_check(tmp_path, 40, "off", measured=None)
    assert rc == 0 and "exceeds" not in out and "not measured" not in out, out[-2000:]
