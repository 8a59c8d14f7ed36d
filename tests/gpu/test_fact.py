"""nvidia_gpu.fact against a fake sysfs/proc root and a stand-in nvidia-smi on PATH.

Every case runs the real script as Ansible does (an executable printing JSON), so what is
tested is what the role reads. No GPU, no root, no network.
"""
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

FACT = Path(__file__).resolve().parents[2] / "roles/nvidia_gpu/files/nvidia_gpu.fact"

H100 = "0, NVIDIA H100 80GB HBM3, GPU-0d2f6c1e-aaaa-bbbb-cccc-000000000000, 550.90.07, 81559, 00000000:18:00.0"
H100_B = "1, NVIDIA H100 80GB HBM3, GPU-0d2f6c1e-aaaa-bbbb-cccc-000000000001, 550.90.07, 81559, 00000000:2A:00.0"


def pci_device(root, addr, vendor="0x10de", cls="0x030200", device="0x2330", driver=None):
    dev = root / "sys/bus/pci/devices" / addr
    dev.mkdir(parents=True)
    (dev / "vendor").write_text(vendor + "\n")
    (dev / "class").write_text(cls + "\n")
    (dev / "device").write_text(device + "\n")
    if driver:
        target = root / "sys/bus/pci/drivers" / driver
        target.mkdir(parents=True, exist_ok=True)
        (dev / "driver").symlink_to(target)
    return dev


def stand_in_smi(bindir, stdout="", rc=0, stderr=""):
    bindir.mkdir(exist_ok=True)
    smi = bindir / "nvidia-smi"
    (bindir / "smi.out").write_text(stdout)
    (bindir / "smi.err").write_text(stderr)
    smi.write_text(f"#!/bin/sh\ncat '{bindir}/smi.out'\ncat '{bindir}/smi.err' >&2\nexit {rc}\n")
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR)


@pytest.fixture()
def root(tmp_path):
    (tmp_path / "sys/bus/pci/devices").mkdir(parents=True)
    (tmp_path / "proc").mkdir()
    return tmp_path


def run_fact(root, with_smi_dir=True, args=True, env_roots=False):
    env = {"PATH": f"{root / 'bin'}:/usr/bin:/bin" if with_smi_dir else "/nonexistent"}
    cmd = [sys.executable, str(FACT)]
    if env_roots:
        env.update(NVIDIA_GPU_SYSFS_ROOT=str(root / "sys"), NVIDIA_GPU_PROC_ROOT=str(root / "proc"))
    elif args:
        cmd += ["--sysfs-root", str(root / "sys"), "--proc-root", str(root / "proc")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env, check=True)
    return json.loads(out.stdout)


def test_no_gpu(root):
    pci_device(root, "0000:00:02.0", vendor="0x8086", cls="0x030000")
    data = run_fact(root, with_smi_dir=False)
    assert data["present"] is False and data["count"] == 0 and data["source"] == "none"
    assert data["error"] is None and data["nvswitch"] is False
    assert data["smi_status"] == "nvidia-smi not installed"


def test_gpu_on_pci_before_the_driver(root):
    pci_device(root, "0000:18:00.0")
    pci_device(root, "0000:18:00.1", cls="0x040300")  # the GPU's audio function is not a GPU
    data = run_fact(root, with_smi_dir=False)
    assert data["present"] is True and data["count"] == 1 and data["source"] == "sysfs"
    assert data["pci_devices"][0]["pci"] == "0000:18:00.0"
    assert data["driver_loaded"] is False and data["module_version"] is None
    assert data["error"] is None


def test_env_roots_work_like_arguments(root):
    pci_device(root, "0000:18:00.0")
    assert run_fact(root, with_smi_dir=False, env_roots=True)["count"] == 1


def test_smi_working(root):
    pci_device(root, "0000:18:00.0", driver="nvidia")
    pci_device(root, "0000:2a:00.0", driver="nvidia")
    (root / "proc/driver/nvidia").mkdir(parents=True)
    (root / "proc/driver/nvidia/version").write_text(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.90.07  Fri May 31 09:35:42 UTC 2024\n"
        "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n")
    stand_in_smi(root / "bin", H100 + "\n" + H100_B + "\n")
    data = run_fact(root)
    assert data["source"] == "nvidia-smi" and data["count"] == 2 and data["error"] is None
    assert data["driver_version"] == "550.90.07" and data["module_version"] == "550.90.07"
    assert data["gpus"][1] == {"index": 1, "name": "NVIDIA H100 80GB HBM3",
                               "uuid": "GPU-0d2f6c1e-aaaa-bbbb-cccc-000000000001",
                               "driver_version": "550.90.07", "memory_total_mib": 81559,
                               "pci": "00000000:2A:00.0"}
    assert data["pci_devices"][0]["driver"] == "nvidia"


def test_not_available_fields_are_none_not_errors(root):
    pci_device(root, "0000:18:00.0")
    stand_in_smi(root / "bin", "0, NVIDIA A100-SXM4-40GB, [N/A], 535.183.01, [N/A], 00000000:18:00.0\n")
    data = run_fact(root)
    gpu = data["gpus"][0]
    assert gpu["uuid"] is None and gpu["memory_total_mib"] is None
    assert data["present"] is True and data["error"] is None


