#!/usr/bin/env bash
# Escalation at the origin (issue 21), with real relayd processes, each site
# on a PostgreSQL cluster of its own. clinic-north escalates a duress nobody
# acknowledged to hq after 2 s, every 2 s, at most 3 times:
#   escalation_test.sh not-acknowledged|acknowledged|kill-9|clock-back|cleared|database-down
set -euo pipefail
scenario=${1:?usage: escalation_test.sh not-acknowledged|acknowledged|kill-9|clock-back|cleared|database-down}
repo=$(cd "$(dirname "$0")/../.." && pwd)
source "$repo/scripts/lib/mesh.sh"
source "$repo/tests/integration/test_lib.sh"
trap mesh_cleanup EXIT

MESH_SEPARATE_PG=1 mesh_init hq clinic-north
printf '\n[[escalation]]\nkind = "duress"\nafter = "2s"\nto = ["group:hq"]\nrepeat = "2s"\nmax = 3\n' \
  >> "$mesh_dir/clinic-north/relayd.toml"
for node in "${mesh_nodes[@]}"; do mesh_start "$node"; done
mesh_ready "${mesh_nodes[@]}"

# The rounds of the relay.escalation rows for ID in NODE's message_queue, in order.
rounds() {
  mesh_sql "$1" "SELECT string_agg(data->>'round', ',' ORDER BY (data->>'round')::int) FROM message_queue WHERE type = 'relay.escalation' AND data->>'references' = '$2'"
}

# Waits until hq holds round ROUND of ID's escalation.
wait_round() {
  wait_for hq "SELECT count(*) FROM message_queue WHERE type = 'relay.escalation' AND data->>'references' = '$1' AND data->>'round' = '$2'" 1 "${3:-15}"
}

# ROUNDS at hq for ID, and still so after three more periods (6 s): no further round.
no_more() {
  local id=$1 expected=$2
  sleep 6
  [ "$(rounds hq "$id")" = "$expected" ] ||
    fail "hq holds escalation rounds '$(rounds hq "$id")' of $id, expected '$expected'"
}

raise() {
  local id
  id=$(ctl clinic-north duress --location "Psych ward, room 12" --by "nurse station 3") ||
    fail "relayctl duress failed"
  echo "$id"
}

case "$scenario" in
  not-acknowledged)
    id=$(raise)
    wait_round "$id" 3 30
    no_more "$id" "1,2,3"
    row=$(mesh_sql hq "SELECT data->>'title', '|', data->>'location', '|', data->>'sender', '|', data->>'max', '|', data->>'id' FROM message_queue WHERE type = 'relay.escalation' AND data->>'round' = '1'")
    [ "$row" = "Duress | Psych ward, room 12 | nurse station 3 | 3 | clinic-north:${id##*:}" ] ||
      [[ "$row" == "Duress | Psych ward, room 12 | nurse station 3 | 3 | clinic-north:"* ]] ||
      fail "the escalation row does not carry the alarm: '$row'"
    # An escalation of a duress travels as a duress, from the origin, as its event.
    [ "$(mesh_sql hq "SELECT DISTINCT priority FROM relay_event_log WHERE kind = 10 AND origin = 'clinic-north'")" = 4 ] ||
      fail "the escalations of a duress do not travel at duress priority"
    [ "$(mesh_sql clinic-north "SELECT count(*) FROM relay_event_log WHERE kind = 10")" = 3 ] ||
      fail "clinic-north's log does not hold its 3 escalations"
    [ "$(mesh_sql clinic-north "SELECT count(*) FROM message_queue WHERE type = 'relay.escalation'")" = 0 ] ||
      fail "clinic-north delivered its escalation to itself"
    eventually page_has clinic-north / "escalated 3 times, nobody acknowledged" ||
      fail "clinic-north's page does not say the alarm escalated 3 times unanswered"
    status_page clinic-north /api/alarms | python3 -c '
