#!/usr/bin/env python3
"""Build the GPU stand-ins inside a molecule node (stdlib + dpkg-deb + gpg, no network).

  <repo>/gpgkey                          armored public key of a throw-away signing key
  <repo>/debian/dists/{R,R-updates}/...  signed Debian-layout repository: nvidia-driver,
                                         nvidia-kernel-dkms, nvidia-smi, firmware-misc-nonfree,
                                         linux-headers-<kernel>, linux-headers-<flavour>
                                         (no nvidia-tesla-* : that branch must be refused)
  <repo>/libnvidia-container/stable/deb/<arch>/   signed flat repository like NVIDIA's:
                                         nvidia-container-toolkit (nvidia-ctk, runtime, hook, cli)
                                         (the hook injects the stand-in nvidia-smi, needs
                                         busybox-static on the node)
  <root>/sys/bus/pci/devices/...         a sysfs with two NVIDIA 3D controllers
  <root>/proc/                           where the stand-in DKMS package "loads" the module

Nothing here pretends to be a driver: the binaries log what they were asked and answer like
the real ones do, so the role's whole GPU path runs on a CPU-only machine.
"""
import argparse
import email.utils
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path

DRIVER = "550.999.01"
TOOLKIT = "1.17.999"
# The same derivation as the role (vars/main.yml nvidia_gpu_kernel_flavour_regex).
FLAVOUR = re.compile(r"^[0-9]+\.[0-9]+(\.[0-9]+)?(\+bpo)?-([0-9]+-)?([a-z][a-z0-9-]*)$")

# nvidia-smi stand-in: POSIX sh (runs on the node and in a busybox container), answers the
# queries the fact, the role and gpu-verify.py make from a CSV in nvidia-smi's own format,
# including a warning line and [N/A] fields. NVIDIA_STANDIN_SMI_FILE points it elsewhere.
SMI = r"""#!/bin/sh
# tts-ha stand-in nvidia-smi (molecule nvidia_gpu_standin): no GPU behind it.
data="${NVIDIA_STANDIN_SMI_FILE:-/etc/nvidia-standin/gpus.csv}"
[ -r "$data" ] || { echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver." >&2; exit 9; }
gpu_lines() { grep -E '^[0-9]+,' "$data"; }
case "$*" in
  *--query-gpu=index,name,uuid,driver_version,memory.total,pci.bus_id*)
    cat "$data" ;;
  *--query-gpu=index,name,driver_version,memory.total*)
    gpu_lines | while IFS=, read -r idx name uuid drv mem bus; do
      echo "$idx,$name,$drv,$mem MiB"; done ;;
  -L|*" -L"*)
    gpu_lines | while IFS=, read -r idx name uuid drv mem bus; do
      echo "GPU $idx:$name (UUID:$uuid)"; done ;;
  *)
    echo "tts-ha stand-in nvidia-smi: $*" ;;
esac
"""

CTK = """#!/bin/sh
# tts-ha stand-in nvidia-ctk: logs its arguments.
mkdir -p /var/log/nvidia-standin
echo "$*" >> /var/log/nvidia-standin/ctk.log
case "$1" in --version) echo "NVIDIA Container Toolkit CLI version %s (stand-in)" ;; esac
exit 0
""" % TOOLKIT

RUNTIME = """#!/bin/sh
# tts-ha stand-in nvidia-container-runtime: the real one adds the hook and calls runc.
for r in /usr/sbin/runc /usr/bin/runc; do [ -x "$r" ] && exec "$r" "$@"; done
echo "stand-in nvidia-container-runtime: no runc" >&2; exit 1
"""

