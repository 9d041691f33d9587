#!/usr/bin/env bash
# The mesh policy (issue 22), with real relayd processes and PostgreSQL:
#   policy_test.sh drift|clear|send
# drift: hq and clinic-south install the same policy, written differently
# (comments, spacing, the order within a list); clinic-north another. The
# pairs with clinic-north name the difference on both sides (page, JSON,
# log, verdict); hq and clinic-south agree. Once clinic-north installs the
# same policy (a reload, which restarts it in place), the drift clears.
# clear: only the origin clears its alert by default: clinic-north's
# all-clear of hq's lockdown is refused at clinic-north (relayctl, and the
# outbox naming the rule); forced past it with a looser policy file, it is
# refused at hq (a relay.policy row, the lockdown stays open) and clinic-north's
# verdict is ALARM. With a rule letting hq clear, hq's all-clear of
# clinic-north's duress clears it there.
# send: [[send]] rules let hq alone send a lockdown, and clinic-north a
# duress to itself and hq. clinic-north's lockdown is refused at
# clinic-north (relayctl, and the outbox naming the rule); forced past it
# with a looser policy file, it is refused at hq (a relay.policy row) and
# clinic-north's verdict is ALARM. A duress beyond its rule is never refused:
# delivered at hq, and flagged on both sites (data, log, page).
set -euo pipefail
scenario=${1:?usage: policy_test.sh drift|clear|send}
repo=$(cd "$(dirname "$0")/../.." && pwd)
source "$repo/scripts/lib/mesh.sh"
source "$repo/tests/integration/test_lib.sh"
trap mesh_cleanup EXIT

# use_policy NODE TEXT: NODE's policy.toml, named by its [mesh] policy.
use_policy() {
  printf '%s' "$2" > "$mesh_dir/$1/policy.toml"
  grep -q '^policy = ' "$mesh_dir/$1/relayd.toml" || config_add "$1" mesh 'policy = "policy.toml"'
}

# policy_of NODE FIELD: a field of NODE's /api/status process.policy.
policy_of() {
  status_page "$1" /api/status |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["process"]["policy"][sys.argv[1]])' "$2"
}

# drift_of NODE PEER: what NODE's /api/status says of its drift with PEER, one line each.
drift_of() {
  status_page "$1" /api/status | python3 -c '
import json, sys
for p in json.load(sys.stdin)["peers"]:
    if p["id"] == sys.argv[1]:
        for d in p.get("drift", []): print(d)' "$2"
}

# no_drift NODE PEER: NODE's /api/status names no drift with PEER.
no_drift() { local out; out=$(drift_of "$1" "$2") && [ -z "$out" ]; }

# install_policy NODE TEXT: NODE takes the policy TEXT (a reload, which
# restarts it in place), and returns once its page shows the new digest.
install_policy() {
  local before
  before=$(policy_of "$1" digest)
  use_policy "$1" "$2"
  ctl "$1" reload >/dev/null || fail "$1's reload failed"
  mesh_wait_core "$1"
  eventually not_policy "$1" "$before" || fail "$1 does not show its new policy"
}
not_policy() { local out; out=$(policy_of "$1" digest) && [ "$out" != "$2" ]; }

# has_policy NODE DIGEST: NODE's /api/status shows the policy DIGEST.
has_policy() { local out; out=$(policy_of "$1" digest) && [ "$out" = "$2" ]; }

# differs NODE PEER THERE HERE: NODE names PEER's policy (digest THERE) as differing from its own (HERE).
differs() {
  drift_of "$1" "$2" | grep -qF "$2's mesh policy differs from this node's (digest ${3:0:8}… there, ${4:0:8}… here): the same policy file must be installed at every site"
}

