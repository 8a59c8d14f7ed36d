"""library/tts_ha_files.py run through Ansible for real: one call puts directories and files in
place, a rerun changes nothing, drift is repaired, check mode writes nothing, bad lists are refused."""
import os
import stat

from modules_testlib import run_task


def run(tmp_path, files, *extra):
    return run_task(tmp_path, "tts_ha_files", {"files": files}, *extra)


def entries(base):
    return [
        {"path": str(base / "etc"), "state": "directory", "mode": "0750"},
        {"path": str(base / "etc" / "a.conf"), "content": "a = 1\n", "mode": "0640"},
        {"path": str(base / "unit.service"), "content": "[Service]\nRestart=always\n", "mode": "0644"},
        {"path": str(base / "etc"), "state": "directory", "mode": "0750"},  # the same entry twice: once
    ]


def mode(path):
    return oct(stat.S_IMODE(path.stat().st_mode))


def test_one_call_then_no_change_then_drift_repaired(tmp_path):
    base = tmp_path / "root"
    base.mkdir()
    first = run(tmp_path, entries(base))
    assert first["changed"] and first["changed_paths"] == [str(base / "etc"), str(base / "etc" / "a.conf"),
                                                           str(base / "unit.service")], first
    assert (base / "etc" / "a.conf").read_text() == "a = 1\n" and mode(base / "etc" / "a.conf") == "0o640"
    assert mode(base / "etc") == "0o750"

    again = run(tmp_path, entries(base))
    assert not again["changed"] and again["changed_paths"] == [], again

    (base / "unit.service").write_text("edited by hand\n")
    os.chmod(base / "etc" / "a.conf", 0o666)
    repaired = run(tmp_path, entries(base), "--diff")
    assert repaired["changed_paths"] == [str(base / "etc" / "a.conf"), str(base / "unit.service")], repaired
    assert (base / "unit.service").read_text() == "[Service]\nRestart=always\n"
    assert mode(base / "etc" / "a.conf") == "0o640"
    diffs = repaired["diff"]
    assert any(d.get("before") == "edited by hand\n" for d in diffs), diffs
    assert any(d.get("before", {}).get("mode") == "0666" for d in diffs if isinstance(d.get("before"), dict)), diffs


def test_check_mode_reports_and_writes_nothing(tmp_path):
    base = tmp_path / "root"
    base.mkdir()
    result = run(tmp_path, entries(base), "--check")
    assert result["changed"] and len(result["changed_paths"]) == 3, result
    assert list(base.iterdir()) == []


def test_bad_lists_are_refused_with_the_path_named(tmp_path):
    base = tmp_path / "root"
    base.mkdir()
    cases = [
        ([{"path": "relative/x", "content": "", "mode": "0644"}], "'relative/x' is not an absolute path"),
        ([{"path": str(base / "f"), "content": "a", "mode": "0644"},
          {"path": str(base / "f"), "content": "b", "mode": "0644"}], "listed twice with different settings"),
        ([{"path": str(base / "f"), "mode": "0644"}], "is a file without content"),
        ([{"path": str(base / "no" / "f"), "content": "a", "mode": "0644"}], "the directory of"),
    ]
    for files, message in cases:
        result = run(tmp_path, files)
        assert result.get("failed") and message in result["msg"], (files, result)
    assert list(base.iterdir()) == []
