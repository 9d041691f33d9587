#!/usr/bin/env bash
# What an operator does with relay-runner besides running it, with a real
# relayd, a real PostgreSQL and real runner processes:
#   admin_test.sh retire-group   two groups; one retired while rows wait that
#                                only it had not finished; relayd's verdict
#                                names the group before, and is clean after
#   admin_test.sh check-config   each problem the runner would meet at start
set -euo pipefail
scenario=${1:?usage: admin_test.sh retire-group|check-config}
repo=$(cd "$(dirname "$0")/../.." && pwd)
source "$repo/scripts/lib/mesh.sh"
source "$repo/scripts/lib/runner.sh"
source "$repo/tests/integration/test_lib.sh"
holders=()
trap 'for p in "${holders[@]}"; do kill "$p" 2>/dev/null || true; done; runner_cleanup; mesh_cleanup' EXIT
trap 'exit 1' INT TERM
handler="command = [\"$repo/tests/runner/handler.sh\"]"

# test_lib's, with the runners' logs too.
fail() {
  echo "FAIL ($scenario): $*" >&2
  for f in "$mesh_dir"/runner-*.log "$mesh_dir"/hq/relayd.log; do
    [ -e "$f" ] && { echo "--- $f (last lines)" >&2; tail -n 15 "$f" >&2; }
  done
  exit 1
}

# send N KIND [TYPE]: N events from hq to hq, through the outbox.
send() {
  mesh_sql hq "INSERT INTO outbox (kind, type, title) SELECT '$2', '${3:-}', 'test ' || g
               FROM generate_series(1, $1) g; NOTIFY outbox" >/dev/null
}
queue_rows() { mesh_sql hq "SELECT count(*) FROM message_queue${1:+ WHERE $1}"; }
done_by() { mesh_sql hq "SELECT count(*) FROM runner_rows WHERE grp = '$1' AND done_at IS NOT NULL"; }
runner() { "$mesh_runner" --config "$mesh_dir/runner-$1.toml" "${@:2}"; }

