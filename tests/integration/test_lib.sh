# Helpers of the integration tests; source after scripts/lib/mesh.sh, with
# $scenario set.

# Says what failed, with every node's last errors first (a CI summary may
# keep only the start of the output), then the last lines of its log; exits.
fail() {
  echo "FAIL ($scenario): $*" >&2
  for node in "${mesh_nodes[@]}"; do
    echo "--- $node: last errors" >&2
    grep -E '^[0-9T:.-]+ (error|critical) ' "$mesh_dir/$node/relayd.log" | tail -n 5 >&2 || true
  done
  for node in "${mesh_nodes[@]}"; do
    echo "--- $node log (last lines)" >&2
    tail -n 20 "$mesh_dir/$node/relayd.log" >&2 || true
  done
  exit 1
}

# wait_for NODE SQL EXPECTED [SECONDS]: until SQL at NODE gives EXPECTED.
wait_for() {
  local node=$1 sql=$2 expected=$3 limit=${4:-30} got=""
  for _ in $(seq 1 $((limit * 10))); do
    got=$(mesh_sql "$node" "$sql" 2>/dev/null || true)
    [ "$got" = "$expected" ] && return 0
    sleep 0.1
  done
  fail "$node: $sql gave '$got', expected '$expected' within ${limit}s"
}

# status_json NODE: its /api/status, compact (relayctl status would read the configuration,
# which some scenarios break on purpose).
status_json() {
  status_page "$1" /api/status |
    python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin), separators=(",", ":")))'
}
# The page is read whole before grep looks at it: grep -q leaves at the first
# match, and under pipefail the writer's broken pipe would fail the check.
status_has() { local out; out=$(status_json "$1") && grep -q -- "$2" <<<"$out"; }
page_has() { local out; out=$(status_page "$1" "$2") && grep -q -- "$3" <<<"$out"; }
# status_page NODE PATH: GET of the status server.
status_page() { curl -s "http://127.0.0.1:$((mesh_port[$1] + 2))$2"; }

# Waits until NODE's log has a line matching PATTERN.
wait_log() {
  local node=$1 pattern=$2
  for _ in $(seq 1 200); do
    grep -q -- "$pattern" "$mesh_dir/$node/relayd.log" && return 0
    sleep 0.1
  done
  fail "$node never logged '$pattern'"
}

# Adds LINE to SECTION of NODE's configuration (the section must exist).
config_add() {
  local node=$1 section=$2 line=$3
  sed -i "/^\[$section\]\$/a $line" "$mesh_dir/$node/relayd.toml"
}

# True once COMMAND... succeeds, within 10 s (the status is refreshed each
# second; a loaded CI machine gets the rest).
eventually() {
  local deadline=$((SECONDS + 10))
  while [ "$SECONDS" -lt "$deadline" ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

# start_without ABSENT NODE...: starts each NODE with ABSENT left out of its
# peer list, a site not added yet; add_back NODE... puts it back (SIGHUP).
start_without() {
  local absent=$1 node
  shift
  for node in "$@"; do
    cp "$mesh_dir/$node/relayd.toml" "$mesh_dir/$node/full.toml"
    awk -v id="id = \"$absent\"" 'BEGIN { RS = ""; ORS = "\n\n" } index($0, id) == 0' \
      "$mesh_dir/$node/full.toml" > "$mesh_dir/$node/relayd.toml"
    mesh_start "$node"
  done
}
add_back() {
  local node
  for node in "$@"; do
    cp "$mesh_dir/$node/full.toml" "$mesh_dir/$node/relayd.toml"
    kill -HUP "${mesh_pid[$node]}"
  done
}

# lossy_paths LOSS SEED: after mesh_init with MESH_PROXY=1, every datagram to
# each node crosses a lossy_proxy of its own that drops LOSS (0 to 1) of
# them, seeded SEED, SEED+1, ...; their pids are added to proxies, which the
# test kills on exit.
lossy_paths() {
  local loss=$1 seed=$2 node
  for node in "${mesh_nodes[@]}"; do
    "$mesh_build/tests/integration/lossy_proxy" "${mesh_peer_port[$node]}" "${mesh_port[$node]}" "$loss" "$seed" &
    proxies+=($!)
    seed=$((seed + 1))
  done
}
