# Two relayd (hq, clinic-north) in network namespaces of their own, joined by
# one or more veth pairs (paths: "fibre", "LTE") whose both ends are shaped
# with tc tbf: a rate and a queue, no propagation delay (this kernel has no
# netem). Loss and blackholes with nftables. Source after scripts/lib/mesh.sh
# (it keeps the databases, keys and configs); needs root, iproute2 and nft.
#   shaped_setup RATE [PATHS]; shaped_start NODE; shaped_ctl NODE ...;
#   shaped_loss PERCENT; shaped_blackhole PATH; shaped_cut; shaped_heal;
#   shaped_cleanup (also from mesh_cleanup's trap: call it first)

shaped_tag=$$
declare -A shaped_ns=([hq]=rmhq$shaped_tag [clinic-north]=rmcl$shaped_tag)
shaped_paths=1

# The namespaces, veths, addresses 10.<path>.<tag>.1 (hq) and .2, shaping on
# both ends, and each node's config pointed at the other's addresses.
shaped_setup() {
  local rate=$1 paths=${2:-1} p ns
  shaped_paths=$paths
  local octet=$((shaped_tag % 250 + 1))
  for ns in "${shaped_ns[@]}"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip netns exec "$ns" nft add table inet shaped
    ip netns exec "$ns" nft 'add chain inet shaped out { type filter hook output priority 0; }'
  done
  for p in $(seq 1 "$paths"); do
    ip link add "rh${shaped_tag}p$p" netns "${shaped_ns[hq]}" type veth peer name "rc${shaped_tag}p$p" netns "${shaped_ns[clinic-north]}"
    ip -n "${shaped_ns[hq]}" addr add "10.$((100 + p)).$octet.1/24" dev "rh${shaped_tag}p$p"
    ip -n "${shaped_ns[clinic-north]}" addr add "10.$((100 + p)).$octet.2/24" dev "rc${shaped_tag}p$p"
    for dev in "rh${shaped_tag}p$p:${shaped_ns[hq]}" "rc${shaped_tag}p$p:${shaped_ns[clinic-north]}"; do
      ip -n "${dev#*:}" link set "${dev%%:*}" up
      # A queue of 400 ms at the rate, as a provider's shaper keeps.
      ip netns exec "${dev#*:}" tc qdisc add dev "${dev%%:*}" root tbf rate "$rate" burst 3000 latency 400ms
    done
  done
  local node other addresses
  for node in hq clinic-north; do
    [ "$node" = hq ] && other=clinic-north || other=hq
    local last=1
    [ "$other" = clinic-north ] && last=2
    addresses=""
    for p in $(seq 1 "$paths"); do
      addresses+="${addresses:+, }\"10.$((100 + p)).$octet.$last:${mesh_port[$other]}\""
    done
    sed -i "s|^listen = \"127.0.0.1:${mesh_port[$node]}\"|listen = \"0.0.0.0:${mesh_port[$node]}\"|;
            s|^address = \"127.0.0.1:${mesh_peer_port[$other]}\"|addresses = [$addresses]|" \
      "$mesh_dir/$node/relayd.toml"
  done
}

shaped_ctl() { local node=$1; shift; ip netns exec "${shaped_ns[$node]}" "$mesh_relayctl" --config "$mesh_dir/$node/relayd.toml" "$@"; }

# shaped_start NODE: relayd in its namespace; waits until its core runs.
shaped_start() {
  local node=$1 out
  ip netns exec "${shaped_ns[$node]}" "$mesh_relayd" --config "$mesh_dir/$node/relayd.toml" >> "$mesh_dir/$node/relayd.log" 2>&1 &
  mesh_pid[$node]=$!
  for _ in $(seq 1 300); do
    # Any verdict (relayctl status exits 5 or 6 unless OK): the core runs.
    out=$(shaped_ctl "$node" --json status 2>/dev/null) || true
    grep -q '"core":"running"' <<<"$out" && return 0
    sleep 0.1
  done
  echo "relayd $node: the core did not start:" >&2
  cat "$mesh_dir/$node/relayd.log" >&2
  return 1
}

# Bytes and datagrams hq's shaper has passed towards the clinic, and dropped (all paths).
shaped_sent_bytes() {
  local p total=0 n
  for p in $(seq 1 "$shaped_paths"); do
    n=$(ip netns exec "${shaped_ns[hq]}" tc -s qdisc show dev "rh${shaped_tag}p$p" | awk '/Sent/ {print $2; exit}')
    total=$((total + n))
  done
  echo "$total"
}
shaped_dropped() {
  local p total=0 n
  for p in $(seq 1 "$shaped_paths"); do
    n=$(ip netns exec "${shaped_ns[hq]}" tc -s qdisc show dev "rh${shaped_tag}p$p" | sed -n 's/.*(dropped \([0-9]*\),.*/\1/p' | head -1)
    total=$((total + n))
  done
  echo "$total"
}

# shaped_loss PERCENT: random loss of what hq sends (nft numgen).
shaped_loss() {
  ip netns exec "${shaped_ns[hq]}" nft add rule inet shaped out meta l4proto udp numgen random mod 100 '<' "$1" drop
}
# shaped_blackhole PATH: everything on one path dropped, both ways, silently.
shaped_blackhole() {
  ip netns exec "${shaped_ns[hq]}" nft add rule inet shaped out oifname "rh${shaped_tag}p$1" drop
  ip netns exec "${shaped_ns[clinic-north]}" nft add rule inet shaped out oifname "rc${shaped_tag}p$1" drop
}
# shaped_cut / shaped_heal: the clinic unreachable on every path, and back.
shaped_cut() {
  local ns
  for ns in "${shaped_ns[@]}"; do ip netns exec "$ns" nft add rule inet shaped out meta l4proto udp ip daddr 10.0.0.0/8 drop; done
}
shaped_heal() {
  local ns
  for ns in "${shaped_ns[@]}"; do ip netns exec "$ns" nft flush chain inet shaped out; done
}

shaped_cleanup() {
  local node ns
  for node in "${!mesh_pid[@]}"; do kill "${mesh_pid[$node]}" 2>/dev/null || true; done
  for node in "${!mesh_pid[@]}"; do wait "${mesh_pid[$node]}" 2>/dev/null || true; done
  for ns in "${shaped_ns[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
}

# Milliseconds from commit at the origin to commit at the clinic of the
# rows titled TITLE: one line per row.
shaped_latencies() {
  mesh_sql clinic-north "SELECT round(extract(epoch from date_inserted) * 1000 - (data->>'created')::bigint)
                         FROM message_queue WHERE data->>'title' = '$1' ORDER BY seq"
}
