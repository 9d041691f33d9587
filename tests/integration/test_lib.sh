# Helpers of the integration tests; source after scripts/lib/mesh.sh, with
# $scenario set.

# Says what failed, with the last lines of every node's log, and exits.
fail() {
  echo "FAIL ($scenario): $*" >&2
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
