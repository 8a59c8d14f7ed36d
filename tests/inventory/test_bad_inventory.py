"""site.yml refuses bad inventory in its preflight, naming the variable, before any host changes.

Hosts point at Docker containers that do not exist: preflight runs on the controller only, so a
bad inventory must stop there; a good one gets past it and only then fails to reach the hosts.
"""
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GOOD = [{"name": "tts-primary", "profile": "primary", "port": 8000},
        {"name": "tts-standby", "profile": "standby", "port": 8001}]


def run_site(tmp_path, host_vars):
    inv = {"all": {"children": {"tts_nodes": {"hosts": {"ghost-node": dict(
        ansible_connection="community.docker.docker_api",
        ansible_host="tts-ha-no-such-container", **host_vars)}}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inv))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}")
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
                           str(ROOT / "playbooks" / "site.yml")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def stopped_in_preflight(out):
    return "PLAY [Validate the network settings]" not in out and "PLAY [Docker hosts]" not in out


@pytest.mark.parametrize("instances, expected", [
    ([{"name": "tts-primary", "profile": "primery", "port": 8000}], "profile 'primery' must be one of"),
    ([{"name": "a", "profile": "primary", "port": 8000}, {"name": "b", "profile": "standby", "port": 8000}],
     "port clash"),
    ([{"name": "a", "profile": "primary", "port": 70000}], "port 70000 must be 1-65535"),
    ([{"name": "a b", "profile": "primary", "port": 8000}], "name must match"),
    ([{"profile": "primary", "port": 8000}], "missing required arguments: name"),
    ([{"name": "a", "profile": "primary", "port": "eighty"}], "port"),
    ("not-a-list-of-dicts", "tts_service_instances"),
])
def test_bad_instances_refused(tmp_path, instances, expected):
    rc, out = run_site(tmp_path, {"tts_service_instances": instances})
    assert rc != 0
    assert expected in out, out[-2500:]
    assert stopped_in_preflight(out)


def test_missing_image_refused(tmp_path):
    rc, out = run_site(tmp_path, {"tts_service_instances": GOOD, "tts_service_image": ""})
    assert rc != 0 and "image (or tts_service_image)" in out, out[-2500:]
    assert stopped_in_preflight(out)


def test_missing_archive_refused(tmp_path):
    """Neither the archive nor the image in the controller's engine: refused, naming both."""
    rc, out = run_site(tmp_path, {"tts_service_instances": GOOD, "tts_service_image_source": "archive",
                                  "tts_service_image": "tts-ha/no-such-image:0",
                                  "tts_service_image_archive": str(tmp_path / "nope.tar")})
    assert rc != 0 and "needs the archive" in out and "nope.tar" in out, out[-2500:]
    assert "controller's Docker engine" in out and "tts-ha/no-such-image:0" in out, out[-2500:]
    assert stopped_in_preflight(out)


def _controller_has(image):
    try:
        proc = subprocess.run(["docker", "image", "inspect", image], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def test_archive_written_from_controller_engine_passes_preflight(tmp_path):
    """No archive yet, but the image is in the controller's engine: the kit exports it (image.yml),
    so the preflight lets it through, while an instance image that is in neither place is refused."""
    image = "tts-ha/debian:bookworm"  # built by `make images`; any image in the engine would do
    if not _controller_has(image):
        pytest.skip(f"{image} is not in the controller's Docker engine")
    host_vars = {"tts_service_instances": GOOD, "tts_service_image_source": "archive",
                 "tts_service_image": image, "tts_service_image_archive": str(tmp_path / "later.tar")}
    rc, out = run_site(tmp_path, host_vars)
    assert "PLAY [Validate the network settings]" in out, out[-2500:]
    assert not (tmp_path / "later.tar").exists()  # preflight only looks; nothing is written yet

    mixed = [GOOD[0], dict(GOOD[1], image="tts-ha/no-such-image:0")]
    rc, out = run_site(tmp_path, dict(host_vars, tts_service_instances=mixed))
    assert rc != 0 and "not in the engine: tts-ha/no-such-image:0" in out, out[-2500:]
    assert stopped_in_preflight(out)


def test_unknown_image_source_refused(tmp_path):
    rc, out = run_site(tmp_path, {"tts_service_instances": GOOD, "tts_service_image_source": "carrier-pigeon"})
    assert rc != 0 and "tts_service_image_source must be one of" in out, out[-2500:]
    assert stopped_in_preflight(out)


def test_good_inventory_passes_preflight(tmp_path):
    """Control: the same harness with a valid inventory passes the instance checks (then cannot reach the ghost)."""
    rc, out = run_site(tmp_path, {"tts_service_instances": GOOD})
    assert "PLAY [Validate the network settings]" in out, out[-2500:]
    assert "UNREACHABLE" in out or "unreachable=1" in out


@pytest.mark.parametrize("api_vars, expected", [
    ({"tts_api_preset": "mimic3"}, "tts_api_preset"),
    ({"tts_api_overrides": {"text": {"in": "telepathy"}}}, "tts_api_overrides.text.in"),
    ({"tts_api_overrides": {"text": {"in": "json", "field": ""}}}, "tts_api_overrides.text.field"),
    ({"tts_api_preset": "openai", "tts_api_overrides": {"auth": {"token": "CHANGE_ME"}}},
     "tts_api_overrides.auth.token: is still a placeholder"),
])
def test_bad_api_contract_refused(tmp_path, api_vars, expected):
    """An unknown preset, a contract with no text placement, a placeholder token: refused in the
    preflight, before any host changes, naming the variable."""
    rc, out = run_site(tmp_path, {"tts_service_instances": GOOD, **api_vars})
    assert rc != 0
    assert expected in out, out[-2500:]
    assert stopped_in_preflight(out)
