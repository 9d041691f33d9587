#!/usr/bin/env bash
# A duress while the site's own PostgreSQL is down, with real relayd
# processes, each site on a PostgreSQL cluster of its own:
#   spool_test.sh database-down|kill-after-append|kill-during-drain|torn|full|peers
set -euo pipefail
scenario=${1:?usage: spool_test.sh database-down|kill-after-append|kill-during-drain|torn|full|peers}
repo=$(cd "$(dirname "$0")/../.." && pwd)
source "$repo/scripts/lib/mesh.sh"
source "$repo/tests/integration/test_lib.sh"
trap mesh_cleanup EXIT



now_ms() { date +%s%3N; }

# The duress ID is stored at every node in "$@" within LIMIT seconds.
stored_everywhere() {
  local id=$1 limit=$2 at
  shift 2
  for at in "$@"; do
    wait_for "$at" "SELECT count(*) FROM relay_event_log WHERE origin = '${id%%:*}' AND seq = ${id##*:}" 1 "$limit"
  done
}

# Exactly one log row and one message_queue row of ID at NODE.
exactly_once() {
  local node=$1 id=$2
  wait_for "$node" "SELECT count(*) FROM relay_event_log WHERE origin = '${id%%:*}' AND seq = ${id##*:}" 1
  wait_for "$node" "SELECT count(*) FROM message_queue WHERE data->>'id' = '$id'" 1
  sleep 1
  [ "$(mesh_sql "$node" "SELECT count(*) FROM message_queue WHERE data->>'id' = '$id'")" = 1 ] ||
    fail "$id is in $node's message_queue more than once"
}

# From the status page: relayctl status would wait for relayd's next database check.
spool_depth() {
  status_page "$1" /api/status | python3 -c 'import json, sys; print(json.load(sys.stdin)["spool"]["depth"])'
}

MESH_SEPARATE_PG=1 mesh_init hq clinic-north
[ "$scenario" = peers ] && config_add hq mesh 'supervision_timeout = "5s"'
for node in "${mesh_nodes[@]}"; do mesh_start "$node"; done
mesh_ready "${mesh_nodes[@]}"