case "$scenario" in
  drift)
    mesh_init hq clinic-north clinic-south
    use_policy hq $'# Only the origin, or hq, may clear an alert.\n[[clear]]\nname = "hq-clears"\nby = ["hq"]\nof = ["all"]\n\n[[clear]]\nname = "clinics-clear-clinics"\nby = ["group:clinics", "hq"]\nof = ["group:clinics"]\n'
    use_policy clinic-south $'[[clear]]   # hq\n  name="hq-clears"\n  of=[ "all" ]\n  by=[ "hq" ]\n[[clear]]\n  name="clinics-clear-clinics"\n  of=["group:clinics"]\n  by=["hq","group:clinics"]\n# the end\n'
    use_policy clinic-north $'[[clear]]\nname = "hq-clears"\nby = ["hq", "clinic-north"]\nof = ["all"]\n'
    for node in "${mesh_nodes[@]}"; do ctl "$node" check-config --offline >/dev/null || fail "$node's configuration: $(ctl "$node" check-config --offline 2>&1)"; done
    for node in "${mesh_nodes[@]}"; do mesh_start "$node"; done
    mesh_ready "${mesh_nodes[@]}"

    hq_digest=$(policy_of hq digest)
    north_digest=$(policy_of clinic-north digest)
    south_digest=$(policy_of clinic-south digest)
    [ "${#hq_digest}" = 64 ] || fail "hq's /api/status has no policy digest: $(status_json hq)"
    [ "$hq_digest" = "$south_digest" ] ||
      fail "the same policy written differently has two digests: hq $hq_digest, clinic-south $south_digest"
    [ "$hq_digest" != "$north_digest" ] || fail "different policies have one digest: $hq_digest"
    [ "$(policy_of hq clear_rules)" = 2 ] || fail "hq's /api/status does not count 2 [[clear]] rules"
    [ "$(policy_of clinic-north clear_rules)" = 1 ] || fail "clinic-north's /api/status does not count 1 [[clear]] rule"
    [ "$(policy_of hq digest_short)" = "${hq_digest:0:8}" ] || fail "hq's short digest is not its digest's start"
    page_has hq / "mesh policy</th><td data-policy=\"$hq_digest\">2 \[\[clear\]\] rules, 0 \[\[send\]\] rules, digest ${hq_digest:0:8}…" ||
      fail "hq's page does not show its policy"
    page_has clinic-north / "1 \[\[clear\]\] rule, 0 \[\[send\]\] rules, digest ${north_digest:0:8}…" ||
      fail "clinic-north's page does not show its policy"
    wait_log hq "mesh policy: 2 \[\[clear\]\] rules, 0 \[\[send\]\] rules, digest $hq_digest"

    # Both sides of the pair with clinic-north name it, with both digests.
    eventually differs hq clinic-north "$north_digest" "$hq_digest" ||
      fail "hq does not name clinic-north's policy: $(drift_of hq clinic-north)"
    eventually differs clinic-north hq "$hq_digest" "$north_digest" ||
      fail "clinic-north does not name hq's policy: $(drift_of clinic-north hq)"
    eventually differs clinic-south clinic-north "$north_digest" "$south_digest" ||
      fail "clinic-south does not name clinic-north's policy: $(drift_of clinic-south clinic-north)"
    for node in hq clinic-north; do
      eventually page_has "$node" / "mesh policy differs from this node" || fail "$node's page does not show the drift"
      eventually status_has "$node" '"verdict":{"level":"DEGRADED"' || fail "$node's verdict is not DEGRADED: $(status_json "$node")"
    done
    wait_log hq "CONFIGURATION DRIFT with clinic-north: clinic-north's mesh policy differs"
    wait_log clinic-north "CONFIGURATION DRIFT with hq: hq's mesh policy differs"
    # The same policy, written differently: no drift between hq and clinic-south.
    no_drift hq clinic-south || fail "hq sees drift with clinic-south: $(drift_of hq clinic-south)"
    no_drift clinic-south hq || fail "clinic-south sees drift with hq: $(drift_of clinic-south hq)"
    grep -q "CONFIGURATION DRIFT with clinic-south" "$mesh_dir/hq/relayd.log" && fail "hq logged drift with clinic-south"
    grep -q "CONFIGURATION DRIFT with hq" "$mesh_dir/clinic-south/relayd.log" && fail "clinic-south logged drift with hq"
    echo "drift: hq ${hq_digest:0:8} = clinic-south ${south_digest:0:8} (written differently), clinic-north ${north_digest:0:8}: named on both sides"

    # clinic-north installs hq's policy: a reload restarts it in place (it
    # enforces and announces the new one), and every side agrees again.
    cp "$mesh_dir/hq/policy.toml" "$mesh_dir/clinic-north/policy.toml"
    out=$(ctl clinic-north reload) || fail "relayctl reload of a new policy: $out"
    grep -q "restarting in place to take: \[mesh\] policy" <<<"$out" || fail "the reload did not restart for the policy: $out"
    mesh_wait_core clinic-north
    eventually has_policy clinic-north "$hq_digest" || fail "clinic-north's page does not show the new policy"
    for pair in "hq clinic-north" "clinic-north hq" "clinic-south clinic-north"; do
      # shellcheck disable=SC2086
      eventually no_drift $pair || fail "drift stays after the policies agree: $pair: $(drift_of $pair)"
    done
    wait_log hq "configuration of clinic-north agrees with this node's again"
    eventually status_has hq '"verdict":{"level":"OK"' || fail "hq's verdict is not OK again: $(status_json hq)"
    echo "drift: cleared on both sides once clinic-north installed the same policy"
    ;;

  clear)
    mesh_init hq clinic-north
    for node in "${mesh_nodes[@]}"; do mesh_start "$node"; done
    mesh_ready "${mesh_nodes[@]}"
    lockdown=$(ctl hq send --target all --priority emergency --title "Lockdown") || fail "hq's send failed"
    wait_for clinic-north "SELECT count(*) FROM message_queue WHERE data->>'id' = '$lockdown'" 1 15
    refusal="clinic-north may not clear $lockdown: only its origin, hq, or a site a [[clear]] rule of the mesh policy names may"
    # At the maker: relayctl refuses, and so does the claim of an outbox row.
    if out=$(ctl clinic-north all-clear "$lockdown" 2>&1); then fail "clinic-north cleared hq's lockdown: $out"; fi
    grep -qF "$refusal" <<<"$out" || fail "relayctl's refusal says: $out"
    mesh_sql clinic-north "INSERT INTO outbox (kind, refs) VALUES ('all-clear', ARRAY['$lockdown'])" >/dev/null
    wait_for clinic-north "SELECT count(*) FROM outbox_rejected WHERE reason = '$refusal'" 1 10
    [ "$(mesh_sql clinic-north "SELECT count(*) FROM relay_event_log WHERE kind = 3")" = 0 ] ||
      fail "clinic-north logged an all-clear it may not make"

    # Forced past its own check by a looser policy file: refused at hq.
    install_policy clinic-north $'[[clear]]\nname = "anyone"\nby = ["all"]\n'
    forced=$(ctl clinic-north all-clear "$lockdown") || fail "clinic-north's forced all-clear was not sent"
    wait_for hq "SELECT count(*) FROM message_queue WHERE type = 'relay.policy' AND data->>'refused' = '$forced'" 1 15
    [ "$(mesh_sql hq "SELECT data->>'reason' FROM message_queue WHERE type = 'relay.policy'")" = "$refusal" ] ||
      fail "hq's relay.policy row gives another reason"
    [ "$(mesh_sql hq "SELECT count(*) FROM message_queue WHERE type = 'all-clear'")" = 0 ] ||
      fail "hq delivered the refused all-clear"
    wait_log hq "refused $forced under the mesh policy: clinic-north may not clear $lockdown"
    eventually page_has hq / "data-event=\"$lockdown\" data-kind=\"notification\" data-state=\"open\"" ||
      fail "hq's page does not show its lockdown open"
    eventually page_has hq /metrics "relay_events_refused_total 1" || fail "hq does not count the refusal"
    eventually status_has clinic-north '"verdict":{"level":"ALARM"' ||
      fail "clinic-north's verdict is not ALARM: $(status_json clinic-north)"
    eventually page_has clinic-north / "refused by their targets under the mesh policy" ||
      fail "clinic-north's page does not say its all-clear was refused"
    ctl clinic-north receipts "$forced" | grep -q "refused: beyond its sender's rights" ||
      fail "relayctl receipts does not say hq refused it: $(ctl clinic-north receipts "$forced")"
    # The refused all-clear ended nothing: its origin still revises it.
    out=$(ctl hq update "$lockdown" --body "east wing only" 2>&1) ||
      fail "hq cannot update its lockdown after a refused all-clear: $out"
    echo "clear: clinic-north's all-clear of $lockdown refused at clinic-north (relayctl, outbox); forced, refused at hq ($forced, a relay.policy row), ALARM at clinic-north"

    # A rule names hq: its all-clear of clinic-north's duress clears it there.
    for node in hq clinic-north; do
      install_policy "$node" $'[[clear]]\nname = "hq-clears"\nby = ["hq"]\n'
    done
    mesh_ready "${mesh_nodes[@]}"
    duress=$(ctl clinic-north duress --location "Psych ward, room 12") || fail "clinic-north's duress failed"
    wait_for hq "SELECT count(*) FROM relay_event_log WHERE origin || ':' || seq = '$duress'" 1 15
    ctl hq all-clear "$duress" >/dev/null || fail "hq may clear under hq-clears, but relayctl refused"
    wait_for clinic-north "SELECT count(*) FROM message_queue WHERE type = 'all-clear' AND data->'references' @> '[\"$duress\"]'" 1 15
    eventually page_has clinic-north / "data-event=\"$duress\" data-kind=\"duress\" data-state=\"cleared\"" ||
      fail "clinic-north's page does not show its duress cleared by hq"
    echo "clear: under [[clear]] hq-clears, hq's all-clear of $duress cleared it at clinic-north"
    ;;

  send)
    mesh_init hq clinic-north
    rules=$'[[send]]\nname = "hq-lockdown"\nby = ["hq"]\ntypes = ["lockdown"]\n\n[[send]]\nname = "no-lockdown"\ntypes = ["lockdown"]\nallow = false\n\n[[send]]\nname = "clinic-duress"\nby = ["clinic-north"]\nkinds = ["duress"]\nto = ["origin", "hq"]\n'
    for node in "${mesh_nodes[@]}"; do use_policy "$node" "$rules"; mesh_start "$node"; done
    mesh_ready "${mesh_nodes[@]}"
    [ "$(policy_of hq send_rules)" = 3 ] || fail "hq's /api/status does not count 3 [[send]] rules"
    lockdown=$(ctl hq send --target all --type lockdown --title "Lockdown") || fail "hq's lockdown was refused"
    wait_for clinic-north "SELECT count(*) FROM message_queue WHERE type = 'lockdown' AND data->>'id' = '$lockdown'" 1 15

    refusal='clinic-north may not send a notification of type "lockdown" at priority normal: [[send]] rule "no-lockdown" of the mesh policy refuses it'
    if out=$(ctl clinic-north send --target hq --type lockdown --title "Lockdown" 2>&1); then
      fail "clinic-north sent a lockdown: $out"
    fi
    grep -qF "$refusal" <<<"$out" || fail "relayctl's refusal says: $out"
    mesh_sql clinic-north "INSERT INTO outbox (type, title, targets) VALUES ('lockdown', 'Lockdown', ARRAY['hq'])" >/dev/null
    wait_for clinic-north "SELECT count(*) FROM outbox_rejected WHERE reason = \$\$$refusal\$\$" 1 10
    [ "$(mesh_sql clinic-north "SELECT count(*) FROM relay_event_log WHERE origin = 'clinic-north' AND kind = 1")" = 0 ] ||
      fail "clinic-north logged a lockdown it may not send"

    # Forced past its own check by a policy file without rules: refused at hq.
    install_policy clinic-north ""
    forced=$(ctl clinic-north send --target hq --type lockdown --title "Lockdown") ||
      fail "clinic-north's forced lockdown was not sent"
    wait_for hq "SELECT count(*) FROM message_queue WHERE type = 'relay.policy' AND data->>'refused' = '$forced'" 1 15
    [ "$(mesh_sql hq "SELECT data->>'reason' FROM message_queue WHERE type = 'relay.policy'")" = "$refusal" ] ||
      fail "hq's relay.policy row gives another reason: $(mesh_sql hq "SELECT data FROM message_queue WHERE type = 'relay.policy'")"
    [ "$(mesh_sql hq "SELECT count(*) FROM message_queue WHERE type = 'lockdown' AND data->>'id' = '$forced'")" = 0 ] ||
      fail "hq delivered the refused lockdown"
    wait_log hq "refused $forced under the mesh policy: clinic-north may not send a notification"
    eventually status_has clinic-north '"verdict":{"level":"ALARM"' ||
      fail "clinic-north's verdict is not ALARM: $(status_json clinic-north)"
    eventually page_has clinic-north / "refused by their targets under the mesh policy" ||
      fail "clinic-north's page does not say its lockdown was refused"
    echo "send: clinic-north's lockdown refused at clinic-north (relayctl, outbox); forced, refused at hq ($forced, a relay.policy row), ALARM at clinic-north"

    # A duress beyond clinic-duress (to all): delivered, and flagged on both sites.
    install_policy clinic-north "$rules"
    mesh_ready "${mesh_nodes[@]}"
    within=$(ctl clinic-north duress --target clinic-north,hq --location "Ward 1") || fail "clinic-north's duress failed"
    outside=$(ctl clinic-north duress --target all --location "Ward 2") || fail "a duress beyond the policy was refused"
    beyond="clinic-north may send a duress at priority duress only to origin, hq ([[send]] rule \"clinic-duress\" of the mesh policy), not to all"
    wait_for hq "SELECT count(*) FROM message_queue WHERE type = 'duress' AND data->>'id' = '$outside'" 1 15
    [ "$(mesh_sql hq "SELECT data->>'outside_policy' FROM message_queue WHERE data->>'id' = '$outside'")" = "$beyond" ] ||
      fail "hq's row of $outside is not flagged: $(mesh_sql hq "SELECT data FROM message_queue WHERE data->>'id' = '$outside'")"
    [ -z "$(mesh_sql hq "SELECT data->>'outside_policy' FROM message_queue WHERE data->>'id' = '$within'")" ] ||
      fail "hq flagged $within, which is within the policy"
    wait_log hq "duress $outside is outside the mesh policy, delivered all the same: ${beyond%% (*}"
    wait_log clinic-north "duress $outside is outside the mesh policy, sent all the same: ${beyond%% (*}"
    for node in hq clinic-north; do
      eventually page_has "$node" / "data-outside-policy-of=\"$outside\"" || fail "$node's page does not flag $outside"
      page_has "$node" / "data-outside-policy-of=\"$within\"" && fail "$node's page flags $within"
      status_page "$node" /api/alarms | grep -qF "\"outside_policy\": \"clinic-north may send a duress" ||
        fail "$node's /api/alarms does not flag $outside"
    done
    echo "send: duress $outside beyond [[send]] clinic-duress delivered at hq, flagged on both sites; $within not flagged"
    ;;

  *)
    echo "usage: policy_test.sh drift|clear|send" >&2
    exit 2
    ;;
esac
