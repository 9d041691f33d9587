#!/usr/bin/env bash
# The deployment tells the truth about itself, with real relayd processes and
# PostgreSQL:
#   deploy_test.sh durability|alarms|drift|check-config|reload
set -euo pipefail
scenario=${1:?usage: deploy_test.sh durability|alarms|drift|check-config|reload}
repo=$(cd "$(dirname "$0")/../.." && pwd)
source "$repo/scripts/lib/mesh.sh"
source "$repo/tests/integration/test_lib.sh"
holders=()
finish() {
  for pid in "${holders[@]}"; do kill "$pid" 2>/dev/null || true; done
  mesh_cleanup
}
trap finish EXIT

# hold_udp PORT: another program holds 127.0.0.1:PORT (UDP) until the test
# ends; returns once it does.
hold_udp() {
  local ready="$mesh_dir/held.$1"
  python3 -c '
import pathlib, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
pathlib.Path(sys.argv[2]).touch()
time.sleep(300)' "$1" "$ready" &
  holders+=($!)
  for _ in $(seq 1 100); do [ -e "$ready" ] && return 0; sleep 0.1; done
  fail "could not hold UDP port $1"
}

supervision_rows() {
  mesh_sql "$1" "SELECT data->>'state' FROM message_queue WHERE type = 'relay.supervision'
                 AND data->>'peer' = '$2' ORDER BY id" | paste -sd ' '
}

