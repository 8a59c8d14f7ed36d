"""nvidia_gpu's GPU path with stand-ins: sources, packages, hold, runtime, udev rule, checks."""
import json

import pytest

STANDIN_ENV = "NVIDIA_GPU_SYSFS_ROOT=/srv/gpu-standin/sys NVIDIA_GPU_PROC_ROOT=/srv/gpu-standin/proc"


@pytest.fixture(scope="module")
def kernel(host):
    return host.check_output("uname -r")


def test_stack_fact_says_ready(host):
    data = json.loads(host.file("/etc/ansible/facts.d/nvidia_gpu_stack.fact").content_string)
    assert data == {"ready": True, "enabled": "auto", "runtime": "nvidia"}


def test_detection_through_the_stand_ins(host):
    data = json.loads(host.check_output(f"{STANDIN_ENV} /etc/ansible/facts.d/nvidia_gpu.fact"))
    assert data["count"] == 2 and data["source"] == "nvidia-smi" and data["error"] is None
    assert data["driver_loaded"] is True and data["module_version"] == "550.999.01"
    assert data["gpus"][1]["uuid"] is None and data["gpus"][1]["memory_total_mib"] is None  # [N/A]


def test_deb822_prerequisite(host):
    assert host.package("python3-debian").is_installed


def test_one_toolkit_source_only(host):
    assert not host.file("/etc/apt/sources.list.d/nvidia-container-toolkit.list").exists
    sources = host.file("/etc/apt/sources.list.d/nvidia-container-toolkit.sources").content_string
    assert "Signed-By: /etc/apt/keyrings/nvidia-container-toolkit.asc" in sources
    hits = host.check_output("grep -rl 'libnvidia-container' /etc/apt/sources.list.d /etc/apt/sources.list || true")
    assert hits.split() == ["/etc/apt/sources.list.d/nvidia-container-toolkit.sources"]
    update = host.run("apt-get update")
    assert update.rc == 0 and "Conflicting values" not in update.stderr, update.stderr


def test_nonfree_source_uses_the_hosts_signed_by(host):
    # the host's own source for that mirror (prepare.yml) has this Signed-By: apt needs the same
    sources = host.file("/etc/apt/sources.list.d/debian-nonfree.sources").content_string
    assert "Signed-By: /usr/share/keyrings/standin-archive-keyring.gpg" in sources
    assert "Components: contrib non-free non-free-firmware" in sources


def test_driver_and_headers_installed(host, kernel):
    flavour = host.file("/srv/gpu-standin/flavour").content_string.strip()
    for pkg in ("nvidia-driver", "nvidia-kernel-dkms", "nvidia-smi", "firmware-misc-nonfree",
                f"linux-headers-{kernel}", f"linux-headers-{flavour}", "nvidia-container-toolkit"):
        assert host.package(pkg).is_installed, pkg


def test_driver_packages_held(host):
    held = set(host.check_output("apt-mark showhold").split())
    assert {"nvidia-driver", "nvidia-kernel-dkms", "nvidia-smi"} <= held
    # firmware, headers and the toolkit keep their updates
    assert not held & {"firmware-misc-nonfree", "nvidia-container-toolkit"}
    assert not any(p.startswith("linux-headers") for p in held)


def test_runtime_registered(host):
    daemon = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert daemon["runtimes"]["nvidia"]["path"] == "/usr/bin/nvidia-container-runtime"
    assert daemon["live-restore"] is True and "default-runtime" not in daemon
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert "nvidia" in info["Runtimes"]


def test_dev_char_udev_rule(host):
    rule = host.file("/etc/udev/rules.d/71-nvidia-dev-char.rules")
    assert rule.exists and rule.mode == 0o644
    assert 'RUN+="/usr/bin/nvidia-ctk system create-dev-char-symlinks --create-all"' in rule.content_string
    assert "system create-dev-char-symlinks --create-all" in host.file("/var/log/nvidia-standin/ctk.log").content_string


def test_container_check_went_through_the_toolkit_hook(host):
    entries = [json.loads(line) for line in host.file("/var/log/nvidia-standin/hook.log").content_string.splitlines()]
    assert entries and all("error" not in e for e in entries), entries
    assert all(e["visible_devices"] == ["all"] and "usr/bin/nvidia-smi" in e["injected"] for e in entries)


def test_fallback_smoke_image_is_the_host_libc(host):
    # made by verify.yml when neither nvidia_gpu_smoke_image nor the TTS image is available
    files = host.check_output("docker export $(docker create tts-ha/gpu-smoke:local true) | tar -t")
    assert "libc.so.6" in files and "ld-linux" in files
    host.run("docker container prune -f")


def test_gpu_container_runs_hardened(host):
    out = host.check_output(
        "docker run --rm --runtime=nvidia --gpus=all --network=none --read-only --cap-drop=ALL "
        "--security-opt=no-new-privileges --entrypoint=nvidia-smi tts-ha/gpu-smoke:standin -L")
    assert [line.split(":")[0] for line in out.splitlines()] == ["GPU 0", "GPU 1"]
