#!/usr/bin/env bash
# relayctl says exactly what happened (issue 20), with real relayd processes
# and a real PostgreSQL:
#   relayctl_test.sh tail|duress-wait|status|bad-input|send-wait
set -euo pipefail
scenario=${1:?usage: relayctl_test.sh tail|duress-wait|status|bad-input|send-wait}
repo=$(cd "$(dirname "$0")/../.." && pwd)
source "$repo/scripts/lib/mesh.sh"
source "$repo/tests/integration/test_lib.sh"
trap 'kill ${tail_pid:-} 2>/dev/null || true; mesh_cleanup' EXIT

# SQL that defines pg_temp.ev(origin, seq): the bytes of a SignedEvent as
# the log keeps them (protobuf by hand: origin, seq, a title; unsigned,
# which tail does not check), for log rows written straight by psql.
event_sql="
CREATE FUNCTION pg_temp.varint(n bigint) RETURNS bytea LANGUAGE plpgsql AS \$\$
DECLARE out bytea := ''::bytea;
BEGIN
  LOOP
    IF n < 128 THEN RETURN out || set_byte('\\x00'::bytea, 0, n::int); END IF;
    out := out || set_byte('\\x00'::bytea, 0, (n % 128 + 128)::int);
    n := n / 128;
  END LOOP;
END \$\$;
CREATE FUNCTION pg_temp.field(tag int, b bytea) RETURNS bytea LANGUAGE sql AS
  \$\$ SELECT set_byte('\\x00'::bytea, 0, tag) || pg_temp.varint(length(b)) || b \$\$;
CREATE FUNCTION pg_temp.ev(o text, s bigint) RETURNS bytea LANGUAGE sql AS \$\$
  SELECT pg_temp.field(10, pg_temp.field(10, convert_to(o, 'UTF8')) || '\\x10'::bytea ||
                           pg_temp.varint(s) || pg_temp.field(66, convert_to('tail test', 'UTF8')))
\$\$;"
# log_row ORIGIN SEQ: the INSERT of one such row.
log_row() {
  echo "INSERT INTO relay_event_log (origin, seq, priority, kind, signed) VALUES ('$1', $2, 1, 1, pg_temp.ev('$1', $2));"
}

case "$scenario" in
  tail)
    # No relayd: tail reads the log, which psql writes here as two lanes
    # would, committing out of the order they began in.
    mesh_init hq
    ctl hq migrate >/dev/null
    : >"$mesh_dir/hq/relayd.log"  # fail() shows it
    ctl hq tail >"$mesh_dir/tail.out" 2>"$mesh_dir/tail.err" &
    tail_pid=$!
    eventually grep -q 'following new events' "$mesh_dir/tail.err" || fail "tail did not start"
    # A bulk lane begins, stores a row and stays open; an urgent one begins
    # later and commits first; then the bulk one commits. Its row's
    # stored_at (its transaction's start) is then older than the urgent one's.
    mkfifo "$mesh_dir/lane"
    psql -X -q -h "$(mesh_host hq)" -U postgres -d hq -v ON_ERROR_STOP=1 <"$mesh_dir/lane" &
    lane_pid=$!
    exec 3>"$mesh_dir/lane"
    printf '%s\nBEGIN;\n%s\n' "$event_sql" "$(log_row bulk 1)" >&3
    sleep 1
    mesh_sql hq "$event_sql $(log_row urgent 1)" >/dev/null
    # tail has polled meanwhile: the urgent row is committed, the bulk one not
    # yet, and tail says which session it waits for.
    eventually grep -q 'wait for it to end (session pid' "$mesh_dir/tail.err" ||
      fail "tail did not name the transaction it waits for: $(cat "$mesh_dir/tail.err")"
    printf 'COMMIT;\n' >&3
    exec 3>&-
    wait "$lane_pid"
    # 1,500 rows in one transaction: one stored_at for all of them.
    mesh_sql hq "$event_sql INSERT INTO relay_event_log (origin, seq, priority, kind, signed)
      SELECT 'many', g, 1, 1, pg_temp.ev('many', g) FROM generate_series(1, 1500) g" >/dev/null
    for _ in $(seq 1 50); do
      [ "$(grep -c "^many:" "$mesh_dir/tail.out" || true)" = 1500 ] && break
      sleep 0.1
    done
    sleep 1
    grep -q "^urgent:1 " "$mesh_dir/tail.out" || fail "tail did not print urgent:1: $(head -c 300 "$mesh_dir/tail.out")"
    grep -q "^bulk:1 " "$mesh_dir/tail.out" ||
      fail "tail skipped bulk:1, whose transaction began before urgent:1's and committed after it"
    many=$(grep -c "^many:" "$mesh_dir/tail.out" || true)
    [ "$many" = 1500 ] || fail "tail printed $many of the 1,500 rows one transaction stored"
    [ "$(sort "$mesh_dir/tail.out" | uniq -d | wc -l)" = 0 ] || fail "tail printed an event twice"
    [ "$(wc -l <"$mesh_dir/tail.out")" = 1502 ] || fail "tail printed $(wc -l <"$mesh_dir/tail.out") lines, expected 1502"
    echo "tail: a lane that committed after a later one, and 1,500 rows of one transaction, each printed once"
    ;;

  duress-wait)
    # clinic-north's database is down: the duress goes through relayd (its
    # spool), and --wait follows hq's receipt through relayd too.
    MESH_SEPARATE_PG=1 mesh_init hq clinic-north
    for node in "${mesh_nodes[@]}"; do mesh_start "$node"; done
    mesh_ready "${mesh_nodes[@]}"
    mesh_pg_halt clinic-north
    rc=0
    id=$(ctl clinic-north duress --target hq --location "Ward 1" --wait 20s 2>"$mesh_dir/err") || rc=$?
    ! grep -q "nothing was sent" "$mesh_dir/err" || fail "duress --wait says nothing was sent: $(cat "$mesh_dir/err")"
    [ "$rc" = 0 ] || fail "duress --wait exit $rc with hq confirming, the database down: $(cat "$mesh_dir/err")"
    grep -q "1 of 1 targets confirmed" "$mesh_dir/err" || fail "no confirmation shown: $(cat "$mesh_dir/err")"
    wait_for hq "SELECT count(*) FROM relay_event_log WHERE origin = 'clinic-north' AND seq = ${id##*:}" 1
    rc=0
    out=$(ctl clinic-north --json duress --target hq --location "Ward 2" --wait 20s 2>/dev/null) || rc=$?
    [ "$rc" = 0 ] || fail "duress --json --wait exit $rc: $out"
    grep -q '"state":"confirmed"' <<<"$out" && grep -q '"path":"control socket"' <<<"$out" ||
      fail "duress --json --wait: $out"
    # Fields of the wrong type on the control socket: refused, and relayd
    # goes on answering.
    python3 - "$mesh_dir/clinic-north/state/control.sock" <<'PY' || fail "a request of the wrong type was not refused"
