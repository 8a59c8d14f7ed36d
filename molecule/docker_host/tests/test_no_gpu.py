"""nvidia_gpu on the same GPU-less docker host: detection says none, nothing is installed, daemon.json merged."""
import json


def test_detection_fact_reports_no_gpu(host):
    fact = host.file("/etc/ansible/facts.d/nvidia_gpu.fact")
    assert fact.exists and fact.mode == 0o755
    data = json.loads(host.check_output("/etc/ansible/facts.d/nvidia_gpu.fact"))
    assert data["present"] is False and data["count"] == 0 and data["source"] == "none"


def test_gpu_stack_was_skipped(host):
    for pkg in ("nvidia-driver", "nvidia-container-toolkit", "firmware-misc-nonfree"):
        assert not host.package(pkg).is_installed
    assert not host.file("/etc/apt/sources.list.d/nvidia-container-toolkit.sources").exists
    assert not host.file("/etc/apt/sources.list.d/debian-nonfree.sources").exists


def test_runtime_merged_not_overwritten(host):
    daemon = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert daemon["runtimes"]["nvidia"]["path"] == "/usr/bin/nvidia-container-runtime"
    # docker_host's baseline survives the GPU role's change
    assert daemon["live-restore"] is True
    assert daemon["log-opts"]["max-size"] == "10m"
    assert "default-runtime" not in daemon
    fragment = json.loads(host.file("/etc/docker/daemon.json.d/50-nvidia.json").content_string)
    assert set(fragment) == {"runtimes"}


def test_engine_loaded_the_runtime(host):
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert "nvidia" in info["Runtimes"]
    assert info["LiveRestoreEnabled"] is True


def test_stack_fact_says_not_ready(host):
    # tts_service gpu=auto follows this, so a GPU-less (or GPU-disabled) host never gets device_requests
    data = json.loads(host.file("/etc/ansible/facts.d/nvidia_gpu_stack.fact").content_string)
    assert data["ready"] is False and data["enabled"] == "auto"
