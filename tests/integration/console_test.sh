#!/usr/bin/env bash
# The operator's console with real relayd processes and a real PostgreSQL:
# /healthz with the database stopped at start and mid-run, the HTTP limits,
# the captured log, and relayctl's every answer through the real binary.
#   console_test.sh health|limits|logs|relayctl
set -euo pipefail
scenario=${1:?usage: console_test.sh health|limits|logs|relayctl}
repo=$(cd "$(dirname "$0")/../.." && pwd)
source "$repo/scripts/lib/mesh.sh"
source "$repo/tests/integration/console_lib.sh"
trap mesh_cleanup EXIT

case "$scenario" in
  health)
    mesh_init hq clinic-north
    # The database is down before relayd starts: the page and /healthz come
    # up all the same and say why.
    pg_halt
    mesh_start_page hq
    wait_for "/healthz 503 with the database never reached" \
      'code=$(http hq /healthz); [ "$code" = 503 ] && grep -q "database: never reached" "$http_body"'
    grep -q "relay core: .*waiting for the database" "$http_body" || fail "/healthz does not say the core waits: $(cat "$http_body")"
    [ "$(http hq /api/status)" = 200 ] || fail "/api/status does not answer while the database is down"
    # The mesh side runs all the same: the core answers its peers without its store.
    json_field "$http_body" 'd["core"]' | grep -qx "running without its database" ||
      fail "the core does not run without its database: $(cat "$http_body")"
    json_field "$http_body" 'd["verdict"]["level"]' | grep -qx ALARM || fail "verdict not ALARM with the database down"
    rc=0
    ctl hq status >/dev/null || rc=$?
    [ "$rc" = 6 ] || fail "relayctl status exit $rc while relayd runs without its database (ALARM is 6)"
    wait_log hq "incident=database_down"
    pg_resume
    wait_for "/healthz 200 once the database is back" '[ "$(http hq /healthz)" = 200 ]'
    # Mid-run, with the mesh idle: no event has to be stored, and still.
    halted=$SECONDS
    pg_halt
    wait_for "/healthz 503 mid-run" \
      'code=$(http hq /healthz); [ "$code" = 503 ] && grep -q "database: down for" "$http_body"'
    # In plain words, where to look, and the library's words only as detail.
    grep -q "database unreachable at host $mesh_dir/pg port 5432: check that PostgreSQL runs there" "$http_body" ||
      fail "/healthz does not say where the database is unreachable: $(cat "$http_body")"
    ! grep -q "^\(store lane\|outbox\).*: failing for" "$http_body" ||
      fail "/healthz says the database's failure more than once: $(cat "$http_body")"
    ! grep -q "^[^(]*not connected" "$http_body" ||
      fail "/healthz gives the library's words as the reason: $(cat "$http_body")"
    http hq /metrics >/dev/null
    grep -qx "relay_database_up 0" "$http_body" || fail "relay_database_up is not 0 with the database down"
    # What a scraper accepts, with the database down and (below) up.
    promtool check metrics <"$http_body" || fail "promtool refuses relayd's /metrics: $(promtool check metrics <"$http_body" 2>&1)"
    grep -q "relay_database_last_ok_timestamp_seconds [1-9]" "$http_body" || fail "no last ok time"
    wait_log hq "database unreachable:.*incident=database_down"
    sleep 4  # down long enough that a figure counted from the wrong moment shows
    pg_resume
    down_for=$((SECONDS - halted))
    wait_for "/healthz 200 after the restart" '[ "$(http hq /healthz)" = 200 ]'
    wait_log hq "database reachable again after .*incident=database_up"
    http hq /metrics >/dev/null
    promtool check metrics <"$http_body" || fail "promtool refuses relayd's /metrics: $(promtool check metrics <"$http_body" 2>&1)"
    # Counted from the first failing check: the whole halt, give or take a check (2 s).
    said=$(grep -o "database reachable again after [0-9]* s" "$mesh_dir/hq/relayd.log" | tail -n 1 | grep -o "[0-9]*")
    [ "$said" -ge $((down_for - 3)) ] && [ "$said" -le $((SECONDS - halted + 1)) ] ||
      fail "the log says the database was down $said s; it was halted for about $down_for s"
    echo "health: /healthz 503 with reasons at start and mid-run, 200 when the database is back; logged both ways"
    ;;

  limits)
    mesh_init hq clinic-north
    mesh_start hq
    port=$(status_port hq)
    pid=${mesh_pid[hq]}
    # 1.5 GB streamed in a POST: refused at once, memory stays flat (measured
    # as growth: an ASan build starts far higher).
    rss0=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    code=$(head -c 1500000000 /dev/zero | curl -s -o /dev/null -w '%{http_code}' --max-time 20 \
      -X POST -H 'Content-Type: application/octet-stream' -T - "http://127.0.0.1:$port/" || true)
    [ "$code" = 405 ] || fail "a large POST got HTTP $code, expected 405"
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    [ $((rss - rss0)) -lt 100000 ] || fail "relayd grew from $rss0 to $rss kB after a large POST"
    echo "large POST: 405, relayd at $rss kB (from $rss0 kB)"
    # 4,092 idle connections: /healthz still answers at once, descriptors stay bounded.
    cat > "$mesh_dir/flood.py" <<'PY'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
