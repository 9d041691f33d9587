#!/usr/bin/env bash
# A person's acknowledgement (issue 21), with real relayd processes, each site
# on a PostgreSQL cluster of its own:
#   ack_test.sh outbox|control-socket|until-acknowledged|never-received|lossy|partition
set -euo pipefail
scenario=${1:?usage: ack_test.sh outbox|control-socket|until-acknowledged|never-received|lossy|partition}
repo=$(cd "$(dirname "$0")/../.." && pwd)
source "$repo/scripts/lib/mesh.sh"
source "$repo/tests/integration/test_lib.sh"
proxies=()
declare -A link_pid site_index
trap 'kill "${proxies[@]}" "${link_pid[@]}" 2>/dev/null || true; mesh_cleanup' EXIT

# Rows of type relay.ack answering event ID in NODE's message_queue.
ack_rows() {
  mesh_sql "$1" "SELECT count(*) FROM message_queue WHERE type = 'relay.ack' AND data->>'references' = '$2'"
}

# Exactly one relay.ack row for ID at NODE (within LIMIT seconds, 15 unless
# given), now and a second later, by BY at SITE.
acked_once() {
  local node=$1 id=$2 by=$3 site=$4 limit=${5:-15}
  wait_for "$node" "SELECT count(*) FROM message_queue WHERE type = 'relay.ack' AND data->>'references' = '$id'" 1 "$limit"
  sleep 1
  [ "$(ack_rows "$node" "$id")" = 1 ] || fail "$node holds $(ack_rows "$node" "$id") relay.ack rows for $id"
  local row
  row=$(mesh_sql "$node" "SELECT data->>'by', data->>'site', data->>'state' FROM message_queue WHERE type = 'relay.ack' AND data->>'references' = '$id'")
  [ "$row" = "$by $site responding" ] || [ "$row" = "$by $site resolved" ] ||
    fail "$node's relay.ack row for $id says '$row', expected by '$by' at $site"
}

# One UDP path per ordered pair of sites: FROM's datagrams to TO cross a
# forwarder of their own, so that a test cuts one path and leaves the others.
# link_down kills it (what is sent meanwhile is gone, as on a cut WAN link;
# a stopped forwarder would hand it over late from its socket buffer), and
# link_up starts it again on the same port.
link_port() { echo $((mesh_port[$2] + 5 + site_index[$1])); }
link_up() {
  "$mesh_build/tests/integration/lossy_proxy" "$(link_port "$1" "$2")" "${mesh_port[$2]}" 0 1 &
  link_pid["$1>$2"]=$!
}
link_down() {
  kill "${link_pid["$1>$2"]}"
  wait "${link_pid["$1>$2"]}" 2>/dev/null || true
  unset "link_pid[$1>$2]"
}
path_cut() { link_down "$1" "$2" && link_down "$2" "$1"; }
path_heal() { link_up "$1" "$2" && link_up "$2" "$1"; }

case "$scenario" in
  lossy)
    MESH_PROXY=1 MESH_SEPARATE_PG=1 mesh_init hq clinic-north
    lossy_paths 0.3 21
    ;;
  partition)
    MESH_SEPARATE_PG=1 mesh_init hq clinic-north clinic-south
    i=0
    for node in "${mesh_nodes[@]}"; do site_index[$node]=$i; i=$((i + 1)); done
    for from in "${mesh_nodes[@]}"; do
      for to in "${mesh_nodes[@]}"; do
        [ "$from" = "$to" ] && continue
        sed -i "s/^address = \"127.0.0.1:${mesh_port[$to]}\"\$/address = \"127.0.0.1:$(link_port "$from" "$to")\"/" \
          "$mesh_dir/$from/relayd.toml"
        link_up "$from" "$to"
      done
    done
    ;;
  *) MESH_SEPARATE_PG=1 mesh_init hq clinic-north ;;
esac
for node in "${mesh_nodes[@]}"; do mesh_start "$node"; done
mesh_ready "${mesh_nodes[@]}"

