#!/usr/bin/env bash
# relayd's outbox claim wakes on each of its three paths alone, through
# relay/wake's roles (issue 24), with a real relayd and PostgreSQL: a row is
# inserted without a NOTIFY, and only the path under test can wake the claim
# (kick and notify: the poll is a minute, and the row is seen to wait 2 s
# first; poll: nothing kicks or notifies).
#   wake_test.sh kick|notify|poll
set -euo pipefail
scenario=${1:?usage: wake_test.sh kick|notify|poll}
repo=$(cd "$(dirname "$0")/../.." && pwd)
source "$repo/scripts/lib/mesh.sh"
source "$repo/tests/integration/test_lib.sh"
trap mesh_cleanup EXIT

counter() { status_page hq /api/status | jq -r ".counters.$1"; }
counter_is() { [ "$(counter "$1")" = "$2" ]; }
claimed() { [ "$(mesh_sql hq "SELECT count(*) FROM message_queue WHERE data->>'title' = 'woken'")" = 1 ]; }

mesh_init hq
case "$scenario" in
  kick | notify) config_add hq store 'poll_interval = "1m"' ;;
  poll) config_add hq store 'poll_interval = "1s"' ;;
  *) echo "unknown scenario $scenario" >&2; exit 2 ;;
esac
mesh_start hq
# Numbering ready, and the LISTEN connection up: this row came by NOTIFY.
mesh_sql hq "INSERT INTO outbox (type, title, targets) VALUES ('ready', 'ready', '{hq}'); NOTIFY outbox" >/dev/null
wait_for hq "SELECT count(*) FROM message_queue WHERE type = 'ready'" 1 10
eventually counter_is notifies 1 || fail "notifies $(counter notifies) after the first NOTIFY"
kicks=$(counter kicks)
notifies=$(counter notifies)

mesh_sql hq "INSERT INTO outbox (title, targets) VALUES ('woken', '{hq}')" >/dev/null
start=$SECONDS
case "$scenario" in
  kick)
    sleep 2
    claimed && fail "the row was claimed before the kick, with a 1-minute poll and no NOTIFY"
    printf kick >"/dev/udp/127.0.0.1/$((mesh_port[hq] + 1))"
    eventually claimed || fail "the kick did not wake the claim within 10 s"
    eventually counter_is kicks $((kicks + 1)) || fail "kicks $(counter kicks), expected $((kicks + 1))"
    ;;
  notify)
    sleep 2
    claimed && fail "the row was claimed before the NOTIFY, with a 1-minute poll and no kick"
    mesh_sql hq "NOTIFY outbox" >/dev/null
    eventually claimed || fail "NOTIFY outbox did not wake the claim within 10 s"
    eventually counter_is notifies $((notifies + 1)) ||
      fail "notifies $(counter notifies), expected $((notifies + 1))"
    ;;
  poll)
    eventually claimed || fail "the 1 s poll did not claim the row within 10 s"
    ;;
esac
# The status counters come from the same roles: no other path woke it.
[ "$scenario" = kick ] || [ "$(counter kicks)" = "$kicks" ] || fail "a kick came: $(counter kicks)"
[ "$scenario" = notify ] || [ "$(counter notifies)" = "$notifies" ] ||
  fail "a NOTIFY came: $(counter notifies)"
[ "$(mesh_sql hq "SELECT count(*) FROM outbox")" = 0 ] || fail "the row is still in the outbox"
echo "PASS $scenario: woken by the $scenario alone within $((SECONDS - start)) s"
