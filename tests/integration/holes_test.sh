#!/usr/bin/env bash
# Small holes through which an alarm could lose its rank or its content, and
# a full disk under the state directory, with real relayd processes, each
# site on a PostgreSQL cluster of its own:
#   holes_test.sh duress-priority|reserved-type|exact-data|exercise|full-disk
set -euo pipefail
scenario=${1:?usage: holes_test.sh duress-priority|reserved-type|exact-data|exercise|full-disk}
repo=$(cd "$(dirname "$0")/../.." && pwd)
source "$repo/scripts/lib/mesh.sh"
source "$repo/tests/integration/test_lib.sh"
trap holes_cleanup EXIT
holes_cleanup() {
  mesh_cleanup
  [ -z "${tmpfs_dir:-}" ] || { umount "$tmpfs_dir" 2>/dev/null || true; rmdir "$tmpfs_dir" 2>/dev/null || true; }
}

# The message_queue column COLUMN at NODE of the event of ORIGIN with TITLE.
queue_of() {
  mesh_sql "$1" "SELECT $4 FROM message_queue WHERE origin = '$2' AND data->>'title' = '$3'"
}

case "$scenario" in
  duress-priority) ;&
  reserved-type) ;&
  exact-data) ;&
  exercise)
    MESH_SEPARATE_PG=1 mesh_init hq clinic-north
    ;;
  full-disk)
    # The state directory on a small tmpfs of its own, filled later.
    MESH_SEPARATE_PG=1 mesh_init hq clinic-north
    tmpfs_dir=$(mktemp -d /tmp/relaymesh-tmpfs.XXXXXX)
    mount -t tmpfs -o size=8m tmpfs "$tmpfs_dir" || fail "cannot mount a tmpfs (the test runs as root)"
    sed -i "s|^state_dir = .*|state_dir = \"$tmpfs_dir/state\"|" "$mesh_dir/clinic-north/relayd.toml"
    ;;
esac
for node in "${mesh_nodes[@]}"; do mesh_start "$node"; done
mesh_ready "${mesh_nodes[@]}"