case "$scenario" in
  durability)
    # The "performance tuning" a site may have: commits that a power cut
    # loses. fsync = off cannot be fixed by relayd: refused, then accepted
    # only with [store] unsafe_durability, and flagged; synchronous_commit =
    # off is overridden on relayd's own sessions, and the log says so once.
    MESH_SEPARATE_PG=1 mesh_init hq clinic-north
    mesh_sql clinic-north "ALTER SYSTEM SET synchronous_commit = off" >/dev/null
    mesh_sql clinic-north "ALTER SYSTEM SET fsync = off" >/dev/null
    mesh_sql clinic-north "SELECT pg_reload_conf()" >/dev/null
    sleep 0.5
    if out=$(ctl clinic-north check-config 2>&1); then fail "check-config accepted fsync = off"; fi
    grep -q "fsync = off" <<<"$out" || fail "check-config does not name fsync: $out"
    mesh_start hq
    mesh_start_page clinic-north
    wait_log clinic-north "fsync = off"
    wait_log clinic-north "unsafe_durability"
    sleep 1
    status_has clinic-north '"core":"running"' && fail "relayd ran its core on fsync = off"
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$((mesh_port[clinic-north] + 2))/healthz")" = 503 ] ||
      fail "/healthz is not 503 while relayd refuses the database"
    echo "durability: fsync = off refused, by check-config and by relayd (healthz 503)"

    mesh_kill clinic-north
    config_add clinic-north store "unsafe_durability = true"
    out=$(ctl clinic-north check-config 2>&1) || fail "check-config refused what unsafe_durability accepts: $out"
    mesh_start clinic-north
    mesh_ready clinic-north
    wait_log clinic-north "synchronous_commit"
    [ "$(grep -c "synchronous_commit" "$mesh_dir/clinic-north/relayd.log")" = 1 ] ||
      fail "the synchronous_commit override is not logged exactly once"
    eventually status_has clinic-north '"verdict":{"level":"DEGRADED"' || fail "the status is not DEGRADED"
    eventually page_has clinic-north / "fsync = off" || fail "the page does not name fsync = off"
    eventually page_has clinic-north /metrics "^relay_database_durable 0$" ||
      fail "the metric does not say the database is not durable"
    eventually page_has hq /metrics "^relay_database_durable 1$" || fail "hq's database is durable"
    ctl hq send --target clinic-north --title "on a tuned database" --wait=20s >/dev/null ||
      fail "clinic-north did not confirm with unsafe_durability"
    echo "durability: accepted with [store] unsafe_durability, flagged on page and metrics; synchronous_commit overridden, logged once"

    # hq's server is "tuned" while hq's relayd runs, and its connections
    # drop: each new connection is checked, so hq stores and acks nothing
    # until fsync is back, and its store lane says why.
    mesh_sql hq "ALTER SYSTEM SET fsync = off" >/dev/null
    mesh_sql hq "SELECT pg_reload_conf()" >/dev/null
    for _ in $(seq 1 50); do [ "$(mesh_sql hq "SHOW fsync")" = off ] && break; sleep 0.1; done
    [ "$(mesh_sql hq "SHOW fsync")" = off ] || fail "hq's server did not take fsync = off"
    mesh_sql hq "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'" >/dev/null
    id=$(ctl clinic-north send --target hq --title "to a retuned hq") || fail "the send was not queued"
    lane_refuses() {
      status_json hq | python3 -c '
import json, sys
parts = json.load(sys.stdin)["own_job"]
sys.exit(0 if any(p["part"].startswith("store lane") and p["state"] == "failing"
                  and "fsync = off" in (p["error"] or "") for p in parts) else 1)'
    }
    for _ in $(seq 1 100); do lane_refuses && break; sleep 0.1; done
    lane_refuses || fail "hq's store lane does not refuse fsync = off: $(status_json hq)"
    [ "$(mesh_sql hq "SELECT count(*) FROM message_queue WHERE data->>'title' = 'to a retuned hq'")" = 0 ] ||
      fail "hq stored an event on a database with fsync = off"
    mesh_sql hq "ALTER SYSTEM SET fsync = on" >/dev/null
    mesh_sql hq "SELECT pg_reload_conf()" >/dev/null
    wait_for hq "SELECT count(*) FROM message_queue WHERE data->>'title' = 'to a retuned hq'" 1 30
    echo "durability: $id held while hq's server ran with fsync = off (its store lane refused it), stored once fsync was back"
    ;;

  alarms)
    # A supervision alarm is raised, the observing relayd is killed and
    # restarted (through a whole supervision period while the peer is still
    # away), the peer comes back: exactly one raised and one cleared row.
    mesh_init hq clinic-north
    config_add hq mesh 'supervision_timeout = "5s"'
    for node in "${mesh_nodes[@]}"; do mesh_start "$node"; done
    mesh_ready "${mesh_nodes[@]}"
    mesh_kill clinic-north KILL
    wait_for hq "SELECT count(*) FROM message_queue WHERE type = 'relay.supervision' AND data->>'state' = 'raised'" 1 20
    echo "alarms: hq raised 'clinic-north unreachable'"
    mesh_kill hq KILL
    mesh_start hq
    sleep 7
    [ "$(supervision_rows hq clinic-north)" = raised ] ||
      fail "after hq's restart, rows: $(supervision_rows hq clinic-north)"
    eventually status_has hq '"alarm":true' || fail "the restarted hq does not show the open alarm"
    mesh_start clinic-north
    wait_for hq "SELECT count(*) FROM message_queue WHERE type = 'relay.supervision' AND data->>'state' = 'cleared'" 1 20
    sleep 2
    [ "$(supervision_rows hq clinic-north)" = "raised cleared" ] ||
      fail "rows about clinic-north at hq: $(supervision_rows hq clinic-north)"
    [ "$(mesh_sql hq "SELECT count(*) FROM relay_alarms")" = 0 ] || fail "an alarm is still open at hq"
    echo "alarms: across hq's kill -9 and restart, exactly one raised and one cleared row"
    ;;

  drift)
    # clinic-north believes it is in group "wards" (hq and clinic-south say
    # "clinics"); clinic-south has a new identity key that nobody's
    # configuration lists yet. A group alert still reaches clinic-north
    # (resolved at its origin); both sides of each pair name the drift; the
    # send names the target that cannot confirm.
    mesh_init hq clinic-north clinic-south
    sed -i '0,/^groups = .*/s//groups = ["wards"]/' "$mesh_dir/clinic-north/relayd.toml"
    rm "$mesh_dir/clinic-south/node.key"
    "$mesh_relayctl" keygen --out "$mesh_dir/clinic-south/node.key" >/dev/null 2>&1
    for node in "${mesh_nodes[@]}"; do mesh_start "$node"; done
    # A node numbers normal events once its peers said what they hold of it,
    # or after 2 s without every answer (clinic-south cannot give one).
    wait_log hq "numbering: .*own events"
    if out=$(ctl hq send --target group:clinics --title "To the clinics" --wait=15s 2>&1); then
      fail "the send was confirmed by clinic-south, whose key hq does not list: $out"
    fi
    grep -q "clinic-south: configuration drift: clinic-south signs with an identity key" <<<"$out" ||
      fail "the send does not name clinic-south's drift: $out"
    grep -q "clinic-north: configuration drift" <<<"$out" &&
      fail "the send names the drift of clinic-north, which confirmed: $out"
    id=$(head -n 1 <<<"$out")
    wait_for clinic-north "SELECT count(*) FROM message_queue WHERE data->>'id' = '$id'" 1 10
    echo "drift: the group alert reached clinic-north; the send named clinic-south: $(grep drift <<<"$out")"
    eventually status_has hq 'clinic-north says it is in groups \[wards\]' || fail "hq does not show clinic-north's drift"
    eventually status_has clinic-north "hq's configuration puts this node in groups \[clinics\]" ||
      fail "clinic-north does not show its drift with hq"
    eventually status_has clinic-south "hq's configuration does not list this node's current identity key" ||
      fail "clinic-south does not show that hq lacks its key"
    for node in "${mesh_nodes[@]}"; do
      wait_log "$node" "CONFIGURATION DRIFT"
      eventually page_has "$node" /metrics '^relay_peer_config_drift{peer="[a-z-]*"} 1$' ||
        fail "$node's metrics do not show the drift"
      eventually status_has "$node" '"verdict":{"level":"DEGRADED"' || fail "$node's verdict is not DEGRADED"
    done
    # Peers that cannot authenticate each other are not alive.
    status_json hq | python3 -c '
