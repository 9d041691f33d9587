#!/usr/bin/env bash
# Sessions with real relayd processes: clocks that step, captures replayed
# after a restart, identity-key and mesh-key rotation with a site offline.
#   sessions_test.sh clock-back|clock-ahead|replay|identity-rotation|mesh-key-rotation
set -euo pipefail
scenario=${1:?usage: sessions_test.sh clock-back|clock-ahead|replay|identity-rotation|mesh-key-rotation}
repo=$(cd "$(dirname "$0")/../.." && pwd)
source "$repo/scripts/lib/mesh.sh"
source "$repo/tests/integration/test_lib.sh"
proxies=()
finish() {
  for pid in "${proxies[@]}"; do kill "$pid" 2>/dev/null || true; done
  mesh_cleanup
}
trap finish EXIT



now_ms() { date +%s%3N; }

# A duress at NODE, stored at every other node within LIMIT seconds.
duress_reaches() {
  local node=$1 limit=$2 start id seq at
  shift 2
  start=$(now_ms)
  id=$(ctl "$node" duress --location "Ward 5" 2>/dev/null) || fail "relayctl duress at $node failed"
  seq=${id##*:}
  for at in "$@"; do
    wait_for "$at" "SELECT count(*) FROM relay_event_log WHERE origin = '$node' AND seq = $seq" 1 "$limit"
  done
  echo "duress $id stored at $* in $(($(now_ms) - start)) ms"
}

# Replaces KEY's line in NODE's config section [[peer]] id = PEER with LINE.
set_peer_line() {
  local node=$1 peer=$2 key=$3 line=$4
  awk -v peer="$peer" -v key="$key" -v line="$line" '
    /^\[\[peer\]\]/ { in_peer = 0 }
    $0 == "id = \"" peer "\"" { in_peer = 1 }
    in_peer && index($0, key " = ") == 1 { print line; next }
    { print }' "$mesh_dir/$node/relayd.toml" > "$mesh_dir/$node/relayd.toml.new"
  mv "$mesh_dir/$node/relayd.toml.new" "$mesh_dir/$node/relayd.toml"
}

case "$scenario" in
  clock-back|clock-ahead)
    # clinic-north restarts with its clock an hour, then a day, off; it must
    # be taken at once, and its duress must arrive.
    sign=-
    [ "$scenario" = clock-ahead ] && sign=+
    faketime_lib=$(dpkg -L libfaketime | grep '/libfaketimeMT\.so\.1$')
    mesh_init hq clinic-north clinic-south
    for node in "${mesh_nodes[@]}"; do mesh_start "$node"; done
    mesh_ready "${mesh_nodes[@]}"
    duress_reaches clinic-north 30 hq clinic-south
    for offset in 1h 1d; do
      mesh_kill clinic-north TERM
      # libfaketime through env, which execs relayd: the pid mesh_kill and
      # the cleanup signal is relayd's own (the faketime binary would stand
      # between them and leave relayd running).
      # (An ASan build wants its runtime first; the order does not matter here.)
      MESH_WRAP="env LD_PRELOAD=$faketime_lib FAKETIME=${sign}${offset} FAKETIME_DONT_FAKE_MONOTONIC=1
        ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
        mesh_start clinic-north
      # The clock really is off: relayd's newest log line is stamped with it.
      stamp=$(tail -1 "$mesh_dir/clinic-north/relayd.log" | cut -d' ' -f1)
      skew=$(($(date -d "$stamp" +%s) - $(date +%s)))
      [ "${skew#-}" -ge 3000 ] || fail "clinic-north's clock is not off (log stamp $stamp)"
      echo "clinic-north restarted with its clock ${sign}${offset}"
      duress_reaches clinic-north 30 hq clinic-south
      duress_reaches hq 30 clinic-north
    done
    echo "$scenario: a clock stepped by an hour and by a day changes nothing"
    ;;

  replay)
    # Everything sent to clinic-north passes a proxy that records it. Then
    # clinic-south stops, clinic-north restarts, and the capture is played
    # at clinic-north again and again: it must see clinic-south as gone.
    MESH_PROXY=1 mesh_init hq clinic-north clinic-south
    for node in "${mesh_nodes[@]}"; do
      sed -i 's/^keys = "mesh.keys"$/keys = "mesh.keys"\nsupervision_timeout = "5s"/' "$mesh_dir/$node/relayd.toml"
    done
    "$mesh_build/tests/integration/lossy_proxy" "${mesh_peer_port[clinic-north]}" \
      "${mesh_port[clinic-north]}" 0 1 "$mesh_dir/capture" &
    proxies+=($!)
    for node in hq clinic-south; do
      "$mesh_build/tests/integration/lossy_proxy" "${mesh_peer_port[$node]}" "${mesh_port[$node]}" 0 1 &
      proxies+=($!)
    done
    for node in "${mesh_nodes[@]}"; do mesh_start "$node"; done
    mesh_ready "${mesh_nodes[@]}"
    ctl clinic-south send --title "captured" --wait=30s >/dev/null 2>&1 || fail "send not confirmed"
    sleep 3  # probes and their answers, captured too
    mesh_kill clinic-south TERM
    mesh_kill clinic-north TERM
    mesh_sql clinic-north "DELETE FROM message_queue" >/dev/null
    mesh_start clinic-north
    "$mesh_build/tests/integration/replay" "$mesh_dir/capture" "${mesh_port[clinic-north]}" 12
    status=$(ctl clinic-north --json status) || [ "$?" -ge 5 ]  # DEGRADED or ALARM: it answered
    state=$(echo "$status" | python3 -c 'import json, sys
print([p["state"] for p in json.load(sys.stdin)["peers"] if p["id"] == "clinic-south"][0])')
    echo "clinic-north sees clinic-south as: $state"
    [ "$state" != alive ] || fail "clinic-north counts the stopped clinic-south as alive: $status"
    wait_for clinic-north "SELECT count(*) FROM message_queue WHERE type = 'relay.supervision' AND data->>'peer' = 'clinic-south' AND data->>'state' = 'raised'" 1 10
    echo "$status" | grep -Eq '"stale_session": *[1-9]' || fail "no replay was refused as stale: $status"
    [ "$(mesh_sql clinic-north "SELECT count(*) FROM message_queue WHERE type = 'relay.supervision' AND data->>'peer' = 'hq' AND data->>'state' = 'raised'")" = 0 ] ||
      fail "clinic-north lost hq while the capture played"
    echo "replay: the capture is refused after the restart, and the stopped clinic-south raised its supervision alarm"
    ;;

  identity-rotation)
    # hq rotates its identity key while clinic-south is offline; clinic-south
    # comes back and catches up on events signed with either key.
    mesh_init hq clinic-north clinic-south
    for node in "${mesh_nodes[@]}"; do mesh_start "$node"; done
    mesh_ready "${mesh_nodes[@]}"
    for i in 1 2 3; do ctl hq send --title "old key $i" --wait=30s >/dev/null 2>&1 || fail "send $i"; done
    mesh_kill clinic-south TERM
    old=$(grep -A3 'id = "hq"' "$mesh_dir/clinic-north/relayd.toml" | sed -n 's/^public_key = "\(.*\)"/\1/p')
    new=$("$mesh_relayctl" keygen --out "$mesh_dir/hq/node2.key" 2>/dev/null | sed 's/.*"\(.*\)"/\1/')
    # 1. Every running peer learns the new key, keeping the old one (overlap).
    set_peer_line clinic-north hq public_key "public_key = \"$new\"
