#!/usr/bin/env bash
# The longer, optional drill suite (not part of `make test`): every fault class against the lab
# (or the inventory in ANSIBLE_INVENTORY), each followed by the gated failback, one summary line
# each and a closing count. DRILLS="crash hang" picks a subset; extra arguments go to every
# ansible-playbook call (e.g. -e tts_ha_router=true).
set -uo pipefail
cd "$(dirname "$0")/.."
DRILLS=${DRILLS:-"crash hang host_down keepalived_stop partition bad_audio overload"}
passed=0 failed=0
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
echo "drills: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
