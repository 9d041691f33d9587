#!/usr/bin/env bash
# The alert's life (issue 21), with real relayd processes, each site on a
# PostgreSQL cluster of its own: its origin updates it and cancels it, each
# step reaches every target after the alert, the pages derive its state and
# history, and only the origin may do either.
#   revise_test.sh in-order|lossy
set -euo pipefail
scenario=${1:?usage: revise_test.sh in-order|lossy}
repo=$(cd "$(dirname "$0")/../.." && pwd)
source "$repo/scripts/lib/mesh.sh"
source "$repo/tests/integration/test_lib.sh"
proxies=()
trap 'kill "${proxies[@]}" 2>/dev/null || true; mesh_cleanup' EXIT

# The kinds of NODE's message_queue rows of alert ID and of what references
# it, in the order the site's consumers get them.
life() {
  mesh_sql "$1" "SELECT coalesce(string_agg(data->>'kind', ',' ORDER BY id), '') FROM message_queue
                 WHERE data->>'id' = '$2' OR data->'references' @> '[\"$2\"]'"
}

# True once NODE's /api/alarms no longer lists ID as an open duress.
not_open() {
  status_page "$1" /api/alarms |
    python3 -c 'import json, sys; sys.exit(any(e["id"] == sys.argv[1] for e in json.load(sys.stdin)["open_duress"]))' "$2"
}

if [ "$scenario" = lossy ]; then
  MESH_PROXY=1 MESH_SEPARATE_PG=1 mesh_init hq clinic-north clinic-south
  lossy_paths 0.3 7  # every datagram to a node loses 30%
else
  MESH_SEPARATE_PG=1 mesh_init hq clinic-north clinic-south
fi
for node in "${mesh_nodes[@]}"; do mesh_start "$node"; done
mesh_ready "${mesh_nodes[@]}"

id=$(ctl clinic-north duress --target all --location "Psych ward, room 12" --by "nurse station 3") ||
  fail "relayctl duress failed"
for node in hq clinic-south; do
  wait_for "$node" "SELECT count(*) FROM message_queue WHERE data->>'id' = '$id'" 1 15
done

case "$scenario" in
  in-order)
    out=$(ctl clinic-north update "$id" --body "suspect moved to the car park" --by "nurse station 3") ||
      fail "relayctl update failed: $out"
    # The site software's one insert: targets and priority come from the alert.
    mesh_sql clinic-north "INSERT INTO outbox (kind, refs, body) VALUES ('update', ARRAY['$id'], 'now in the lobby')" >/dev/null
    wait_for hq "SELECT count(*) FROM message_queue WHERE data->>'kind' = 'update'" 2 15
    out=$(ctl clinic-north cancel "$id" --note "pressed by mistake") || fail "relayctl cancel failed: $out"
    for node in hq clinic-south clinic-north; do
      wait_for "$node" "SELECT count(*) FROM message_queue WHERE data->>'kind' = 'cancel'" 1 15
      [ "$(life "$node" "$id")" = "duress,update,update,cancel" ] ||
        fail "$node's consumers got '$(life "$node" "$id")' for $id, expected duress,update,update,cancel"
    done
    row=$(mesh_sql clinic-south "SELECT data->>'body', data->>'title', data->>'location', data->>'priority' FROM message_queue WHERE data->>'kind' = 'update' ORDER BY id LIMIT 1")
    [ "$row" = "suspect moved to the car park Duress Psych ward, room 12 duress" ] ||
      fail "the update row says '$row': the new text, the alert's title and location, at duress priority"
    [ "$(mesh_sql hq "SELECT DISTINCT priority FROM relay_event_log WHERE kind IN (8, 9)")" = 4 ] ||
      fail "the update and cancel of a duress do not travel at duress priority"

    # Only the origin: refused at hq, through relayctl and through the outbox.
    if out=$(ctl hq cancel "$id" 2>&1); then fail "hq cancelled clinic-north's alert: $out"; fi
    grep -q "only its origin, clinic-north, may cancel $id" <<<"$out" || fail "hq's refusal says: $out"
    mesh_sql hq "INSERT INTO outbox (kind, refs) VALUES ('cancel', ARRAY['$id'])" >/dev/null
    wait_for hq "SELECT count(*) FROM outbox_rejected WHERE reason LIKE 'only its origin, clinic-north, may cancel%'" 1 10
    [ "$(mesh_sql hq "SELECT count(*) FROM relay_event_log WHERE kind = 9 AND origin = 'hq'")" = 0 ] ||
      fail "hq logged a cancel of another site's alert"
    # Over is over: no update or second cancel of a cancelled alert.
    if out=$(ctl clinic-north update "$id" --body "back again" 2>&1); then
      fail "an update of a cancelled alert was sent: $out"
    fi
    grep -q "$id was cancelled already" <<<"$out" || fail "the refusal says: $out"

    # Every page derives the same state, and shows the history.
    for node in hq clinic-south clinic-north; do
      eventually page_has "$node" / "data-event=\"$id\" data-kind=\"duress\" data-state=\"cancelled\"" ||
        fail "$node's page does not show $id as cancelled"
      eventually page_has "$node" / "updated by clinic-north (nurse station 3), [0-9]* s after: suspect moved to the car park" ||
        fail "$node's page does not show the update in $id's history"
      eventually page_has "$node" / "cancelled by clinic-north as sent in error, [0-9]* s after: pressed by mistake" ||
        fail "$node's page does not show the cancel in $id's history"
      status_page "$node" /api/events | python3 -c '
import json, sys
id = sys.argv[1]
event = next(e for e in json.load(sys.stdin)["events"] if e["id"] == id)
assert event["state"] == "cancelled", event
kinds = [s["kind"] for s in event["history"]]
assert kinds == ["update", "update", "cancel"], kinds
' "$id" || fail "$node's /api/events does not carry $id's state and history"
      # No longer an open alarm anywhere.
      eventually not_open "$node" "$id" ||
        fail "$node still lists the cancelled duress as an open alarm"
    done
    echo "in-order: duress, two updates (relayctl, outbox) and a cancel reached hq, clinic-south and clinic-north in order at duress priority; pages show cancelled with its history; hq's cancel refused (relayctl and outbox); an update after the cancel refused"
    ;;

  lossy)
    # Sent back to back, so that loss reorders them: whatever arrives when,
    # a consumer never gets the update after the cancel, nor a step twice.
    ctl clinic-north update "$id" --body "suspect moved to the car park" >/dev/null || fail "relayctl update failed"
    ctl clinic-north cancel "$id" --note "pressed by mistake" >/dev/null || fail "relayctl cancel failed"
    for node in hq clinic-south; do
      wait_for "$node" "SELECT count(*) FROM message_queue WHERE data->>'kind' = 'cancel'" 1 60
      wait_for "$node" "SELECT count(*) FROM relay_event_log WHERE origin = 'clinic-north' AND kind = 8" 1 60
      sleep 2
      got=$(life "$node" "$id")
      [ "$got" = "duress,update,cancel" ] || [ "$got" = "duress,cancel" ] ||
        fail "$node's consumers got '$got' for $id: an update after the cancel, or a step twice"
      eventually page_has "$node" / "data-event=\"$id\" data-kind=\"duress\" data-state=\"cancelled\"" ||
        fail "$node's page does not show $id as cancelled"
      echo "$node: $got"
    done
    echo "lossy: with 30% loss on every path, each target got the duress first and the cancel last, the update at most once and never after the cancel"
    ;;

  *) fail "unknown scenario $scenario" ;;
esac
