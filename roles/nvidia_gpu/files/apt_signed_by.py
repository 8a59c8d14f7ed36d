#!/usr/bin/env python3
"""Print {"<uri> <suite>": "<signed-by>"} for every apt source on this host (stdlib only).

Arguments: file names (basenames) in /etc/apt/sources.list.d to leave out (the role's own).
NVIDIA_GPU_APT_ROOT (tests only) reads <root>/etc/apt instead of /etc/apt.

apt refuses *every* source when two sources of one URI and suite disagree on Signed-By
("Conflicting values set for option Signed-By"), an empty value included. nvidia_gpu uses this
to give its debian-nonfree source the same Signed-By as the host's own Debian source.
"""
import glob
import json
import os
import re
import sys


def norm(uri):
    return uri.rstrip("/")


def one_line(path, out):
    for line in open(path, errors="replace"):
        line = line.split("#", 1)[0].strip()
        m = re.match(r"^(deb|deb-src)\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
        if not m:
            continue
        opts = dict(o.split("=", 1) for o in (m.group(2) or "").strip("[] \t").split() if "=" in o)
        out.setdefault(f"{norm(m.group(3))} {m.group(4)}", opts.get("signed-by", ""))


def deb822(path, out):
    for stanza in re.split(r"\n\s*\n", open(path, errors="replace").read()):
        fields, key = {}, None
        for line in stanza.splitlines():
            if line.startswith("#"):
                continue
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                out.setdefault(f"{norm(uri)} {suite}", fields.get("signed-by", ""))


def main():
    out, skip = {}, set(sys.argv[1:])
    apt = os.path.join(os.environ.get("NVIDIA_GPU_APT_ROOT", "/"), "etc/apt")
    for path in [f"{apt}/sources.list"] + sorted(glob.glob(f"{apt}/sources.list.d/*.list")):
        if os.path.basename(path) in skip:
            continue
        try:
            one_line(path, out)
        except OSError:
            pass
    for path in sorted(glob.glob(f"{apt}/sources.list.d/*.sources")):
        if os.path.basename(path) in skip:
            continue
        try:
            deb822(path, out)
        except OSError:
            pass
    print(json.dumps(out))


if __name__ == "__main__":
    main()
