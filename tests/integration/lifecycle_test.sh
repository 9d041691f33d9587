#!/usr/bin/env bash
# Lifecycle faults of a site, with real relayd processes and PostgreSQL:
#   lifecycle_test.sh rebuild|restore|revert|lost-state|conflict|prune-down|third-site|late-join|slow-settle|poison|history
set -euo pipefail
scenario=${1:?usage: lifecycle_test.sh rebuild|restore|revert|lost-state|conflict|prune-down|third-site|late-join|slow-settle|poison|history}
repo=$(cd "$(dirname "$0")/../.." && pwd)
source "$repo/scripts/lib/mesh.sh"
source "$repo/tests/integration/test_lib.sh"
trap mesh_cleanup EXIT

now_ms() { date +%s%3N; }

# Raises a duress at NODE and waits until every node in "$@" stored it,
# printing the latency; sets $duress_id.
duress_everywhere() {
  local node=$1 start at
  shift
  start=$(now_ms)
  duress_id=$(ctl "$node" duress --location "Ward 3" --by "button 7" 2>/dev/null) ||
    fail "relayctl duress at $node failed"
  local seq=${duress_id##*:}
  for at in "$@"; do
    wait_for "$at" "SELECT count(*) FROM relay_event_log WHERE origin = '$node' AND seq = $seq" 1 60
  done
  echo "duress $duress_id stored at $* in $(($(now_ms) - start)) ms"
}

# snapshot_db NODE FILE / restore_db NODE FILE: its database, dumped and put back.
snapshot_db() { pg_dump -h "$(mesh_host "$1")" -U postgres -d "$1" -Fc -f "$2"; }
restore_db() {
  psql -h "$(mesh_host "$1")" -U postgres -q -c "DROP DATABASE \"$1\" WITH (FORCE)" \
    -c "CREATE DATABASE \"$1\"" >/dev/null
  pg_restore -h "$(mesh_host "$1")" -U postgres -d "$1" "$2"
}

# prune_now NODE: relayctl prune --older-than 0s, retried until every peer
# has said (in its digests, within a few seconds) that it holds what it got.
prune_now() {
  for _ in $(seq 1 150); do ctl "$1" prune --older-than 0s >/dev/null 2>&1 && return 0; sleep 0.1; done
  ctl "$1" prune --older-than 0s >&2 || fail "$1 still refuses to prune: a peer lacks its events"
}

# hq, clinic-north and clinic-south, each on its own PostgreSQL cluster,
# started, their numbering sure of where it stands.
three_sites() {
  export MESH_SEPARATE_PG=1
  mesh_init hq clinic-north clinic-south
  for node in "${mesh_nodes[@]}"; do mesh_start "$node"; done
  mesh_ready "${mesh_nodes[@]}"
}

# None of the nodes logged a CONFLICT (a seq numbered twice).
no_seq_twice() {
  local node
  for node in "${mesh_nodes[@]}"; do
    ! grep -q CONFLICT "$mesh_dir/$node/relayd.log" || fail "$node logged a CONFLICT"
  done
}

case "$scenario" in
  revert)
    # A VM snapshot of clinic-north reverted: its state directory and its
    # database from one moment, taken while its events flowed. Once the
    # restored mark equalled the database's highest seq, so relayd did not
    # ask its peers and numbered again seqs the mesh held with other content.
    three_sites
    mesh_sql clinic-north "INSERT INTO outbox (title, priority) SELECT 'flow ' || g, 'bulk'
                           FROM generate_series(1, 200) g; NOTIFY outbox" >/dev/null
    wait_for clinic-north "SELECT count(*) FROM outbox" 0
    # The snapshot: claims done, the mark and the log agree, events in flight.
    snapshot_db clinic-north "$mesh_dir/snapshot.dump"
    cp -a "$mesh_dir/clinic-north/state" "$mesh_dir/snapshot-state"
    ctl clinic-north send --title "after the snapshot" --wait=30s >/dev/null 2>&1 ||
      fail "send after the snapshot not confirmed"
    duress_everywhere clinic-north hq clinic-south
    first_duress=$duress_id
    mesh_kill clinic-north KILL
    restore_db clinic-north "$mesh_dir/snapshot.dump"
    rm -rf "$mesh_dir/clinic-north/state"
    cp -a "$mesh_dir/snapshot-state" "$mesh_dir/clinic-north/state"
    # Waiting in the outbox when the reverted machine starts, and a button
    # pressed right after.
    mesh_sql clinic-north "INSERT INTO outbox (title) VALUES ('queued before the start');
                           INSERT INTO outbox (kind, title, location) VALUES ('duress', 'Duress', 'Ward 9')" >/dev/null
    mesh_start clinic-north
    duress_everywhere clinic-north hq clinic-south
    wait_for hq "SELECT count(*) FROM message_queue WHERE origin = 'clinic-north' AND data->>'title' = 'queued before the start'" 1
    wait_for hq "SELECT count(*) FROM message_queue WHERE origin = 'clinic-north' AND data->>'location' = 'Ward 9'" 1
    wait_for hq "SELECT count(*) FROM message_queue WHERE data->>'id' IN ('$first_duress', '$duress_id')" 2
    wait_for hq "SELECT count(DISTINCT seq) FROM message_queue WHERE origin = 'clinic-north'" 205
    wait_for clinic-south "SELECT count(*) FROM relay_event_log WHERE origin = 'clinic-north'" 205
    no_seq_twice
    echo "revert: the reverted clinic numbered from $duress_id on; all 205 events arrived once, no CONFLICT"
    ;;

  lost-state)
    # clinic-north's state directory lost and its database restored from a
    # backup, while hq, the only holder of its newest events, is offline.
    # Learning once ended after 10 s with clinic-south's answer, and the
    # numbering went on above it: into seqs hq held with other content.
    three_sites
    for i in 1 2 3; do ctl clinic-north send --title "before the backup $i" --wait=30s >/dev/null 2>&1 ||
      fail "send $i not confirmed"; done
    snapshot_db clinic-north "$mesh_dir/backup.dump"
    mesh_kill clinic-south TERM
    for i in 1 2 3; do ctl clinic-north send --title "after the backup $i" >/dev/null; done
    wait_for hq "SELECT count(*) FROM relay_event_log WHERE origin = 'clinic-north'" 6
    mesh_kill hq TERM
    mesh_kill clinic-north KILL
    restore_db clinic-north "$mesh_dir/backup.dump"
    rm -rf "$mesh_dir/clinic-north/state"
    mesh_start clinic-south
    mesh_start clinic-north
    sleep 15
    duress_everywhere clinic-north clinic-south
    mesh_start hq
    duress_everywhere clinic-north hq clinic-south
    wait_for hq "SELECT count(*) FROM message_queue WHERE origin = 'clinic-north' AND type = 'duress'" 2 30
    wait_for hq "SELECT count(DISTINCT seq) FROM message_queue WHERE origin = 'clinic-north'" 8 30
    wait_for clinic-south "SELECT count(*) FROM relay_event_log WHERE origin = 'clinic-north'" 8 30
    no_seq_twice
    wait_log clinic-north "numbered in a block of their own from seq"
    echo "lost-state: with the newest holder offline, duress $duress_id and every earlier event arrived once"
    ;;

  conflict)
    # A seq numbered twice, forced by hand: clinic-north's own log gets, under
    # a seq the mesh holds with other content, a duress signed with its real
    # key (what a rewound origin would sign), not yet sent. Once the mesh
    # refused it for ever: the duress never arrived, and nobody was told.
    three_sites
    id=$(ctl clinic-north send --title "what the mesh holds" --wait=30s 2>/dev/null) ||
      fail "send not confirmed"
    seq=${id##*:}
    mesh_kill clinic-north TERM
    hex=$("$mesh_build/tests/integration/reuse_seq" "$mesh_dir/clinic-north/node.key" clinic-north "$seq" "Numbered twice")
    mesh_sql clinic-north "UPDATE relay_event_log SET signed = decode('$hex', 'hex'), kind = 2, priority = 4
                           WHERE origin = 'clinic-north' AND seq = $seq;
                           INSERT INTO relay_unreplicated VALUES ('clinic-north', $seq) ON CONFLICT DO NOTHING" >/dev/null
    start=$(now_ms)
    mesh_start clinic-north
    for node in hq clinic-south; do
      wait_for "$node" "SELECT count(*) FROM message_queue WHERE origin = 'clinic-north' AND data->>'title' = 'Numbered twice'" 1 30
    done
    echo "conflict: the duress numbered twice reached hq and clinic-south under a fresh seq $(($(now_ms) - start)) ms after clinic-north started"
    # The copy names the id it had, so that a consumer can tell.
    wait_for hq "SELECT count(*) FROM message_queue WHERE data->>'title' = 'Numbered twice' AND data->'references' ? '$id'" 1
    # Under the seq, everyone holds what the mesh held, clinic-north included
    # (delivered there again, flagged: its consumers may have had it).
    for node in hq clinic-south; do
      wait_for "$node" "SELECT count(*) FROM message_queue WHERE origin = 'clinic-north' AND data->>'title' = 'what the mesh holds'" 1 30
    done
    wait_for clinic-north "SELECT count(*) FROM message_queue WHERE data->>'title' = 'what the mesh holds' AND (data->>'redelivered')::boolean" 1
    wait_for clinic-north "SELECT count(*) FROM relay_event_log WHERE origin = 'clinic-north' AND seq = $seq AND kind = 2" 0
    wait_log clinic-north "incident=seq_healed"
    [ "$(grep -c "incident=seq_healed" "$mesh_dir/clinic-north/relayd.log")" = 1 ] ||
      fail "clinic-north did not log the healing once"
    wait_log hq "CONFLICT: clinic-north sent event $id"
    [ "$(grep -c "CONFLICT" "$mesh_dir/hq/relayd.log")" = 1 ] || fail "hq logged the conflict more than once"
    healed_counted() { status_page clinic-north /metrics | grep -q '^relay_seqs_healed_total 1$'; }
    eventually healed_counted || fail "clinic-north's metrics do not count the healed seq"
    ;;

  prune-down)
    # Pruning at hq and clinic-north while clinic-south is down once removed
    # hq's event that clinic-south never got (a down peer left the set that
    # pruning trusted), and clinic-north's settled claim hid it too.
    three_sites
    mesh_kill clinic-south TERM
    id=$(ctl hq send --title "while clinic-south is down") || fail "send failed"
    wait_for clinic-north "SELECT count(*) FROM message_queue WHERE data->>'id' = '$id'" 1
    if out=$(ctl hq prune --older-than 0s 2>&1); then
      fail "hq pruned its own event that clinic-south lacks: $out"
    fi
    grep -q "${id}.*clinic-south has not stored them" <<<"$out" ||
      fail "hq's refusal does not name the event and clinic-south: $out"
    json=$(ctl hq --json prune --older-than 0s) && fail "prune --json exited 0: $json"
    python3 -c 'import json, sys; d = json.loads(sys.argv[1]); assert d["ok"] is False and d["exit_code"] == 1 and any(k["peer"] == "clinic-south" for k in d["kept"]), d' "$json" ||
      fail "prune --json does not say what it kept: $json"
    ctl clinic-north prune --older-than 0s >/dev/null || fail "clinic-north could not prune hq's events"
    [ "$(mesh_sql clinic-north "SELECT count(*) FROM relay_event_log WHERE origin = 'hq'")" = 0 ] ||
      fail "clinic-north kept hq's events"
    [ "$(mesh_sql hq "SELECT count(*) FROM relay_event_log WHERE origin = 'hq'")" -gt 0 ] ||
      fail "hq pruned its own events"
    mesh_start clinic-south
    wait_for clinic-south "SELECT count(*) FROM message_queue WHERE data->>'id' = '$id'" 1
    # Once clinic-south's digests say it holds it, hq prunes it too.
    prune_now hq
    echo "prune-down: hq kept $id while clinic-south was down and named it; clinic-south got it on its return"
    ;;

  third-site)
    # clinic-north, a third site, says hq's events are settled history (it
    # pruned them) to clinic-south, which holds a later hq event but missed
    # one. Once clinic-south then acked that one as history when hq sent it,
    # without storing it: the alert never reached it, and nobody was told.
    three_sites
    mesh_kill clinic-south TERM
    missed=$(ctl hq send --title "missed by clinic-south") || fail "send failed"
    later=$(ctl hq send --title "later") || fail "send failed"
    wait_for clinic-north "SELECT count(*) FROM relay_event_log WHERE origin = 'hq' AND seq = ${later##*:}" 1
    # clinic-south holds the later one (as if it had come before it went down).
    read -r prio kind hex < <(mesh_sql clinic-north "SELECT priority, kind, encode(signed, 'hex')
                                                      FROM relay_event_log WHERE origin = 'hq' AND seq = ${later##*:}")
    mesh_sql clinic-south "INSERT INTO relay_event_log (origin, seq, priority, kind, signed)
                           VALUES ('hq', ${later##*:}, $prio, $kind, decode('$hex', 'hex'))" >/dev/null
    prune_now clinic-north  # hq's events are settled history there now
    mesh_kill hq TERM
    mesh_start clinic-south
    # clinic-north's digests tell clinic-south that hq's seqs are settled.
    wait_for clinic-south "SELECT count(*) FROM relay_settled WHERE origin = 'hq' AND ${missed##*:} BETWEEN first AND last" 1
    [ "$(mesh_sql clinic-south "SELECT count(*) FROM relay_event_log WHERE origin = 'hq' AND seq = ${missed##*:}")" = 0 ] ||
      fail "clinic-south got the missed event before hq returned (the test proves nothing)"
    mesh_start hq  # it sends what clinic-south never acknowledged
    wait_for clinic-south "SELECT count(*) FROM message_queue WHERE data->>'id' = '$missed'" 1 30
    wait_for hq "SELECT count(*) FROM relay_receipts WHERE seq = ${missed##*:} AND target = 'clinic-south'" 1 30
    echo "third-site: clinic-north's claim that $missed was history stopped nothing: clinic-south stored and delivered it"
    ;;

  rebuild)
    mesh_init hq clinic-north clinic-south
    for node in "${mesh_nodes[@]}"; do mesh_start "$node"; done
    for i in 1 2 3; do ctl clinic-north send --title "before $i" --wait=30s >/dev/null 2>&1 ||
      fail "send $i not confirmed"; done
    ctl hq duress --location "HQ lobby" --wait=30s >/dev/null 2>&1 || fail "hq duress not confirmed"
    # The database of clinic-north is dropped and created again; same keys,
    # same state directory.
    mesh_kill clinic-north TERM
    psql -h "$mesh_pg" -U postgres -q -c 'DROP DATABASE "clinic-north" WITH (FORCE)' \
      -c 'CREATE DATABASE "clinic-north"' >/dev/null
    mesh_start clinic-north
    duress_everywhere clinic-north hq clinic-south clinic-north
    # Seq 4 if every peer had answered already, else in a block of its own.
    [ "${duress_id##*:}" -ge 4 ] || fail "the duress after the rebuild is $duress_id, expected above seq 3"
    wait_for hq "SELECT count(*) FROM message_queue WHERE data->>'id' = '$duress_id'" 1
    wait_for clinic-north "SELECT count(*) FROM message_queue WHERE data->>'id' = '$duress_id'" 1
    # Its own earlier events come back into its log from the peers.
    wait_for clinic-north "SELECT count(*) FROM relay_event_log WHERE origin = 'clinic-north'" 4
    # hq's duress is delivered again there, flagged: its consumers may have had it.
    wait_for clinic-north "SELECT count(*) FROM message_queue WHERE origin = 'hq' AND (data->>'redelivered')::boolean" 1
    wait_log clinic-north "the database was rebuilt or restored"
    echo "rebuild: the duress after the rebuild took seq ${duress_id##*:} and reached every node"
    ;;

  restore)
    mesh_init hq clinic-north clinic-south
    for node in "${mesh_nodes[@]}"; do mesh_start "$node"; done
    for i in 1 2 3; do ctl clinic-south send --title "before the backup $i" --wait=30s >/dev/null 2>&1 ||
      fail "send $i not confirmed"; done
    pg_dump -h "$mesh_pg" -U postgres -d clinic-south -Fc -f "$mesh_dir/backup.dump"
    for i in 1 2 3 4 5; do ctl clinic-south send --title "after the backup $i" --wait=30s >/dev/null 2>&1 ||
      fail "send $i after the backup not confirmed"; done
    mesh_kill clinic-south TERM
    psql -h "$mesh_pg" -U postgres -q -c 'DROP DATABASE "clinic-south" WITH (FORCE)' \
      -c 'CREATE DATABASE "clinic-south"' >/dev/null
    pg_restore -h "$mesh_pg" -U postgres -d clinic-south "$mesh_dir/backup.dump"
    mesh_start clinic-south
    duress_everywhere clinic-south hq clinic-north clinic-south
    [ "${duress_id##*:}" -ge 9 ] || fail "the duress after the restore is $duress_id, expected above seq 8"
    # Nothing the peers had is lost, and the restored log has it all again.
    for node in hq clinic-north clinic-south; do
      wait_for "$node" "SELECT count(*) FROM relay_event_log WHERE origin = 'clinic-south'" 9
      wait_for "$node" "SELECT count(DISTINCT data->>'id') = count(*) FROM message_queue" t
    done
    echo "restore: numbering continued at ${duress_id##*:}; the peers kept all 8 earlier events and the restored log has them back"
    ;;

  late-join)
    # clinic-south is added to the mesh after hq and clinic-north pruned
    # their history: it takes what is retained and settles the rest.
    mesh_init hq clinic-north clinic-south
    start_without clinic-south hq clinic-north
    # Numbered from 1: a block of hq's own (numbered before clinic-north
    # answered) lies above a skipped range that retention passes only once
    # its settling is written, a second or so later.
    mesh_ready hq clinic-north
    mesh_sql hq "INSERT INTO outbox (title, priority) SELECT 'old ' || g, 'bulk' FROM generate_series(1, 3000) g; NOTIFY outbox" >/dev/null
    wait_for clinic-north "SELECT count(*) FROM relay_event_log WHERE origin = 'hq'" 3000 60
    wait_for hq "SELECT count(*) FROM relay_unreplicated" 0 60
    for node in hq clinic-north; do prune_now "$node"; done
    [ "$(mesh_sql hq "SELECT count(*) FROM relay_event_log")" = 0 ] || fail "hq did not prune"
    mesh_sql hq "INSERT INTO outbox (title, priority) SELECT 'kept ' || g, 'bulk' FROM generate_series(1, 1054) g; NOTIFY outbox" >/dev/null
    wait_for clinic-north "SELECT count(*) FROM relay_event_log WHERE origin = 'hq'" 1054 60
    add_back hq clinic-north
    sleep 1
    start=$(now_ms)
    mesh_start clinic-south
    wait_for clinic-south "SELECT count(*) FROM relay_event_log WHERE origin = 'hq'" 1054 30
    echo "late-join: clinic-south caught up on 1054 retained events in $(($(now_ms) - start)) ms"
    wait_for clinic-south "SELECT pruned_through FROM relay_watermarks WHERE origin = 'hq'" 3000 10
    # Retained events are an hour old at most: delivered, not flagged as history.
    [ "$(mesh_sql clinic-south "SELECT count(*) FROM message_queue WHERE origin = 'hq'")" = 1054 ] ||
      fail "clinic-south did not deliver the 1054 retained events once each"
    duress_everywhere hq clinic-south
    echo "late-join: the 3000 pruned events are settled there; a duress still arrives"
    ;;

  slow-settle)
    # clinic-south joins after hq pruned its first 300 events, and its
    # database writes settled history slowly: digests repeat the settled
    # range before its first write commits, and the lane writes the repeats
    # together. Once that write was refused by PostgreSQL and retried for
    # ever: the lane stalled and clinic-south stored nothing more.
    mesh_init hq clinic-north clinic-south
    start_without clinic-south hq clinic-north
    # Numbered from 1: a block of hq's own (numbered before clinic-north
    # answered) lies above a skipped range that retention passes only once
    # its settling is written, a second or so later.
    mesh_ready hq clinic-north
    mesh_sql hq "INSERT INTO outbox (title, priority) SELECT 'old ' || g, 'bulk' FROM generate_series(1, 300) g; NOTIFY outbox" >/dev/null
    wait_for hq "SELECT count(*) FROM relay_event_log l WHERE origin = 'hq' AND NOT EXISTS
                 (SELECT 1 FROM relay_unreplicated u WHERE u.origin = l.origin AND u.seq = l.seq)" 300 60
    for node in hq clinic-north; do prune_now "$node"; done
    ctl hq send --title "kept" --wait=30s >/dev/null 2>&1 || fail "send not confirmed"
    ctl clinic-south migrate >/dev/null
    mesh_sql clinic-south "CREATE TABLE settle_writes (at timestamptz DEFAULT now());
                           CREATE FUNCTION slowly() RETURNS trigger LANGUAGE plpgsql
                             AS 'BEGIN INSERT INTO settle_writes DEFAULT VALUES;
                                       PERFORM pg_sleep(2); RETURN NULL; END';
                           CREATE TRIGGER slowly AFTER INSERT ON relay_settled
                             FOR EACH STATEMENT EXECUTE FUNCTION slowly()" >/dev/null
    add_back hq clinic-north
    sleep 1
    mesh_start clinic-south
    wait_for clinic-south "SELECT pruned_through FROM relay_watermarks WHERE origin = 'hq'" 300 30
    wait_for clinic-south "SELECT count(*) FROM message_queue WHERE origin = 'hq'" 1 10
    sleep 3  # digests go on repeating the range meanwhile
    duress_everywhere hq clinic-south
    ctl hq send --title "after the settling" --wait=30s >/dev/null 2>&1 ||
      fail "a normal alert after the settling was not stored everywhere"
    writes=$(mesh_sql clinic-south "SELECT count(*) FROM settle_writes")
    [ "$writes" = 1 ] || fail "hq's settled range was written $writes times, expected once"
    echo "slow-settle: the settled range written once however often it was repeated; the lane flows"
    ;;

  poison)
    mesh_init hq clinic-north clinic-south
    for node in "${mesh_nodes[@]}"; do mesh_start "$node"; done
    mesh_sql hq "INSERT INTO outbox (title, expires_at) VALUES ('forever', 'infinity');
                 INSERT INTO outbox (title, body) VALUES ('huge', repeat('x', 50000000));
                 INSERT INTO outbox (title, targets) VALUES ('odd', '{{all,hq},{all,hq}}');
                 INSERT INTO outbox (title, targets) VALUES ('null target', ARRAY['hq', NULL]);
                 INSERT INTO outbox (title, date_inserted) VALUES ('never', '-infinity')" >/dev/null
    rss_before=$(ps -o rss= -p "${mesh_pid[hq]}")
    duress_everywhere hq clinic-north clinic-south
    wait_for hq "SELECT count(*) FROM outbox_rejected" 5
    wait_for hq "SELECT count(*) FROM outbox" 0
    rss_after=$(ps -o rss= -p "${mesh_pid[hq]}")
    echo "hq resident: ${rss_before} KiB before the poison rows, ${rss_after} KiB after"
    [ "$rss_after" -lt $((rss_before + 51200)) ] || fail "hq grew by more than 50 MiB over a 50 MB row"
    mesh_sql hq "SELECT id, reason FROM outbox_rejected ORDER BY id"
    ctl hq send --title "after the poison" --wait=30s >/dev/null 2>&1 || fail "the mesh stopped sending"
    echo "poison: five bad rows set aside with their reasons; the duress beside them went out"
    ;;

  history)
    mesh_init hq clinic-north clinic-south
    for node in "${mesh_nodes[@]}"; do mesh_start "$node"; done
    mesh_ready "${mesh_nodes[@]}"
    mesh_kill clinic-south TERM
    # An alert that expires while clinic-south is down, and one raised two
    # days ago (by hq's clock) that hq only now sends.
    expired=$(ctl hq send --title "Road closed" --expires 2s) || fail "send failed"
    old_id=$(mesh_sql hq "WITH r AS (INSERT INTO outbox (title, date_inserted) VALUES ('yesterday', now() - interval '2 days') RETURNING id) SELECT id FROM r")
    mesh_sql hq "NOTIFY outbox" >/dev/null
    wait_for hq "SELECT count(*) FROM relay_event_log WHERE outbox_id = $old_id" 1
    old=hq:$(mesh_sql hq "SELECT seq FROM relay_event_log WHERE outbox_id = $old_id")
    # Past max_age, a target that never confirmed it will not deliver it.
    ctl hq receipts "$old" | grep "clinic-south" | grep -q "expired, unseen" ||
      fail "the receipt of $old does not say clinic-south never saw it: $(ctl hq receipts "$old")"
    ctl hq --json receipts "$old" | grep -q '"state":"expired_unseen"' ||
      fail "the JSON receipt of $old does not say expired_unseen"
    sleep 3
    mesh_start clinic-south
    wait_for hq "SELECT count(*) FROM relay_receipts WHERE target = 'clinic-south'" 2 30
    [ "$(mesh_sql clinic-south "SELECT count(*) FROM message_queue WHERE origin = 'hq'")" = 0 ] ||
      fail "clinic-south delivered history into message_queue"
    [ "$(mesh_sql clinic-south "SELECT count(*) FROM relay_event_log WHERE origin = 'hq'")" = 2 ] ||
      fail "clinic-south did not log both (dedupe needs them)"
    ctl hq receipts "$expired" | tee /dev/stderr | grep "clinic-south" | grep -q "expired" ||
      fail "the receipt of $expired does not say it expired"
    ctl hq receipts "$old" | tee /dev/stderr | grep "clinic-south" | grep -q "max_age" ||
      fail "the receipt of $old does not say it was too old"
    ctl hq receipts "$old" | grep "clinic-north" | grep -q "max_age" ||
      fail "clinic-north delivered a two-day-old alert"
    echo "history: logged but not delivered, and the receipts say why"
    ;;

  *)
    echo "unknown scenario $scenario" >&2
    exit 2
    ;;
esac
echo "PASS $scenario"