retired_keys = [{ key = \"$old\" }]"
    kill -HUP "${mesh_pid[clinic-north]}"
    sleep 0.5
    # 2. hq switches; what it numbered up to now was signed with the old key.
    last=$(mesh_sql hq "SELECT max(seq) FROM relay_event_log WHERE origin = 'hq'")
    sed -i "s|^identity_key = \"node.key\"$|identity_key = \"node2.key\"\nretired_keys = [{ key = \"$old\", last_seq = $last }]|" "$mesh_dir/hq/relayd.toml"
    kill -HUP "${mesh_pid[hq]}"
    for _ in $(seq 1 50); do grep -q "a new identity key" "$mesh_dir/hq/relayd.log" && break; sleep 0.1; done
    grep -q "a new identity key" "$mesh_dir/hq/relayd.log" || fail "hq did not take its new identity key"
    # clinic-south is away: these cannot be confirmed by every target yet.
    for i in 4 5; do ctl hq send --title "new key $i" >/dev/null 2>&1 || fail "send $i with the new key"; done
    wait_for clinic-north "SELECT count(*) FROM message_queue WHERE origin = 'hq'" 5
    # 3. The old key is retired: it verifies seqs up to $last only.
    set_peer_line clinic-north hq retired_keys "retired_keys = [{ key = \"$old\", last_seq = $last }]"
    kill -HUP "${mesh_pid[clinic-north]}"
    # clinic-south was away for all of it; its config is brought up to date.
    set_peer_line clinic-south hq public_key "public_key = \"$new\"
retired_keys = [{ key = \"$old\", last_seq = $last }]"
    mesh_start clinic-south
    wait_for clinic-south "SELECT count(*) FROM relay_event_log WHERE origin = 'hq'" 5 30
    wait_for clinic-south "SELECT count(*) FROM message_queue WHERE origin = 'hq'" 5 10
    duress_reaches hq 30 clinic-north clinic-south
    echo "identity-rotation: clinic-south, offline during the rotation, holds the 3 old-key and 2 new-key events"
    ;;

  mesh-key-rotation)
    mesh_init hq clinic-north clinic-south
    for node in "${mesh_nodes[@]}"; do mesh_start "$node"; done
    mesh_ready "${mesh_nodes[@]}"
    mesh_kill clinic-south TERM
    cp "$mesh_dir/clinic-south/mesh.keys" "$mesh_dir/old.keys"
    "$mesh_relayctl" keygen --mesh --out "$mesh_dir/new.keys" 2>/dev/null
    new_key=$(grep '^secret' "$mesh_dir/new.keys")
    # Add key 2, switch to it, remove key 1: at the running sites only.
    for node in hq clinic-north; do
      printf '\n[[key]]\nid = 2\n%s\n' "$new_key" >> "$mesh_dir/$node/mesh.keys"
      kill -HUP "${mesh_pid[$node]}"
    done
    sleep 0.5
    for node in hq clinic-north; do
      sed -i 's/^current = 1$/current = 2/' "$mesh_dir/$node/mesh.keys"
      kill -HUP "${mesh_pid[$node]}"
    done
    sleep 0.5
    for node in hq clinic-north; do
      printf 'current = 2\n\n[[key]]\nid = 2\n%s\n' "$new_key" > "$mesh_dir/$node/mesh.keys.new"
      install -m 600 "$mesh_dir/$node/mesh.keys.new" "$mesh_dir/$node/mesh.keys"
      kill -HUP "${mesh_pid[$node]}"
    done
    sleep 0.5
    # clinic-south returns with the old ring: both sides name the problem.
    mesh_start clinic-south
    for _ in $(seq 1 100); do
      grep -q "clinic-south seals with key id 1, which this node does not hold" "$mesh_dir/hq/relayd.log" &&
        grep -q "hq seals with key id 2, which this node does not hold" "$mesh_dir/clinic-south/relayd.log" && break
      sleep 0.1
    done
    grep -q "clinic-south seals with key id 1, which this node does not hold" "$mesh_dir/hq/relayd.log" ||
      fail "hq did not name clinic-south's old key"
    grep -q "hq seals with key id 2, which this node does not hold" "$mesh_dir/clinic-south/relayd.log" ||
      fail "clinic-south did not name hq's new key"
    # And so do the status page and the metrics.
    { ctl hq --json status || true; } | python3 -c 'import json, sys
d = json.load(sys.stdin)
south = [p for p in d["peers"] if p["id"] == "clinic-south"][0]
assert south["missing_key_id"] == 1, south
assert any("clinic-south seals with key id 1" in r for r in d["verdict"]["reasons"]), d["verdict"]' ||
      fail "hq's status does not name clinic-south's old key"
    curl -s "http://127.0.0.1:$((mesh_port[hq] + 2))/metrics" | grep -q 'relay_peer_missing_key_id{peer="clinic-south"} 1' ||
      fail "no relay_peer_missing_key_id metric for clinic-south"
    # The documented fix, at clinic-south alone: the new ring, and a reload.
    install -m 600 "$mesh_dir/hq/mesh.keys" "$mesh_dir/clinic-south/mesh.keys"
    kill -HUP "${mesh_pid[clinic-south]}"
    duress_reaches hq 30 clinic-south
    duress_reaches clinic-south 30 hq clinic-north
    echo "mesh-key-rotation: the returning site was named on both sides and came back with a reload"
    ;;

  *)
    echo "unknown scenario $scenario" >&2
    exit 2
    ;;
esac
echo "PASS $scenario"
