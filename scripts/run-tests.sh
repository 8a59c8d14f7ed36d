#!/usr/bin/env bash
# `make test`: every stage runs even after a failure, so one run shows everything that is
# broken; the last line is the summary CI reads. Arguments: the molecule scenarios.
#
# Two lanes at once, then the lab tests alone (docs/measurements.md, "Tests"):
#   checks lane: yamllint, ansible-lint, the unit tests (pytest -m "not lab"), then jobs from the queue;
#   engine lane: jobs from the queue at once;
#   the queue: the molecule scenarios, then the private pytest lab's bring-up with the reference
#   deployment (tests/lab/boot.py) last: a lab that is up runs its probers' syntheses, CPU the
#   other jobs need, so it comes up while the last scenario runs;
#   last, the lab tests (pytest -m lab): their drills time failovers and load the 2 cores with
#   speech, so nothing else runs beside them.
set -uo pipefail
cd "$(dirname "$0")/.."
logs=$(mktemp -d)
began=$SECONDS

# The run uses the Docker engine from both lanes at once: it holds the engine lock for its whole
# length (a user's `make lab` or a second `make test` waits) and tells the lab tests it does.
exec 9>/tmp/tts-ha-docker.lock
flock -w 3600 9 || { echo "the Docker engine lock (/tmp/tts-ha-docker.lock) stayed busy for an hour"; exit 1; }
export TTS_HA_LOCK_HELD=1
# The lab bring-up's results, for the lab tests' fixtures (tests/lab/boot.py).
export TTS_HA_LAB_BOOT_FILE="$logs/lab-boot.json"

stage() {
  local name=$1; shift
  local start=$SECONDS
  echo "=== [$name] $*"
  # Each line tagged with its stage: the two lanes' outputs interleave. fd 9 (the lock) stays here.
  if "$@" 9>&- 2>&1 | tee "$logs/$name.log" | sed -u "s/^/[$name] /"; then
    echo "$name ok $((SECONDS - start))" >> "$logs/results"; echo "=== [$name] ok ($((SECONDS - start)) s)"
  else
    echo "$name FAILED $((SECONDS - start))" >> "$logs/results"; echo "=== [$name] FAILED ($((SECONDS - start)) s)"
  fi
}

printf '%s\n' "$@" lab-boot > "$logs/queue"
run_queue() {
  local job
  while :; do
    job=$(flock "$logs/queue" sh -c 'head -n 1 "$1"; sed -i 1d "$1"' _ "$logs/queue")
    case "$job" in
      "") return 0 ;;
      lab-boot) stage lab-boot python tests/lab/boot.py ;;
      *) stage "molecule:$job" molecule test -s "$job" ;;
    esac
  done
}

(
  stage yamllint yamllint --strict .
  stage ansible-lint ansible-lint --profile production
  stage unit pytest -m "not lab"
  run_queue
) &
checks=$!
run_queue &
engine=$!
wait $checks $engine
echo "=== both lanes done after $((SECONDS - began)) s"
stage lab pytest -m lab --durations=40

echo
# CI shows only the tail of the output: repeat why each failed stage failed, briefly.
failures=$(awk '$2 == "FAILED" {print $1}' "$logs/results")
for name in $failures; do
  echo "--- why $name failed:"
  grep -E '^(FAILED |E  |ERROR )|fatal: |FAILED! =>|AssertionError' "$logs/$name.log" | cut -c1-200 | tail -n 8
done
echo "stage times (s): $(awk '{printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $3}' "$logs/results")"
echo "make test took $((SECONDS - began)) s"
passed=$(grep -c ' ok ' "$logs/results"); failed=$(grep -c ' FAILED ' "$logs/results")
[ "$failed" -eq 0 ] || echo "failed stages: $(echo $failures)"
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
