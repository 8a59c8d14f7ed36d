#!/usr/bin/env bash
# The longer, optional drill suite (not part of `make test`): every fault class against the lab
# (or the inventory in ANSIBLE_INVENTORY), each followed by the gated failback, one summary line
# each and a closing count. DRILLS="crash hang" picks a subset; extra arguments go to every
# ansible-playbook call (e.g. -e tts_ha_router=true). Then a soak: the drill's load through the VIP
# for SOAK_S seconds (default 600; 0 skips it), 0 failed, each container's memory at start and end.
# Between the two, the rollout drills (scripts/rollout-drills.sh; ROLLOUTS="" skips them).
set -uo pipefail
cd "$(dirname "$0")/.."
DRILLS=${DRILLS:-"crash hang host_down keepalived_stop partition bad_audio overload prober_kill"}
passed=0 failed=0
# The load: half of what the standby sustains alone on these hosts (docs/capacity.md), measured
# first with playbooks/capacity.yml unless DRILL_RATE is given; drills then refuse a higher rate.
if [ -z "${DRILL_RATE:-}" ]; then
  ansible-playbook playbooks/capacity.yml "$@" >/dev/null 2>&1 || { echo "capacity measurement FAILED: see reports/capacity.md"; exit 1; }
  DRILL_RATE=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("drill_rate_per_s") or "")' \
    reports/capacity.json)
  [ -n "$DRILL_RATE" ] || { echo "no standby measured in reports/capacity.json"; exit 1; }
  echo "drill rate ${DRILL_RATE}/s: half the standby's measured capacity (reports/capacity.md)"
fi
set -- -e "drill_rate=$DRILL_RATE" -e drill_capacity_check=refuse "$@"
export ROLLOUT_RATE=${ROLLOUT_RATE:-$DRILL_RATE}
for fault in $DRILLS; do
  log=$(mktemp)
  if ansible-playbook playbooks/failover_drill.yml -e "drill_fault=$fault" "$@" >"$log" 2>&1; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
  fi
  grep -o "drill $fault: [^'\"]*" "$log" | tail -1 || tail -5 "$log"
  # Return to the primary on purpose before the next fault (nothing to do when the VIP stayed).
  if ansible-playbook playbooks/failback.yml "$@" >"$log" 2>&1; then
    grep -o "drill failback: [^'\"]*\|nothing to fail back" "$log" | tail -1
  else
    failed=$((failed + 1)); echo "failback after $fault FAILED:"; tail -5 "$log"
  fi
  rm -f "$log"
done
# Rollouts through site.yml under the same load (issue 15): settings, new image, an image that
# never speaks (rolled back), a degraded pair (refused). ROLLOUTS="" skips them.
if [ -n "${ROLLOUTS-x}" ]; then
  if scripts/rollout-drills.sh "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
fi
SOAK_S=${SOAK_S:-600}
if [ "$SOAK_S" -gt 0 ]; then
  log=$(mktemp)
  if ansible-playbook playbooks/soak.yml -e "soak_s=$SOAK_S" "$@" >"$log" 2>&1; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
  fi
  grep -o "soak: [^'\"]*" "$log" | tail -1 || tail -5 "$log"
  rm -f "$log"
fi
echo "drills: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
