"""library/tts_synthesis_check.py run through Ansible for real, and its documentation."""

import importlib.util
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tts_probe
import yaml
from tts_probe_testlib import GOOD_WAV, INSTANCE, REPO

LIBRARY = REPO / "library" / "tts_synthesis_check.py"
PLAYBOOK = Path(__file__).with_name("module_cases.yml")
BIN = Path(sys.executable).parent
MODULE_KEYS = {"attempts", "elapsed_s", "consecutive_ok", "history"}
PROBE_KEYS = {
    "healthy", "reason", "url", "status", "content_type", "bytes", "latency_ms", "audio_format",
    "sample_rate", "channels", "duration_s", "rms_dbfs", "instance", "checks", "definitive",
}
ANSIBLE_LIMIT_S = 120


def ansible_env(tmp):
    return dict(
        os.environ,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",  # the ad-hoc `ansible` command honours it only then
        ANSIBLE_LOCAL_TEMP=str(tmp),
        ANSIBLE_NOCOLOR="1",
    )


def target_args(extra_vars):
    # Explicit localhost running the module on this very interpreter (no discovery warnings).
    extra_vars = {"ansible_python_interpreter": sys.executable, **extra_vars}
    return ["-i", "localhost,", "-c", "local", "-e", json.dumps(extra_vars)]


def task_results(stdout):
    """{task name: localhost result} from the json callback's output."""
    report = json.loads(stdout)
    return {task["task"]["name"]: task["hosts"]["localhost"] for task in report["plays"][0]["tasks"]}


