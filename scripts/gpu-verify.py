#!/usr/bin/env python3
"""One-shot GPU verification for a host with a real NVIDIA GPU: one JSON report, < 10 minutes.

    sudo python3 scripts/gpu-verify.py [--out report.json] [--image IMAGE] [--no-docker]

What it checks (each a section of the report, with ok true/false/null = not applicable):
  fact          roles/nvidia_gpu/files/nvidia_gpu.fact against nvidia-smi, plus the raw query
  pci           the sysfs PCI view of NVIDIA devices, NVSwitch presence (class 0x0680), and
                nvidia-smi's fabric state / NVLink status where there are NVSwitches
  fabricmanager nvidia-fabricmanager active where NVSwitches are present
  cuda          cuInit / cuDriverGetVersion / cuDeviceGetCount through libcuda (ctypes, in a
                child process with a timeout: a stuck driver cannot hang the run)
  versions      driver (nvidia-smi), kernel module (/proc, /sys/module, modinfo), libcuda,
                installed and held packages
  secure_boot   mokutil / EFI variable, module signer, taint; dkms status
  toolkit       nvidia-ctk --version, nvidia-container-cli info (when installed)
  docker        when Docker is present: a hardened `docker run --gpus all` (no network,
                read-only, no capabilities, no-new-privileges, bounded), and the
                daemon-reload check (a running GPU container must keep its GPUs across
                `systemctl daemon-reload`: NVIDIA/nvidia-container-toolkit#48)

Standard library only; runs as root (docker, dkms, /sys/module/*/taint). Exit status 0 when
every applicable check passed, 1 otherwise; the report is written either way.
"""
import argparse
import glob
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FACT = next((p for p in (os.path.join(HERE, "..", "roles", "nvidia_gpu", "files", "nvidia_gpu.fact"),
                         "/etc/ansible/facts.d/nvidia_gpu.fact") if os.path.exists(p)),
            "/etc/ansible/facts.d/nvidia_gpu.fact")
DEADLINE_S = 540  # the whole run stays under 10 minutes
START = time.monotonic()
NVIDIA_VENDOR = "0x10de"


def left():
    return max(5, DEADLINE_S - (time.monotonic() - START))


def sh(argv, timeout=60, stdin=None):
    """{'rc', 'out', 'err'} for argv; rc None when missing or timed out (never raises)."""
    if shutil.which(argv[0]) is None and not os.path.exists(argv[0]):
        return {"rc": None, "out": "", "err": f"{argv[0]} not installed"}
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=min(timeout, left()),
                           input=stdin)
        return {"rc": p.returncode, "out": p.stdout[-20000:], "err": p.stderr[-4000:]}
    except subprocess.TimeoutExpired:
        return {"rc": None, "out": "", "err": f"timed out after {timeout}s"}
    except OSError as exc:
        return {"rc": None, "out": "", "err": str(exc)}