case "$scenario" in
  database-down)
    mesh_pg_halt clinic-north
    start=$(now_ms)
    id=$(ctl clinic-north duress --location "Psych ward, room 12" --by "nurse station 3") ||
      fail "relayctl duress failed with clinic-north's database down"
    echo "relayctl duress accepted $id in $(($(now_ms) - start)) ms with the database down"
    stored_everywhere "$id" 10 hq
    echo "$id stored at hq $(($(now_ms) - start)) ms after the button, clinic-north's database still down"
    [ "$(spool_depth clinic-north)" = 1 ] || fail "the spool does not hold the alarm"
    wait_log clinic-north "incident=duress_sent event_id=$id"
    ! grep -q "duress $id delivered into message_queue" "$mesh_dir/clinic-north/relayd.log" ||
      fail "clinic-north logged $id delivered into its message_queue with its database down"
    code=$(curl -s -o "$mesh_dir/healthz" -w '%{http_code}' "http://127.0.0.1:$((mesh_port[clinic-north] + 2))/healthz")
    [ "$code" = 503 ] && grep -q "spool: 1 duress alarms" "$mesh_dir/healthz" ||
      fail "/healthz does not show the spool: $code $(cat "$mesh_dir/healthz")"
    mesh_pg_resume clinic-north
    # While it drains into the database, the alarm never leaves the page: the
    # page's view of the database is read every 2 s.
    for _ in $(seq 1 40); do
      status_page clinic-north /api/alarms | grep -q "\"$id\"" ||
        fail "$id vanished from clinic-north's open alarms while the spool drained"
      sleep 0.1
    done
    exactly_once clinic-north "$id"
    exactly_once hq "$id"
    for _ in $(seq 1 50); do [ "$(spool_depth clinic-north)" = 0 ] && break; sleep 0.1; done
    [ "$(spool_depth clinic-north)" = 0 ] || fail "the spool did not drain"
    wait_log clinic-north "duress $id delivered into message_queue here"
    [ "$(grep -c "duress $id delivered into message_queue" "$mesh_dir/clinic-north/relayd.log")" = 1 ] ||
      fail "clinic-north logged the delivery of $id more than once"
    echo "database-down: sent at once, drained into clinic-north's log and message_queue exactly once"
    ;;

  kill-after-append)
    # relayd dies the instant the alarm is durable in the spool, before it
    # sends it or answers: the next start sends it; nothing is lost.
    mesh_pg_halt clinic-north
    mesh_kill clinic-north TERM
    MESH_WRAP="env RELAY_FAILPOINT=spool-appended" mesh_start_page clinic-north
    rc=0
    ctl clinic-north duress --location "Ward 2" >/dev/null 2>"$mesh_dir/duress.err" || rc=$?
    [ "$rc" = 3 ] || fail "relayctl exited $rc for a duress relayd took and died with; expected 3 (may be spooled)"
    ! grep -q "nothing was sent" "$mesh_dir/duress.err" ||
      fail "relayctl said nothing was sent of a duress relayd spooled: $(cat "$mesh_dir/duress.err")"
    grep -q "does not answer on its control socket" "$mesh_dir/duress.err" ||
      fail "relayctl did not say relayd did not answer: $(cat "$mesh_dir/duress.err")"
    grep -q "relayd got the request and may send it too" "$mesh_dir/duress.err" ||
      fail "relayctl did not say the duress may arrive twice: $(cat "$mesh_dir/duress.err")"
    wait_log clinic-north "failpoint spool-appended"
    mesh_start_page clinic-north
    wait_for hq "SELECT count(*) FROM relay_event_log WHERE origin = 'clinic-north' AND kind = 2" 1 10
    seq=$(mesh_sql hq "SELECT seq FROM relay_event_log WHERE origin = 'clinic-north' AND kind = 2")
    id=clinic-north:$seq
    echo "after the restart, $id (spooled before the crash) reached hq"
    mesh_pg_resume clinic-north
    exactly_once clinic-north "$id"
    exactly_once hq "$id"
    echo "kill-after-append: the alarm spooled before the kill went out after the restart, once"
    ;;

  kill-during-drain)
    mesh_pg_halt clinic-north
    id=$(ctl clinic-north duress --location "Ward 3") || fail "relayctl duress failed"
    stored_everywhere "$id" 10 hq
    mesh_kill clinic-north TERM
    MESH_WRAP="env RELAY_FAILPOINT=spool-drained" mesh_start_page clinic-north
    mesh_pg_resume clinic-north
    # The drain commits, and relayd dies before it frees the spool slot.
    wait_log clinic-north "failpoint spool-drained"
    wait "${mesh_pid[clinic-north]}" 2>/dev/null || true
    unset "mesh_pid[clinic-north]"
    mesh_start clinic-north
    exactly_once clinic-north "$id"
    exactly_once hq "$id"
    for _ in $(seq 1 50); do [ "$(spool_depth clinic-north)" = 0 ] && break; sleep 0.1; done
    [ "$(spool_depth clinic-north)" = 0 ] || fail "the spool did not drain after the restart"
    echo "kill-during-drain: drained again after the restart, still exactly once"
    ;;

  torn)
    mesh_pg_halt clinic-north
    id=$(ctl clinic-north duress --location "Ward 4") || fail "relayctl duress failed"
    mesh_kill clinic-north KILL
    # A second append torn by a power cut: its magic landed, half its bytes did not.
    python3 - "$mesh_dir/clinic-north/state/spool" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(2048)
    f.write(b"RMS1" + b"\x00\x00\x01\x00" + b"\x00" * 7 + b"\x02" + b"\xaa" * 200)
PY
    mesh_start_page clinic-north
    wait_log clinic-north "torn or damaged slots dropped"
    mesh_pg_resume clinic-north
    exactly_once clinic-north "$id"
    echo "torn: the torn record was dropped, the one before it kept and drained once"
    ;;

  full)
    mesh_pg_halt clinic-north
    socket=$mesh_dir/clinic-north/state/control.sock
    python3 - "$socket" <<'PY' || fail "the spool refused before it was full"
