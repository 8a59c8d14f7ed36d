"""library/tts_ha_host_state.py run through Ansible for real on this machine: it reads packages,
users, systemd units, paths, patterns and first lines in one call, changes nothing (check mode
too), and refuses a relative path by name."""
import os
import shutil
from pathlib import Path

import pytest

from modules_testlib import run_task


def run(tmp_path, args, *extra):
    return run_task(tmp_path, "tts_ha_host_state", args, *extra)


@pytest.mark.skipif(not shutil.which("dpkg-query") or not shutil.which("systemctl"), reason="needs dpkg and systemctl")
def test_reads_everything_in_one_call_and_changes_nothing(tmp_path):
    conf = tmp_path / "daemon.json.d"
    conf.mkdir(mode=0o750)
    os.chmod(conf, 0o750)
    (conf / "10-a.json").write_text("{}")
    (conf / "20-b.json").write_text("{}")
    (conf / "notes.txt").write_text("")
    (tmp_path / "verdict").write_text("1\nsecond line\n")
    args = {"packages": ["dpkg", "no-such-package-tts-ha"], "users": ["root", "no-such-user-tts-ha"],
            "units": ["no-such-unit-tts-ha"], "paths": [str(conf), str(tmp_path / "absent")],
            "globs": [f"{conf}/*.json"], "first_lines": [str(tmp_path / "verdict"), str(tmp_path / "absent")]}
    for extra in ((), ("--check",)):
        result = run(tmp_path, args, *extra)
        assert not result["changed"] and not result.get("failed"), result
        assert result["packages_installed"] is False and result["packages_missing"] == ["no-such-package-tts-ha"]
        assert result["users"] == {"root": True, "no-such-user-tts-ha": False}
        # Without systemd as init (this machine) systemctl answers nothing; the roles read real
        # units on the lab's and molecule's systemd nodes.
        booted = Path("/run/systemd/system").is_dir()
        assert result["units"] == {"no-such-unit-tts-ha": "inactive" if booted else ""}
        assert result["paths"] == {str(conf): "750 root:root", str(tmp_path / "absent"): ""}
        assert result["globs"] == {f"{conf}/*.json": [str(conf / "10-a.json"), str(conf / "20-b.json")]}
        assert result["first_lines"] == {str(tmp_path / "verdict"): "1", str(tmp_path / "absent"): ""}
    assert run(tmp_path, {"packages": ["dpkg"]})["packages_installed"] is True


def test_a_relative_path_is_refused_by_name(tmp_path):
    result = run(tmp_path, {"paths": ["etc/docker"]})
    assert result.get("failed") and "paths: 'etc/docker' is not an absolute path" in result["msg"], result
