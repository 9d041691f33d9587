#!/usr/bin/env bash
# Drills, supervised to the people (issue 21), with real relayd processes,
# each site on a PostgreSQL cluster of its own. hq drills both clinics every
# 8 s with a 3 s window; clinic-a's relay-runner acknowledges exercises
# ([runner] acknowledge), clinic-b has nobody at first:
#   drill_test.sh supervised
# clinic-b's missed drill raises one relay.drill row at hq, on its page, in
# its JSON, /metrics and verdict; a kill -9 of hq neither repeats a drill
# nor the alarm; a runner at clinic-b acknowledging clears it.
set -euo pipefail
scenario=${1:?usage: drill_test.sh supervised}
repo=$(cd "$(dirname "$0")/../.." && pwd)
source "$repo/scripts/lib/mesh.sh"
source "$repo/scripts/lib/runner.sh"
source "$repo/tests/integration/test_lib.sh"
trap 'runner_cleanup; mesh_cleanup' EXIT

# relay.drill rows at hq about SITE in STATE.
drill_rows() {
  mesh_sql hq "SELECT count(*) FROM message_queue WHERE type = 'relay.drill' AND data->>'site' = '$1' AND data->>'state' = '$2'"
}

# True while hq's verdict names no drill alarm.
no_drill_alarm() { ! status_has hq 'drill not acknowledged'; }

# The JSON of SITE's drill at hq (/api/status "drills").
drill_of() {
  status_page hq /api/status | python3 -c '
import json, sys
print(json.dumps([d for d in json.load(sys.stdin)["drills"] if d["site"] == sys.argv[1]][0]))' "$1"
}

# A runner of SITE's own database that acknowledges the exercises it
# handled, its handler writing each row's JSON to SITE.rows.
drill_runner() {
  local site=$1
  mesh_pg=$(mesh_host "$site") runner_node=$site runner_config "$site" "popup-$site" '["test"]' \
    "command = [\"$mesh_dir/handler.sh\"]"
  sed -i "/^\[runner\]\$/a acknowledge = \"responding\"" "$mesh_dir/runner-$site.toml"
  runner_start "$site" OUT="$mesh_dir/$site.rows"
}

case "$scenario" in
  supervised)
    MESH_SEPARATE_PG=1 mesh_init hq clinic-a clinic-b
    printf '\n[[drill]]\nname = "test-drill"\nevery = "8s"\nwindow = "3s"\ntargets = ["group:clinics"]\ntitle = "Drill: please acknowledge"\n' \
      >> "$mesh_dir/hq/relayd.toml"
    printf '#!/usr/bin/env bash\ncat >> "$OUT"\necho >> "$OUT"\n' > "$mesh_dir/handler.sh"
    chmod +x "$mesh_dir/handler.sh"
    for node in clinic-a clinic-b; do mesh_start "$node"; done
    drill_runner clinic-a
    mesh_start hq
    mesh_ready "${mesh_nodes[@]}"
    # Exercises any program may insert, dressed as drills: a slot that is
    # not a number, and one years ahead. Neither may stop the watch.
    mesh_sql hq "INSERT INTO outbox (kind, targets, data) VALUES
      ('test', '{hq}', '{\"drill\": \"test-drill\", \"slot\": \"a\", \"window_ms\": 1}'),
      ('test', '{hq}', '{\"drill\": \"test-drill\", \"slot\": 99999999999999, \"window_ms\": 1}'); NOTIFY outbox" >/dev/null

    # Nobody answers at clinic-b: one raised row, the page, JSON, metrics, verdict.
    wait_for hq "SELECT count(*) FROM message_queue WHERE type = 'relay.drill' AND data->>'site' = 'clinic-b' AND data->>'state' = 'raised'" 1 30
    eventually page_has hq / "drill not acknowledged at clinic-b" ||
      fail "hq's page does not say the drill was not acknowledged at clinic-b"
    eventually status_has hq '"level":"ALARM"' || fail "hq's verdict is not ALARM: $(status_json hq)"
    status_has hq 'drill not acknowledged at clinic-b' || fail "hq's verdict does not say why: $(status_json hq)"
    curl -s "http://127.0.0.1:$((mesh_port[hq] + 2))/metrics" | grep -q '^relay_drill_alarm{site="clinic-b"} 1$' ||
      fail "hq's /metrics has no relay_drill_alarm 1 for clinic-b"
    # clinic-a's runner answered: acknowledged by it, with a time, no alarm.
    eventually python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["state"] == "acknowledged" and d["acknowledged_by"] == "clinic-a" and d["ack_ms"] >= 0 and not d["alarm"], d
' "$(drill_of clinic-a)" || fail "hq does not show clinic-a's runner acknowledging: $(drill_of clinic-a)"
    page_has hq / "acknowledged by clinic-a after" || fail "hq's page does not show clinic-a's time to acknowledge"
    [ "$(mesh_sql hq "SELECT count(*) FROM relay_drill_alarms WHERE site = 'clinic-a'")" = 0 ] ||
      fail "hq holds a drill alarm for clinic-a, whose runner acknowledges"
    # The handler's input says exercise, and which drill.
    grep -q '"exercise": *true' "$mesh_dir/clinic-a.rows" && grep -q '"drill": *"test-drill"' "$mesh_dir/clinic-a.rows" ||
      fail "clinic-a's handler did not get the drill labelled an exercise: $(head -c 600 "$mesh_dir/clinic-a.rows")"

    # A kill -9 of hq just after a drill went, restarted within its window:
    # neither that drill nor the alarm goes twice.
    drills=$(mesh_sql clinic-b "SELECT count(*) FROM message_queue WHERE type = 'test'")
    wait_for clinic-b "SELECT count(*) FROM message_queue WHERE type = 'test'" $((drills + 1)) 15
    mesh_kill hq KILL
    mesh_start hq
    sleep 9  # a whole slot and its window after the restart
    [ "$(drill_rows clinic-b raised)" = 1 ] || fail "hq raised clinic-b's drill alarm $(drill_rows clinic-b raised) times"
    dup=$(mesh_sql clinic-b "SELECT count(*) - count(DISTINCT data->'data'->>'slot') FROM message_queue WHERE type = 'test'")
    [ "$dup" = 0 ] || fail "clinic-b received $dup drills twice for one slot"
    [ "$(mesh_sql clinic-b "SELECT count(*) FROM message_queue WHERE type = 'test'")" -ge 2 ] ||
      fail "clinic-b did not receive the drills after hq's restart"

    # Someone answers at clinic-b now: the alarm clears, once.
    drill_runner clinic-b
    wait_for hq "SELECT count(*) FROM message_queue WHERE type = 'relay.drill' AND data->>'site' = 'clinic-b' AND data->>'state' = 'cleared'" 1 20
    eventually no_drill_alarm || fail "hq's verdict still has a drill alarm once clinic-b answered: $(status_json hq)"
    [ "$(drill_rows clinic-b raised)" = 1 ] || fail "clinic-b's drill alarm was raised again"
    echo "supervised: clinic-b's missed drill raised one alarm (page, JSON, metrics, verdict), kept across a kill -9, cleared by its runner; clinic-a's runner answered"
    ;;

  *) fail "unknown scenario $scenario" ;;
esac
