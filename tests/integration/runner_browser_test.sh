#!/usr/bin/env bash
# relay-runner's page in headless Chromium, as browser_test.sh renders
# relayd's: a real relayd, PostgreSQL and runner, whose command handler says
# something on stderr (with markup, as hostile output would). The rendered
# DOM must show the handler's stderr line in that run's output, as text, and
# the runner's own log line and its incident for the row.
set -euo pipefail
scenario=runner-browser
repo=$(cd "$(dirname "$0")/../.." && pwd)
source "$repo/scripts/lib/mesh.sh"
source "$repo/scripts/lib/runner.sh"
source "$repo/tests/integration/console_lib.sh"
trap 'runner_cleanup; mesh_cleanup' EXIT

chromium_flags=(--headless --disable-gpu --disable-background-networking --disable-component-update
                --disable-sync --no-first-run --hide-scrollbars)
[ "$(id -u)" -eq 0 ] && chromium_flags+=(--no-sandbox)

# render RUNNER: the runner page's DOM, in $dom.
dom=$mesh_dir/runner-dom.html
render() {
  local profile
  profile=$(mktemp -d "$mesh_dir/chromium.XXXXXX")
  timeout 90 chromium "${chromium_flags[@]}" --user-data-dir="$profile" --virtual-time-budget=2000 \
    --dump-dom "http://127.0.0.1:${runner_status[$1]}/" >"$dom" 2>"$mesh_dir/chromium.err" ||
    fail "chromium failed: $(tail -n 5 "$mesh_dir/chromium.err")"
  rm -rf "$profile"
  grep -q '<section id="logs" data-captured="yes">' "$dom" ||
    fail "no captured log on the runner's page: $(head -c 800 "$dom")"
}
expect_dom() {
  grep -Fq -- "$2" "$dom" ||
    fail "$1: no '$2' in the rendered runner page; its runs: $(grep -o '<section id="runs".*' "$dom" | head -c 1500)"
}

cat >"$mesh_dir/say.sh" <<'SH'
#!/bin/sh
cat >/dev/null
echo "handled on stdout: row $RELAY_QUEUE_ID"
echo "handler stderr: row $RELAY_QUEUE_ID <b>gateway slow</b> & retried" >&2
SH
chmod +x "$mesh_dir/say.sh"

mesh_init hq
runner_config popup popup '["notification"]' "command = [\"$mesh_dir/say.sh\"]"
runner_kicked_by hq popup
mesh_start hq
relay_ready hq
runner_start popup
mesh_sql hq "INSERT INTO outbox (kind, type, title) VALUES ('notification', '', 'page test'); NOTIFY outbox" >/dev/null
for _ in $(seq 1 150); do
  [ "$(runner_api popup | jq -r '.runs | length')" -ge 1 ] && break
  sleep 0.2
done
id=$(runner_api popup | jq -r '.runs[0].queue_id')
[ "$(runner_api popup | jq -r '.runs[0].outcome')" = handled ] ||
  fail "the row was not handled: $(runner_api popup | jq -c '.runs, .last_error')"

render popup
# The handler's stderr line in its run's output, its markup as text.
expect_dom "the handler's stderr line" \
  "handler stderr: row $id &lt;b&gt;gateway slow&lt;/b&gt; &amp; retried"
expect_dom "the handler's stdout line" "handled on stdout: row $id"
grep -q '<b>gateway slow</b>' "$dom" && fail "the handler's markup was rendered as markup"
# The runner's own log line, and the incident it logged for the row.
expect_dom "the runner's own log line" "runner popup of group popup consuming [notification]"
expect_dom "the handled incident" '<tr data-incident="handled">'
expect_dom "the incident's row" "group popup: row $id (hq:"
# The same in /api/status.
runner_api popup | jq -e --arg id "$id" \
  '(.runs[0].output | contains("handler stderr: row " + $id)) and
   (.logs.stderr | any(contains("consuming [notification]"))) and
   (.incidents | any(.incident == "handled"))' >/dev/null ||
  fail "/api/status lacks the run's output, the log line or the incident"

# Crash-safe: after a kill -9 and a restart, the page still shows that run
# and the previous run's log.
runner_kill popup KILL
runner_start popup
render popup
expect_dom "the run before the kill" "handler stderr: row $id &lt;b&gt;gateway slow"
[ "$(grep -o 'relay-runner started (pid' "$dom" | wc -l)" -ge 2 ] ||
  fail "the previous run's log is not on the page after the restart"
echo "PASS runner-browser"