HOOK = """#!/usr/bin/env python3
# tts-ha stand-in nvidia-container-runtime-hook: dockerd calls it for --gpus (prestart).
# Like the real hook it puts nvidia-smi into the container (here: the stand-in script, busybox
# for its shell, and its data), and it records which devices the container asked for.
import json, os, shutil, sys, time
os.makedirs("/var/log/nvidia-standin", exist_ok=True)
entry = {"t": time.time(), "argv": sys.argv[1:]}
try:
    state = json.load(sys.stdin)
    with open(os.path.join(state["bundle"], "config.json")) as fh:
        config = json.load(fh)
    env = config["process"].get("env", [])
    entry["visible_devices"] = [e.split("=", 1)[1] for e in env if e.startswith("NVIDIA_VISIBLE_DEVICES=")]
    entry["capabilities"] = [e.split("=", 1)[1] for e in env if e.startswith("NVIDIA_DRIVER_CAPABILITIES=")]
    root = os.path.join(state["bundle"], config["root"]["path"])
    injected = []
    for src, dest in (("/bin/busybox", "bin/busybox"), ("/usr/bin/nvidia-smi", "usr/bin/nvidia-smi"),
                      ("/etc/nvidia-standin/gpus.csv", "etc/nvidia-standin/gpus.csv")):
        target = os.path.join(root, dest)
        if not os.path.exists(target):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(src, target)
            injected.append(dest)
    for applet in ("sh", "grep", "cat"):
        link = os.path.join(root, "bin", applet)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
            injected.append("bin/" + applet)
    entry["injected"] = injected
except Exception as exc:  # a prestart hook that fails would fail the container
    entry["error"] = repr(exc)
with open("/var/log/nvidia-standin/hook.log", "a") as fh:
    fh.write(json.dumps(entry) + "\\n")
"""

CLI = """#!/bin/sh
# tts-ha stand-in nvidia-container-cli
case "$*" in
  *info*) echo "NVRM version:   %s"; echo "CUDA version:   12.4"; echo; echo "Device Index:   0" ;;
  *) echo "stand-in nvidia-container-cli: $*" ;;
esac
""" % DRIVER


