# Shared by scripts/demo and the integration tests: a local mesh of relayd
# processes on one ephemeral PostgreSQL (a database per node), in a temp dir.
# Source it, then: mesh_init NODE...; mesh_start NODE; ctl NODE verb...;
# mesh_sql NODE "SQL"; mesh_cleanup (also run on exit).
# Needs: $repo (the checkout), built relayd and relayctl.

mesh_build=${MESH_BUILD:-$repo/build}
mesh_relayd=$mesh_build/relay/relayd/relayd
mesh_relayctl=$mesh_build/relay/relayctl/relayctl
mesh_dir=$(mktemp -d /tmp/relaymesh-mesh.XXXXXX)
chmod 755 "$mesh_dir"
declare -A mesh_pid mesh_port mesh_peer_port mesh_pg_of
mesh_nodes=()

mesh_cleanup() {
  for node in "${!mesh_pid[@]}"; do kill "${mesh_pid[$node]}" 2>/dev/null || true; done
  for node in "${!mesh_pid[@]}"; do wait "${mesh_pid[$node]}" 2>/dev/null || true; done
  "$repo/scripts/pg-ephemeral" stop "$mesh_dir/pg" 2>/dev/null || true
  for node in "${!mesh_pg_of[@]}"; do
    "$repo/scripts/pg-ephemeral" stop "${mesh_pg_of[$node]}" 2>/dev/null || true
  done
  rm -rf "$mesh_dir"
}

mesh_group() { [ "$1" = hq ] && echo hq || echo clinics; }

# mesh_init NODE... : database, keys and config for each node (with
# MESH_SEPARATE_PG=1 each node gets a PostgreSQL cluster of its own, so that
# one site's database can go down alone: mesh_pg_halt/mesh_pg_resume). Peers reach
# NODE at mesh_peer_port[NODE], which is its own port unless a test puts a
# proxy in between (MESH_PROXY=1: peers use port+5, the proxy's).
mesh_init() {
  mesh_nodes=("$@")
  [ -n "${MESH_SEPARATE_PG:-}" ] || mesh_pg=$("$repo/scripts/pg-ephemeral" start "$mesh_dir/pg")
  "$mesh_relayctl" keygen --mesh --out "$mesh_dir/mesh.keys" 2>/dev/null
  # Below the kernel's ephemeral range (32768 and up by default): a client
  # socket of another test must not take a port while its relayd restarts.
  local base=$((10000 + RANDOM % 22000)) i=0 node peer offset=0
  [ -n "${MESH_PROXY:-}" ] && offset=5
  declare -A public_key
  for node in "${mesh_nodes[@]}"; do
    if [ -n "${MESH_SEPARATE_PG:-}" ]; then
      mesh_pg_of[$node]=$("$repo/scripts/pg-ephemeral" start "$mesh_dir/pg-$node")
    fi
    psql -h "$(mesh_host "$node")" -U postgres -q -c "CREATE DATABASE \"$node\"" >/dev/null
    mkdir -p "$mesh_dir/$node"
    public_key[$node]=$("$mesh_relayctl" keygen --out "$mesh_dir/$node/node.key" 2>/dev/null | sed 's/.*"\(.*\)"/\1/')
    install -m 600 "$mesh_dir/mesh.keys" "$mesh_dir/$node/mesh.keys"
    mesh_port[$node]=$((base + 10 * i))
    mesh_peer_port[$node]=$((base + 10 * i + offset))
    i=$((i + 1))
  done
  for node in "${mesh_nodes[@]}"; do
    local p=${mesh_port[$node]}
    {
      printf '[node]\nid = "%s"\ngroups = ["%s"]\nlisten = "127.0.0.1:%s"\nidentity_key = "node.key"\nstate_dir = "state"\n\n' \
        "$node" "$(mesh_group "$node")" "$p"
      printf '[mesh]\nkeys = "mesh.keys"\n'
      for peer in "${mesh_nodes[@]}"; do
        [ "$peer" = "$node" ] && continue
        printf '\n[[peer]]\nid = "%s"\naddress = "127.0.0.1:%s"\npublic_key = "%s"\ngroups = ["%s"]\n' \
          "$peer" "${mesh_peer_port[$peer]}" "${public_key[$peer]}" "$(mesh_group "$peer")"
      done
      printf '\n[store]\ndsn = "host=%s user=postgres dbname=%s"\n' "$(mesh_host "$node")" "$node"
      printf '\n[kick]\nlisten = "127.0.0.1:%s"\n' $((p + 1))
      if [ "$node" = hq ]; then
        printf '\n[duress]\ntargets = ["all"]\n'
      else
        printf '\n[duress]\ntargets = ["%s", "hq"]\n' "$node"
      fi
      printf '\n[status]\nlisten = "127.0.0.1:%s"\n' $((p + 2))
    } > "$mesh_dir/$node/relayd.toml"
  done
}

