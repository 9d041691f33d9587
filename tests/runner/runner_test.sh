#!/usr/bin/env bash
# relay-runner against a real relayd, a real PostgreSQL, real UDP and real
# handler processes. Each scenario counts what every handler saw.
#   runner_test.sh poll|wake|groups|pg-restart|dead-letter|lapsed|orphan|kill|share|examples
set -euo pipefail
scenario=${1:?usage: runner_test.sh poll|wake|groups|pg-restart|dead-letter|lapsed|orphan|kill|share|examples}
repo=$(cd "$(dirname "$0")/../.." && pwd)
source "$repo/scripts/lib/mesh.sh"
source "$repo/scripts/lib/runner.sh"
trap 'runner_cleanup; mesh_cleanup' EXIT
trap 'exit 1' INT TERM
handler="command = [\"$repo/tests/runner/handler.sh\"]"

fail() {
  echo "FAIL ($scenario): $*" >&2
  for f in "$mesh_dir"/runner-*.log "$mesh_dir"/hq/relayd.log; do
    echo "--- $f (last lines)" >&2
    tail -n 15 "$f" >&2 || true
  done
  for f in "$mesh_dir"/*.out; do
    [ -e "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
  done
  exit 1
}

# send N [KIND] [TYPE]: N events from hq to hq, the way local software does.
send() {
  local n=$1 kind=${2:-notification} type=${3:-}
  mesh_sql hq "INSERT INTO outbox (kind, type, title) SELECT '$kind', '$type', 'test ' || g
               FROM generate_series(1, $n) g; NOTIFY outbox" >/dev/null
}

# wait_until SECONDS COMMAND...: polls the command every 50 ms.
wait_until() {
  local limit=$1
  shift
  local end=$((SECONDS + limit))
  until "$@"; do
    [ "$SECONDS" -ge "$end" ] && return 1
    sleep 0.05
  done
}

lines() {
  local n
  n=$(grep -c "^$1 " "$2" 2>/dev/null) || true
  echo "${n:-0}"
}
has_lines() { [ "$(lines "$1" "$3")" -ge "$2" ]; }
queue_rows() { mesh_sql hq "SELECT count(*) FROM message_queue${1:+ WHERE $1}"; }
queue_empty() { [ "$(queue_rows)" = 0 ]; }
# The queue ids handled ("done") in FILE, sorted, one per line.
done_ids() { awk '$1 == "done" { print $2 }' "$1" | sort -n; }
api_field() { runner_api "$1" | jq -r "$2"; }

case "$scenario" in
  poll)
    # relayd kicks nobody and the runner does not LISTEN: only the poll is left.
    mesh_init hq
    runner_config popup popup '["notification"]' "$handler" \
      "$(printf 'poll_interval = "500ms"\nlisten = ""')"
    mesh_start hq
    relay_ready hq
    runner_start popup OUT="$mesh_dir/popup.out"
    send 5
    wait_until 10 has_lines done 5 "$mesh_dir/popup.out" || fail "5 rows not handled by the poll within 10 s"
    [ "$(api_field popup .wakeups.kicks)" = 0 ] && [ "$(api_field popup .wakeups.notifies)" = 0 ] ||
      fail "the runner was woken by a kick or NOTIFY; this test is about the poll alone"
    [ "$(done_ids "$mesh_dir/popup.out" | uniq | wc -l)" = 5 ] || fail "not 5 distinct rows handled"
    wait_until 5 queue_empty || fail "handled rows left in message_queue"
    # What a scraper accepts (the start latency is one summary family).
    curl -s "http://127.0.0.1:${runner_status[popup]}/metrics" >"$mesh_dir/metrics"
    grep -q "^# TYPE relay_runner_start_latency_seconds summary$" "$mesh_dir/metrics" ||
      fail "the start latency is not a summary: $(cat "$mesh_dir/metrics")"
    promtool check metrics <"$mesh_dir/metrics" ||
      fail "promtool refuses relay-runner's /metrics: $(promtool check metrics <"$mesh_dir/metrics" 2>&1)"
    echo "poll: with every kick lost and no LISTEN, the poll handled all 5 rows"
    ;;

  wake)
    # The poll is a minute: NOTIFY wakes one runner, the kick datagram the other.
    mesh_init hq
    slow='poll_interval = "1m"'
    runner_config notified popup '["notification"]' "$handler" "$slow"
    runner_config kicked sms '["notification"]' "$handler" "$(printf '%s\nlisten = ""' "$slow")"
    runner_kicked_by hq kicked
    mesh_start hq
    relay_ready hq
    runner_start notified OUT="$mesh_dir/notified.out"
    runner_start kicked OUT="$mesh_dir/kicked.out"
    sleep 1  # both have run their start-up cycle and sleep until the next wake-up
    start=$SECONDS
    send 1
    wait_until 5 has_lines done 1 "$mesh_dir/notified.out" || fail "NOTIFY did not wake the runner within 5 s"
    wait_until 5 has_lines done 1 "$mesh_dir/kicked.out" || fail "the kick did not wake the runner within 5 s"
    [ $((SECONDS - start)) -lt 10 ] || fail "woken only after $((SECONDS - start)) s"
    [ "$(api_field notified .wakeups.notifies)" -ge 1 ] && [ "$(api_field notified .wakeups.kicks)" = 0 ] ||
      fail "the notified runner was not woken by NOTIFY: $(runner_api notified)"
    [ "$(api_field kicked .wakeups.kicks)" -ge 1 ] && [ "$(api_field kicked .wakeups.notifies)" = 0 ] ||
      fail "the kicked runner was not woken by the kick: $(runner_api kicked)"
    wait_until 5 queue_empty || fail "a row both groups handled is still in message_queue"
    echo "wake: with a 1-minute poll, NOTIFY and the kick each woke their runner within $((SECONDS - start)) s"
    ;;

  groups)
    # popup and sms both consume duress: each sees every duress; a row leaves
    # message_queue once both are done with it, not before.
    mesh_init hq
    runner_config popup popup '["duress"]' "$handler"
    runner_config sms sms '["duress"]' "$handler"
    runner_kicked_by hq popup sms
    mesh_start hq
    relay_ready hq
    runner_start popup OUT="$mesh_dir/popup.out"
    runner_start sms OUT="$mesh_dir/sms.out"
    send 20 duress
    for g in popup sms; do
      wait_until 20 has_lines done 20 "$mesh_dir/$g.out" || fail "group $g handled $(lines done "$mesh_dir/$g.out") of 20 duress"
    done
    wait_until 5 queue_empty || fail "$(queue_rows) duress rows left in message_queue after both groups"
    for g in popup sms; do
      [ "$(lines done "$mesh_dir/$g.out")" = 20 ] || fail "group $g handled a duress twice"
      [ "$(awk '$1 == "start" { print $4 }' "$mesh_dir/$g.out" | sort -u)" = duress ] ||
        fail "group $g saw a priority other than duress"
    done
    cmp <(done_ids "$mesh_dir/popup.out") <(done_ids "$mesh_dir/sms.out") ||
      fail "the groups handled different rows"
    # With sms down, popup's handling alone does not remove the row.
    runner_kill sms
    send 1 duress
    wait_until 10 has_lines done 21 "$mesh_dir/popup.out" || fail "popup did not handle the 21st duress"
    sleep 0.5
    [ "$(queue_rows)" = 1 ] || fail "the row left message_queue before sms handled it"
    runner_start sms OUT="$mesh_dir/sms.out"
    wait_until 10 has_lines done 21 "$mesh_dir/sms.out" || fail "sms did not catch up after its restart"
    wait_until 5 queue_empty || fail "the row stayed after both groups were done"
    # A plain consumer of another type keeps working beside the groups.
    send 1 notification
    wait_until 10 test "$(queue_rows "type = 'notification'")" = 1 || fail "no notification row"
    sleep 0.5
    [ "$(queue_rows "type = 'notification'")" = 1 ] || fail "a runner touched a type no group consumes"
    mesh_sql hq "DELETE FROM message_queue WHERE type = 'notification'" >/dev/null
    [ "$(mesh_sql hq "SELECT count(*) FROM runner_rows")" = 0 ] || fail "runner state outlived its rows"
    echo "groups: popup and sms each handled all 21 duress exactly once; rows left message_queue only when both were done"
    ;;

  pg-restart)
    mesh_init hq
    runner_config popup popup '["notification"]' "$handler"
    runner_kicked_by hq popup
    mesh_start hq
    relay_ready hq
    runner_start popup OUT="$mesh_dir/popup.out" HANDLER_SLEEP=0.01
    send 50
    sleep 0.3
    "$repo/scripts/pg-ephemeral" restart "$mesh_dir/pg"
    echo "PostgreSQL restarted"
    send 50
    wait_until 60 has_lines done 100 "$mesh_dir/popup.out" || fail "$(lines done "$mesh_dir/popup.out") of 100 rows handled after the restart"
    [ "$(done_ids "$mesh_dir/popup.out" | uniq | wc -l)" = 100 ] || fail "not 100 distinct rows handled"
    wait_until 10 queue_empty || fail "handled rows left in message_queue"
    [ "$(api_field popup .database.up)" = true ] || fail "the status page still says the database is down"
    grep -q "database: " "$mesh_dir/runner-popup.log" || fail "the runner did not notice the restart"
    echo "pg-restart: 100 rows handled across a PostgreSQL restart, $(lines start "$mesh_dir/popup.out") handler runs"
    ;;

  dead-letter)
    # A gateway that is down: retried with backoff, then dead-lettered; a
    # duress instead keeps being retried and raises an alarm until it works.
    mesh_init hq
    runner_config popup popup '["notification", "duress"]' "$handler" "" \
      "$(printf '[retry]\ninitial = "100ms"\nmax = "400ms"\nmax_attempts = 3\nduress_alarm_after = 2')"
    runner_config pager pager '["hang"]' "$handler" "" \
      "$(printf '[retry]\ninitial = "100ms"\nmax_attempts = 2')"
    sed -i 's/^command = .*/&\ntimeout = "500ms"/' "$mesh_dir/runner-pager.toml"
    runner_kicked_by hq popup pager
    mesh_start hq
    relay_ready hq
    runner_start popup OUT="$mesh_dir/popup.out" HANDLER_FAIL=1 HANDLER_FIX="$mesh_dir/fixed"
    runner_start pager OUT="$mesh_dir/pager.out" HANDLER_SLEEP=30
    send 1 notification
    send 1 duress
    send 1 notification hang
    dead() { [ "$(mesh_sql hq "SELECT count(*) FROM runner_dead_letters WHERE grp = '$1'")" = 1 ]; }
    wait_until 20 dead popup || fail "the failing notification was not dead-lettered"
    read -r attempts error <<< "$(mesh_sql hq "SELECT attempts, last_error FROM runner_dead_letters WHERE grp = 'popup'")"
    [ "$attempts" = 3 ] || fail "dead-lettered after $attempts attempts, expected 3"
    [[ "$error" == *"gateway unreachable"* ]] || fail "the dead letter does not say why: $error"
    wait_until 20 dead pager || fail "the hanging handler was not timed out and dead-lettered"
    [[ "$(mesh_sql hq "SELECT last_error FROM runner_dead_letters WHERE grp = 'pager'")" == *"timed out"* ]] ||
      fail "the hung row's dead letter does not say it timed out"
    alarmed() { [ "$(api_field popup '.alarms | length')" = 1 ]; }
    wait_until 20 alarmed || fail "no duress alarm on the runner's status: $(runner_api popup)"
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${runner_status[popup]}/healthz")
    [ "$code" = 503 ] || fail "the runner's /healthz answered $code with a duress failing"
    relayd_alarmed() {
      [ "$(curl -s "http://127.0.0.1:$((mesh_port[hq] + 2))/api/status" | jq '.runner_alarms | length')" = 1 ]
    }
    wait_until 10 relayd_alarmed || fail "relayd's status does not show the runner alarm"
    relayd_page_alarmed() { curl -s "http://127.0.0.1:$((mesh_port[hq] + 2))/" | grep -q 'DURESS NOT HANDLED'; }
    wait_until 10 relayd_page_alarmed || fail "relayd's page does not show the runner alarm"
    [ "$(mesh_sql hq "SELECT count(*) FROM runner_dead_letters WHERE priority = 4")" = 0 ] ||
      fail "a duress was dead-lettered"
    before=$(lines start "$mesh_dir/popup.out")
    touch "$mesh_dir/fixed"
    wait_until 20 has_lines done 1 "$mesh_dir/popup.out" || fail "the duress was not handled once the gateway worked"
    wait_until 5 queue_empty || fail "rows left in message_queue"
    wait_until 5 test "$(api_field popup '.alarms | length')" = 0 || fail "the alarm did not clear"
    grep -q "DURESS row" "$mesh_dir/runner-popup.log" || fail "no log line for the failing duress"
    # The same story as incidents on the runner's page, from its captured log,
    # and the failed runs with what the handler said.
    for incident in dead_lettered alarm_raised alarm_cleared handled; do
      runner_api popup | jq -e --arg i "$incident" '.incidents | any(.incident == $i)' >/dev/null ||
        fail "no $incident incident on the runner's page: $(runner_api popup | jq -c '[.incidents[].incident]')"
    done
    runner_api popup | jq -e '.runs | any(.outcome == "alarm" and (.output | contains("gateway unreachable (test)")))' >/dev/null ||
      fail "no failing duress run with the handler's stderr: $(runner_api popup | jq -c '.runs')"
    echo "dead-letter: dead-lettered after 3 attempts and after a timeout; the duress alarmed through $before tries and was handled once the gateway worked"
    ;;

  lapsed)
    # A gateway down until after an alert's expiry and a duress's all-clear:
    # each retried while current, then completed without running the handler
    # again, so the repaired gateway never shows an alert that has lapsed.
    mesh_init hq
    runner_config popup popup '["notification", "duress"]' "$handler" "" \
      "$(printf '[retry]\ninitial = "200ms"\nmax = "400ms"\nmax_attempts = 1000')"
    runner_kicked_by hq popup
    mesh_start hq
    relay_ready hq
    runner_start popup OUT="$mesh_dir/popup.out" HANDLER_FAIL=1 HANDLER_FIX="$mesh_dir/fixed"
    # The second duress also "expires": a duress never does, and is handled.
    mesh_sql hq "INSERT INTO outbox (title, expires_at) VALUES ('lapses', now() + interval '3 seconds');
                 INSERT INTO outbox (title) VALUES ('stays');
                 INSERT INTO outbox (kind, title) VALUES ('duress', 'handled elsewhere');
                 INSERT INTO outbox (kind, title, expires_at) VALUES ('duress', 'never lapses', now() + interval '3 seconds');
                 INSERT INTO outbox (title) VALUES ('sent in error');
                 NOTIFY outbox" >/dev/null
    wait_until 20 has_lines start 10 "$mesh_dir/popup.out" || fail "the failing rows were not retried"
    duress=$(mesh_sql hq "SELECT origin || ':' || seq FROM message_queue WHERE data->>'title' = 'handled elsewhere'")
    "$mesh_relayctl" --config "$mesh_dir/hq/relayd.toml" all-clear "$duress" >/dev/null ||
      fail "the all-clear of $duress failed"
    # A notice its origin cancels: never an alarm, still not run.
    error=$(mesh_sql hq "SELECT origin || ':' || seq FROM message_queue WHERE data->>'title' = 'sent in error'")
    "$mesh_relayctl" --config "$mesh_dir/hq/relayd.toml" cancel "$error" >/dev/null ||
      fail "the cancel of $error failed"
    lapsed() { [ "$(api_field popup .expired)" = 1 ] && [ "$(api_field popup .cleared)" = 2 ]; }
    wait_until 20 lapsed || fail "the lapsed rows were not completed as expired, cleared and cancelled: $(runner_api popup)"
    touch "$mesh_dir/fixed"
    wait_until 20 has_lines done 2 "$mesh_dir/popup.out" || fail "the current rows were not handled once the gateway worked"
    sleep 1
    [ "$(lines done "$mesh_dir/popup.out")" = 2 ] || fail "the handler ran for a lapsed alert: $(cat "$mesh_dir/popup.out")"
    wait_until 5 grep -q "expired before it was handled" "$mesh_dir/runner-popup.log" ||
      fail "the runner did not log the expired row"
    wait_until 5 grep -q "$duress) cleared by hq:[0-9]* before it was handled" "$mesh_dir/runner-popup.log" ||
      fail "the runner did not log the cleared duress"
    wait_until 5 grep -q "$error) cancelled by hq:[0-9]* before it was handled" "$mesh_dir/runner-popup.log" ||
      fail "the runner did not log the cancelled notice"
    echo "lapsed: an expired alert, a cleared duress and a cancelled notice retried while current, then completed unhandled; the current ones handled"
    ;;

  orphan)
    # A handler that leaves a child behind (a notifier forked into the
    # background), then a SIGKILL of the runner: the restarted runner binds
    # its kick port again and handles the next duress. The child must not
    # hold the runner's sockets.
    mesh_init hq
    runner_config popup popup '["notification", "duress"]' "$handler"
    runner_kicked_by hq popup
    mesh_start hq
    relay_ready hq
    orphan=31.$((RANDOM % 1000))  # a duration of its own, to find and end it
    trap 'pkill -f "sleep $orphan" || true; runner_cleanup; mesh_cleanup' EXIT
    runner_start popup OUT="$mesh_dir/popup.out" HANDLER_ORPHAN="$orphan"
    send 1
    wait_until 10 has_lines done 1 "$mesh_dir/popup.out" || fail "the first row was not handled"
    pgrep -f "sleep $orphan" >/dev/null || fail "the handler left no child behind"
    runner_kill popup KILL
    runner_start popup OUT="$mesh_dir/popup.out" ||
      fail "the runner did not start again while the handler's child lives: $(tail -n 3 "$mesh_dir/runner-popup.log")"
    send 1 duress
    wait_until 10 has_lines done 2 "$mesh_dir/popup.out" || fail "the duress after the restart was not handled"
    echo "orphan: a handler's child outlived a SIGKILL of the runner without its sockets; the restarted runner handled the next duress"
    ;;

  kill)
    # SIGKILL of the runner while its handler runs: the handler dies with it,
    # and so does the child it started in its group, and the row is handled
    # again, with the same id, after the restart.
    mesh_init hq
    runner_config popup popup '["notification"]' "$handler"
    runner_kicked_by hq popup
    mesh_start hq
    relay_ready hq
    runner_start popup OUT="$mesh_dir/popup.out" HANDLER_SLEEP=2 HANDLER_BACKGROUND="$mesh_dir/late"
    send 1
    wait_until 10 has_lines start 1 "$mesh_dir/popup.out" || fail "the handler did not start"
    runner_kill popup KILL
    echo "relay-runner killed with SIGKILL mid-handler"
    sleep 2.5
    [ "$(lines done "$mesh_dir/popup.out")" = 0 ] || fail "the handler outlived the runner"
    [ ! -e "$mesh_dir/late" ] || fail "the child the handler started in its group outlived the runner"
    runner_start popup OUT="$mesh_dir/popup.out"
    wait_until 10 has_lines done 1 "$mesh_dir/popup.out" || fail "the row was not handled after the restart"
    ids=$(awk '$1 == "start" { print $2 }' "$mesh_dir/popup.out" | sort -u)
    [ "$(lines start "$mesh_dir/popup.out")" = 2 ] && [ "$(wc -w <<< "$ids")" = 1 ] ||
      fail "expected two runs of one row: $(cat "$mesh_dir/popup.out")"
    awk '$1 == "start" { print $5 }' "$mesh_dir/popup.out" | tr '\n' ' ' | grep -q '^1 2 $' ||
      fail "attempts were not 1 then 2"
    wait_until 5 queue_empty || fail "the row stayed in message_queue"
    echo "kill: row $ids handled again with the same id after SIGKILL mid-handler"
    ;;

  share)
    # Two runners of one group share its rows: every row once, both busy.
    mesh_init hq
    runner_config sms-1 sms '["notification"]' "$handler"
    runner_config sms-2 sms '["notification"]' "$handler"
    runner_kicked_by hq sms-1 sms-2
    mesh_start hq
    relay_ready hq
    runner_start sms-1 OUT="$mesh_dir/sms-1.out" HANDLER_SLEEP=0.02
    runner_start sms-2 OUT="$mesh_dir/sms-2.out" HANDLER_SLEEP=0.02
    send 200
    both() { [ $(($(lines done "$mesh_dir/sms-1.out") + $(lines done "$mesh_dir/sms-2.out"))) -ge 200 ]; }
    wait_until 60 both || fail "not every row handled"
    sleep 0.5
    wait_until 5 queue_empty || fail "handled rows left in message_queue"
    n1=$(lines start "$mesh_dir/sms-1.out")
    n2=$(lines start "$mesh_dir/sms-2.out")
    [ $((n1 + n2)) = 200 ] || fail "$((n1 + n2)) handler runs for 200 rows: some row was handled twice"
    [ "$(cat "$mesh_dir"/sms-*.out | awk '$1 == "done" { print $2 }' | sort -u | wc -l)" = 200 ] ||
      fail "not 200 distinct rows"
    [ "$n1" -gt 0 ] && [ "$n2" -gt 0 ] || fail "one runner did all the work ($n1 / $n2)"
    echo "share: 200 rows, each handled once, $n1 by sms-1 and $n2 by sms-2"
    ;;

  examples)
    # The example consumers against a real mesh: Python at hq, Perl at
    # clinic-north, each woken by its relayd's kick (polls are 30 s).
    mesh_init hq clinic-north
    py_kick=$((mesh_port[hq] + 7))
    pl_kick=$((mesh_port[clinic-north] + 7))
    printf '\n[delivery]\nkick = ["127.0.0.1:%s"]\n' "$py_kick" >> "$mesh_dir/hq/relayd.toml"
    printf '\n[delivery]\nkick = ["127.0.0.1:%s"]\n' "$pl_kick" >> "$mesh_dir/clinic-north/relayd.toml"
    mesh_start hq
    mesh_start clinic-north
    relay_ready hq
    relay_ready clinic-north
    /usr/bin/python3 "$repo/examples/python/consumer.py" --dsn "host=$mesh_pg user=postgres dbname=hq" \
      --types duress,notification --kick "127.0.0.1:$py_kick" --poll 30 \
      > "$mesh_dir/python.out" 2> "$mesh_dir/python.log" &
    runner_pid[python]=$!
    perl "$repo/examples/perl/consumer.pl" --dsn "host=$mesh_pg;user=postgres;dbname=clinic-north" \
      --types duress,notification --kick "127.0.0.1:$pl_kick" --poll 30 \
      > "$mesh_dir/perl.out" 2> "$mesh_dir/perl.log" &
    runner_pid[perl]=$!
    for c in python perl; do
      wait_until 10 grep -q listening "$mesh_dir/$c.log" || fail "the $c consumer did not start: $(cat "$mesh_dir/$c.log")"
    done
    sleep 0.5
    broadcast=$(ctl hq send --title "Fire in the west wing" --wait=30s 2>/dev/null) || fail "broadcast not confirmed"
    duress=$(ctl clinic-north duress --location "Psych ward, room 12" --by "nurse station 3" --wait=30s 2>/dev/null) ||
      fail "duress not confirmed"
    got() { [ "$(jq -r --arg id "$2" 'select(.event_id == $id) | .type' "$mesh_dir/$1.out" 2>/dev/null)" = "$3" ]; }
    for c in python perl; do
      wait_until 10 got "$c" "$broadcast" notification || fail "the $c consumer did not get broadcast $broadcast"
      wait_until 10 got "$c" "$duress" duress || fail "the $c consumer did not get duress $duress"
      [ "$(wc -l < "$mesh_dir/$c.out")" = 2 ] || fail "the $c consumer handled $(wc -l < "$mesh_dir/$c.out") rows, expected 2"
    done
    jq -e --arg id "$duress" 'select(.event_id == $id) | .location == "Psych ward, room 12"' "$mesh_dir/perl.out" >/dev/null ||
      fail "the duress lost its location"
    for node in hq clinic-north; do
      wait_until 5 test "$(mesh_sql "$node" "SELECT count(*) FROM message_queue")" = 0 ||
        fail "the example consumer at $node left rows in message_queue"
    done
    echo "examples: the Python and Perl consumers each got broadcast $broadcast and duress $duress, once"
    ;;

  *)
    echo "unknown scenario $scenario" >&2
    exit 2
    ;;
esac
echo "PASS $scenario"
