#!/usr/bin/env bash
# `make test`: every stage runs even after a failure, so one run shows everything that is
# broken; the last line is the summary CI reads. Arguments: the molecule scenarios.
set -uo pipefail
cd "$(dirname "$0")/.."
lock="flock /tmp/tts-ha-docker.lock"
passed=0 failed=0 failures=()

stage() {
  local name=$1; shift
  local start=$SECONDS
  echo "=== [$name] $*"
  if "$@"; then
    passed=$((passed + 1)); echo "=== [$name] ok ($((SECONDS - start)) s)"
  else
    failed=$((failed + 1)); failures+=("$name"); echo "=== [$name] FAILED ($((SECONDS - start)) s)"
  fi
}

stage yamllint yamllint --strict .
stage ansible-lint ansible-lint --profile production
stage pytest pytest
for s in "$@"; do
  stage "molecule:$s" $lock molecule test -s "$s"
done

echo
[ $failed -eq 0 ] || echo "failed stages: ${failures[*]}"
echo "stages: $passed passed, $failed failed"
[ $failed -eq 0 ]
