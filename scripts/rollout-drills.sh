#!/usr/bin/env bash
# Rollout drills (issue 15) on the running lab, or the inventory in ANSIBLE_INVENTORY: each change
# goes through site.yml while the drill's load (1.5/s, realistic corpus) goes through the VIP
# (python -m tts_drill.rollout); figures under reports/rollout-<case>-<time>/rollout.json, one line each.
#   settings  one variable added to tts_service_env: 0 failed, the VIP ends on the primary
#   image     a new image tag (the reference image rebuilt with a label: a new image ID): same
#   broken    an image that never speaks (the reference image with `sleep infinity`): the canary is
#             rolled back, the play fails saying so, 0 failed, the VIP never leaves the holder;
#             then a rerun with the good settings converges (changed=0)
#   degraded  the standby stopped: the rollout is refused before anything changes
#   noop      site.yml with the settings already deployed: nothing changes; the control (what
#             the run of site.yml itself costs clients on a small lab whose controller shares the CPU)
#   restore   back to the default settings (a rollout too, measured)
# ROLLOUT_CORPUS=rotation: short sentences instead of the realistic corpus; ROLLOUT_RATE: requests/s.
# ROLLOUTS="settings image" picks a subset (restore always runs last); extra arguments go to every
# ansible-playbook call. The test images are built in the controller's engine (image source build).
# Run it under the lab's lock (make drills does): it does not take the lock itself.
# The controller runs niced: on the lab it shares the CPU with every "host" (in production it is a
# separate machine); the load generator keeps its normal priority.
set -uo pipefail
cd "$(dirname "$0")/.."
ROLLOUTS=${ROLLOUTS:-"settings image broken degraded"}
BASE_IMAGE=${TTS_IMAGE:-tts-ha/tts-server:1.0.0}
NEW_IMAGE=tts-ha/tts-server:1.0.0-rollout
BROKEN_IMAGE=tts-ha/tts-server:1.0.0-mute
export PYTHONPATH="$PWD/tools" TTS_HA_MODULE_UTILS="$PWD/module_utils"
passed=0 failed=0 stamp=$(date +%Y%m%d-%H%M%S)
SETTINGS='"tts_service_env": {"TTS_HA_ROLLOUT_DRILL": "'$stamp'"}'  # noop assumes the defaults run
CURRENT_IMAGE=$BASE_IMAGE   # what the pair runs once the previous case is done

# Build the test images once (controller engine; site.yml ships them like any built image).
docker image inspect "$NEW_IMAGE" >/dev/null 2>&1 || printf 'FROM %s\nLABEL io.tts-ha.rollout-drill=new\n' \
  "$BASE_IMAGE" | docker build -q -t "$NEW_IMAGE" - >/dev/null
docker image inspect "$BROKEN_IMAGE" >/dev/null 2>&1 || printf 'FROM %s\nHEALTHCHECK NONE\nENTRYPOINT ["sleep", "infinity"]\nCMD []\n' \
  "$BASE_IMAGE" | docker build -q -t "$BROKEN_IMAGE" - >/dev/null

# rollout CASE JSON-EXTRA-VARS [ansible-playbook args...]: site.yml under load; prints the summary.
rollout() {
  local case=$1 vars=$2; shift 2
  local a ansible_args=()
  for a in "$@"; do ansible_args+=("--ansible-arg=$a"); done
  dir="reports/rollout-$case-$(date +%Y%m%d-%H%M%S)"
  python3 -m tts_drill.rollout --out-dir "$dir" --label "$case" --from-inventory "${ansible_args[@]}" \
    --corpus "${ROLLOUT_CORPUS:-realistic}" --rate "${ROLLOUT_RATE:-1.5}" \
    -- nice -n 19 ansible-playbook playbooks/site.yml -e "{$vars}" "$@"
}
figure() { python3 -c "import json,sys; print(json.load(open('$dir/rollout.json'))$1)"; }
ok() { passed=$((passed + 1)); echo "  PASS $*"; }
ko() { failed=$((failed + 1)); echo "  FAIL $*"; tail -15 "$dir/command.log" 2>/dev/null; }

