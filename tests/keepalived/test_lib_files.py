"""The keepalived role's on-host files: installed once, then a rerun checks them all in one
command and copies nothing; drift in content or mode is put right."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: keepalived
        tasks_from: files
"""


def run(tmp_path, lib):
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "hosts.ini").write_text(
        f"[tts_nodes]\nnode1 ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}")
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", str(tmp_path / "hosts.ini"),
                           str(tmp_path / "play.yml"), "-e", json.dumps({"keepalived_lib_dir": str(lib), "tts_ha_kit_dir": str(ROOT),
                                                   "keepalived_prober": False})],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return proc.stdout


def copied(out):
    return out.count("changed: [node1] => (item=")


def test_rerun_copies_nothing_and_drift_is_repaired(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    assert copied(run(tmp_path, lib)) == 9
    assert (lib / "tts_probe.py").read_bytes() == (ROOT / "module_utils" / "tts_probe.py").read_bytes()
    assert oct((lib / "keepalived-handover").stat().st_mode & 0o777) == "0o755"

    again = run(tmp_path, lib)
    assert copied(again) == 0 and "skipping: [node1]" in again

    (lib / "keepalived-notify").write_text("#!/bin/sh\necho tampered\n")
    (lib / "tts_prober.py").chmod(0o666)
    repaired = run(tmp_path, lib)
    assert copied(repaired) == 2, repaired[-2000:]
    assert oct((lib / "tts_prober.py").stat().st_mode & 0o777) == "0o644"
    assert (lib / "keepalived-notify").read_bytes() == (ROOT / "roles" / "keepalived" / "files" / "keepalived-notify").read_bytes()