import json, socket, sys
def ask(request):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.sendall((json.dumps(request) + "\n").encode())
    return json.loads(s.makefile().readline())
first = None
for i in range(256):
    answer = ask({"verb": "duress", "location": "bed %d" % i})
    assert answer["ok"], answer
    first = first or answer["id"]
    if i == 127:
        # Half full: a person's acknowledgement waits; the other half is the alarms'.
        answer = ask({"verb": "ack", "id": first, "by": "guard 3"})
        assert not answer["ok"] and "half full" in answer["error"], answer
PY
    rc=0
    ctl clinic-north --json duress --location "one too many" > "$mesh_dir/full.json" 2>/dev/null || rc=$?
    [ "$rc" = 1 ] || fail "a duress into a full spool exited $rc, expected 1"
    grep -q "spool is full" "$mesh_dir/full.json" || fail "no clear refusal: $(cat "$mesh_dir/full.json")"
    wait_log clinic-north "duress refused: the spool .* is full"
    wait_for hq "SELECT count(*) FROM relay_event_log WHERE origin = 'clinic-north'" 256 30
    mesh_pg_resume clinic-north
    wait_for clinic-north "SELECT count(*) FROM message_queue WHERE type = 'duress'" 256 30
    for _ in $(seq 1 100); do [ "$(spool_depth clinic-north)" = 0 ] && break; sleep 0.1; done
    [ "$(spool_depth clinic-north)" = 0 ] || fail "the full spool did not drain"
    echo "full: 256 alarms held and sent, the 257th refused with exit 1, all drained once the database came back"
    ;;

  peers)
    # While clinic-north's database is down its peers see it degraded, with
    # the reason and its spool, and after supervision_timeout (5 s at hq)
    # raise an alarm row; it is cleared when the database is back.
    mesh_pg_halt clinic-north
    ctl clinic-north duress --location "Ward 4" >/dev/null || fail "the duress was not accepted"
    peer_is() {
      status_json hq | python3 -c '
import json, sys
p = [p for p in json.load(sys.stdin)["peers"] if p["id"] == "clinic-north"][0]
sys.exit(0 if p["state"] == sys.argv[1] else 1)' "$1"
    }
    eventually peer_is degraded || fail "hq does not show clinic-north degraded"
    eventually page_has hq / "clinic-north degraded: its database is down for [0-9]* s (its own report); 1 events spooled" ||
      fail "hq's page does not say why: $(status_page hq / | grep -o 'clinic-north degraded[^<]*')"
    wait_log hq "peer clinic-north is degraded: its database is down"
    wait_for hq "SELECT data->>'state' FROM message_queue WHERE type = 'relay.supervision'
                 AND data->>'reason' = 'database down'" raised 20
    eventually page_has hq /metrics '^relay_peer_store_alarm{peer="clinic-north"} 1$' || fail "no metric at hq"
    eventually status_has hq '"verdict":{"level":"ALARM"' || fail "hq's verdict is not ALARM"
    wait_log hq "ALARM raised: peer clinic-north answers, but its database is down"
    eventually status_has clinic-north '"database":{"state":"down"' || fail "clinic-north's own page does not say"
    echo "peers: hq shows clinic-north degraded (database down, 1 spooled), then raises the alarm row"
    mesh_pg_resume clinic-north
    wait_for hq "SELECT string_agg(data->>'state', ' ' ORDER BY id) FROM message_queue
                 WHERE type = 'relay.supervision' AND data->>'reason' = 'database down'" "raised cleared" 20
    eventually peer_is alive || fail "hq does not show clinic-north alive again"
    [ "$(mesh_sql hq "SELECT count(*) FROM relay_alarms")" = 0 ] || fail "an alarm is still open at hq"
    echo "peers: cleared once the database is back, exactly one raised and one cleared row"
    ;;

  *)
    echo "unknown scenario $scenario" >&2
    exit 2
    ;;
esac
echo "PASS $scenario"
