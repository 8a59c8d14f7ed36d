#!/usr/bin/env bash
# Build the tts-server image offline.
#
#   images/tts-server/build.sh [--force] [TAG]
#
# TAG defaults to tts-ha/tts-server:<tts_server.__version__>. When TAG already exists locally the
# script does nothing (cache by tag) unless --force is given.
#
# Steps: 1) `pip download` a wheelhouse on the controller into build/wheelhouse/tts-server/
# (manylinux x86_64 wheels for CPython 3.11, Debian bookworm's python3; cached by a stamp of the
# requirement set), 2) stage a context in build/tts-server-context/ with the app, the wheelhouse
# and the shared probe (module_utils/tts_probe.py + bin/tts-synthesis-check), 3) docker build
# with --build-arg BASE_IMAGE (pip inside the build is --no-index).
#
# Environment:
#   BASE_IMAGE            base image (default tts-ha/debian:bookworm)
#   ONNXRUNTIME_PACKAGE   onnxruntime (CPU, default) or onnxruntime-gpu (CUDA hosts)
#   ONNXRUNTIME_VERSION   default 1.31.1
#   PIP                   pip used for the wheelhouse (default .venv/bin/pip, else python3 -m pip)
#   DOCKER                docker CLI (default docker)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IMAGE_NAME=tts-server
IMAGE_APP_DIR=tts_server
image_version() {
  local version
  version="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$HERE/tts_server/__init__.py")"
  [[ -n "$version" ]] || { echo "build.sh: cannot read __version__ from tts_server/__init__.py" >&2; return 1; }
  echo "$version"
}
# shellcheck source=../lib/build-image.sh
source "$HERE/../lib/build-image.sh"
build_image "$@"
