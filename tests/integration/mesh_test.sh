#!/usr/bin/env bash
# End-to-end scenarios with real relayd processes, real UDP and a real
# PostgreSQL. Each counts every event at every node at the end.
#   mesh_test.sh basic|kill|pg-restart|loss|hostile|reload
set -euo pipefail
scenario=${1:?usage: mesh_test.sh basic|kill|pg-restart|loss|hostile}
repo=$(cd "$(dirname "$0")/../.." && pwd)
source "$repo/scripts/lib/mesh.sh"
source "$repo/tests/integration/test_lib.sh"
proxies=()
finish() {
  for pid in "${proxies[@]}"; do kill "$pid" 2>/dev/null || true; done
  mesh_cleanup
}
trap finish EXIT


# Inserts N outbox rows at NODE, the way local software does, in chunks.
enqueue() {
  local node=$1 first=$2 last=$3
  mesh_sql "$node" "INSERT INTO outbox (title, priority) SELECT 'stream ' || g, 'bulk'
                    FROM generate_series($first, $last) g; NOTIFY outbox" >/dev/null
}

# Waits until every node holds N message_queue rows from ORIGIN, then
# checks that they are N distinct events: exactly once each.
expect_delivered() {
  local origin=$1 n=$2 limit=${3:-120} node rows distinct
  for node in "${mesh_nodes[@]}"; do
    for _ in $(seq 1 $((limit * 10))); do
      rows=$(mesh_sql "$node" "SELECT count(*) FROM message_queue WHERE origin = '$origin'")
      [ "$rows" -ge "$n" ] && break
      sleep 0.1
    done
    distinct=$(mesh_sql "$node" "SELECT count(DISTINCT seq) FROM message_queue WHERE origin = '$origin'")
    rows=$(mesh_sql "$node" "SELECT count(*) FROM message_queue WHERE origin = '$origin'")
    [ "$rows" = "$n" ] && [ "$distinct" = "$n" ] ||
      fail "$node has $rows message_queue rows ($distinct distinct) from $origin, expected $n exactly once"
    echo "$node: $n events from $origin, each exactly once"
  done
}

