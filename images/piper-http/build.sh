#!/usr/bin/env bash
# Build the piper-http image offline: Piper's own HTTP server, unmodified.
#
#   images/piper-http/build.sh [--force] [TAG]
#
# TAG defaults to tts-ha/piper-http:<piper-tts version from requirements.txt>. When TAG already
# exists locally the script does nothing (cache by tag) unless --force is given.
#
# Steps: 1) `pip download` a wheelhouse on the controller into build/wheelhouse/piper-http/
# (manylinux x86_64 wheels for CPython 3.11, Debian bookworm's python3; cached by a stamp of the
# requirement set), 2) stage a context in build/piper-http-context/ with the wheelhouse and the
# shared probe (module_utils/tts_probe.py + bin/tts-synthesis-check, for the HEALTHCHECK),
# 3) docker build with --build-arg BASE_IMAGE (pip inside the build is --no-index).
#
# Environment:
#   BASE_IMAGE            base image (default tts-ha/debian:bookworm)
#   ONNXRUNTIME_PACKAGE   onnxruntime (CPU, default) or onnxruntime-gpu (the server also needs --cuda)
#   ONNXRUNTIME_VERSION   default 1.31.1
#   PIP                   pip used for the wheelhouse (default .venv/bin/pip, else python3 -m pip)
#   DOCKER                docker CLI (default docker)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IMAGE_NAME=piper-http
image_version() {
  local version
  version="$(sed -n 's/^piper-tts\(\[[a-z,]*\]\)\{0,1\}==\([^ ]*\)$/\2/p' "$HERE/requirements.txt")"
  [[ -n "$version" ]] || { echo "build.sh: cannot read the piper-tts pin from requirements.txt" >&2; return 1; }
  echo "$version"
}
# The upstream server file as shipped in the wheel (a build argument the Dockerfile records; the
# image installs the wheel unchanged, so the installed file has this digest).
image_build_args() {
  local wheel digest
  wheel="$(ls "$WHEELHOUSE"/piper_tts-"$VERSION"-*.whl 2>/dev/null | head -n 1)"
  [[ -n "$wheel" ]] || { log "no piper_tts-$VERSION wheel in $WHEELHOUSE"; return 1; }
  digest="$(python3 -c 'import hashlib, sys, zipfile
print(hashlib.sha256(zipfile.ZipFile(sys.argv[1]).read("piper/http_server.py")).hexdigest())' "$wheel")" || return 1
  printf '%s\n' --build-arg "UPSTREAM_SHA256=$digest"
}
# shellcheck source=../lib/build-image.sh
source "$HERE/../lib/build-image.sh"
build_image "$@"
