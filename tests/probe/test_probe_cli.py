"""bin/tts-synthesis-check as Keepalived runs it: one JSON line, exit 0/1/2, never hangs."""

import glob
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tts_probe_testlib import REPO, closed_port

CHECK = REPO / "bin" / "tts-synthesis-check"
PROBE = REPO / "module_utils" / "tts_probe.py"
RESULT_KEYS = {
    "healthy", "reason", "url", "status", "content_type", "bytes", "latency_ms", "audio_format",
    "sample_rate", "channels", "duration_s", "rms_dbfs", "instance", "checks", "definitive",
}


def run_check(*args, command=(sys.executable, str(CHECK)), limit=15):
    """Run the check; return (exit code, parsed JSON line, seconds taken)."""
    started = time.monotonic()
    proc = subprocess.run([*command, *args], capture_output=True, text=True, timeout=limit,
                          check=False)
    elapsed = time.monotonic() - started
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, f"expected one JSON line, got stdout={proc.stdout!r} stderr={proc.stderr!r}"
    result = json.loads(lines[0])
    assert set(result) == RESULT_KEYS
    return proc.returncode, result, elapsed


def test_healthy_exits_0(server):
    code, result, _ = run_check("--url", server.url + "/wav")
    assert (code, result["healthy"], result["reason"]) == (0, True, "ok")
    assert result["rms_dbfs"] == pytest.approx(-9.03, abs=0.05)


@pytest.mark.parametrize(("path", "words"), [
    ("/silence", "audio is silent: rms -120.0 dBFS"),
    ("/error500", "status 500 not in expected [200]"),
    ("/html", "does not start with 'audio/'"),
])
def test_unhealthy_exits_1(server, path, words):
    code, result, _ = run_check("--url", server.url + path)
    assert (code, result["healthy"]) == (1, False)
    assert words in result["reason"]


def test_connection_refused_exits_1():
    port = closed_port()
    code, result, _ = run_check("--url", f"http://127.0.0.1:{port}/tts")
    assert (code, result["reason"]) == (1, f"connection refused by 127.0.0.1:{port}")


@pytest.mark.parametrize(("args", "reason"), [
    (["--url", "ftp://x"],
     "invalid argument --url: must be an http:// or https:// URL with a host, got 'ftp://x'"),
    (["--url", "not a url"],
     "invalid argument --url: must be an http:// or https:// URL with a host, got 'not a url'"),
    (["--url", "{url}", "--timeout", "-1"], "invalid argument --timeout: must be > 0, got -1.0"),
    (["--url", "{url}", "--timeout", "abc"],
     "invalid arguments: argument --timeout: invalid float value: 'abc'"),
    ([], "invalid arguments: the following arguments are required: --url"),
    (["--url", "{url}", "--bogus"], "invalid arguments: unrecognized arguments: --bogus"),
    (["--url", "{url}", "--header", "nocolon"],
     "invalid arguments: argument --header: expected NAME:VALUE, got 'nocolon'"),
    (["--url", "{url}", "--payload-json", '"text"'],
     "invalid arguments: argument --payload-json: must be a JSON object or array"),
    (["--url", "{url}", "--text", "a", "--payload-json", "{}"],
     "invalid arguments: argument --payload-json: not allowed with argument --text"),
    (["--url", "{url}", "--min-duration", "-1"], "invalid argument --min-duration: must be >= 0, got -1.0"),
    (["--url", "{url}", "--expected-status", "99"],
     "invalid argument --expected-status: must be one or more HTTP status codes (100-599), got [99]"),
    (["--url", "{url}", "--ca-path", "/nonexistent/ca.pem"],
     "invalid argument --ca-path: '/nonexistent/ca.pem' does not exist"),
])
def test_bad_arguments_exit_2_naming_the_flag(server, args, reason):
    code, result, _ = run_check(*(arg.replace("{url}", server.url + "/wav") for arg in args))
    assert (code, result["healthy"], result["reason"]) == (2, False, reason)


def test_invalid_payload_json_exits_2(server):
    code, result, _ = run_check("--url", server.url + "/wav", "--payload-json", "{bad")
    assert code == 2
    assert result["reason"].startswith("invalid arguments: argument --payload-json: invalid JSON: ")


def test_hanging_endpoint_returns_within_the_timeout(server):
    code, result, elapsed = run_check("--url", server.url + "/slow", "--timeout", "1")
    assert (code, result["reason"]) == (1, "timed out after 1 s waiting for response headers")
    assert elapsed < 2.5


def test_watchdog_ends_a_probe_that_never_returns():
    # Simulate a hang no socket timeout covers: probe() itself never returns.
    code = (f"import sys, time; sys.path.insert(0, {str(PROBE.parent)!r}); import tts_probe\n"
            "tts_probe.probe = lambda **kwargs: time.sleep(60)\n"
            "sys.exit(tts_probe.main(['--url', 'http://127.0.0.1:9/tts', '--timeout', '0.5']))")
    exit_code, result, elapsed = run_check(command=(sys.executable, "-c", code))
    assert (exit_code, result["healthy"]) == (1, False)
    assert result["reason"] == "hard deadline of 1.5 s exceeded"
    assert 1.5 <= elapsed < 3.0


