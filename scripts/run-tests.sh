#!/usr/bin/env bash
# `make test`: every stage runs even after a failure, so one run shows everything that is
# broken; the last line is the summary CI reads. Arguments: the molecule scenarios.
set -uo pipefail
cd "$(dirname "$0")/.."
lock="flock /tmp/tts-ha-docker.lock"
passed=0 failed=0 failures=()
logs=$(mktemp -d)

stage() {
  local name=$1; shift
  local start=$SECONDS
  echo "=== [$name] $*"
  if "$@" 2>&1 | tee "$logs/$name.log"; then
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
# CI shows only the tail of the output: repeat why each failed stage failed, briefly.
for name in "${failures[@]}"; do
  echo "--- why $name failed:"
  grep -E '^(FAILED |E  |ERROR )|fatal: |FAILED! =>|AssertionError' "$logs/$name.log" | cut -c1-200 | tail -n 8
done
[ $failed -eq 0 ] || echo "failed stages: ${failures[*]}"
echo "stages: $passed passed, $failed failed"
[ $failed -eq 0 ]