@pytest.fixture(scope="module")
def playbook_runs(server, tmp_path_factory):
    """Run module_cases.yml normally and with --check, side by side to save time."""
    runs = {}
    for mode in ("normal", "check"):
        command = [str(BIN / "ansible-playbook"), *target_args({"base_url": server.url, "run_id": mode}),
                   *(["--check"] if mode == "check" else []), str(PLAYBOOK)]
        runs[mode] = subprocess.Popen(command, cwd=REPO, env=ansible_env(tmp_path_factory.mktemp(mode)),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs = {}
    for mode, proc in runs.items():
        try:
            stdout, stderr = proc.communicate(timeout=ANSIBLE_LIMIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        # Failing tasks are ignored by the playbook, so the run itself must succeed.
        assert proc.returncode == 0, stderr
        assert "Traceback" not in stdout + stderr
        outputs[mode] = task_results(stdout)
    return outputs


@pytest.fixture(params=["normal", "check"])
def cases(request, playbook_runs):
    return playbook_runs[request.param]


def assert_ok(result):
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False
    assert set(result) >= PROBE_KEYS | MODULE_KEYS


def test_healthy_reports_figures_and_never_changes(cases, server):
    result = cases["Healthy"]
    assert_ok(result)
    assert (result["healthy"], result["reason"], result["status"]) == (True, "ok", 200)
    assert (result["audio_format"], result["bytes"], result["instance"]) == ("wav", len(GOOD_WAV), INSTANCE)
    assert result["rms_dbfs"] == pytest.approx(-9.03, abs=0.05)
    assert result["duration_s"] == pytest.approx(0.3, abs=1e-3)
    assert (result["attempts"], result["consecutive_ok"]) == (1, 1)
    assert result["history"] == [{"attempt": 1, "healthy": True, "status": 200, "instance": INSTANCE,
                                  "latency_ms": result["latency_ms"], "reason": "ok"}]


def test_check_mode_still_probes(playbook_runs, server):
    # One request per run reached the server, the --check run included.
    assert server.hits["normal-healthy"] == server.hits["check-healthy"] == 1


def test_unhealthy_fails_with_the_reason(cases):
    result = cases["Unhealthy"]
    assert result["failed"] is True
    assert result["msg"] == "tts synthesis check failed: audio is silent: rms -120.0 dBFS < min_rms_dbfs -60 dBFS"
    assert (result["healthy"], result["rms_dbfs"], result["checks"]["rms"]) == (False, -120.0, False)
    assert result["changed"] is False


def test_report_only_returns_ok_with_healthy_false(cases):
    result = cases["Report only"]
    assert_ok(result)
    assert result["healthy"] is False
    assert result["reason"].startswith("audio is silent: rms -120.0 dBFS")


def test_wait_timeout_waits_out_a_loading_model(cases):
    result = cases["Wait until healthy"]
    assert_ok(result)
    assert (result["healthy"], result["attempts"], result["consecutive_ok"]) == (True, 3, 1)
    assert [entry["status"] for entry in result["history"]] == [503, 503, 200]
    assert result["history"][0]["reason"].startswith("status 503 not in expected [200]")


def test_consecutive_successes_restart_after_a_failure(cases):
    result = cases["Streak reset by a failure"]
    assert_ok(result)
    assert (result["healthy"], result["attempts"], result["consecutive_ok"]) == (True, 5, 3)
    assert [entry["healthy"] for entry in result["history"]] == [True, False, True, True, True]


def test_streak_cut_short_by_wait_timeout_fails(cases):
    result = cases["Streak cut by wait_timeout"]
    assert result["failed"] is True
    assert (result["healthy"], result["attempts"], result["consecutive_ok"]) == (False, 2, 1)
    assert result["msg"].startswith("tts synthesis check failed: only 1 of 5 consecutive healthy checks"
                                    " before wait_timeout (1 s) ran out (2 checks in ")


def test_wait_timeout_bounds_the_retries(cases):
    result = cases["Never healthy within wait_timeout"]
    assert result["failed"] is True
    # 0.5 s at 0.1 s intervals: about 5 checks, fewer on a loaded machine, never more than 6.
    assert 2 <= result["attempts"] <= 6 and result["elapsed_s"] < 1.5
    assert result["msg"].startswith("tts synthesis check failed: status 500 not in expected [200]")


@pytest.mark.parametrize("name", ["Payload and headers", "Text", "Renamed options"])
def test_request_and_check_options_are_passed_on(cases, name):
    assert_ok(cases[name])
    assert cases[name]["healthy"] is True, cases[name]["reason"]


@pytest.mark.parametrize(("name", "message"), [
    ("Bad URL scheme", "invalid url: must be an http:// or https:// URL with a host, got 'ftp://x'"),
    ("Not a URL", "invalid url: must be an http:// or https:// URL with a host, got 'not a url'"),
    ("Negative timeout", "invalid timeout: must be > 0, got -1.0"),
    ("Unknown option", "Unsupported parameters for (tts_synthesis_check) module: bogus."),
    ("Payload and text", "parameters are mutually exclusive: payload|text"),
    ("Zero consecutive successes", "invalid consecutive_successes: must be >= 1, got 0"),
    ("Zero wait interval", "invalid wait_interval: must be > 0, got 0"),
    ("Streak without wait_timeout",
     "invalid consecutive_successes: more than 1 check in a row needs wait_timeout > 0"),
    ("Bad status code", "invalid status_code: must be one or more HTTP status codes (100-599), got [99]"),
    ("Negative min_duration", "invalid min_duration: must be >= 0, got -1.0"),
])
def test_bad_arguments_fail_naming_the_option(cases, name, message):
    result = cases[name]
    assert result["failed"] is True
    assert result["msg"].startswith(message)
    assert "Traceback" not in json.dumps(result)


def test_ad_hoc_command(server, tmp_path):
    proc = subprocess.run(
        [str(BIN / "ansible"), "localhost", *target_args({}), "-m", "tts_synthesis_check",
         "-a", f"url={server.url}/wav min_rms_dbfs=-20 max_latency_ms=5000"],
        cwd=REPO, env=ansible_env(tmp_path), capture_output=True, text=True, timeout=ANSIBLE_LIMIT_S,
        check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = task_results(proc.stdout)["tts_synthesis_check"]
    assert_ok(result)
    assert result["checks"] == dict.fromkeys(
        ("request", "status", "content_type", "audio", "duration", "rms", "latency"), True)


# -- documentation ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def module():
    """The module imported in-process, with the probe standing in for its module_utils import."""
    sys.modules.setdefault("ansible.module_utils.tts_probe", tts_probe)
    spec = importlib.util.spec_from_file_location("tts_synthesis_check_under_test", LIBRARY)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


# That DOCUMENTATION mirrors ARGUMENT_SPEC and that ansible-doc renders it: tests/modules/test_module_docs.py,
# for every module. What only this module has:
def test_documentation_names_the_mutually_exclusive_options(module):
    options = yaml.safe_load(module.DOCUMENTATION)["options"]
    assert module.MUTUALLY_EXCLUSIVE
    for first, second in module.MUTUALLY_EXCLUSIVE:
        assert f"Mutually exclusive with O({second})" in " ".join(options[first]["description"])
        assert f"Mutually exclusive with O({first})" in " ".join(options[second]["description"])


def test_return_documents_every_result_key(module):
    result_keys = set(tts_probe.probe("http://127.0.0.1:9/tts", timeout=0.5))
    assert result_keys == PROBE_KEYS
    assert set(yaml.safe_load(module.RETURN)) == result_keys | MODULE_KEYS


def test_examples_use_documented_options_only(module):
    options = set(yaml.safe_load(module.DOCUMENTATION)["options"])
    examples = [task["tts_synthesis_check"] for task in yaml.safe_load(module.EXAMPLES)
                if "tts_synthesis_check" in task]
    assert len(examples) >= 3
    for args in examples:
        assert set(args) <= options, set(args) - options


def test_probe_arguments_match_the_probe_signature(module):
    # Every non-loop option must land on a probe() parameter (catches renames on either side).
    params = {name: spec.get("default") for name, spec in module.ARGUMENT_SPEC.items()}
    arguments = module.probe_arguments(params)
    assert set(arguments) <= set(inspect.signature(tts_probe.probe).parameters)
    assert arguments["payload"] == {"text": "a"}
    assert arguments["expected_status"] == [200] and arguments["min_duration_s"] == 0.02