case "$scenario" in
  duress-priority)
    # A duress row whose producer copied priority 'bulk' from elsewhere: it
    # is claimed, sent and delivered as a duress all the same.
    rank=$(mesh_sql clinic-north "WITH i AS (INSERT INTO outbox (kind, priority, targets, title)
            VALUES ('duress', 'bulk', '{hq}', 'bulk-marked duress') RETURNING rank) SELECT rank FROM i")
    [ "$rank" = 4 ] || fail "a duress row marked bulk ranks $rank in the outbox, not 4 (duress)"
    wait_for hq "SELECT priority FROM relay_event_log WHERE origin = 'clinic-north' AND kind = 2" 4 10
    wait_for hq "SELECT count(*) FROM message_queue WHERE origin = 'clinic-north' AND priority = 4
                 AND data->>'priority' = 'duress' AND data->>'title' = 'bulk-marked duress'" 1 10
    # A notification marked 'duress' keeps the rank it was given.
    rank=$(mesh_sql clinic-north "WITH i AS (INSERT INTO outbox (kind, priority, targets, title)
            VALUES ('notification', 'bulk', '{hq}', 'bulk notice') RETURNING rank) SELECT rank FROM i")
    [ "$rank" = 1 ] || fail "a bulk notification ranks $rank, not 1"
    wait_for hq "SELECT count(*) FROM message_queue WHERE origin = 'clinic-north' AND priority = 1" 1 10
    echo "duress-priority: a duress row marked bulk ranks, travels and is queued as a duress"
    ;;

  reserved-type)
    # Any case of "relay." is the relay's own: refused at the outbox and by
    # relayctl, while the rows around it are claimed as usual.
    mesh_sql clinic-north "INSERT INTO outbox (targets, title, type) VALUES
      ('{hq}', 'upper', 'RELAY.supervision'), ('{hq}', 'mixed', 'Relay.alarm'),
      ('{hq}', 'fine', 'relayish.alert')" >/dev/null
    wait_for clinic-north "SELECT count(*) FROM outbox_rejected WHERE reason LIKE '%is reserved to the relay'" 2 10
    wait_for hq "SELECT count(*) FROM message_queue WHERE origin = 'clinic-north' AND type = 'relayish.alert'" 1 10
    [ "$(mesh_sql hq "SELECT count(*) FROM message_queue WHERE lower(type) LIKE 'relay.%'")" = 0 ] ||
      fail "hq's message_queue holds a relay.* row that the relay did not raise"
    rc=0
    ctl clinic-north send --target hq --title x --type RELAY.Supervision >/dev/null 2>"$mesh_dir/send.err" || rc=$?
    [ "$rc" = 2 ] && grep -q "reserved to the relay" "$mesh_dir/send.err" ||
      fail "relayctl send --type RELAY.Supervision exited $rc: $(cat "$mesh_dir/send.err")"
    echo "reserved-type: RELAY.* and Relay.* refused with the reason, the row beside them delivered"
    ;;

  exercise)
    # An outbox row of kind test is an exercise, as relayctl send --exercise
    # makes it: labelled in the target's message_queue and on its page.
    mesh_sql clinic-north "INSERT INTO outbox (kind, targets, title) VALUES ('test', '{hq}', 'Monday drill')" >/dev/null
    wait_for hq "SELECT count(*) FROM message_queue WHERE origin = 'clinic-north' AND data->>'title' = 'Monday drill'" 1 10
    [ "$(queue_of hq clinic-north 'Monday drill' "data->>'exercise'")" = true ] ||
      fail "an outbox row of kind test reached hq's message_queue unlabelled: $(queue_of hq clinic-north 'Monday drill' data)"
    eventually page_has hq /api/events '"exercise": true' || fail "hq's events do not label the drill an exercise"
    echo "exercise: an outbox row of kind test is labelled an exercise in the target's message_queue and JSON"
    ;;

  exact-data)
    # jsonb keeps numbers as numeric; so must every hop after it.
    mesh_sql clinic-north "INSERT INTO outbox (targets, title, type, data) VALUES ('{hq}', 'numbers',
      'meter', '{\"n\": 123456789012345678901234567890, \"f\": 0.1000000000000000000000000001,
                 \"i\": -9007199254740993, \"s\": \"text\", \"a\": [1e40, 2.50]}')" >/dev/null
    wait_for hq "SELECT count(*) FROM message_queue WHERE origin = 'clinic-north' AND type = 'meter'" 1 10
    got=$(mesh_sql hq "SELECT data->'data' FROM message_queue WHERE type = 'meter'")
    want=$(mesh_sql hq "SELECT '{\"n\": 123456789012345678901234567890, \"f\": 0.1000000000000000000000000001,
      \"i\": -9007199254740993, \"s\": \"text\", \"a\": [1e40, 2.50]}'::jsonb")
    [ "$got" = "$want" ] || fail "data arrived as $got, sent as $want"
    echo "exact-data: $got arrived digit for digit"
    # The same through relayd's control socket (relayctl duress, the spool path).
    ctl clinic-north duress --target hq --location "Ward 5" \
      --data '{"badge": 123456789012345678901234567890}' >/dev/null || fail "relayctl duress failed"
    wait_for hq "SELECT data->'data'->>'badge' FROM message_queue WHERE data->>'location' = 'Ward 5'" \
      123456789012345678901234567890 10
    echo "exact-data: and through relayctl duress"
    ;;

  full-disk)
    state=$tmpfs_dir/state
    # Fill the tmpfs to the last byte, then raise a duress by both paths.
    dd if=/dev/zero of="$tmpfs_dir/filler" bs=64k 2>/dev/null || true
    [ "$(df --output=avail -B1 "$tmpfs_dir" | tail -n 1 | tr -d ' ')" = 0 ] || fail "the tmpfs is not full"
    id=$(ctl clinic-north duress --location "Ward 9, disk full" 2>"$mesh_dir/duress.err") ||
      fail "relayctl duress failed on a full disk: $(cat "$mesh_dir/duress.err")"
    stored_at_hq() {
      wait_for hq "SELECT count(*) FROM relay_event_log WHERE origin = 'clinic-north' AND seq = ${1##*:}" 1 10
    }
    stored_at_hq "$id"
    mesh_sql clinic-north "INSERT INTO outbox (kind, targets, location) VALUES ('duress', '{hq}', 'Ward 10, outbox')" >/dev/null
    wait_for hq "SELECT count(*) FROM message_queue WHERE origin = 'clinic-north' AND data->>'location' = 'Ward 10, outbox'" 1 10
    echo "full-disk: relayctl duress ($id) and an outbox duress reached hq with the state directory full"
    # DEGRADED at least: ALARM as soon as the page lists the two open duress.
    eventually status_has clinic-north '"level":"\(DEGRADED\|ALARM\)","reasons":\[[^]]*state directory [^]]* is full' ||
      fail "the verdict does not say the state directory is full: $(status_json clinic-north)"
    status_has clinic-north "$state" || fail "the status does not name $state: $(status_json clinic-north)"
    eventually page_has clinic-north / "$state.*full" || fail "the page does not say $state is full"
    code=$(curl -s -o "$mesh_dir/healthz" -w '%{http_code}' "http://127.0.0.1:$((mesh_port[clinic-north] + 2))/healthz")
    grep -q "$state.*full" "$mesh_dir/healthz" || fail "/healthz ($code) does not name $state: $(cat "$mesh_dir/healthz")"
    eventually page_has clinic-north /metrics "^relay_state_dir_full{path=\"$state\"} 1\$" ||
      fail "no metric relay_state_dir_full 1: $(status_page clinic-north /metrics | grep state_dir)"
    kill -0 "${mesh_pid[clinic-north]}" || fail "relayd died on a full disk"
    # Space again: the verdict clears.
    rm -f "$tmpfs_dir/filler"
    eventually page_has clinic-north /metrics "^relay_state_dir_full{path=\"$state\"} 0\$" ||
      fail "relay_state_dir_full stays 1"
    id=$(ctl clinic-north duress --location "Ward 11") || fail "relayctl duress failed after the disk freed"
    stored_at_hq "$id"
    echo "full-disk: DEGRADED naming $state on the page, /healthz ($code) and metrics; cleared when space returns"
    ;;

  *)
    echo "unknown scenario $scenario" >&2
    exit 2
    ;;
esac
echo "PASS $scenario"