case "$scenario" in
  retire-group)
    mesh_init hq
    runner_config popup popup '["duress"]' "$handler"
    # sms alone consumes sms-only; a hung handler is killed after 5 s.
    runner_config sms sms '["duress", "sms-only"]' "$handler"
    sed -i 's/^command = .*/&\ntimeout = "5s"/' "$mesh_dir/runner-sms.toml"
    runner_kicked_by hq popup sms
    mesh_start hq
    relay_ready hq
    runner_start sms OUT="$mesh_dir/sms.out"
    wait_for hq "SELECT count(*) FROM runner_groups WHERE name = 'sms'" 1 10
    runner_kill sms
    runner_start popup OUT="$mesh_dir/popup.out"
    send 3 duress
    send 1 notification sms-only
    send 1 notification other
    wait_for hq "SELECT count(*) FROM runner_rows WHERE grp = 'popup' AND done_at IS NOT NULL" 3 20
    [ "$(queue_rows "type = 'duress'")" = 3 ] || fail "duress rows left message_queue before sms handled them"

    # The verdict names who owes the row: sms has not finished it, popup has.
    # (Aged by hand: a duress alarms after 30 s in message_queue.)
    mesh_sql hq "UPDATE message_queue SET date_inserted = now() - interval '1 minute' WHERE type = 'duress'" >/dev/null
    names_sms() { status_has hq 'relay-runner group \\"sms\\" has not finished it (\\"popup\\" has)'; }
    eventually names_sms || fail "the verdict does not name group sms: $(status_json hq | jq -c .verdict)"
    page_has hq / 'group &quot;sms&quot; has not finished it' ||
      page_has hq / 'group "sms" has not finished it' || fail "the page does not name group sms"
    status_has hq 'no consumer has taken' && fail "the verdict still says no consumer has taken it"

    # Not a group that does not exist.
    if out=$(runner popup retire-group smss 2>&1); then fail "retired a group that does not exist: $out"; fi
    runner popup retire-group smss >/dev/null 2>&1 || [ $? = 2 ] || fail "retire-group smss: exit not 2"
    grep -q 'no group "smss"' <<<"$out" || fail "the unknown group is not named: $out"
    grep -q '"popup", "sms"' <<<"$out" || fail "the groups there are not listed: $out"

    # Not while a runner of the group is handling a row (its lease).
    runner_start sms OUT="$mesh_dir/sms.out" HANDLER_SLEEP=30
    wait_for hq "SELECT count(*) > 0 FROM runner_rows WHERE grp = 'sms' AND lease_until > now()" t 10
    if out=$(runner sms retire-group sms 2>&1); then fail "retired a group whose runner holds a lease: $out"; fi
    grep -q 'group "sms" is in use: runner sms holds row' <<<"$out" || fail "the runner is not named: $out"
    [ "$(queue_rows "type = 'duress'")" = 3 ] || fail "a refused retire-group changed message_queue"
    runner_kill sms  # its hung handler is killed at the timeout, and the lease released

    out=$(runner popup retire-group sms) || fail "retire-group sms failed: $out"
    echo "$out"
    grep -q "3 message_queue row(s) that only it still owed removed" <<<"$out" || fail "$out"
    grep -q 'no group consumes type "sms-only" any more: its 1 row' <<<"$out" || fail "$out"
    [ "$(queue_rows "type = 'duress'")" = 0 ] || fail "$(queue_rows "type = 'duress'") duress rows stuck after retire-group"
    [ "$(queue_rows "type = 'sms-only'")" = 1 ] || fail "a row nobody handled was removed"
    [ "$(queue_rows "type = 'other'")" = 1 ] || fail "a row of a type sms never consumed was touched"
    [ "$(mesh_sql hq "SELECT count(*) FROM runner_groups WHERE name = 'sms'")" = 0 ] || fail "sms still registered"
    [ "$(mesh_sql hq "SELECT count(*) FROM runner_rows WHERE grp = 'sms'")" = 0 ] || fail "sms's state outlived it"
    clean() {
      local s
      s=$(status_json hq)
      [ "$(jq '.message_queue.oldest_duress' <<<"$s")" = null ] &&
        ! jq -r '.verdict.reasons[]' <<<"$s" | grep -q 'message_queue'
    }
    eventually clean || fail "relayd's verdict still has a queue alarm: $(status_json hq | jq -c .verdict)"
    page_has hq / 'id=untaken-duress' && fail "the page still shows an untaken duress"

    # The next duress leaves message_queue once popup alone is done with it.
    send 1 duress
    wait_for hq "SELECT count(*) FROM message_queue WHERE type = 'duress'" 0 20
    echo "retire-group: 3 duress rows only sms owed removed with it, the verdict named sms before and is clean after"
    ;;

  check-config)
    mesh_init hq
    runner_config popup popup '["duress"]' "$handler"
    good=$mesh_dir/runner-popup.toml
    conf=$mesh_dir/runner-check.toml
    check() { "$mesh_runner" --config "$conf" --check-config "$@"; }
    # expect_problem WHAT PATTERN [FLAG]: exit 2, naming the problem.
    expect_problem() {
      local out rc=0
      out=$(check ${3:-} 2>&1) || rc=$?
      [ "$rc" = 2 ] || fail "$1: exit $rc, expected 2: $out"
      grep -q -- "$2" <<<"$out" || fail "$1: not named ('$2'): $out"
    }
    cp "$good" "$conf"
    out=$(check) || fail "a good configuration: $out"
    grep -q "ok *\[handler\] command: $repo/tests/runner/handler.sh is executable" <<<"$out" || fail "$out"
    grep -q "ok *\[store\] dsn: reachable" <<<"$out" || fail "$out"

    sed "s|^command = .*|command = [\"$mesh_dir/no-such-handler\"]|" "$good" > "$conf"
    expect_problem "a missing command" "PROBLEM *\[handler\] command: $mesh_dir/no-such-handler: No such file"
    sed "s|^command = .*|command = [\"no-such-handler-in-path\", \"--all\"]|" "$good" > "$conf"
    expect_problem "a command not in PATH" '\[handler\] command: "no-such-handler-in-path" is not an executable file in any folder of PATH'
    # Found through PATH, as the runner runs it.
    mkdir -p "$mesh_dir/bin"
    install -m 755 "$repo/tests/runner/handler.sh" "$mesh_dir/bin/popup-send"
    sed "s|^command = .*|command = [\"popup-send\"]|" "$good" > "$conf"
    out=$(PATH="$mesh_dir/bin:$PATH" check) || fail "a command found through PATH: $out"
    grep -q "$mesh_dir/bin/popup-send (\"popup-send\" in PATH) is executable" <<<"$out" || fail "$out"
    install -m 644 "$repo/tests/runner/handler.sh" "$mesh_dir/not-executable"
    sed "s|^command = .*|command = [\"$mesh_dir/not-executable\"]|" "$good" > "$conf"
    expect_problem "a file that is not executable" "\[handler\] command: $mesh_dir/not-executable is not executable by this user (mode 0644)"
    sed "s|^command = .*|command = [\"$mesh_dir\"]|" "$good" > "$conf"
    expect_problem "a directory" "\[handler\] command: $mesh_dir is a directory"

    sed 's|^command = .*|url = "https://gateway.example/alert"|' "$good" > "$conf"
    expect_problem "a bad URL" 'url: expected "http://host:port/path"'
    sed 's|^command = .*|url = "http://127.0.0.1:8080/alert"|' "$good" > "$conf"
    out=$(check) || fail "a good URL: $out"
    grep -q "ok *\[handler\] url: POST to host 127.0.0.1, port 8080, path /alert" <<<"$out" || fail "$out"

    # Ports another program holds; then the runner's own, running.
    cp "$good" "$conf"
    python3 -c '
