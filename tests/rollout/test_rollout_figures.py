"""tools/tts_drill/rollout.py: the figures of a rollout under load, and the wrapper's run."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
os.environ.setdefault("TTS_HA_MODULE_UTILS", str(ROOT / "module_utils"))

from tts_drill.rollout import figures, summary_line  # noqa: E402

SITE = ("rollout: 2 instance(s) replaced (tts-standby, tts-primary) in 95 s,\n"
        "          2 VIP move(s) node2 then node1")


def rec(t, latency_ms=800, ok=True, outcome="ok", instance="tts-primary"):
    return {"t_start": t, "t_end": t + latency_ms / 1000, "latency_ms": latency_ms, "ok": ok,
            "outcome": outcome, "reason": "" if ok else outcome, "instance": instance}


def test_clean_rollout():
    records = [rec(100 + i / 1.5) for i in range(60)]
    fig = figures(records, 101.0, 135.0, SITE)
    assert fig["failed"] == 0 and fig["requests"] == 60 and fig["vip_moves"] == 2
    assert fig["replaced"] == ["tts-standby", "tts-primary"] and fig["slow_requests"] == 0
    assert fig["longest_gap_s"] < 1.5 and fig["rollout_s"] == 34.0 and fig["site_rollout_s"] == 95
    assert "failed 0 of 60" in summary_line("settings", fig, 0)


def test_failures_slow_requests_and_gaps_are_seen():
    records = [rec(100 + i) for i in range(10)] + [rec(110, ok=False, outcome="connection_error")]
    records += [rec(111, latency_ms=4500), rec(120, latency_ms=500)]
    fig = figures(records, 100.0, 121.0, "")
    assert fig["failed"] == 1 and fig["failed_during_rollout"] == 1
    assert fig["outcomes"] == {"ok": 12, "connection_error": 1}
    assert fig["slow_requests"] == 1 and fig["slow_at_s"] == [11.0]
    assert fig["longest_gap_s"] >= 4.9 and fig["vip_moves"] == 0
    assert fig["failures"][0]["outcome"] == "connection_error"


def test_wrapper_runs_the_command_under_load(tmp_path):
    """Against a closed loopback port: every request fails, the command's status is returned."""
    api = tmp_path / "api.json"
    api.write_text(json.dumps({"method": "POST", "path": "/tts", "body": {"text": "{text}"}}))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "tools"))
    proc = subprocess.run(
        [sys.executable, "-m", "tts_drill.rollout", "--out-dir", str(tmp_path / "out"), "--url", "http://127.0.0.1:9",
         "--api-file", str(api), "--rate", "5", "--baseline-s", "0.5", "--after-s", "0.2", "--label", "t",
         "--", sys.executable, "-c", "import time; time.sleep(1); print('rollout: 1 instance(s) replaced (a) in 1 s, 0 VIP move(s)'); raise SystemExit(3)"],
        capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert proc.returncode == 3, proc.stderr
    result = json.loads((tmp_path / "out" / "rollout.json").read_text())
    assert result["rc"] == 3 and result["figures"]["replaced"] == ["a"]
    assert result["figures"]["requests"] >= 5 and result["figures"]["ok"] == 0
    assert "rollout t: site.yml rc=3" in proc.stdout
