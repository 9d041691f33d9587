#!/usr/bin/env bash
# Duress first at a shaped bottleneck, with real relayd in network
# namespaces joined by a veth pair shaped with tc tbf at 256 kbit/s: a
# duress raised while bulk drains arrives before the backlog, within a
# generous deadline; its latency is printed. Everything arrives once. The
# figures and their bars (2 s, goodput, the 10-minute outage, dual paths)
# are in scripts/bench-shaped.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
source "$repo/scripts/lib/mesh.sh"
source "$repo/scripts/lib/shaped.sh"
finish() {
  shaped_cleanup
  mesh_cleanup
}
trap finish EXIT
fail() {
  echo "FAIL (shaped): $*" >&2
  for node in hq clinic-north; do
    echo "--- $node log (last lines)" >&2
    tail -n 15 "$mesh_dir/$node/relayd.log" >&2 || true
  done
  exit 1
}
count() { mesh_sql clinic-north "SELECT count(*) FROM message_queue WHERE data->>'title' = '$1'"; }

mesh_init hq clinic-north
shaped_setup 256kbit
shaped_start hq
shaped_start clinic-north
for _ in $(seq 1 100); do
  grep -q "numbering: every peer" "$mesh_dir/hq/relayd.log" && break
  sleep 0.1
done

bulk=600  # about 8 s of the link
mesh_sql hq "INSERT INTO outbox (title, priority, targets) SELECT 'bulk', 'bulk', '{clinic-north}'
             FROM generate_series(1, $bulk); NOTIFY outbox" >/dev/null
sleep 2
mesh_sql hq "INSERT INTO outbox (kind, title, targets) VALUES ('duress', 'duress', '{clinic-north}'); NOTIFY outbox" >/dev/null
for _ in $(seq 1 150); do
  [ "$(count duress)" = 1 ] && break
  sleep 0.1
done
[ "$(count duress)" = 1 ] || fail "the duress did not arrive within 15 s"
before=$(count bulk)
echo "duress latency over 256 kbit/s full of bulk: $(shaped_latencies duress) ms; $before of $bulk bulk events were ahead of it"
[ "$before" -lt "$bulk" ] || fail "the duress waited for the whole backlog"
for _ in $(seq 1 600); do
  [ "$(count bulk)" -ge "$bulk" ] && break
  sleep 0.1
done
distinct=$(mesh_sql clinic-north "SELECT count(DISTINCT seq) FROM message_queue WHERE data->>'title' = 'bulk'")
[ "$(count bulk)" = "$bulk" ] && [ "$distinct" = "$bulk" ] || fail "bulk: $(count bulk) rows, $distinct distinct, expected $bulk once each"
echo "every bulk event arrived once; the shaper dropped $(shaped_dropped) datagrams"