ctl() { local node=$1; shift; "$mesh_relayctl" --config "$mesh_dir/$node/relayd.toml" "$@"; }

# mesh_start NODE: starts relayd and waits until its core runs (its status
# page answers earlier, as soon as relayd starts, database or not).
mesh_start() { mesh_start_page "$1" && mesh_wait_core "$1"; }

# mesh_start_page NODE: starts relayd and waits until its status page answers.
# MESH_WRAP, if set, is a command relayd runs under (faketime, say).
mesh_start_page() {
  local node=$1
  # shellcheck disable=SC2086
  ${MESH_WRAP:-} "$mesh_relayd" --config "$mesh_dir/$node/relayd.toml" >> "$mesh_dir/$node/relayd.log" 2>&1 &
  mesh_pid[$node]=$!
  for _ in $(seq 1 100); do
    mesh_api "$node" /healthz >/dev/null && return 0
    sleep 0.1
  done
  echo "relayd $node did not start:" >&2
  cat "$mesh_dir/$node/relayd.log" >&2
  return 1
}

# mesh_wait_core NODE: waits until relayd's core runs (its database reached).
mesh_wait_core() {
  local node=$1 out
  for _ in $(seq 1 300); do
    out=$(mesh_api "$node" /api/status) && grep -q '"core": *"running"' <<<"$out" && return 0
    sleep 0.1
  done
  echo "relayd $node: the core did not start:" >&2
  cat "$mesh_dir/$node/relayd.log" >&2
  return 1
}

# mesh_api NODE PATH: a GET of NODE's status server, whatever its verdict
# (relayctl status waits for relayd's next database check, and exits by the
# verdict).
mesh_api() { curl -s "http://127.0.0.1:$((mesh_port[$1] + 2))$2"; }

# mesh_ready NODE...: waits until each (started for the first time) has
# heard from its peers what they hold of it, so that normal events are
# numbered at once (relay/store/numbering.h).
mesh_ready() {
  local node
  for node in "$@"; do
    for _ in $(seq 1 100); do
      grep -q "numbering: every peer" "$mesh_dir/$node/relayd.log" && break
      sleep 0.1
    done
  done
}

# mesh_kill NODE [SIGNAL]
mesh_kill() {
  kill "-${2:-TERM}" "${mesh_pid[$1]}" 2>/dev/null || true
  wait "${mesh_pid[$1]}" 2>/dev/null || true
  unset "mesh_pid[$1]"
}

# The PostgreSQL socket folder of NODE's database.
mesh_host() { echo "${mesh_pg_of[$1]:-$mesh_pg}"; }
mesh_sql() { psql -X -P pager=off -h "$(mesh_host "$1")" -U postgres -d "$1" -At -F ' ' -c "$2"; }
# With MESH_SEPARATE_PG: NODE's database goes down, and comes back.
mesh_pg_halt() { "$repo/scripts/pg-ephemeral" halt "${mesh_pg_of[$1]}"; }
mesh_pg_resume() { "$repo/scripts/pg-ephemeral" resume "${mesh_pg_of[$1]}"; }