import json, sys
peers = {p["id"]: p for p in json.load(sys.stdin)["peers"]}
assert peers["clinic-south"]["state"] != "alive", peers["clinic-south"]
assert peers["clinic-north"]["state"] == "alive", peers["clinic-north"]' || fail "hq calls clinic-south alive"
    echo "drift: named on both status pages, in logs and metrics; clinic-south not alive at hq"
    ;;

  check-config)
    # What relayd will meet at start, found before: a database that does not
    # answer, a port another program holds, a hostname where an address goes.
    mesh_init hq
    out=$(ctl hq check-config) || fail "check-config of a good configuration: $out"
    grep -q "reachable" <<<"$out" || fail "check-config did not reach the database: $out"
    grep -q "keeping the log 30d" <<<"$out" || fail "check-config does not say the default retention: $out"
    sed -i '/^\[store\]$/a retention = "1h"' "$mesh_dir/hq/relayd.toml"
    out=$(ctl hq check-config --offline) || fail "check-config of retention = 1h: $out"
    grep -q "keeping the log 1h" <<<"$out" || fail "check-config says a retention of 1h as: $out"
    sed -i '/^retention = "1h"$/d' "$mesh_dir/hq/relayd.toml"
    hold_udp $((mesh_port[hq] + 1))
    if out=$(ctl hq check-config 2>&1); then fail "check-config missed a taken port"; fi
    grep -q "\[kick\] listen (UDP).*Address already in use" <<<"$out" || fail "the taken port is not named: $out"
    kill "${holders[@]}"
    wait 2>/dev/null || true
    holders=()
    mesh_start hq
    out=$(ctl hq check-config) || fail "check-config refused the ports of its own running relayd: $out"
    grep -q "held by this node's running relayd" <<<"$out" || fail "$out"
    # A filter that can match nothing is a usage error, as in send.
    for filter in "--origin nowhere" "--kind bogus"; do
      # shellcheck disable=SC2086
      out=$(ctl hq events $filter 2>&1) && fail "events $filter exited 0: $out"
      # shellcheck disable=SC2086
      ctl hq events $filter >/dev/null 2>&1 || [ $? = 2 ] || fail "events $filter: exit not 2"
      grep -q -- "${filter% *}" <<<"$out" || fail "events $filter does not name the option: $out"
      grep -q "nothing was sent" <<<"$out" && fail "a read-only verb says nothing was sent: $out"
    done
    ctl hq events --origin hq --kind duress >/dev/null || fail "events with good filters failed"
    cp "$mesh_dir/hq/relayd.toml" "$mesh_dir/hq/good.toml"
    sed -i "s|^dsn = .*|dsn = \"host=$mesh_dir/nowhere user=postgres dbname=hq\"|" "$mesh_dir/hq/relayd.toml"
    if out=$(ctl hq check-config 2>&1); then fail "check-config accepted an unreachable database"; fi
    grep -q "cannot reach the database (host=$mesh_dir/nowhere" <<<"$out" || fail "the database is not named: $out"
    cp "$mesh_dir/hq/good.toml" "$mesh_dir/hq/relayd.toml"
    sed -i "s|^listen = \"127.0.0.1:$((mesh_port[hq] + 1))\"|listen = \"localhost:$((mesh_port[hq] + 1))\"|" \
      "$mesh_dir/hq/relayd.toml"
    for flag in "" --offline; do
      # shellcheck disable=SC2086
      if out=$(ctl hq check-config $flag 2>&1); then fail "check-config $flag accepted a hostname"; fi
      grep -q "relayd.toml:[0-9]*: kick.listen: .*must be an IP address" <<<"$out" ||
        fail "check-config $flag does not name the line: $out"
    done
    echo "check-config: unreachable database, taken port and hostname each named; own relayd's ports fine"

    # A state directory relayd cannot write (it would exit 2, and systemd
    # start it again): named with its owner, by root for the key's owner (the
    # unit's User=) and by that user itself, as the unit's ExecStartPre runs.
    cp "$mesh_dir/hq/good.toml" "$mesh_dir/hq/relayd.toml"
    chown nobody "$mesh_dir/hq/node.key" "$mesh_dir/hq/mesh.keys"
    for as in root nobody; do
      if out=$(runuser -u "$as" -- "$mesh_relayctl" --config "$mesh_dir/hq/relayd.toml" check-config --offline 2>&1); then
        fail "check-config as $as accepted a state directory nobody cannot write: $out"
      fi
      grep -q "$mesh_dir/hq/state belongs to root:root (mode 0[0-7]*), and relayd, running as nobody, cannot write it" <<<"$out" ||
        fail "check-config as $as does not name the state directory's owner: $out"
    done
    chown -R nobody "$mesh_dir/hq/state"
    for as in root nobody; do
      out=$(runuser -u "$as" -- "$mesh_relayctl" --config "$mesh_dir/hq/relayd.toml" check-config --offline 2>&1) ||
        fail "check-config as $as refused a state directory nobody owns: $out"
      grep -q "state_dir: $mesh_dir/hq/state is writable by nobody" <<<"$out" || fail "$out"
    done
    echo "check-config: a state directory the service user cannot write named with its owner: $(grep state_dir <<<"$out")"
    # Writable by its owner, on a file system mounted read-only (systemd's
    # ProtectSystem=strict without ReadWritePaths=): a chown would not help.
    out=$(unshare -m sh -c 'mount --bind -o ro "$1" "$1" && runuser -u nobody -- "$2" --config "$3" check-config --offline' \
      sh "$mesh_dir/hq/state" "$mesh_relayctl" "$mesh_dir/hq/relayd.toml" 2>&1) &&
      fail "check-config accepted a state directory on a read-only file system: $out"
    grep -q "is on a read-only file system here .*ReadWritePaths=" <<<"$out" ||
      fail "check-config does not say the state directory is read-only: $out"
    ! grep -q "chown" <<<"$out" || fail "check-config advises a chown for a read-only file system: $out"

    # Migrate and prune by a role that does not own the tables: a sentence
    # naming the role that does, not PostgreSQL's raw refusal.
    mesh_sql hq "CREATE ROLE alice LOGIN" >/dev/null
    sed -i "s|^dsn = .*|dsn = \"host=$(mesh_host hq) user=alice dbname=hq\"|" "$mesh_dir/hq/relayd.toml"
    chown root "$mesh_dir/hq/node.key" "$mesh_dir/hq/mesh.keys"
    for verb in migrate "prune --older-than 0s"; do
      # shellcheck disable=SC2086
      if out=$(ctl hq $verb 2>&1); then fail "$verb by a role without rights succeeded: $out"; fi
      grep -q "database role \"alice\" may not do this (permission denied .*): relaymesh's tables belong to the role \"postgres\"; run it as that role" <<<"$out" ||
        fail "$verb by alice does not name the owner: $out"
    done
    mesh_sql hq "DROP DATABASE IF EXISTS bare" >/dev/null
    mesh_sql hq "CREATE DATABASE bare" >/dev/null
    sed -i "s|^dsn = .*|dsn = \"host=$(mesh_host hq) user=postgres dbname=bare\"|" "$mesh_dir/hq/relayd.toml"
    if out=$(ctl hq prune 2>&1); then fail "prune of a database without the tables succeeded: $out"; fi
    grep -q "relaymesh's tables are not in this database yet" <<<"$out" || fail "prune of a bare database: $out"
    echo "check-config: migrate and prune as alice name the owner: $(tail -n 1 <<<"$out")"
    ;;

  reload)
    # A reload that changes the retention restarts in place (and says so); a
    # broken file is refused, visibly to the caller (relayctl reload, as
    # systemd's ExecReload) and on the status page; relayd keeps running.
    mesh_init hq clinic-north
    for node in "${mesh_nodes[@]}"; do mesh_start "$node"; done
    pid=${mesh_pid[hq]}
    sed -i '/^\[store\]$/a retention = "7d"' "$mesh_dir/hq/relayd.toml"
    out=$(ctl hq reload) || fail "relayctl reload of a retention change: $out"
    grep -q "restarting in place to take: \[store\] retention" <<<"$out" || fail "the reload did not say: $out"
    mesh_wait_core hq
    kill -0 "$pid" || fail "relayd exited on the reload"
    ctl hq check-config --json | grep -q '"retention_ms":604800000' || fail "the file does not have the retention"
    ctl hq send --target clinic-north --title "after the reload" --wait=20s >/dev/null || fail "not delivering after the reload"
    echo "reload: retention change restarted in place: $out"
    # The restarted relayd holds its state directory: a second one on the
    # same configuration (an operator starting it by hand) is refused.
    rc=0
    timeout 20 "$mesh_relayd" --config "$mesh_dir/hq/relayd.toml" >"$mesh_dir/second.log" 2>&1 || rc=$?
    [ "$rc" = 2 ] || fail "a second relayd on hq's state directory exited $rc, expected 2: $(cat "$mesh_dir/second.log")"
    grep -q "in use by another relayd (pid $pid)" "$mesh_dir/second.log" ||
      fail "the second relayd does not name the holder: $(cat "$mesh_dir/second.log")"
    kill -0 "$pid" || fail "the first relayd died of the second"

    cp "$mesh_dir/hq/relayd.toml" "$mesh_dir/hq/good.toml"
    sed -i '/^\[node\]$/a colour = "blue"' "$mesh_dir/hq/relayd.toml"
    if out=$(ctl hq reload 2>&1); then fail "relayctl reload of a broken file succeeded: $out"; fi
    grep -q "relayd.toml:[0-9]*:.*colour" <<<"$out" || fail "the refusal does not name the line: $out"
    kill -0 "$pid" || fail "relayd exited on a broken reload"
    eventually status_has hq "the last reload was refused" || fail "the status does not show the refusal"
    eventually page_has hq / "the last reload was refused" || fail "the page does not show the refusal"
    cp "$mesh_dir/hq/good.toml" "$mesh_dir/hq/relayd.toml"
    ctl hq reload >/dev/null || fail "the fixed file was not taken"
    eventually status_has hq '"verdict":{"level":"OK"' || fail "the refusal stays after a good reload"
    sed -i '/^\[node\]$/a colour = "blue"' "$mesh_dir/hq/relayd.toml"
    kill -HUP "$pid"
    eventually status_has hq "the last reload was refused" || fail "a refused SIGHUP is not on the status"
    echo "reload: a broken file refused with exit 2 ($(head -n 1 <<<"$out")), shown on the page, cleared by a good reload"

    # A valid file that relayd could not start on (its new kick port is
    # another program's): refused before the restart, not a relayd that
    # exits and leaves the site dark.
    taken=$((mesh_port[hq] + 7))
    hold_udp "$taken"
    cp "$mesh_dir/hq/good.toml" "$mesh_dir/hq/relayd.toml"
    sed -i "s|^listen = \"127.0.0.1:$((mesh_port[hq] + 1))\"|listen = \"127.0.0.1:$taken\"|" "$mesh_dir/hq/relayd.toml"
    grep -q "127.0.0.1:$taken" "$mesh_dir/hq/relayd.toml" || fail "the test did not change the kick port"
    if out=$(ctl hq reload 2>&1); then fail "a reload onto a taken port was taken: $out"; fi
    grep -q "\[kick\] listen 127.0.0.1:$taken: Address already in use" <<<"$out" || fail "the taken port is not named: $out"
    kill "${holders[@]}"
    wait "${holders[@]}" 2>/dev/null || true
    holders=()
    kill -0 "$pid" || fail "relayd exited on a reload onto a taken port"
    ctl hq send --target clinic-north --title "after the refused restart" --wait=20s >/dev/null ||
      fail "not delivering after a refused restart"
    echo "reload: a restart onto a taken port refused, relayd kept running: $(tail -n 1 <<<"$out")"
    ;;

  *)
    echo "unknown scenario $scenario" >&2
    exit 2
    ;;
esac
