# shellcheck shell=bash
# The steps every image build script of the kit shares (images/<name>/build.sh sources this):
# arguments, cache by tag, wheelhouse, staged context, docker build. The script sets first:
#   HERE             its own directory (Dockerfile, requirements.txt)
#   IMAGE_NAME       e.g. tts-server: build/wheelhouse/<name>/, build/<name>-context/, the lock
#   image_version    a function that prints the default tag's version (or fails saying why)
#   IMAGE_APP_DIR    optional: a directory of HERE whose *.py files go into the image
#   image_build_args optional function, run after the wheelhouse: one extra `docker build`
#                    argument per line (VERSION and the ONNX Runtime ones are passed already)
# and calls build_image "$@". Environment: see the calling script's header.
set -euo pipefail

log() { printf 'build.sh: %s\n' "$*" >&2; }
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

build_image() {
  local force=0 tag="" arg
  for arg in "$@"; do
    case "$arg" in
      --force) force=1 ;;
      -h|--help) usage; exit 0 ;;
      -*) echo "build.sh: unknown option $arg" >&2; usage >&2; exit 2 ;;
      *) if [[ -n "$tag" ]]; then echo "build.sh: only one TAG" >&2; exit 2; fi; tag="$arg" ;;
    esac
  done

  local repo version
  repo="$(cd "$HERE/../.." && pwd)"
  version="$(image_version)"
  TAG="${tag:-tts-ha/$IMAGE_NAME:$version}"
  VERSION="$version"
  REPO="$repo"
  local base_image="${BASE_IMAGE:-tts-ha/debian:bookworm}"
  local ort_package="${ONNXRUNTIME_PACKAGE:-onnxruntime}" ort_version="${ONNXRUNTIME_VERSION:-1.31.1}"
  local docker="${DOCKER:-docker}" pip="${PIP:-}"
  if [[ -z "$pip" ]]; then
    if [[ -x "$repo/.venv/bin/pip" ]]; then pip="$repo/.venv/bin/pip"; else pip="python3 -m pip"; fi
  fi
  case "$ort_package" in
    onnxruntime|onnxruntime-gpu) ;;
    *) log "ONNXRUNTIME_PACKAGE must be onnxruntime or onnxruntime-gpu (got $ort_package)"; exit 2 ;;
  esac
  local probe_lib="$repo/module_utils/tts_probe.py" probe_bin="$repo/bin/tts-synthesis-check"
  # Fingerprint of everything that goes into the image (recorded as a label, compared on cache hits).
  local sources_sha
  sources_sha="$( (cd "$HERE" && cat Dockerfile requirements.txt
                   if [[ -n "${IMAGE_APP_DIR:-}" ]]; then cat "$IMAGE_APP_DIR"/*.py; fi
                   cat "$probe_lib" "$probe_bin" 2>/dev/null
                   echo "$base_image $ort_package==$ort_version") | sha256sum | cut -d' ' -f1)"

  if [[ "$force" == 0 ]] && $docker image inspect "$TAG" >/dev/null 2>&1; then
    local built_sha
    built_sha="$($docker image inspect -f '{{ index .Config.Labels "io.tts-ha.sources-sha256" }}' "$TAG" 2>/dev/null || true)"
    if [[ "$built_sha" != "$sources_sha" ]]; then
      log "warning: $TAG exists but was built from other sources (Dockerfile, requirements, app or probe" \
          "changed); keeping it (cache by tag) - run with --force to rebuild"
    fi
    log "$TAG already exists; nothing to do (use --force to rebuild)"
    exit 0
  fi

  if ! $docker image inspect "$base_image" >/dev/null 2>&1; then
    log "base image $base_image not found locally (build it first; docker pull is not available offline)"
    exit 1
  fi
  local f
  for f in "$probe_lib" "$probe_bin"; do
    [[ -f "$f" ]] || { log "shared probe file $f is missing (the image HEALTHCHECK needs it)"; exit 1; }
  done

  local build_dir="$repo/build"
  WHEELHOUSE="$build_dir/wheelhouse/$IMAGE_NAME"
  local context="$build_dir/$IMAGE_NAME-context"
  mkdir -p "$WHEELHOUSE"

  # One build at a time per checkout (the staged context is shared).
  exec 9>"$build_dir/.$IMAGE_NAME-build.lock"
  flock -w 1800 9 || { log "timed out waiting for another $IMAGE_NAME build"; exit 1; }
  # Re-check under the lock: a concurrent run may have just built the tag.
  if [[ "$force" == 0 ]] && $docker image inspect "$TAG" >/dev/null 2>&1; then
    log "$TAG was built meanwhile; nothing to do"
    exit 0
  fi

  # ---- 1. wheelhouse (cached by a stamp of everything that selects wheels) ------------------
  local platform_args=(--only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 --abi abi3
    --abi none --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_27_x86_64
    --platform manylinux_2_28_x86_64 --platform linux_x86_64 --platform any)
  local ort_spec="$ort_package==$ort_version" stamp_value stamp_file="$WHEELHOUSE/.stamp-$ort_package"
  stamp_value="$( { cat "$HERE/requirements.txt"; echo "$ort_spec"; echo "${platform_args[*]}"; } | sha256sum | cut -d' ' -f1)"
  if [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp_value" ]]; then
    log "wheelhouse up to date ($WHEELHOUSE)"
  else
    log "downloading wheels into $WHEELHOUSE"
    $pip download --disable-pip-version-check --quiet --dest "$WHEELHOUSE" "${platform_args[@]}" \
      -r "$HERE/requirements.txt" "$ort_spec"
    echo "$stamp_value" > "$stamp_file"
  fi
  local extra=() extra_lines=""
  if declare -F image_build_args >/dev/null; then
    extra_lines="$(image_build_args)"
    if [[ -n "$extra_lines" ]]; then mapfile -t extra <<< "$extra_lines"; fi
  fi

  # ---- 2. staged context ---------------------------------------------------------------------
  rm -rf "$context"
  mkdir -p "$context/wheelhouse" "$context/probe"
  cp "$HERE/Dockerfile" "$HERE/requirements.txt" "$context/"
  if [[ -n "${IMAGE_APP_DIR:-}" ]]; then
    mkdir -p "$context/$IMAGE_APP_DIR"
    cp "$HERE/$IMAGE_APP_DIR"/*.py "$context/$IMAGE_APP_DIR/"
  fi
  # hard links when possible: a wheelhouse is 130-150 MB
  cp -l "$WHEELHOUSE"/*.whl "$context/wheelhouse/" 2>/dev/null || cp "$WHEELHOUSE"/*.whl "$context/wheelhouse/"
  cp "$probe_lib" "$context/probe/tts_probe.py"
  cp "$probe_bin" "$context/probe/tts-synthesis-check"
  printf '%s\n' '**/__pycache__' '**/*.pyc' > "$context/.dockerignore"

  # ---- 3. docker build -----------------------------------------------------------------------
  log "building $TAG from $base_image ($ort_spec)"
  $docker build \
    --build-arg "BASE_IMAGE=$base_image" \
    --build-arg "ONNXRUNTIME_PACKAGE=$ort_package" \
    --build-arg "ONNXRUNTIME_VERSION=$ort_version" \
    --build-arg "VERSION=$VERSION" \
    "${extra[@]}" \
    --label "io.tts-ha.sources-sha256=$sources_sha" \
    --label "io.tts-ha.source-revision=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    -t "$TAG" "$context"

  local size
  size="$($docker image inspect -f '{{.Size}}' "$TAG")"
  log "built $TAG ($((size / 1024 / 1024)) MiB)"
}