def run(*cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


def build_deb(outdir, name, version, files=None, source=None, depends=None, postinst=None,
              postrm=None, description="tts-ha GPU stand-in"):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "DEBIAN").mkdir()
        control = [f"Package: {name}", f"Version: {version}", "Architecture: all",
                   "Maintainer: tts-ha <standin@tts-ha.invalid>", "Section: non-free/misc",
                   "Priority: optional"]
        if source:
            control.append(f"Source: {source}")
        if depends:
            control.append("Depends: " + ", ".join(depends))
        control.append(f"Description: {description}\n stand-in package for the tts-ha molecule GPU scenario")
        (root / "DEBIAN/control").write_text("\n".join(control) + "\n")
        for script, body in (("postinst", postinst), ("postrm", postrm)):
            if body:
                (root / "DEBIAN" / script).write_text("#!/bin/sh\nset -e\n" + body)
                (root / "DEBIAN" / script).chmod(0o755)
        for path, (content, mode) in (files or {}).items():
            dest = root / path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(content)
            dest.chmod(mode)
        deb = outdir / f"{name}_{version}_all.deb"
        run("dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb))
        return deb


def packages_index(debs, base):
    entries = []
    for deb in sorted(debs):
        data = deb.read_bytes()
        fields = run("dpkg-deb", "--field", str(deb)).rstrip("\n")
        entries.append(f"{fields}\nFilename: {deb.relative_to(base)}\nSize: {len(data)}\n"
                       f"SHA256: {hashlib.sha256(data).hexdigest()}\n")
    return "\n".join(entries)


def release(directory, files, gnupg, extra):
    lines = ["Origin: tts-ha-standin", "Label: tts-ha-standin",
             f"Date: {email.utils.formatdate(usegmt=True)}"] + extra + ["SHA256:"]
    for rel in files:
        data = (directory / rel).read_bytes()
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {rel}")
    (directory / "Release").write_text("\n".join(lines) + "\n")
    env = dict(os.environ, GNUPGHOME=str(gnupg))
    run("gpg", "--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", "",
        "--clearsign", "-o", str(directory / "InRelease"), str(directory / "Release"), env=env)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", default="/srv/standin-repo")
    ap.add_argument("--gnupg", default="/srv/standin-gnupg")
    ap.add_argument("--root", default="/srv/gpu-standin")
    ap.add_argument("--release", default="bookworm")
    args = ap.parse_args()
    repo, gnupg, root = Path(args.repo), Path(args.gnupg), Path(args.root)
    arch = run("dpkg", "--print-architecture").strip()
    kernel = os.uname().release
    match = FLAVOUR.match(kernel)
    flavour = match.group(4) if match else "standin"
    for d in (repo, gnupg, root):
        shutil.rmtree(d, ignore_errors=True)
    gnupg.mkdir(mode=0o700, parents=True)
    env = dict(os.environ, GNUPGHOME=str(gnupg))
    run("gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key",
        "tts-ha GPU stand-in <standin@tts-ha.invalid>", "rsa2048", "sign", "never", env=env)
    repo.mkdir(parents=True)
    (repo / "gpgkey").write_text(run("gpg", "--armor", "--export", env=env))

    # --- Debian-layout repository (the role's debian-nonfree source) ---------------------
    pool = repo / "debian/pool/non-free"
    pool.mkdir(parents=True)
    drv_version = f"{DRIVER}-1"
    proc_version = root / "proc/driver/nvidia/version"
    debs = [
        build_deb(pool, "nvidia-driver", drv_version, source="nvidia-graphics-drivers",
                  depends=[f"nvidia-kernel-dkms (= {drv_version})", f"nvidia-smi (= {drv_version})"]),
        # "Loading" the module: what DKMS + modprobe would make appear under /proc.
        build_deb(pool, "nvidia-kernel-dkms", drv_version, source="nvidia-graphics-drivers",
                  postinst=f"mkdir -p {proc_version.parent}\n"
                           f"echo 'NVRM version: NVIDIA UNIX x86_64 Kernel Module  {DRIVER}  stand-in' > {proc_version}\n",
                  postrm=f"rm -f {proc_version}\n"),
        build_deb(pool, "nvidia-smi", drv_version, source="nvidia-graphics-drivers",
                  files={"/usr/bin/nvidia-smi": (SMI, 0o755),
                         "/etc/nvidia-standin/gpus.csv": (
                             "WARNING: infoROM is corrupted at gpu 00000000:18:00.0\n"
                             f"0, NVIDIA H100 80GB HBM3, GPU-11111111-2222-3333-4444-555555555555, {DRIVER}, 81559, 00000000:18:00.0\n"
                             f"1, NVIDIA H100 80GB HBM3, [N/A], {DRIVER}, [N/A], 00000000:2A:00.0\n", 0o644)}),
        build_deb(pool, "firmware-misc-nonfree", "20230625-999", source="firmware-nonfree"),
        build_deb(pool, f"linux-headers-{kernel}", "999", source="linux"),
        build_deb(pool, f"linux-headers-{flavour}", "999", source="linux-signed-amd64",
                  depends=[f"linux-headers-{kernel}"]),
    ]
    base = repo / "debian"
    for suite in (args.release, f"{args.release}-updates"):
        dist = base / "dists" / suite
        files = []
        for comp in ("contrib", "non-free", "non-free-firmware"):
            rel = f"{comp}/binary-{arch}/Packages"
            (dist / rel).parent.mkdir(parents=True)
            # The release itself carries the packages; -updates is empty (as it often is).
            (dist / rel).write_text(packages_index(debs, base) if comp == "non-free" and suite == args.release else "")
            files.append(rel)
        release(dist, files, gnupg, [f"Suite: {suite}", f"Codename: {suite}", f"Architectures: {arch}",
                                     "Components: contrib non-free non-free-firmware"])

    # --- Flat repository like nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) -----
    flat = repo / "libnvidia-container/stable/deb" / arch
    flat.mkdir(parents=True)
    toolkit = build_deb(flat, "nvidia-container-toolkit", f"{TOOLKIT}-1", source="nvidia-container-toolkit", files={
        "/usr/bin/nvidia-ctk": (CTK, 0o755),
        "/usr/bin/nvidia-container-runtime": (RUNTIME, 0o755),
        "/usr/bin/nvidia-container-runtime-hook": (HOOK, 0o755),
        "/usr/bin/nvidia-container-cli": (CLI, 0o755)})
    (flat / "Packages").write_text(packages_index([toolkit], flat))
    release(flat, ["Packages"], gnupg, [f"Architectures: {arch}"])

    # --- sysfs/proc roots ----------------------------------------------------------------
    for addr in ("0000:18:00.0", "0000:2a:00.0"):
        dev = root / "sys/bus/pci/devices" / addr
        dev.mkdir(parents=True)
        (dev / "vendor").write_text("0x10de\n")
        (dev / "class").write_text("0x030200\n")
        (dev / "device").write_text("0x2330\n")
    (root / "proc").mkdir(exist_ok=True)
    (root / "flavour").write_text(flavour + "\n")
    print(textwrap.dedent(f"""\
        stand-ins built: arch={arch} kernel={kernel} flavour={flavour}
        repo={repo} root={root}"""))


if __name__ == "__main__":
    main()