import socket, sys, time
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", int(sys.argv[1])))
t = socket.socket(); t.bind(("127.0.0.1", int(sys.argv[2]))); t.listen()
print("held", flush=True); time.sleep(300)' "${runner_kick[popup]}" "${runner_status[popup]}" > "$mesh_dir/held" &
    holders+=($!)
    wait_until_held() { grep -q held "$mesh_dir/held"; }
    eventually wait_until_held || fail "the port holder did not start"
    expect_problem "a busy kick port" "PROBLEM *\[kick\] listen (UDP): 127.0.0.1:${runner_kick[popup]}: Address already in use"
    expect_problem "a busy status port" "PROBLEM *\[status\] listen (TCP): 127.0.0.1:${runner_status[popup]}: Address already in use"
    kill "${holders[@]}"
    wait "${holders[@]}" 2>/dev/null || true
    holders=()
    runner_start popup OUT="$mesh_dir/popup.out"
    out=$(check) || fail "refused the ports of its own running runner: $out"
    grep -q "\[status\] listen (TCP): 127.0.0.1:${runner_status[popup]} is held by this runner" <<<"$out" || fail "$out"
    runner_kill popup

    # A database that accepts the connection and never answers: said within
    # the connect timeout, and left out with --offline (the unit's).
    python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True)
conns = []
while True: conns.append(s.accept())' > "$mesh_dir/mute-port" &
    holders+=($!)
    mute_port() { [ -s "$mesh_dir/mute-port" ]; }
    eventually mute_port || fail "the mute server did not start"
    sed "s|^dsn = .*|dsn = \"host=127.0.0.1 port=$(cat "$mesh_dir/mute-port") user=postgres dbname=hq\"|" "$good" > "$conf"
    start=$SECONDS
    expect_problem "a database that does not answer" "PROBLEM *\[store\] dsn: cannot reach the database (host=127.0.0.1 port=$(cat "$mesh_dir/mute-port")"
    [ $((SECONDS - start)) -le 10 ] || fail "the database check took $((SECONDS - start)) s"
    out=$(check --offline) || fail "--offline checked the database: $out"
    grep -q "the database was not checked" <<<"$out" || fail "$out"
    echo "check-config: a missing, a non-executable and a directory command, a bad URL, two busy ports and a mute database each named; exit 2"
    ;;

  *)
    echo "unknown scenario $scenario" >&2
    exit 2
    ;;
esac