# A duress at clinic-north, to clinic-north and hq ([duress] targets), held at hq.
raise() {
  local id
  id=$(ctl clinic-north duress --location "Psych ward, room 12" --by "nurse station 3") ||
    fail "relayctl duress failed"
  wait_for hq "SELECT count(*) FROM relay_event_log WHERE origin = 'clinic-north' AND seq = ${id##*:}" 1 30
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

  lossy)
    # Three duresses, each acknowledged at hq by another guard: the events,
    # their acks and receipts all cross paths that lose 30%, so that some
    # copies are lost and sent again, and some arrive twice.
    ids=()
    values=""
    for n in 1 2 3; do
      id=$(raise)
      ids+=("$id")
      values+="${values:+, }('ack', ARRAY['$id'], 'guard $n', 'on my way', 'responding')"
    done
    mesh_sql hq "INSERT INTO outbox (kind, refs, sender, body, ack) VALUES $values" >/dev/null
    for n in 1 2 3; do acked_once clinic-north "${ids[n - 1]}" "guard $n" hq 30; done
    # Retransmissions that crossed after the first copy change nothing.
    sleep 2
    for id in "${ids[@]}"; do
      [ "$(ack_rows clinic-north "$id")" = 1 ] || fail "clinic-north holds $(ack_rows clinic-north "$id") relay.ack rows for $id"
      [ "$(ack_rows hq "$id")" = 0 ] || fail "hq delivered its own acknowledgement of $id to itself"
    done
    [ "$(mesh_sql clinic-north "SELECT count(*) FROM relay_event_log WHERE kind = 7")" = 3 ] ||
      fail "clinic-north logged $(mesh_sql clinic-north "SELECT count(*) FROM relay_event_log WHERE kind = 7") acknowledgements, expected 3"
    out=$(ctl clinic-north receipts "${ids[0]}")
    if [ "$(grep -c "acknowledged by" <<<"$out")" != 1 ] || ! grep -q "acknowledged by guard 1 at hq, responding" <<<"$out"; then
      fail "relayctl receipts at clinic-north does not show the acknowledgement once: $out"
    fi
    for node in clinic-north hq; do
      eventually page_has "$node" / "acknowledged by guard 1 at hq" ||
        fail "$node's status page does not show the acknowledgement"
    done
    # hq learns, through the same loss, that clinic-north delivered each one.
    wait_for hq "SELECT count(*) FROM relay_receipts JOIN relay_event_log USING (origin, seq) WHERE origin = 'hq' AND kind = 7 AND target = 'clinic-north'" 3 30
    answer=hq:$(mesh_sql hq "SELECT min(seq) FROM relay_event_log WHERE origin = 'hq' AND kind = 7")
    out=$(ctl hq receipts "$answer")
    grep -q "clinic-north *delivered" <<<"$out" || fail "relayctl receipts at hq does not show $answer delivered: $out"
    echo "lossy: with 30% loss on every path, three duresses acknowledged at hq, one relay.ack row each at clinic-north (again 2 s later), shown by receipts and both pages, confirmed back to hq"
    ;;

  partition)
    a=$(raise)
    b=$(raise)
    for id in "$a" "$b"; do
      wait_for clinic-south "SELECT count(*) FROM relay_event_log WHERE origin = 'clinic-north' AND seq = ${id##*:}" 1 30
    done
    # hq is cut off from both clinics when guard 3 acknowledges the first.
    path_cut hq clinic-north
    path_cut hq clinic-south
    mesh_sql hq "INSERT INTO outbox (kind, refs, sender, ack) VALUES ('ack', ARRAY['$a'], 'guard 3', 'responding')" >/dev/null
    wait_for hq "SELECT count(*) FROM relay_event_log WHERE origin = 'hq' AND kind = 7" 1 15
    wait_for hq "SELECT count(*) FROM outbox" 0 15
    # Held in hq's database, not in its memory: a kill -9 while cut off.
    mesh_kill hq KILL
    mesh_start hq
    sleep 3
    for node in clinic-north clinic-south; do
      [ "$(mesh_sql "$node" "SELECT count(*) FROM relay_event_log WHERE kind = 7")" = 0 ] ||
        fail "$node got the acknowledgement across the partition: the cut leaks"
    done
    # The direct path heals (clinic-south still cut off from hq): it arrives once.
    path_heal hq clinic-north
    acked_once clinic-north "$a" "guard 3" hq 30
    # Only the direct path fails now: the second goes through clinic-south.
    path_cut hq clinic-north
    path_heal hq clinic-south
    mesh_sql hq "INSERT INTO outbox (kind, refs, sender, ack) VALUES ('ack', ARRAY['$b'], 'guard 4', 'resolved')" >/dev/null
    acked_once clinic-north "$b" "guard 4" hq 30
    wait_for clinic-south "SELECT count(*) FROM relay_event_log WHERE origin = 'hq' AND kind = 7" 2 15
    # Every path heals: hq's retries and anti-entropy bring nothing twice.
    path_heal hq clinic-north
    sleep 3
    for id in "$a" "$b"; do
      [ "$(ack_rows clinic-north "$id")" = 1 ] ||
        fail "clinic-north holds $(ack_rows clinic-north "$id") relay.ack rows for $id once every path healed"
      [ "$(ack_rows clinic-south "$id")" = 0 ] || fail "clinic-south, not a target, got a relay.ack row for $id"
    done
    [ "$(mesh_sql clinic-north "SELECT count(*) FROM relay_event_log WHERE kind = 7")" = 2 ] ||
      fail "clinic-north logged $(mesh_sql clinic-north "SELECT count(*) FROM relay_event_log WHERE kind = 7") acknowledgements, expected 2"
    out=$(ctl clinic-north receipts "$a")
    [ "$(grep -c "acknowledged by guard 3 at hq, responding" <<<"$out")" = 1 ] ||
      fail "relayctl receipts at clinic-north does not show the acknowledgement once: $out"
    echo "partition: acknowledged at hq while cut off (and kill -9), held, arrived once when the direct path healed; with only the direct path cut, the next one came through clinic-south; once after every path healed"
    ;;

  *) fail "unknown scenario $scenario" ;;
esac
