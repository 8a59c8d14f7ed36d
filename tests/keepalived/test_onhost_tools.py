"""The keepalived role's on-host tools, run here: bad arguments are refused with a message that
names the problem (exit 2) before anything is touched; the notify script writes whole JSON lines.
Their behaviour on real nodes (handover under traffic, split-brain alerts, restart after a kill)
is tested on the pytest lab (tests/lab/test_vrrp_faults.py, and molecule/ha_pair)."""
import json
import subprocess
from pathlib import Path

import pytest

FILES = Path(__file__).resolve().parents[2] / "roles" / "keepalived" / "files"


def run(tool, *args):
    return subprocess.run([str(FILES / tool), *args], capture_output=True, text=True, timeout=20)


@pytest.mark.parametrize("args, needle", [
    ([], "--vip must be an IPv4 address, got ''"),
    (["--vip", "10.0.0", "--port", "80"], "--vip must be an IPv4 address, got '10.0.0'"),
    (["--vip", "10.0.0.1"], "at least one --port is required"),
    (["--vip", "10.0.0.1", "--port", "0"], "--port must be 1-65535, got '0'"),
    (["--vip", "10.0.0.1", "--port", "http"], "--port must be 1-65535, got 'http'"),
    (["--vip", "10.0.0.1", "--port", "80", "--drain-timeout", "-1"], "--drain-timeout must be seconds"),
    (["--vip", "10.0.0.1", "--bogus"], "unknown argument: --bogus"),
])
def test_handover_refuses_bad_arguments(args, needle):
    proc = run("keepalived-handover", *args)
    assert proc.returncode == 2
    result = json.loads(proc.stdout)
    assert result["ok"] is False and needle in result["error"]


@pytest.mark.parametrize("args, needle", [
    (["--interface", "eth0", "--instance", "VI", "--", "true"], "--vip must be an IPv4 address"),
    (["--vip", "10.0.0.1", "--instance", "VI", "--", "true"], "--interface and --instance are required"),
    (["--vip", "10.0.0.1", "--interface", "eth0", "--instance", "VI", "--interval", "soon", "--", "true"],
     "--interval must be seconds, got 'soon'"),
    (["--vip", "10.0.0.1", "--interface", "eth0", "--instance", "VI"], "the notify command is missing"),
    (["--vip", "10.0.0.1", "--what"], "unknown argument: --what"),
])
def test_split_brain_watch_refuses_bad_arguments(args, needle):
    proc = run("tts-ha-vip-watch", *args)
    assert proc.returncode == 2
    assert needle in proc.stderr


@pytest.mark.parametrize("argv, expected", [
    (["INSTANCE", "VI_TTS", "MASTER", "150"], {"type": "INSTANCE", "state": "MASTER", "priority": 150}),
    (["ALERT", "VI_TTS", "SPLIT_BRAIN"], {"type": "ALERT", "state": "SPLIT_BRAIN", "priority": None}),
])
def test_notify_appends_one_json_line(tmp_path, argv, expected):
    log = tmp_path / "transitions.jsonl"
    log.write_text('{"earlier": true}\n')
    proc = run("keepalived-notify", "--log", str(log), "--host", "node9", *argv)
    assert proc.returncode == 0, proc.stderr
    lines = log.read_text().splitlines()
    assert lines[0] == '{"earlier": true}' and len(lines) == 2
    record = json.loads(lines[1])
    assert {k: record[k] for k in expected} == expected
    assert record["host"] == "node9" and record["instance"] == "VI_TTS" and record["ts"] > 0
