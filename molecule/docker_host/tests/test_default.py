"""docker_host on a lab node: engine up, daemon.json merged, nested containers run."""
import json

import pytest


@pytest.fixture(scope="module")
def daemon(host):
    return json.loads(host.file("/etc/docker/daemon.json").content_string)


def test_systemd_is_pid1_and_booted(host):
    assert host.run("cat /proc/1/comm").stdout.strip() == "systemd"
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state in ("running", "degraded"), state


def test_engine_service_up(host):
    svc = host.service("docker")
    assert svc.is_running
    assert svc.is_enabled
    assert host.socket("unix:///run/docker.sock").is_listening


def test_daemon_json_merged(daemon):
    assert daemon["live-restore"] is True
    assert daemon["log-driver"] == "json-file"
    # site option overrides the baseline, the baseline's other keys survive
    assert daemon["log-opts"] == {"max-size": "10m", "max-file": "5"}
    # the other role's fragment is merged, not overwritten
    assert daemon["runtimes"]["molecule-runc"]["path"] == "/usr/sbin/runc"


def test_engine_uses_the_config(host):
    out = host.check_output("docker info --format '{{json .}}'")
    info = json.loads(out)
    assert info["LiveRestoreEnabled"] is True
    assert info["LoggingDriver"] == "json-file"
    assert "molecule-runc" in info["Runtimes"]


def test_nested_container_runs(host):
    host.check_output(
        "set -e; d=$(mktemp -d); cp /bin/busybox $d/; tar -C $d -c . | docker import - tts-ha/smoke:busybox; rm -rf $d"
    )
    out = host.check_output("docker run --rm tts-ha/smoke:busybox /busybox echo nested-ok")
    assert out.strip() == "nested-ok"
    # the runtime added through the fragment is usable, not just listed
    out = host.check_output("docker run --rm --runtime molecule-runc tts-ha/smoke:busybox /busybox echo rt-ok")
    assert out.strip() == "rt-ok"
