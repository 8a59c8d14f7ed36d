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

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }

FORCE=0
TAG=""
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "build.sh: unknown option $arg" >&2; usage >&2; exit 2 ;;
    *) if [[ -n "$TAG" ]]; then echo "build.sh: only one TAG" >&2; exit 2; fi; TAG="$arg" ;;
  esac
done

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VERSION="$(sed -n 's/^piper-tts\(\[[a-z,]*\]\)\{0,1\}==\([^ ]*\)$/\2/p' "$HERE/requirements.txt")"
[[ -n "$VERSION" ]] || { echo "build.sh: cannot read the piper-tts pin from requirements.txt" >&2; exit 1; }
TAG="${TAG:-tts-ha/piper-http:$VERSION}"
BASE_IMAGE="${BASE_IMAGE:-tts-ha/debian:bookworm}"
ONNXRUNTIME_PACKAGE="${ONNXRUNTIME_PACKAGE:-onnxruntime}"
ONNXRUNTIME_VERSION="${ONNXRUNTIME_VERSION:-1.31.1}"
DOCKER="${DOCKER:-docker}"
if [[ -z "${PIP:-}" ]]; then
  if [[ -x "$REPO/.venv/bin/pip" ]]; then PIP="$REPO/.venv/bin/pip"; else PIP="python3 -m pip"; fi
fi

log() { printf 'build.sh: %s\n' "$*" >&2; }

case "$ONNXRUNTIME_PACKAGE" in
  onnxruntime|onnxruntime-gpu) ;;
  *) log "ONNXRUNTIME_PACKAGE must be onnxruntime or onnxruntime-gpu (got $ONNXRUNTIME_PACKAGE)"; exit 2 ;;
esac

PROBE_LIB="$REPO/module_utils/tts_probe.py"
PROBE_BIN="$REPO/bin/tts-synthesis-check"

# Fingerprint of everything that goes into the image (recorded as a label, compared on cache hits).
sources_sha() {
  (cd "$HERE" && cat Dockerfile requirements.txt; cat "$PROBE_LIB" "$PROBE_BIN" 2>/dev/null
   echo "$BASE_IMAGE $ONNXRUNTIME_PACKAGE==$ONNXRUNTIME_VERSION") | sha256sum | cut -d' ' -f1
}
SOURCES_SHA="$(sources_sha)"

if [[ "$FORCE" == 0 ]] && $DOCKER image inspect "$TAG" >/dev/null 2>&1; then
  built_sha="$($DOCKER image inspect -f '{{ index .Config.Labels "io.tts-ha.sources-sha256" }}' "$TAG" 2>/dev/null || true)"
  if [[ "$built_sha" != "$SOURCES_SHA" ]]; then
    log "warning: $TAG exists but was built from other sources (Dockerfile, requirements or probe" \
        "changed); keeping it (cache by tag) - run with --force to rebuild"
  fi
  log "$TAG already exists; nothing to do (use --force to rebuild)"
  exit 0
fi

if ! $DOCKER image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  log "base image $BASE_IMAGE not found locally (build it first; docker pull is not available offline)"
  exit 1
fi

for f in "$PROBE_LIB" "$PROBE_BIN"; do
  [[ -f "$f" ]] || { log "shared probe file $f is missing (the image HEALTHCHECK needs it)"; exit 1; }
done

BUILD_DIR="$REPO/build"
WHEELHOUSE="$BUILD_DIR/wheelhouse/piper-http"
CONTEXT="$BUILD_DIR/piper-http-context"
mkdir -p "$WHEELHOUSE"

# One build at a time per checkout (the staged context is shared).
exec 9>"$BUILD_DIR/.piper-http-build.lock"
flock -w 1800 9 || { log "timed out waiting for another piper-http build"; exit 1; }