def read(path):
    try:
        with open(path, errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return None


# --- sections ---------------------------------------------------------------------------

def check_fact():
    raw = sh(["nvidia-smi", "--query-gpu=index,name,uuid,driver_version,memory.total,pci.bus_id",
              "--format=csv,noheader,nounits"])
    fact_run = sh([sys.executable, FACT])
    try:
        fact = json.loads(fact_run["out"])
    except ValueError:
        return {"ok": False, "why": "fact script output is not JSON", "fact_run": fact_run, "smi_raw": raw}
    smi_lines = [line for line in raw["out"].splitlines() if re.match(r"^\s*\d+\s*,", line)]
    smi_uuids = [line.split(",")[2].strip() for line in smi_lines]
    fact_uuids = [g.get("uuid") or "[N/A]" for g in fact.get("gpus", [])]
    problems = []
    if raw["rc"] != 0:
        problems.append(f"nvidia-smi query failed: {raw['err'].strip()[:300]}")
    if fact.get("error"):
        problems.append(f"fact error: {fact['error']}")
    if fact.get("count") != len(smi_lines):
        problems.append(f"fact count {fact.get('count')} != nvidia-smi {len(smi_lines)}")
    if [u if u not in ("[N/A]", "N/A") else "[N/A]" for u in smi_uuids] != fact_uuids:
        problems.append(f"UUIDs differ: fact {fact_uuids} vs nvidia-smi {smi_uuids}")
    if not fact.get("driver_loaded"):
        problems.append("fact says the driver is not loaded")
    return {"ok": not problems, "problems": problems, "fact": fact, "smi_raw": raw,
            "smi_list": sh(["nvidia-smi", "-L"])}


def check_pci():
    devices = []
    for dev in sorted(glob.glob("/sys/bus/pci/devices/*")):
        if (read(os.path.join(dev, "vendor")) or "").lower() != NVIDIA_VENDOR:
            continue
        drv = os.path.join(dev, "driver")
        devices.append({
            "pci": os.path.basename(dev),
            "class": (read(os.path.join(dev, "class")) or "")[:6],
            "device": read(os.path.join(dev, "device")),
            "driver": os.path.basename(os.readlink(drv)) if os.path.islink(drv) else None,
            "numa_node": read(os.path.join(dev, "numa_node")),
            "link": f"{read(os.path.join(dev, 'current_link_speed'))} x{read(os.path.join(dev, 'current_link_width'))}",
        })
    gpus = [d for d in devices if d["class"] in ("0x0300", "0x0302")]
    switches = [d for d in devices if d["class"] == "0x0680"]
    out = {"devices": devices, "gpu_count": len(gpus), "nvswitch_count": len(switches),
           "nvswitch": bool(switches)}
    unbound = [d["pci"] for d in gpus if d["driver"] != "nvidia"]
    out["problems"] = [f"GPU {p} not bound to the nvidia driver" for p in unbound]
    if switches:
        q = sh(["nvidia-smi", "-q"], timeout=120)
        fabric = re.findall(r"Fabric\s*\n\s*State\s*:\s*(.+)\n\s*Status\s*:\s*(.+)", q["out"])
        out["fabric"] = [{"state": s.strip(), "status": st.strip()} for s, st in fabric]
        out["nvlink_status"] = sh(["nvidia-smi", "nvlink", "-s"], timeout=60)
        if any(f["state"] != "Completed" or f["status"] != "Success" for f in out["fabric"]):
            out["problems"].append(f"NVLink fabric not ready: {out['fabric']}")
    out["ok"] = bool(gpus) and not out["problems"]
    return out


def check_fabricmanager(pci):
    if not pci.get("nvswitch"):
        return {"ok": None, "why": "no NVSwitch on this host"}
    active = sh(["systemctl", "is-active", "nvidia-fabricmanager"])
    return {"ok": active["out"].strip() == "active", "systemctl": active,
            "package": sh(["dpkg-query", "-W", "-f", "${Package} ${Version}\n", "*fabricmanager*"])}


CUDA_CHILD = r"""
import ctypes, json, sys
out = {}
try:
    cuda = ctypes.CDLL("libcuda.so.1")
except OSError as exc:
    print(json.dumps({"loaded": False, "error": str(exc)})); sys.exit(0)
out["loaded"] = True
def name(rc):
    s = ctypes.c_char_p()
    try:
        cuda.cuGetErrorName(rc, ctypes.byref(s))
        return s.value.decode() if s.value else str(rc)
    except Exception:
        return str(rc)
rc = cuda.cuInit(0); out["cuInit"] = rc; out["cuInit_name"] = name(rc)
v = ctypes.c_int(); cuda.cuDriverGetVersion(ctypes.byref(v)); out["driver_api_version"] = v.value
if rc == 0:
    n = ctypes.c_int(); out["cuDeviceGetCount"] = cuda.cuDeviceGetCount(ctypes.byref(n)); out["device_count"] = n.value
    devs = []
    for i in range(n.value):
        d = ctypes.c_int(); cuda.cuDeviceGet(ctypes.byref(d), i)
        buf = ctypes.create_string_buffer(256); cuda.cuDeviceGetName(buf, 256, d)
        mem = ctypes.c_size_t(); cuda.cuDeviceTotalMem_v2(ctypes.byref(mem), d)
        devs.append({"index": i, "name": buf.value.decode(), "total_mem_mib": mem.value // 1048576})
    out["devices"] = devs
print(json.dumps(out))
"""


def check_cuda(expected):
    run = sh([sys.executable, "-c", CUDA_CHILD], timeout=120)
    try:
        res = json.loads(run["out"])
    except ValueError:
        return {"ok": False, "why": "CUDA probe crashed or hung", "run": run}
    res["ok"] = res.get("cuInit") == 0 and res.get("device_count") == expected and expected > 0
    if res.get("cuInit") == 802:
        res["why"] = "CUDA_ERROR_SYSTEM_NOT_READY (802): on NVSwitch systems, Fabric Manager is not running"
    return res


def check_versions(fact):
    proc = read("/proc/driver/nvidia/version")
    m = re.search(r"Kernel Module(?: for \S+)?\s+([0-9][0-9.]+)", proc or "")
    out = {
        "nvidia_smi_driver": fact.get("driver_version"),
        "proc_module": m.group(1) if m else None,
        "sys_module": read("/sys/module/nvidia/version"),
        "modinfo": sh(["modinfo", "-F", "version", "nvidia"])["out"].strip() or None,
        "kernel": platform.release(),
        "packages": sh(["dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Package} ${Version}\n",
                        "*nvidia*", "libcuda*", "linux-headers-*", "*fabricmanager*"])["out"].splitlines(),
        "held": sh(["apt-mark", "showhold"])["out"].split(),
    }
    versions = {v for v in (out["nvidia_smi_driver"], out["proc_module"], out["sys_module"]) if v}
    out["ok"] = len(versions) == 1
    if len(versions) > 1:
        out["why"] = f"driver/library version mismatch: {sorted(versions)} (reboot after a driver upgrade)"
    return out


def check_secure_boot():
    efi = glob.glob("/sys/firmware/efi/efivars/SecureBoot-*")
    state = None
    if efi:
        try:
            with open(efi[0], "rb") as fh:
                state = bool(fh.read()[-1])
        except OSError:
            pass
    return {
        "ok": True,  # informative: the module loaded (versions/cuda) is what decides
        "secure_boot": state,
        "mokutil": sh(["mokutil", "--sb-state"]),
        "module_signer": sh(["modinfo", "-F", "signer", "nvidia"])["out"].strip() or None,
        "module_taint": read("/sys/module/nvidia/taint"),
        "dkms_status": sh(["dkms", "status"], timeout=60),
        "kernel_messages": [line for line in sh(["dmesg"])["out"].splitlines()
                            if re.search(r"nvidia|NVRM|Key was rejected|module verification", line, re.I)][-40:],
    }


def check_toolkit():
    if not shutil.which("nvidia-ctk") and not shutil.which("nvidia-container-cli"):
        return {"ok": None, "why": "NVIDIA container toolkit not installed"}
    cli = sh(["nvidia-container-cli", "info"], timeout=60)
    rule = [p for p in ("/etc/udev/rules.d/71-nvidia-dev-char.rules", "/lib/udev/rules.d/71-nvidia-dev-char.rules")
            if os.path.exists(p)]
    char_links = [os.path.basename(p) for p in glob.glob("/dev/char/*")
                  if os.path.realpath(p).startswith("/dev/nvidia")]
    return {"ok": cli["rc"] == 0, "nvidia_ctk": sh(["nvidia-ctk", "--version"]),
            "nvidia_container_cli_info": cli, "dev_char_rule": rule, "dev_char_links": sorted(char_links)}


def minimal_image():
    """A glibc-only image built from this host's files: the runtime injects nvidia-smi."""
    tag = "gpu-verify/minimal:local"
    if sh(["docker", "image", "inspect", tag])["rc"] == 0:
        return tag
    libs = set()
    for name in ("ld-linux-x86-64.so.2", "libc.so.6", "libdl.so.2", "libpthread.so.0", "libm.so.6", "librt.so.1"):
        for d in ("/lib64", "/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib/x86_64-linux-gnu", "/lib"):
            if os.path.exists(os.path.join(d, name)):
                libs.add(os.path.join(d, name))
    with tempfile.TemporaryDirectory() as tmp:
        for lib in libs:
            dest = os.path.join(tmp, lib.lstrip("/"))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copy2(os.path.realpath(lib), dest)
        for d in ("tmp", "etc", "usr/bin"):
            os.makedirs(os.path.join(tmp, d), exist_ok=True)
        tar = subprocess.run(["tar", "-C", tmp, "-c", "."], capture_output=True, timeout=60).stdout
        r = subprocess.run(["docker", "import", "-c", "ENV PATH=/usr/bin:/bin", "-", tag], input=tar,
                           capture_output=True, timeout=120)
    return tag if r.returncode == 0 else None


def check_docker(image, expected, daemon_reload):
    if not shutil.which("docker"):
        return {"ok": None, "why": "Docker not installed"}
    info = sh(["docker", "info", "--format", "{{json .Runtimes}}"])
    if info["rc"] != 0:
        return {"ok": False, "why": "docker daemon not reachable", "info": info}
    out = {"runtimes": info["out"].strip()}
    image = image or minimal_image()
    if not image:
        return dict(out, ok=False, why="no image: pass --image (any local image; the runtime injects nvidia-smi)")
    out["image"] = image
    hardened = ["--gpus", "all", "--network", "none", "--read-only", "--cap-drop", "ALL",
                "--security-opt", "no-new-privileges", "--pids-limit", "64", "--memory", "512m",
                "-e", "NVIDIA_DRIVER_CAPABILITIES=compute,utility", "--entrypoint", "nvidia-smi"]
    run = sh(["docker", "run", "--rm"] + hardened + [image, "-L"], timeout=180)
    seen = len(re.findall(r"^GPU \d+:", run["out"], re.M))
    out["run"] = run
    out["gpus_in_container"] = seen
    out["ok"] = run["rc"] == 0 and seen == expected
    if daemon_reload and out["ok"] and shutil.which("systemctl"):
        name = f"gpu-verify-{os.getpid()}"
        start = sh(["docker", "run", "-d", "--name", name] + hardened + [image, "-l", "5"], timeout=120)
        try:
            time.sleep(3)
            before = sh(["docker", "exec", name, "nvidia-smi", "-L"])
            reload_ = sh(["systemctl", "daemon-reload"], timeout=120)
            time.sleep(3)
            after = sh(["docker", "exec", name, "nvidia-smi", "-L"])
        finally:
            sh(["docker", "rm", "-f", name])
        out["daemon_reload"] = {"start": start, "before": before, "reload": reload_, "after": after,
                                "ok": after["rc"] == 0 and "Failed to initialize NVML" not in after["out"] + after["err"]}
        out["ok"] = out["ok"] and out["daemon_reload"]["ok"]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.environ.get("OUT", "."), f"gpu-verify-{socket.gethostname()}.json"))
    ap.add_argument("--image", help="image for the container checks (default: a minimal glibc image built here)")
    ap.add_argument("--no-docker", action="store_true")
    ap.add_argument("--no-daemon-reload", action="store_true", help="skip the systemctl daemon-reload check")
    args = ap.parse_args()
    report = {"tool": "tts-ha scripts/gpu-verify.py", "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "uid": os.geteuid(),
              "checks": {}}
    checks = report["checks"]

    def step(name, fn, *a):
        t = time.monotonic()
        try:
            checks[name] = fn(*a)
        except Exception as exc:  # one broken check never loses the report
            checks[name] = {"ok": False, "why": f"check crashed: {exc!r}"}
        checks[name]["seconds"] = round(time.monotonic() - t, 2)
        print(f"{name:14} ok={checks[name].get('ok')} ({checks[name]['seconds']} s)", file=sys.stderr)
        return checks[name]

    fact = step("fact", check_fact).get("fact", {})
    pci = step("pci", check_pci)
    step("fabricmanager", check_fabricmanager, pci)
    expected = pci.get("gpu_count", 0)
    step("cuda", check_cuda, expected)
    step("versions", check_versions, fact)
    step("secure_boot", check_secure_boot)
    step("toolkit", check_toolkit)
    if args.no_docker:
        checks["docker"] = {"ok": None, "why": "--no-docker"}
    else:
        step("docker", check_docker, args.image, expected, not args.no_daemon_reload)
    report["duration_s"] = round(time.monotonic() - START, 1)
    report["summary"] = {k: [n for n, c in checks.items() if c.get("ok") is v]
                         for k, v in (("passed", True), ("failed", False), ("not_applicable", None))}
    report["ok"] = not report["summary"]["failed"]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(report, fh, indent=2, default=str)
    print(f"report: {args.out} ok={report['ok']} failed={report['summary']['failed']} "
          f"({report['duration_s']} s)", file=sys.stderr)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
