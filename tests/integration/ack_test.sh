#!/usr/bin/env bash
# A person's acknowledgement (issue 21), with real relayd processes, each site
# on a PostgreSQL cluster of its own:
#   ack_test.sh outbox|control-socket|until-acknowledged|never-received
set -euo pipefail
scenario=${1:?usage: ack_test.sh outbox|control-socket|until-acknowledged|never-received}
repo=$(cd "$(dirname "$0")/../.." && pwd)
source "$repo/scripts/lib/mesh.sh"
source "$repo/tests/integration/test_lib.sh"
trap mesh_cleanup EXIT

# Rows of type relay.ack answering event ID in NODE's message_queue.
ack_rows() {
  mesh_sql "$1" "SELECT count(*) FROM message_queue WHERE type = 'relay.ack' AND data->>'references' = '$2'"
}

# Exactly one relay.ack row for ID at NODE, now and a second later, by BY at SITE.
acked_once() {
  local node=$1 id=$2 by=$3 site=$4
  wait_for "$node" "SELECT count(*) FROM message_queue WHERE type = 'relay.ack' AND data->>'references' = '$id'" 1 15
  sleep 1
  [ "$(ack_rows "$node" "$id")" = 1 ] || fail "$node holds $(ack_rows "$node" "$id") relay.ack rows for $id"
  local row
  row=$(mesh_sql "$node" "SELECT data->>'by', data->>'site', data->>'state' FROM message_queue WHERE type = 'relay.ack' AND data->>'references' = '$id'")
  [ "$row" = "$by $site responding" ] || [ "$row" = "$by $site resolved" ] ||
    fail "$node's relay.ack row for $id says '$row', expected by '$by' at $site"
}

MESH_SEPARATE_PG=1 mesh_init hq clinic-north
for node in "${mesh_nodes[@]}"; do mesh_start "$node"; done
mesh_ready "${mesh_nodes[@]}"

# A duress at clinic-north, to clinic-north and hq ([duress] targets), held at hq.
raise() {
  local id
  id=$(ctl clinic-north duress --location "Psych ward, room 12" --by "nurse station 3") ||
    fail "relayctl duress failed"
  wait_for hq "SELECT count(*) FROM relay_event_log WHERE origin = 'clinic-north' AND seq = ${id##*:}" 1 10
  echo "$id"
}

case "$scenario" in
  outbox)
    id=$(raise)
    # The site software's one insert at hq: the row's targets and priority
    # are not used; the claim takes them from the duress.
    mesh_sql hq "INSERT INTO outbox (kind, refs, sender, body, ack) VALUES ('ack', ARRAY['$id'], 'guard 3', 'on my way', 'responding')" >/dev/null
    acked_once clinic-north "$id" "guard 3" hq
    [ "$(mesh_sql hq "SELECT priority FROM relay_event_log WHERE kind = 7")" = 4 ] ||
      fail "the acknowledgement of a duress does not travel at duress priority"
    [ "$(ack_rows hq "$id")" = 0 ] || fail "hq delivered its own acknowledgement to itself"
    out=$(ctl clinic-north receipts "$id")
    grep -q "acknowledged by guard 3 at hq, responding, [0-9]* s after it was raised" <<<"$out" ||
      fail "relayctl receipts does not show the acknowledgement: $out"
    [ "$(grep -c "acknowledged by" <<<"$out")" = 1 ] || fail "receipts lists it more than once: $out"
    ctl clinic-north --json receipts "$id" | python3 -c '