# Re-check under the lock: a concurrent run may have just built the tag.
if [[ "$FORCE" == 0 ]] && $DOCKER image inspect "$TAG" >/dev/null 2>&1; then
  log "$TAG was built meanwhile; nothing to do"
  exit 0
fi

# ---- 1. wheelhouse (cached by a stamp of everything that selects wheels) --------------------
PLATFORM_ARGS=(--only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_27_x86_64
  --platform manylinux_2_28_x86_64 --platform linux_x86_64 --platform any)
ORT_SPEC="${ONNXRUNTIME_PACKAGE}==${ONNXRUNTIME_VERSION}"
STAMP_VALUE="$( { cat "$HERE/requirements.txt"; echo "$ORT_SPEC"; echo "${PLATFORM_ARGS[*]}"; } | sha256sum | cut -d' ' -f1)"
STAMP_FILE="$WHEELHOUSE/.stamp-$ONNXRUNTIME_PACKAGE"
if [[ -f "$STAMP_FILE" && "$(cat "$STAMP_FILE")" == "$STAMP_VALUE" ]]; then
  log "wheelhouse up to date ($WHEELHOUSE)"
else
  log "downloading wheels into $WHEELHOUSE"
  $PIP download --disable-pip-version-check --quiet --dest "$WHEELHOUSE" "${PLATFORM_ARGS[@]}" \
    -r "$HERE/requirements.txt" "$ORT_SPEC"
  echo "$STAMP_VALUE" > "$STAMP_FILE"
fi

# The upstream server file as shipped in the wheel (recorded as a label; the image installs the
# wheel unchanged, so the installed file has this digest).
PIPER_WHEEL="$(ls "$WHEELHOUSE"/piper_tts-"$VERSION"-*.whl 2>/dev/null | head -n 1)"
[[ -n "$PIPER_WHEEL" ]] || { log "no piper_tts-$VERSION wheel in $WHEELHOUSE"; exit 1; }
UPSTREAM_SHA256="$(python3 -c 'import hashlib, sys, zipfile
print(hashlib.sha256(zipfile.ZipFile(sys.argv[1]).read("piper/http_server.py")).hexdigest())' "$PIPER_WHEEL")"

# ---- 2. staged context -----------------------------------------------------------------------
rm -rf "$CONTEXT"
mkdir -p "$CONTEXT/wheelhouse" "$CONTEXT/probe"
cp "$HERE/Dockerfile" "$HERE/requirements.txt" "$CONTEXT/"
# hard links when possible: the wheelhouse is ~150 MB
cp -l "$WHEELHOUSE"/*.whl "$CONTEXT/wheelhouse/" 2>/dev/null || cp "$WHEELHOUSE"/*.whl "$CONTEXT/wheelhouse/"
cp "$PROBE_LIB" "$CONTEXT/probe/tts_probe.py"
cp "$PROBE_BIN" "$CONTEXT/probe/tts-synthesis-check"
printf '%s\n' '**/__pycache__' '**/*.pyc' > "$CONTEXT/.dockerignore"

# ---- 3. docker build -------------------------------------------------------------------------
log "building $TAG from $BASE_IMAGE (piper-tts[http]==$VERSION, $ORT_SPEC)"
$DOCKER build \
  --build-arg "BASE_IMAGE=$BASE_IMAGE" \
  --build-arg "ONNXRUNTIME_PACKAGE=$ONNXRUNTIME_PACKAGE" \
  --build-arg "ONNXRUNTIME_VERSION=$ONNXRUNTIME_VERSION" \
  --build-arg "VERSION=$VERSION" \
  --build-arg "UPSTREAM_SHA256=$UPSTREAM_SHA256" \
  --label "io.tts-ha.sources-sha256=$SOURCES_SHA" \
  --label "io.tts-ha.source-revision=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  -t "$TAG" "$CONTEXT"

SIZE="$($DOCKER image inspect -f '{{.Size}}' "$TAG")"
log "built $TAG ($((SIZE / 1024 / 1024)) MiB)"