import json, sys
d = [a for a in json.load(sys.stdin)["open_duress"] if a["id"] == sys.argv[1]]
assert d and d[0]["escalations"] == 3 and d[0]["escalation_unanswered"], d
' "$id" || fail "clinic-north's /api/alarms does not say escalated 3 times"
    echo "not-acknowledged: rounds 1, 2, 3 at hq and no 4th; clinic-north's page says so"
    ;;

  acknowledged)
    id=$(raise)
    wait_round "$id" 1
    ctl hq ack "$id" --by "guard 3" >/dev/null || fail "relayctl ack at hq failed"
    wait_for clinic-north "SELECT count(*) FROM relay_event_log WHERE kind = 7" 1 10
    no_more "$id" "1"
    eventually page_has clinic-north / "escalated 1 time (at most 3)" ||
      fail "clinic-north's page does not say escalated once (and answered)"
    echo "acknowledged: one round, then guard 3 at hq answered and the rounds stopped"
    ;;

  kill-9)
    id=$(raise)
    wait_round "$id" 1
    mesh_kill clinic-north KILL
    sleep 1
    mesh_start clinic-north
    wait_round "$id" 3 30
    no_more "$id" "1,2,3"
    [ "$(mesh_sql clinic-north "SELECT count(*) FROM relay_event_log WHERE kind = 10")" = 3 ] ||
      fail "clinic-north made $(mesh_sql clinic-north "SELECT count(*) FROM relay_event_log WHERE kind = 10") escalations, expected 3"
    echo "kill-9: rounds 2 and 3 after the restart, none repeated"
    ;;

  clock-back)
    # clinic-north restarts after round 1 with its clock an hour back (a
    # power cut): the rounds must not wait that hour.
    id=$(raise)
    wait_round "$id" 1
    mesh_kill clinic-north KILL
    faketime_lib=$(dpkg -L libfaketime | grep '/libfaketimeMT\.so\.1$')
    MESH_WRAP="env LD_PRELOAD=$faketime_lib FAKETIME=-1h FAKETIME_DONT_FAKE_MONOTONIC=1
      ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
      mesh_start clinic-north
    wait_round "$id" 3 30
    no_more "$id" "1,2,3"
    echo "clock-back: rounds 2 and 3 within seconds of a restart an hour back, none repeated"
    ;;

  cleared)
    # Ended by its origin either way: an all-clear, or a cancel (sent in error).
    id=$(raise)
    other=$(raise)
    wait_round "$id" 1
    ctl clinic-north all-clear "$id" >/dev/null || fail "relayctl all-clear failed"
    wait_round "$other" 1
    ctl clinic-north cancel "$other" --note "pressed by mistake" >/dev/null || fail "relayctl cancel failed"
    # A round made just before the cancel may still be on its way.
    sleep 1
    before=$(rounds hq "$other")
    no_more "$id" "1"
    [ "$(rounds hq "$other")" = "$before" ] && [[ "$before" =~ ^1(,2)?$ ]] ||
      fail "rounds of the cancelled $other went on: '$before', then '$(rounds hq "$other")'"
    echo "cleared: no round after the origin's all-clear, nor after its cancel (rounds $before)"
    ;;

  database-down)
    mesh_pg_halt clinic-north
    out=$(ctl clinic-north duress --location "Psych ward, room 12" --by "nurse station 3" 2>&1) ||
      fail "relayctl duress failed with the database down: $out"
    id=$(grep -o 'clinic-north:[0-9]*' <<<"$out" | head -n 1)
    [ -n "$id" ] || fail "no id in: $out"
    wait_round "$id" 3 30
    no_more "$id" "1,2,3"
    # The page reads the spool meanwhile, and says so as the database's view would.
    eventually page_has clinic-north / "escalated 3 times, nobody acknowledged" ||
      fail "clinic-north's page (database down) does not say the alarm escalated 3 times"
    mesh_pg_resume clinic-north
    wait_for clinic-north "SELECT count(*) FROM relay_event_log WHERE kind = 10" 3 30
    sleep 3
    [ "$(rounds hq "$id")" = "1,2,3" ] || fail "rounds repeated after the drain: $(rounds hq "$id")"
    echo "database-down: the spooled duress escalated 3 times from the spool, drained once"
    ;;

  *) fail "unknown scenario $scenario" ;;
esac