case "$scenario" in
  basic)
    mesh_init hq clinic-north clinic-south
    for node in "${mesh_nodes[@]}"; do mesh_start "$node"; done
    id=$(ctl hq send --title "Lockdown" --body "All sites" --wait=30s 2>/dev/null) || fail "broadcast not confirmed"
    expect_delivered hq 1
    ctl hq receipts "$id" | grep -c delivered | grep -qx 3 || fail "receipts of $id incomplete"
    ctl hq send --target clinic-south --title "For the south only" --wait=30s >/dev/null 2>&1 ||
      fail "targeted send not confirmed"
    [ "$(mesh_sql clinic-south "SELECT count(*) FROM message_queue WHERE data->>'title' = 'For the south only'")" = 1 ] ||
      fail "targeted event missing at clinic-south"
    for node in hq clinic-north; do
      [ "$(mesh_sql "$node" "SELECT count(*) FROM message_queue WHERE data->>'title' = 'For the south only'")" = 0 ] ||
        fail "targeted event delivered at $node, not a target"
    done
    # Stored everywhere all the same (full replication).
    [ "$(mesh_sql clinic-north "SELECT count(*) FROM relay_event_log WHERE origin = 'hq'")" = 2 ] ||
      fail "clinic-north does not hold hq's targeted event"
    ctl clinic-north duress --location "Psych ward, room 12" --by "nurse station 3" --wait=30s >/dev/null 2>&1 ||
      fail "duress not confirmed"
    [ "$(mesh_sql hq "SELECT count(*) FROM message_queue WHERE type = 'duress' AND data->>'location' = 'Psych ward, room 12'")" = 1 ] ||
      fail "the duress did not reach hq"
    rc=0
    ctl hq send --target clinic-east --title x >/dev/null 2>&1 || rc=$?
    [ "$rc" = 2 ] || fail "a bad target gave exit code $rc, expected 2"
    rc=0
    ctl hq send --title big --body "$(head -c 1200 /dev/zero | tr '\0' x)" >/dev/null 2>&1 || rc=$?
    [ "$rc" = 2 ] || fail "an oversized alert gave exit code $rc, expected 2"
    sed 's/dbname=hq/dbname=nowhere/' "$mesh_dir/hq/relayd.toml" > "$mesh_dir/hq/broken.toml"
    rc=0
    "$mesh_relayctl" --config "$mesh_dir/hq/broken.toml" send --title x >/dev/null 2>&1 || rc=$?
    [ "$rc" = 1 ] || fail "an unreachable database gave exit code $rc, expected 1"
    [ "$(mesh_sql hq "SELECT count(*) FROM outbox")" = 0 ] || fail "a refused send left an outbox row"
    echo "basic: broadcast, targeted send and duress delivered exactly once; bad target, oversized alert and missing database refused"
    ;;

  kill)
    mesh_init hq clinic-north clinic-south
    for node in "${mesh_nodes[@]}"; do mesh_start "$node"; done
    for chunk in $(seq 0 9); do
      enqueue hq $((chunk * 200 + 1)) $((chunk * 200 + 200))
      [ "$chunk" = 3 ] && mesh_kill clinic-north KILL && echo "clinic-north killed with SIGKILL"
      [ "$chunk" = 6 ] && mesh_start clinic-north && echo "clinic-north restarted"
      sleep 0.1
    done
    expect_delivered hq 2000
    ;;

  pg-restart)
    mesh_init hq clinic-north clinic-south
    for node in "${mesh_nodes[@]}"; do mesh_start "$node"; done
    for chunk in $(seq 0 9); do
      enqueue hq $((chunk * 200 + 1)) $((chunk * 200 + 200))
      if [ "$chunk" = 4 ]; then
        "$repo/scripts/pg-ephemeral" restart "$mesh_dir/pg"
        echo "PostgreSQL restarted"
      fi
      sleep 0.1
    done
    expect_delivered hq 2000
    grep -q "nothing is acknowledged until it answers\|rows stay in the outbox" "$mesh_dir"/*/relayd.log ||
      fail "no relayd noticed the restart"
    ;;

  loss)
    MESH_PROXY=1 mesh_init hq clinic-north clinic-south
    seed=1
    for node in "${mesh_nodes[@]}"; do
      # Every datagram to NODE passes its proxy and loses 30%.
      "$mesh_build/tests/integration/lossy_proxy" "${mesh_peer_port[$node]}" "${mesh_port[$node]}" 0.3 $seed &
      proxies+=($!)
      seed=$((seed + 1))
    done
    for node in "${mesh_nodes[@]}"; do mesh_start "$node"; done
    enqueue hq 1 200
    mesh_sql clinic-south "INSERT INTO outbox (kind, title, targets) VALUES ('duress', 'Duress south', '{all}'); NOTIFY outbox" >/dev/null
    expect_delivered hq 200
    expect_delivered clinic-south 1
    ;;

  hostile)
    mesh_init hq clinic-north clinic-south
    for node in "${mesh_nodes[@]}"; do mesh_start "$node"; done
    mesh_ready "${mesh_nodes[@]}"
    # A holder of the mesh key claims to be hq, far in the future, at both clinics.
    for clinic in clinic-north clinic-south; do
      "$mesh_build/tests/integration/hostile" "$mesh_dir/mesh.keys" "${mesh_port[$clinic]}" "$clinic" hq 20000
    done
    status=$(ctl clinic-north --json status) || [ "$?" -ge 5 ] || fail "clinic-north stopped answering"
    echo "$status" | grep -Eq "\"bad_credential\": *[1-9]" || fail "no bad_credential counted: $status"
    [ "$(mesh_sql clinic-north "SELECT count(*) FROM relay_event_log WHERE origin = 'hq'")" = 0 ] ||
      fail "a forged event was stored"
    # hq's real session is untouched: its duress reaches both clinics at once.
    start=$(date +%s%3N)
    ctl hq duress --location "Lobby" --wait=30s >/dev/null 2>&1 || fail "hq's duress was not confirmed"
    elapsed=$(($(date +%s%3N) - start))
    echo "hq's duress confirmed by every target in $elapsed ms after the forgery"
    [ "$elapsed" -lt 5000 ] || fail "the forged session delayed hq's duress by $elapsed ms"
    expect_delivered hq 1
    echo "hostile: every forgery dropped and counted; the real sender is not muted"
    ;;

  reload)
    # hq and clinic-north start without clinic-south; then it joins, and a
    # SIGHUP makes both take the new peer list without losing anything.
    mesh_init hq clinic-north clinic-south
    start_without clinic-south hq clinic-north
    before=$(ctl hq send --title "Before clinic-south" --wait=30s 2>/dev/null) || fail "first send not confirmed"
    enqueue hq 1 300
    add_back hq clinic-north
    mesh_start clinic-south
    sleep 1
    for node in hq clinic-north; do
      kill -0 "${mesh_pid[$node]}" || fail "relayd $node exited on SIGHUP"
      wait_log "$node" "restarting in place"
    done
    ctl hq send --title "After clinic-south joined" --wait=30s >/dev/null 2>&1 ||
      fail "after the reload, not every target confirmed"
    expect_delivered hq 302
    # Mesh key rotation, as the operator guide tells it: add key 2 everywhere,
    # reload; switch to it everywhere, reload; still delivering.
    "$mesh_relayctl" keygen --mesh --out "$mesh_dir/new.keys" 2>/dev/null
    new_key=$(grep '^secret' "$mesh_dir/new.keys")
    for step in add switch; do
      for node in "${mesh_nodes[@]}"; do
        if [ "$step" = add ]; then
          printf '\n[[key]]\nid = 2\n%s\n' "$new_key" >> "$mesh_dir/$node/mesh.keys"
        else
          sed -i 's/^current = 1$/current = 2/' "$mesh_dir/$node/mesh.keys"
        fi
        kill -HUP "${mesh_pid[$node]}"
      done
      sleep 0.5
    done
    for node in "${mesh_nodes[@]}"; do
      wait_log "$node" "key ring with 2 keys, sending with key id 2"
    done
    ctl hq send --title "After the key rotation" --wait=30s >/dev/null 2>&1 ||
      fail "after the key rotation, not every target confirmed"
    expect_delivered hq 303
    echo "reload: the peer list changed on SIGHUP, the mesh key rotated, every event delivered exactly once"
    ;;

  *)
    echo "unknown scenario $scenario" >&2
    exit 2
    ;;
esac
echo "PASS $scenario"