for case in $ROLLOUTS; do
  case $case in
    noop)
      rollout noop "\"tts_service_env\": {}, \"tts_service_image\": \"$CURRENT_IMAGE\"" "$@"; rc=$?
      [ $rc -eq 0 ] && grep -q "Nothing would change" "$dir/command.log" && ok noop || ko noop ;;
    settings)
      rollout settings "$SETTINGS" "$@"; rc=$?
      [ $rc -eq 0 ] && [ "$(figure "['figures']['failed']")" = 0 ] && [ "$(figure "['figures']['vip_moves']")" = 2 ] \
        && ok settings || ko settings ;;
    image)
      rollout image "$SETTINGS, \"tts_service_image\": \"$NEW_IMAGE\"" "$@"; rc=$?
      [ $rc -eq 0 ] && CURRENT_IMAGE=$NEW_IMAGE
      [ $rc -eq 0 ] && [ "$(figure "['figures']['failed']")" = 0 ] && [ "$(figure "['figures']['vip_moves']")" = 2 ] \
        && ok image || ko image ;;
    broken)
      rollout broken "$SETTINGS, \"tts_service_image\": \"$BROKEN_IMAGE\", \"tts_service_rollout_ready_timeout\": 40" "$@"
      rc=$?
      flat=$(tr -s ' \n' ' ' <"$dir/command.log")
      canary=$(grep -o "Rollout stopped: the new [A-Za-z0-9_.-]*" <<<"$flat" | head -1 | awk '{print $NF}')
      # The VIP never left the holder: the canary (not the holder's instance) served no request.
      if [ $rc -ne 0 ] && grep -q "Rollout stopped: .*rolled back.*It was the canary" <<<"$flat" \
         && [ "$(figure "['figures']['failed']")" = 0 ] \
         && [ "$(figure "['figures']['served_by'].get('$canary', 0)")" = 0 ]; then
        ok "broken (rolled back, VIP stayed)"
      else
        ko broken
      fi
      # The rerun with the good settings (those before the broken image) converges.
      log=$(mktemp)
      if ansible-playbook playbooks/site.yml -e "{$SETTINGS, \"tts_service_image\": \"$CURRENT_IMAGE\"}" \
           "$@" >"$log" 2>&1 && grep -q "Nothing would change" "$log" \
         && ! grep -Eq "changed=[1-9]" "$log"; then
        ok "broken: the rerun with the good settings converges (changed=0)"
      else
        failed=$((failed + 1)); echo "  FAIL broken rerun"; tail -15 "$log"
      fi
      rm -f "$log" ;;
    degraded)
      ansible tts_nodes "$@" -m ansible.builtin.shell -a 'docker ps -q -f name=^tts-standby$ | xargs -r docker stop' >/dev/null
      log=$(mktemp)
      ansible-playbook playbooks/site.yml -e "{\"tts_service_env\": {\"TTS_HA_ROLLOUT_DRILL\": \"degraded\"}}" "$@" >"$log" 2>&1
      rc=$?
      ansible tts_nodes "$@" -m ansible.builtin.shell -a 'docker ps -aq -f name=^tts-standby$ | xargs -r docker start' >/dev/null
      flat=$(tr -s ' \n' ' ' <"$log")
      if [ $rc -ne 0 ] && grep -q "Refusing the rollout: tts-standby" <<<"$flat" && ! grep -Eq "changed=[1-9]" "$log"; then
        ok "degraded: refused before anything changed: $(grep -o 'Refusing the rollout: [^"]*' <<<"$flat" | head -1 | cut -c1-200)"
      else
        failed=$((failed + 1)); echo "  FAIL degraded"; tail -15 "$log"
      fi
      rm -f "$log"
      sleep 10 ;;
    *) echo "unknown rollout case $case"; failed=$((failed + 1)) ;;
  esac
done
rollout restore '"tts_service_env": {}' "$@"; rc=$?
[ $rc -eq 0 ] && [ "$(figure "['figures']['failed']")" = 0 ] && ok restore || ko restore
echo "rollouts: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