import json, socket, sys
for request in ['{"verb": 1}', '{"verb": "receipts", "id": 5}', '{"verb": "duress", "location": ["x"]}']:
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.sendall((request + "\n").encode())
    answer = json.loads(s.makefile().readline())
    assert answer["ok"] is False, (request, answer)
PY
    ctl clinic-north --json duress --target hq --location "Ward 2b" --wait 20s >/dev/null 2>&1 ||
      fail "relayd stopped answering after requests of the wrong type"
    # hq stopped: sent, not confirmed in time: exit 3, naming hq's state.
    mesh_kill hq
    rc=0
    out=$(ctl clinic-north duress --target hq --location "Ward 3" --wait 3s 2>&1) || rc=$?
    [ "$rc" = 3 ] || fail "duress --wait exit $rc with hq stopped, expected 3: $out"
    ! grep -q "nothing was sent" <<<"$out" || fail "duress --wait says nothing was sent: $out"
    grep -q "was sent, but not every target has confirmed it" <<<"$out" && grep -q "hq: pending; peer" <<<"$out" ||
      fail "the timeout does not say the duress was sent and what hq's state is: $out"
    rc=0
    out=$(ctl clinic-north --json duress --target hq --location "Ward 4" --wait 2s 2>/dev/null) || rc=$?
    [ "$rc" = 3 ] && grep -q '"exit_code":3' <<<"$out" && grep -q '"state":"sent, not every target confirmed"' <<<"$out" ||
      fail "duress --json --wait with hq stopped: exit $rc, $out"
    echo "duress-wait: with the database down, exit 0 once hq confirmed (through relayd), 3 with hq stopped; never 'nothing was sent'"
    ;;

  status)
    # The exit code follows the verdict, read after the request: 0 OK,
    # 5 DEGRADED, 6 ALARM (1: no verdict at all).
    mesh_init hq clinic-north
    for node in "${mesh_nodes[@]}"; do mesh_start "$node"; done
    mesh_ready "${mesh_nodes[@]}"
    rc=0
    out=$(ctl hq status 2>&1) || rc=$?
    [ "$rc" = 0 ] && grep -q "^hq: OK" <<<"$out" || fail "status of a sound hq: exit $rc, expected 0: $out"
    # A row the relay rejected: DEGRADED for an hour.
    mesh_sql hq "INSERT INTO outbox (kind, targets, title) VALUES ('notification', '{nowhere}', 'x')" >/dev/null
    wait_for hq "SELECT count(*) FROM outbox_rejected" 1
    rc=0
    out=$(ctl hq --json status) || rc=$?
    [ "$rc" = 5 ] && grep -q '"level":"DEGRADED"' <<<"$out" && grep -q '"exit_code":5' <<<"$out" ||
      fail "status DEGRADED: exit $rc, expected 5: $out"
    # A duress confirmed this instant is an open alarm in the very next status,
    # not only after relayd's next database check.
    ctl clinic-north duress --target hq --location "Ward 5" --wait 10s >/dev/null 2>&1 ||
      fail "the duress was not confirmed"
    rc=0
    out=$(ctl clinic-north status 2>&1) || rc=$?
    [ "$rc" = 6 ] && grep -q "^clinic-north: ALARM" <<<"$out" && grep -q "duress clinic-north:.* open" <<<"$out" ||
      fail "status right after a confirmed duress: exit $rc, expected 6 (ALARM): $out"
    rc=0
    out=$(ctl hq status 2>&1) || rc=$?
    [ "$rc" = 6 ] || fail "status at hq right after the duress arrived: exit $rc, expected 6: $out"
    mesh_kill hq
    rc=0
    ctl hq status >/dev/null 2>&1 || rc=$?
    [ "$rc" = 1 ] || fail "status with relayd stopped: exit $rc, expected 1"
    "$mesh_relayctl" --help | grep -q "6  status: the verdict is ALARM" || fail "--help does not list status's codes"
    echo "status: exit 0 OK, 5 DEGRADED, 6 ALARM at once after a duress, 1 with relayd stopped"
    ;;

  bad-input)
    # No relayd: what is refused is refused before anything runs.
    mesh_init hq clinic-north
    ctl hq migrate >/dev/null
    : >"$mesh_dir/hq/relayd.log"  # fail() shows it
    : >"$mesh_dir/clinic-north/relayd.log"
    for args in "events --origin nowhere" "events --kind bogus"; do
      rc=0
      # shellcheck disable=SC2086
      out=$(ctl hq $args 2>&1) || rc=$?
      [ "$rc" = 2 ] || fail "$args: exit $rc, expected 2: $out"
      grep -q -- "--${args#events --}" <<<"$out" || fail "$args does not name the option: $out"
      ! grep -q "nothing was sent" <<<"$out" || fail "$args, a read-only verb, speaks of sending: $out"
      rc=0
      # shellcheck disable=SC2086
      out=$(ctl hq --json $args 2>/dev/null) || rc=$?
      [ "$rc" = 2 ] && grep -q '"exit_code":2' <<<"$out" || fail "--json $args: exit $rc: $out"
    done
    # A missing event: exit 1 and the same sentence for receipts and all-clear.
    rc=0
    receipts=$(ctl hq receipts hq:999 2>&1) || rc=$?
    [ "$rc" = 1 ] || fail "receipts of a missing event: exit $rc, expected 1: $receipts"
    rc=0
    clear=$(ctl hq all-clear hq:999 2>&1) || rc=$?
    [ "$rc" = 1 ] || fail "all-clear of a missing event: exit $rc, expected 1: $clear"
    [ "$receipts" = "$clear" ] || fail "receipts and all-clear say a missing event differently: '$receipts' and '$clear'"
    grep -q "no event hq:999 in this node's log" <<<"$receipts" || fail "receipts: $receipts"
    ! grep -q "nothing was sent" <<<"$receipts" || fail "receipts, a read-only verb, speaks of sending: $receipts"
    [ "$(mesh_sql hq "SELECT count(*) FROM outbox")" = 0 ] || fail "the all-clear of nothing left an outbox row"
    echo "bad-input: events with a bad filter exit 2; a missing event is exit 1 for receipts and all-clear, in one sentence"
    ;;

  send-wait)
    mesh_init hq clinic-north
    for node in "${mesh_nodes[@]}"; do mesh_start "$node"; done
    mesh_ready "${mesh_nodes[@]}"
    mesh_kill clinic-north
    # Until hq calls it down: the timeout then names that state.
    for _ in $(seq 1 300); do
      state=$(status_json hq | python3 -c 'import json, sys
print([p["state"] for p in json.load(sys.stdin)["peers"] if p["id"] == "clinic-north"][0])')
      [ "$state" = down ] && break
      sleep 0.1
    done
    [ "$state" = down ] || fail "hq never called the stopped clinic-north down (it says $state)"
    rc=0
    ctl hq send --target clinic-north --title "Unanswered" --wait 3s >/dev/null 2>"$mesh_dir/err" || rc=$?
    [ "$rc" = 3 ] || fail "send --wait to a stopped target: exit $rc, expected 3: $(cat "$mesh_dir/err")"
    # Not a terminal: a line when something changes, not one per poll.
    progress=$(grep -c "targets confirmed" "$mesh_dir/err" || true)
    [ "$progress" = 1 ] || fail "send --wait printed $progress progress lines with nothing changing: $(cat "$mesh_dir/err")"
    grep -q "^  clinic-north: pending; peer down" "$mesh_dir/err" ||
      fail "the timeout does not name clinic-north's state: $(cat "$mesh_dir/err")"
    rc=0
    out=$(ctl hq --json send --target clinic-north --title "Unanswered 2" --wait 2s 2>/dev/null) || rc=$?
    [ "$rc" = 3 ] && grep -q '"pending":\[{"target":"clinic-north","peer":"down"' <<<"$out" ||
      fail "send --json --wait to a stopped target: exit $rc: $out"
    echo "send-wait: one progress line off a terminal; the timeout names clinic-north as down"
    ;;

  *)
    echo "usage: relayctl_test.sh tail|duress-wait|status|bad-input|send-wait" >&2
    exit 2
    ;;
esac