held = []
for _ in range(n):
    try:
        held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
    except OSError:
        pass
print("opened", len(held), flush=True)
time.sleep(120)
PY
    python3 "$mesh_dir/flood.py" "$port" 4092 > "$mesh_dir/flood.out" 2>&1 &
    flood=$!
    for _ in $(seq 1 300); do grep -q opened "$mesh_dir/flood.out" 2>/dev/null && break; sleep 0.1; done
    grep -q opened "$mesh_dir/flood.out" || fail "the flood did not open its connections"
    start=$(date +%s%N)
    [ "$(http hq /healthz)" = 200 ] || fail "/healthz failed during the connection flood"
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    fds=$(ls "/proc/$pid/fd" | wc -l)
    kill "$flood" 2>/dev/null || true
    wait "$flood" 2>/dev/null || true
    [ "$ms" -lt 2000 ] || fail "/healthz took $ms ms during the flood"
    [ "$fds" -lt 300 ] || fail "relayd holds $fds descriptors during the flood"
    echo "4092 idle connections: /healthz in $ms ms, relayd holds $fds descriptors"
    # A second relayd on the same status port fails with a clear error.
    mkdir -p "$mesh_dir/hq2"
    sed -e "s/^listen = \"127.0.0.1:${mesh_port[hq]}\"/listen = \"127.0.0.1:$((mesh_port[hq] + 7))\"/" \
        -e "s/127.0.0.1:$((mesh_port[hq] + 1))/127.0.0.1:$((mesh_port[hq] + 8))/" \
        -e 's/^state_dir = "state"/state_dir = "state2"/' \
        "$mesh_dir/hq/relayd.toml" > "$mesh_dir/hq/second.toml"
    rc=0
    timeout 20 "$mesh_relayd" --config "$mesh_dir/hq/second.toml" > "$mesh_dir/second.log" 2>&1 || rc=$?
    [ "$rc" = 1 ] || fail "a second relayd on the same status port exited with $rc, expected 1"
    grep -q "cannot listen on 127.0.0.1:$port: Address already in use" "$mesh_dir/second.log" ||
      fail "the second relayd did not say why: $(cat "$mesh_dir/second.log")"
    http hq /api/status >/dev/null
    [ "$(json_field "$http_body" 'd["process"]["pid"]')" = "$pid" ] || fail "the port answers for another process"
    echo "limits: large POST refused, connection flood harmless, a second relayd on the port refused"
    ;;

  logs)
    mesh_init hq clinic-north
    mesh_start hq
    # A library writes to stderr and stdout by itself, not through our logger.
    preload=${SHOUT_PRELOAD:-$mesh_build/tests/integration/libshout_preload.so}
    [ -f "$preload" ] || fail "no $preload (build the shout_preload target)"
    mesh_kill hq
    # (An ASan build wants its runtime first; the order does not matter here.)
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 LD_PRELOAD=$preload mesh_start hq
    wait_for "the library's line on the page" \
      'http hq /api/logs >/dev/null; grep -q "libshout: a line a library wrote to stderr" "$http_body"'
    grep -q "libshout: a line a library wrote to stdout" "$http_body" || fail "the stdout line is not on the page"
    wait_log hq "libshout: a line a library wrote to stderr"
    http hq / >/dev/null
    grep -q "libshout: a line a library wrote to stderr" "$http_body" || fail "the line is not on the page itself"
    # A crash: the next run's page shows the last lines before it.
    old_pid=${mesh_pid[hq]}
    mesh_kill hq KILL
    mesh_start hq
    http hq / >/dev/null
    grep -q "relayd started (pid $old_pid)" "$http_body" || fail "the previous run's lines are not on the page"
    grep -q "libshout: a line a library wrote to stderr" "$http_body" || fail "the library line of the previous run is gone"
    grep -q "relayd started (pid ${mesh_pid[hq]})" "$http_body" || fail "this run's marker is missing"
    echo "logs: a library's stderr line on the page and in the journal stream; kept across a SIGKILL"
    ;;

  relayctl)
    mesh_init hq clinic-north
    mesh_start hq
    mesh_start clinic-north
    expect_rc 0 --version "$mesh_relayctl" --version
    expect_rc 0 --version "$mesh_relayd" --version
    "$mesh_relayctl" --help | grep -q "4  queued, not yet sent" || fail "--help does not list exit code 4"
    # Refused before anything is inserted, with exit code 2 and one JSON document.
    expect_json 2 'target ""' ctl hq --json send --target "" --title x
    expect_json 2 'no title' ctl hq --json send --target all
    expect_json 1 'all-clear of nothing' ctl hq --json all-clear hq:999
    expect_json 2 'id with letters' ctl hq --json receipts hq:12abc
    expect_json 2 'id out of range' ctl hq --json receipts hq:99999999999999999999
    expect_json 2 'id zero' ctl hq --json all-clear hq:0
    expect_json 2 'bad --wait' ctl hq --json send --title x --wait soon
    [ "$(mesh_sql hq "SELECT count(*) FROM outbox")" = 0 ] || fail "a refused command left an outbox row"
    # Sent, followed to every receipt: --wait 5s and --wait=5s alike.
    expect_json 0 'send --wait 5s' ctl hq --json send --title "Drill" --wait 10s
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert list(d)[:6]==["ok","exit_code","state","id","origin","seq"], list(d); assert isinstance(d["seq"], int) and d["state"]=="confirmed", d' "$json_out" ||
      fail "send JSON: keys out of order or seq not an integer: $(cat "$json_out")"
    expect_rc 0 '--wait=10s' ctl hq send --title "Drill 2" --wait=10s
    # An all-clear goes where the event went, not everywhere.
    id=$(ctl hq send --target clinic-north --title "For the north" --wait=10s 2>/dev/null)
    expect_json 0 'all-clear' ctl hq --json all-clear "$id" --wait 10s
    json_field "$json_out" 'd["targets"]' | grep -qx "\['clinic-north'\]" ||
      fail "the all-clear did not default to the event's targets: $(cat "$json_out")"
    # A target that does not confirm: exit 3, the event sent, receipts pending.
    mesh_kill clinic-north
    expect_json 3 'wait timed out' ctl hq --json send --target clinic-north --title "Unanswered" --wait 3s
    json_field "$json_out" 'd["receipts"][0]["state"]' | grep -qx pending || fail "no pending receipt in $(cat "$json_out")"
    # relayd not running: queued, not sent, exit 4, with the outbox id.
    mesh_kill hq
    expect_json 4 'duress, relayd stopped' ctl hq --json duress --location "Room 12"
    json_field "$json_out" 'd["state"]' | grep -qx queued || fail "no queued state in $(cat "$json_out")"
    outbox_id=$(json_field "$json_out" 'd["outbox_id"]')
    [ "$(mesh_sql hq "SELECT count(*) FROM outbox WHERE id = $outbox_id")" = 1 ] || fail "outbox row $outbox_id not there"
    rc=0
    out=$(ctl hq duress --location "Room 12" 2>"$mesh_dir/err") || rc=$?
    [ "$rc" = 4 ] || fail "duress without --wait, relayd stopped: exit $rc, expected 4"
    grep -q "NOT sent yet" "$mesh_dir/err" || fail "duress without --wait does not say it is not sent"
    expect_json 4 'send --wait, relayd stopped' ctl hq --json send --title x --wait 2s
    # relayd starts: the queued rows go out.
    mesh_start hq
    wait_for "the queued rows claimed" '[ "$(mesh_sql hq "SELECT count(*) FROM outbox")" = 0 ]'
    echo "relayctl: every refusal exit 2, wait timeouts exit 3, unclaimed exit 4; one JSON document each"
    ;;

  *)
    echo "unknown scenario $scenario" >&2
    exit 2
    ;;
esac
echo "PASS $scenario"