def test_request_options_reach_the_server(server):
    auth = ["--url", server.url + "/auth", "--payload-json", '{"input": "hello"}']
    assert run_check(*auth, "--header", "X-Api-Key: secret")[0] == 0
    assert run_check(*auth)[1]["status"] == 401
    assert run_check("--url", server.url + "/wav", "--text", "hello")[0] == 0
    assert run_check("--url", server.url + "/wav", "--text", "")[1]["status"] == 400


def test_check_options(server):
    assert run_check("--url", server.url + "/silence", "--min-rms-dbfs", "-130")[0] == 0
    assert run_check("--url", server.url + "/short", "--min-duration", "0.001")[0] == 0
    assert run_check("--url", server.url + "/wrong-type", "--content-type-prefix", "application/")[0] == 0
    assert run_check("--url", server.url + "/error500", "--expected-status", "200",
                     "--expected-status", "500")[1]["checks"]["status"] is True
    assert run_check("--url", server.url + "/redirect", "--follow-redirects")[0] == 0
    instance = run_check("--url", server.url + "/instance", "--instance-header", "X-Backend")[1]["instance"]
    assert instance == "tts-node-b:8000"
    code, result, _ = run_check("--url", server.url + "/wav", "--max-latency-ms", "0.001")
    assert code == 1 and "max_latency_ms 0.001" in result["reason"]
    assert "exceeds max_bytes 1000" in run_check("--url", server.url + "/wav", "--max-bytes", "1000")[1]["reason"]


def test_tls_options(tls_server, tls_cert):
    url = tls_server.url + "/wav"
    assert run_check("--url", url)[0] == 1
    assert run_check("--url", url, "--insecure")[0] == 0
    assert run_check("--url", url, "--ca-path", str(tls_cert[0]))[0] == 0


def test_runs_as_an_executable(server):
    assert os.access(CHECK, os.X_OK), "bin/tts-synthesis-check must be executable"
    assert CHECK.read_text().startswith("#!/usr/bin/env python3\n")
    code, _, _ = run_check("--url", server.url + "/wav", command=(str(CHECK),))
    assert code == 0


def test_deployed_layout_finds_the_probe_next_to_it(server, tmp_path):
    # Deployment copies both files into one directory; a symlink elsewhere must still work.
    shutil.copy2(CHECK, tmp_path / CHECK.name)
    shutil.copy2(PROBE, tmp_path / PROBE.name)
    link_dir = tmp_path / "bin"
    link_dir.mkdir()
    (link_dir / CHECK.name).symlink_to(tmp_path / CHECK.name)
    for command in (tmp_path / CHECK.name, link_dir / CHECK.name):
        assert run_check("--url", server.url + "/wav", command=(sys.executable, str(command)))[0] == 0


@pytest.mark.skipif(Path("/usr/local/lib/tts-ha/tts_probe.py").exists(),
                    reason="tts_probe.py is installed system-wide on this machine")
def test_missing_probe_exits_3_with_a_json_line(tmp_path):
    shutil.copy2(CHECK, tmp_path / CHECK.name)
    proc = subprocess.run([sys.executable, str(tmp_path / CHECK.name), "--url", "http://127.0.0.1:9/"],
                          capture_output=True, text=True, timeout=15, check=False)
    assert proc.returncode == 3
    result = json.loads(proc.stdout)
    assert result["healthy"] is False and result["reason"].startswith("tts_probe.py not found in ")


def test_help_lists_the_flags():
    proc = subprocess.run([sys.executable, str(CHECK), "--help"], capture_output=True, text=True,
                          timeout=15, check=False)
    assert proc.returncode == 0
    for flag in ("--url", "--method", "--text", "--payload-json", "--header", "--timeout",
                 "--min-rms-dbfs", "--min-duration", "--max-latency-ms", "--insecure", "--ca-path"):
        assert flag in proc.stdout


def _python39():
    candidates = [shutil.which("python3.9"),
                  *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3.9")))]
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", "pass"], capture_output=True, check=False).returncode == 0:
            return candidate
    return None


PYTHON39 = _python39()


@pytest.mark.skipif(PYTHON39 is None, reason="no working python3.9 on this machine")
def test_runs_on_python_3_9(server):
    # Bare hosts may have an old python3: the probe promises 3.9+.
    command = (PYTHON39, str(CHECK))
    assert run_check("--url", server.url + "/wav", command=command)[0] == 0
    assert run_check("--url", server.url + "/trickle", "--timeout", "0.5", command=command)[0] == 1
    assert run_check("--url", server.url + "/slow", "--timeout", "0.5", command=command)[0] == 1