import json, sys
doc = json.load(sys.stdin)
acks = doc["acknowledgements"]
assert len(acks) == 1 and acks[0]["by"] == "guard 3" and acks[0]["site"] == "hq", acks
assert acks[0]["note"] == "on my way" and acks[0]["seconds_after"] >= 0, acks
' || fail "relayctl --json receipts does not carry the acknowledgement"
    eventually page_has clinic-north / "acknowledged by guard 3 at hq" ||
      fail "clinic-north's status page does not show the acknowledgement"
    [ "$(mesh_sql clinic-north "SELECT data->>'exercise' FROM message_queue WHERE type = 'relay.ack'")" = false ] ||
      fail "the answer to a real duress is labelled an exercise"
    # The answer to a drill is a drill.
    drill=$(ctl clinic-north duress --exercise --location "Ward 1") || fail "relayctl duress --exercise failed"
    wait_for hq "SELECT count(*) FROM relay_event_log WHERE origin = 'clinic-north' AND seq = ${drill##*:}" 1 10
    mesh_sql hq "INSERT INTO outbox (kind, refs, sender) VALUES ('ack', ARRAY['$drill'], 'guard 4')" >/dev/null
    wait_for clinic-north "SELECT data->>'exercise' FROM message_queue WHERE type = 'relay.ack' AND data->>'references' = '$drill'" true 15
    echo "outbox: acknowledged at hq, one relay.ack row at clinic-north, shown by receipts and the page; a drill's answer labelled an exercise"
    ;;

  control-socket)
    id=$(raise)
    mesh_pg_halt hq
    out=$(ctl hq ack "$id" --by "guard 3" --resolved 2>&1) ||
      fail "relayctl ack failed with hq's database down: $out"
    grep -q "control socket" <<<"$out" || fail "relayctl ack did not say it went through relayd: $out"
    # Sent from the spool at once: clinic-north's database takes it.
    acked_once clinic-north "$id" "guard 3" hq
    # hq's page lists the duress it holds, never its own spooled ack as one.
    alarms=$(status_page hq /api/alarms)
    [ "$(python3 -c 'import json, sys; print(sum(1 for d in json.loads(sys.argv[1])["open_duress"] if d.get("spooled")))' "$alarms")" = 0 ] ||
      fail "hq lists its spooled acknowledgement as an open duress: $alarms"
    mesh_pg_resume hq
    wait_for hq "SELECT count(*) FROM relay_event_log WHERE kind = 7" 1 20
    sleep 2
    [ "$(ack_rows clinic-north "$id")" = 1 ] || fail "the acknowledgement arrived again after the drain"
    [ "$(mesh_sql clinic-north "SELECT data->>'state' FROM message_queue WHERE type = 'relay.ack'")" = resolved ] ||
      fail "the acknowledgement lost its state"
    echo "control-socket: acknowledged with hq's database down, delivered once, drained into hq's log"
    ;;

  until-acknowledged)
    set +e
    ctl clinic-north duress --by "nurse station 3" --wait 3s --until acknowledged >/dev/null 2>&1
    code=$?
    set -e
    [ "$code" = 3 ] || fail "send --wait --until acknowledged exited $code with nobody acknowledging, expected 3"
    out="$mesh_dir/wait.out"
    ctl clinic-north duress --by "nurse station 3" --wait 60s --until acknowledged >"$out" 2>"$out.err" &
    waiter=$!
    for _ in $(seq 1 100); do [ -s "$out" ] && break; sleep 0.1; done
    id=$(head -n 1 "$out")
    [ -n "$id" ] || fail "the waiting duress printed no id"
    wait_for hq "SELECT count(*) FROM relay_event_log WHERE origin = 'clinic-north' AND seq = ${id##*:}" 1 10
    ctl hq ack "$id" --by "guard 3" >/dev/null || fail "relayctl ack at hq failed"
    set +e
    wait "$waiter"
    code=$?
    set -e
    [ "$code" = 0 ] || fail "send --wait --until acknowledged exited $code after guard 3 acknowledged: $(cat "$out.err")"
    grep -q "acknowledged by guard 3 at hq" "$out.err" || fail "it did not say who acknowledged: $(cat "$out.err")"
    echo "until-acknowledged: exit 3 when nobody answers, 0 once guard 3 does"
    ;;

  never-received)
    set +e
    err=$(ctl hq ack clinic-north:987654 --by "guard 3" 2>&1 >/dev/null)
    code=$?
    set -e
    [ "$code" = 1 ] || fail "acknowledging an event hq never received exited $code, expected 1"
    grep -q "clinic-north:987654, which hq has not received" <<<"$err" ||
      fail "the refusal does not name the event: $err"
    [ "$(mesh_sql hq "SELECT count(*) FROM outbox")" = 0 ] || fail "relayctl ack left an outbox row"
    # The site software's insert is refused the same way, and kept with the reason.
    mesh_sql hq "INSERT INTO outbox (kind, refs, sender) VALUES ('ack', ARRAY['clinic-north:987654'], 'guard 3')" >/dev/null
    wait_for hq "SELECT count(*) FROM outbox_rejected WHERE reason LIKE '%clinic-north:987654, which hq has not received%'" 1 10
    sleep 1
    [ "$(mesh_sql hq "SELECT count(*) FROM relay_event_log WHERE kind = 7")" = 0 ] || fail "hq logged an acknowledgement"
    [ "$(mesh_sql clinic-north "SELECT count(*) FROM relay_event_log WHERE kind = 7")" = 0 ] ||
      fail "clinic-north got an acknowledgement of nothing"
    echo "never-received: refused by relayctl and by the claim, naming the event; nothing sent"
    ;;

  *) fail "unknown scenario $scenario" ;;
esac