def test_extra_lines_are_skipped_not_fatal(root):
    pci_device(root, "0000:18:00.0")
    stand_in_smi(root / "bin", "\nWARNING: infoROM is corrupted at gpu 0000:18:00.0\n" + H100 + "\n\n")
    data = run_fact(root)
    assert data["count"] == 1 and data["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"
    assert data["error"] is None
    assert "infoROM" in data["smi_unparsed"]


def test_name_with_comma_quoted(root):
    stand_in_smi(root / "bin", '0, "Tesla T4, rev b", [Not Supported], 535.1, 15360, 00000000:00:04.0\n')
    data = run_fact(root)
    assert data["gpus"][0]["name"] == "Tesla T4, rev b" and data["gpus"][0]["uuid"] is None


def test_unparseable_output_is_an_error_not_no_gpu(root):
    pci_device(root, "0000:18:00.0")
    stand_in_smi(root / "bin", "Segmentation fault\nsomething else entirely\n")
    data = run_fact(root)
    assert data["error"] and "not understood" in data["error"]
    assert data["present"] is True  # the PCI bus still says so


def test_unparseable_output_without_pci_is_still_an_error(root):
    stand_in_smi(root / "bin", "garbage, only, three\n")
    data = run_fact(root)
    assert data["present"] is False and data["error"]


def test_bad_memory_value_reported(root):
    stand_in_smi(root / "bin", "0, GPU, GPU-1, 550.1, lots, 00000000:18:00.0\n")
    data = run_fact(root)
    assert data["count"] == 1 and "memory.total" in data["error"]


def test_smi_failing_is_a_status_not_an_error(root):
    pci_device(root, "0000:18:00.0")
    stand_in_smi(root / "bin", "", rc=9, stderr="NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")
    data = run_fact(root)
    assert data["source"] == "sysfs" and data["count"] == 1 and data["error"] is None
    assert data["smi_status"].startswith("nvidia-smi exit 9: NVIDIA-SMI has failed")


def test_smi_sees_fewer_gpus_than_pci(root):
    pci_device(root, "0000:18:00.0")
    pci_device(root, "0000:2a:00.0")
    stand_in_smi(root / "bin", H100 + "\n")
    data = run_fact(root)
    assert data["count"] == 2 and "1 of the 2" in data["error"]


def test_mixed_driver_versions_reported(root):
    stand_in_smi(root / "bin", H100 + "\n" + H100_B.replace("550.90.07", "535.1") + "\n")
    assert "more than one driver version" in run_fact(root)["error"]


def test_nvswitch_from_pci_class(root):
    for i in range(4):
        pci_device(root, f"0000:0{i}:00.0", cls="0x068000", device="0x22a3")
    pci_device(root, "0000:18:00.0")
    data = run_fact(root, with_smi_dir=False)
    assert data["nvswitch"] is True and data["nvswitch_count"] == 4 and data["count"] == 1


def test_other_vendor_bridge_is_not_nvswitch(root):
    pci_device(root, "0000:00:01.0", vendor="0x8086", cls="0x068000")
    assert run_fact(root, with_smi_dir=False)["nvswitch"] is False


def test_nvswitch_from_proc(root):
    (root / "proc/driver/nvidia-nvswitch/devices/0000:05:00.0").mkdir(parents=True)
    data = run_fact(root, with_smi_dir=False)
    assert data["nvswitch"] is True and data["nvswitch_count"] == 1


@pytest.mark.parametrize("byte, expected", [(b"\x01", True), (b"\x00", False)])
def test_secure_boot(root, byte, expected):
    var = root / "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
    var.parent.mkdir(parents=True)
    var.write_bytes(b"\x06\x00\x00\x00" + byte)
    assert run_fact(root, with_smi_dir=False)["secure_boot"] is expected


def test_no_efi_means_unknown(root):
    assert run_fact(root, with_smi_dir=False)["secure_boot"] is None


def test_unreadable_root_never_crashes(tmp_path):
    data = run_fact(tmp_path / "missing", with_smi_dir=False)
    assert data["present"] is False and data["error"] is None


def test_fact_is_stdlib_only():
    imports = {line.split()[1] for line in FACT.read_text().splitlines() if line.startswith("import ")}
    assert imports <= {"argparse", "csv", "glob", "json", "os", "re", "shutil", "subprocess", "sys"}


def test_gpu_verify_writes_one_report_without_a_gpu(tmp_path):
    """scripts/gpu-verify.py on a CPU-only machine: a complete JSON report, fast, exit 1."""
    script = FACT.parents[3] / "scripts/gpu-verify.py"
    out = tmp_path / "report.json"
    run = subprocess.run([sys.executable, str(script), "--no-docker", "--out", str(out)],
                         capture_output=True, text=True, timeout=120,
                         env={"PATH": "/nonexistent", "HOME": str(tmp_path)})
    report = json.loads(out.read_text())
    assert set(report["checks"]) == {"fact", "pci", "fabricmanager", "cuda", "versions", "secure_boot",
                                     "toolkit", "docker"}
    assert report["duration_s"] < 60 and run.returncode == (0 if report["ok"] else 1)
    if not (Path("/proc/driver/nvidia/version").exists()):
        assert report["ok"] is False and "fact" in report["summary"]["failed"]
        assert report["checks"]["docker"]["ok"] is None
