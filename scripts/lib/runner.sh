# relay-runner helpers on top of scripts/lib/mesh.sh (source that first):
# runner_config NAME GROUP TYPES HANDLER_TOML [STORE_TOML] [EXTRA_TOML]
# writes a config for a runner of node $runner_node's database (default hq); runner_start NAME [ENV...] starts it
# and waits for its status page; runner_kill NAME [SIGNAL]; runner_api NAME.
# Runner NAME gets kick port runner_kick[NAME], status port runner_status[NAME],
# state_dir $mesh_dir/runner-NAME.state (its captured log and recent runs).
# RUNNER_BIN overrides the relay-runner binary (a sanitizer build, say).

mesh_runner=${RUNNER_BIN:-$mesh_build/relay/relay-runner/relay-runner}
declare -A runner_pid runner_kick runner_status
runner_count=0

runner_cleanup() {
  for r in "${!runner_pid[@]}"; do kill "${runner_pid[$r]}" 2>/dev/null || true; done
  for r in "${!runner_pid[@]}"; do wait "${runner_pid[$r]}" 2>/dev/null || true; done
}

# TYPES is a TOML array such as '["duress"]'; STORE_TOML are more lines of
# [store] (poll_interval, listen), EXTRA_TOML whole tables ([retry]).
runner_config() {
  local name=$1 group=$2 types=$3 handler=$4 store=${5:-} extra=${6:-} node=${runner_node:-hq}
  local base=$((mesh_port[$node] + 100 + 3 * runner_count))
  runner_count=$((runner_count + 1))
  runner_kick[$name]=$((base + 1))
  runner_status[$name]=$((base + 2))
  printf '[runner]\ngroup = "%s"\nname = "%s"\ntypes = %s\nstate_dir = "%s"\n\n[store]\ndsn = "host=%s user=postgres dbname=%s"\n%s\n\n[kick]\nlisten = "127.0.0.1:%s"\n\n[status]\nlisten = "127.0.0.1:%s"\n\n[handler]\n%s\n\n%s\n' \
    "$group" "$name" "$types" "$mesh_dir/runner-$name.state" "$mesh_pg" "$node" "$store" "${runner_kick[$name]}" "${runner_status[$name]}" \
    "$handler" "$extra" > "$mesh_dir/runner-$name.toml"
}

# Makes NODE's relayd kick these runners after each delivery (before it starts).
runner_kicked_by() {
  local node=$1 list="" r
  shift
  for r in "$@"; do list+="${list:+, }\"127.0.0.1:${runner_kick[$r]}\""; done
  printf '\n[delivery]\nkick = [%s]\n' "$list" >> "$mesh_dir/$node/relayd.toml"
}

# runner_start NAME [VAR=VALUE...]: the variables reach the handler too.
runner_start() {
  local name=$1
  shift
  env "$@" "$mesh_runner" --config "$mesh_dir/runner-$name.toml" >> "$mesh_dir/runner-$name.log" 2>&1 &
  runner_pid[$name]=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:${runner_status[$name]}/api/status" >/dev/null 2>&1 && return 0
    kill -0 "${runner_pid[$name]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "relay-runner $name did not start:" >&2
  cat "$mesh_dir/runner-$name.log" >&2
  return 1
}

runner_kill() {
  kill "-${2:-TERM}" "${runner_pid[$1]}" 2>/dev/null || true
  wait "${runner_pid[$1]}" 2>/dev/null || true
  unset "runner_pid[$1]"
}

runner_api() { curl -s "http://127.0.0.1:${runner_status[$1]}/api/status"; }

# relay_ready NODE: waits until NODE's relayd delivers a normal event (a row
# of type relay-ready, removed again). A relayd that starts without a state
# directory may first learn its numbering from its peers, and until then it
# numbers only urgent events; the tests' notifications must not wait on it.
relay_ready() {
  local node=$1
  mesh_sql "$node" "INSERT INTO outbox (type, title, targets) VALUES ('relay-ready', 'ready', '{$node}'); NOTIFY outbox" >/dev/null
  for _ in $(seq 1 300); do
    [ "$(mesh_sql "$node" "SELECT count(*) FROM message_queue WHERE type = 'relay-ready'")" -ge 1 ] && break
    sleep 0.1
  done
  mesh_sql "$node" "DELETE FROM message_queue WHERE type = 'relay-ready'" >/dev/null
}
