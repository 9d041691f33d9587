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
    ctl hq tail >"$mesh_dir/tail.out" 2>/dev/null &
    tail_pid=$!
    sleep 1
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
    sleep 1.5  # tail has polled meanwhile: the urgent row is committed, the bulk one not yet
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

  *)
    echo "usage: relayctl_test.sh tail|duress-wait|status|bad-input|send-wait" >&2
    exit 2
    ;;
esac
