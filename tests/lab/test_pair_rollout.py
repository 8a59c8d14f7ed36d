"""A settings change rolls through the pair under the drill's load (issue 15): site.yml replaces
the standby first, gates it (the canary), hands the VIP to it drained, replaces the primary, gates
it and hands the VIP back: 0 failed requests, the VIP ends on the primary, and a rerun changes
nothing and moves no VIP. (A new image tag and an image that never speaks, rolled back: the drill
suite, scripts/run-drills.sh.)"""
import json
import subprocess
import sys
import time

import pytest

from conftest import (BIN, DEPLOYED, LAB_NAME, LAB_VARS, ROOT, controller, lab_env, playbook,
                      vip_back_on_the_primary, vip_holders, why)

pytestmark = pytest.mark.lab
MARK = {"tts_service_env": {"TTS_HA_ROLLOUT_TEST": "settings-a"}}


def test_settings_change_rolls_through_without_a_failed_request(deployed):
    vip_back_on_the_primary(deployed)
    DEPLOYED["label"] = None  # until the rollout is through
    out_dir = ROOT / "reports" / f"rollout-settings-{time.strftime('%Y%m%d-%H%M%S')}"
    out_dir.mkdir(parents=True)
    api = subprocess.run(["docker", "exec", f"{LAB_NAME}-node1", "cat", "/etc/tts-ha/tts-api.json"],
                         capture_output=True, text=True, check=True).stdout
    (out_dir / "tts-api.json").write_text(api)
    env = dict(lab_env(), PYTHONPATH=str(ROOT / "tools"), TTS_HA_MODULE_UTILS=str(ROOT / "module_utils"))
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "tts_drill.rollout", "--out-dir", str(out_dir), "--label", "settings", "--rate", str(deployed["drill_rate"]),
         "--url", f"http://{LAB_VARS['lab_vip']}:8000", "--api-file", str(out_dir / "tts-api.json"),
         "--", *controller(), str(BIN / "ansible-playbook"),
         str(ROOT / "playbooks" / "site.yml"), "-e", json.dumps(dict(LAB_VARS, **MARK))],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    print(proc.stdout.strip(), f"(test {time.monotonic() - t0:.0f} s)")
    log = (out_dir / "command.log").read_text()
    flat = " ".join(log.split())  # the callback wraps long messages
    assert proc.returncode == 0, log[-4000:] + proc.stderr[-2000:]
    fig = json.loads((out_dir / "rollout.json").read_text())["figures"]
    assert "Rollout: tts-standby -> tts-primary; canary tts-standby" in flat
    assert fig["replaced"] == ["tts-standby", "tts-primary"]
    assert fig["vip_moves"] == 2 and fig["ok"] >= 10
    assert vip_holders() == [f"{LAB_NAME}-node1"]

    # Nothing changes, nothing moves.
    rc, out, recap = playbook("site.yml", extra_vars=MARK)
    assert rc == 0, why(out)
    DEPLOYED["label"] = "rollout-settings-a"
    assert "Nothing would change" in " ".join(out.split())
    assert all(r["changed"] == 0 for r in recap.values()), recap
    assert vip_holders() == [f"{LAB_NAME}-node1"]

    # The goal (issue 15): no failed request while the change rolls through.
    assert fig["failed"] == 0, (f"{fig['failed']} of {fig['requests']} requests failed during the rollout "
                                f"({fig['outcomes']}); see {out_dir}/rollout.json and tasks.log")
