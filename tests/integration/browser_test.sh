#!/usr/bin/env bash
# Renders the status page with headless Chromium (no driver: --dump-dom
# after a virtual time budget, so the page's own refresh script runs) in
# each state an operator meets, and checks the rendered DOM.
#   browser_test.sh [SCREENSHOT.png]   (also saves a screenshot of the duress state)
set -euo pipefail
scenario=browser
screenshot=${1:-}
repo=$(cd "$(dirname "$0")/../.." && pwd)
source "$repo/scripts/lib/mesh.sh"
source "$repo/tests/integration/console_lib.sh"
trap mesh_cleanup EXIT

chromium_flags=(--headless --disable-gpu --disable-background-networking --disable-component-update
                --disable-sync --no-first-run --hide-scrollbars)
[ "$(id -u)" -eq 0 ] && chromium_flags+=(--no-sandbox)

# render NODE: the page's DOM after 3 s of virtual time, in $dom.
dom=$mesh_dir/dom.html
render() {
  local profile
  profile=$(mktemp -d "$mesh_dir/chromium.XXXXXX")
  timeout 90 chromium "${chromium_flags[@]}" --user-data-dir="$profile" --virtual-time-budget=3000 \
    --dump-dom "http://127.0.0.1:$(status_port "$1")/" >"$dom" 2>"$mesh_dir/chromium.err" ||
    fail "chromium failed: $(tail -n 5 "$mesh_dir/chromium.err")"
  rm -rf "$profile"
  grep -q 'id="verdict"' "$dom" || fail "no verdict in the rendered page: $(head -c 500 "$dom")"
  # The refresh script ran and fetched the page again without error.
  grep -q 'id="stale" class="stale" hidden' "$dom" || fail "the page's refresh failed (stale banner shown)"
}
expect_dom() {
  local what=$1 pattern=$2
  grep -Eq "$pattern" "$dom" ||
    fail "$what: no /$pattern/ in the rendered page (its verdict: $(verdict_text))"
}
# readable NODE: renders NODE's page with a script that measures, as the
# browser computed them, the WCAG contrast of every alarm element's text
# against the background it stands on, and finds any panel that says "none"
# above an alarm of its own. Fails under 4.5:1 (WCAG AA for body text).
readable() {
  local page=$mesh_dir/readable.html
  curl -s "http://127.0.0.1:$(status_port "$1")/" | python3 -c '
import sys
page, script = sys.stdin.read(), open(sys.argv[2]).read()
page = page.replace("<head>", "<head><base href=\"%s\">" % sys.argv[1], 1)
print(page.replace("</body>", script + "</body>", 1))' "http://127.0.0.1:$(status_port "$1")/" "$mesh_dir/readable.js" >"$page"
  local profile
  profile=$(mktemp -d "$mesh_dir/chromium.XXXXXX")
  timeout 90 chromium "${chromium_flags[@]}" --user-data-dir="$profile" --virtual-time-budget=1000 \
    --dump-dom "file://$page" >"$dom" 2>"$mesh_dir/chromium.err" ||
    fail "chromium failed: $(tail -n 5 "$mesh_dir/chromium.err")"
  rm -rf "$profile"
  python3 - "$dom" <<'PY' || fail "$1's page: alarm lines a person cannot read, or \"none\" above an alarm"
import html, re, sys
m = re.search(r'<pre id="readable">(.*?)</pre>', open(sys.argv[1]).read(), re.S)
assert m, "the contrast script did not run"
lines = html.unescape(m.group(1)).strip().splitlines()
bad = [l for l in lines if l.startswith("NONE") or float(l.split()[0]) < 4.5]
print("%d alarm elements measured, lowest contrast %s" % (len(lines), min((l.split()[0] for l in lines if not l.startswith("NONE")), key=float, default="-")))
for l in bad: print("  " + l, file=sys.stderr)
sys.exit(1 if bad or not lines else 0)
PY
}
cat >"$mesh_dir/readable.js" <<'JS'
<script>
addEventListener("load", function () {
  function lum(c) {
    var v = c.match(/[0-9.]+/g).slice(0, 3).map(function (x) {
      x = x / 255;
      return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2];
  }
  function background(e) {
    for (; e; e = e.parentElement) {
      var c = getComputedStyle(e).backgroundColor, a = c.match(/[0-9.]+/g);
      if (a && (a.length < 4 || +a[3] > 0)) return c;
    }
    return "rgb(255, 255, 255)";
  }
  var out = [];
  document.querySelectorAll(".alarm, tr.bad, .runner-alarm, #untaken-duress").forEach(function (top) {
    [top].concat(Array.from(top.querySelectorAll("*"))).forEach(function (e) {
      var own = Array.from(e.childNodes).some(function (n) { return n.nodeType === 3 && n.textContent.trim(); });
      if (!own) return;
      var f = lum(getComputedStyle(e).color), b = lum(background(e));
      var ratio = (Math.max(f, b) + 0.05) / (Math.min(f, b) + 0.05);
      out.push(ratio.toFixed(2) + " " + getComputedStyle(e).color + " on " + background(e) + ": " +
               e.textContent.trim().slice(0, 60));
    });
  });
  document.querySelectorAll("section").forEach(function (section) {
    var alarm = section.querySelector(".alarm, tr.bad, [data-spooled]");
    if (!alarm) return;
    section.querySelectorAll("p, td").forEach(function (p) {
      if (/\bnone\b/.test(p.textContent) && p.compareDocumentPosition(alarm) & Node.DOCUMENT_POSITION_FOLLOWING)
        out.push("NONE above an alarm in #" + section.id + ": " + p.textContent.trim());
    });
  });
  var pre = document.createElement("pre");
  pre.id = "readable";
  pre.textContent = out.join("\n");
  document.body.appendChild(pre);
});
</script>
JS

# The rendered verdict and its reasons, as text.
verdict_text() { grep -o '<header id="verdict".*</header>' "$dom" | sed 's/<[^>]*>/ /g; s/  */ /g'; }
state_ok() { echo "state: $1"; }

mesh_init hq clinic-north
# Long enough that Chromium's start on a loaded machine cannot outlast it
# before the first page ("not heard yet" is DEGRADED only until then).
for node in hq clinic-north; do
  sed -i 's/^keys = "mesh.keys"$/keys = "mesh.keys"\nsupervision_timeout = "30s"/' "$mesh_dir/$node/relayd.toml"
done

# 1. A peer not heard yet (clinic-north is not started): DEGRADED, and the log present.
mesh_start hq
render hq
expect_dom "not heard yet" 'data-peer="clinic-north" data-state="not heard yet"'
expect_dom "verdict DEGRADED" 'data-verdict="DEGRADED"'
expect_dom "logs present" 'relayd hq: mesh on [0-9]+'
expect_dom "the database up" 'id="database" data-state="up"'
state_ok "peer not heard yet; logs present"

# 2. All OK.
mesh_start clinic-north
wait_for "hq all OK" 'http hq /api/status >/dev/null; [ "$(json_field "$http_body" "d[\"verdict\"][\"level\"]")" = OK ]'
# Rendered seconds later; a peer just started can still be settling, so
# the page gets a few tries to say OK, and any other verdict is shown.
for try in 1 2 3 4 5; do
  render hq
  grep -q 'data-verdict="OK"' "$dom" && break
  echo "render $try of hq's page: $(verdict_text)"
  sleep 1
done
expect_dom "verdict OK" 'data-verdict="OK"'
expect_dom "peer alive" 'data-peer="clinic-north" data-state="alive" data-alarm="no"'
state_ok "all OK"

# 3. A duress open: ALARM, with who, where, and each target's receipt.
id=$(ctl clinic-north duress --location "Psych ward, room 12" --by "nurse station 3" --wait=20s 2>/dev/null) ||
  fail "duress not confirmed"
wait_for "the duress at hq" 'http hq /api/alarms >/dev/null; grep -q "$id" "$http_body"'
# The page's view of the database is refreshed every 2 s; until then the
# duress shows from the spool, without the receipts the database holds.
wait_for "the duress in clinic-north's database view" 'http clinic-north /api/alarms >/dev/null;
  [ "$(json_field "$http_body" "[e[\"spooled\"] for e in d[\"open_duress\"] if e[\"id\"] == \"$id\"]")" = "[False]" ]'
render clinic-north
expect_dom "verdict ALARM" 'data-verdict="ALARM"'
expect_dom "the duress row" "data-event=\"$id\" data-kind=\"duress\""
expect_dom "the location" 'Psych ward, room 12'
expect_dom "hq's receipt" 'data-target="hq" data-state="delivered"'
readable clinic-north
readable hq  # a clinic's duress at hq: "kept at clinic-north" in the alarm's row
if [ -n "$screenshot" ]; then
  timeout 90 chromium "${chromium_flags[@]}" --user-data-dir="$(mktemp -d "$mesh_dir/chromium.XXXXXX")" \
    --window-size=1280,1500 --virtual-time-budget=3000 --screenshot="$screenshot" \
    "http://127.0.0.1:$(status_port clinic-north)/" >/dev/null 2>&1 || fail "no screenshot"
fi
# One incident line each, with the fields journald keeps.
for line in "clinic-north incident=duress_sent event_id=$id" "clinic-north incident=duress_confirmed event_id=$id peer=hq" \
            "hq incident=duress_delivered event_id=$id" "hq incident=peer_alive peer=clinic-north"; do
  wait_log "${line%% *}" "${line#* }"
done
ctl clinic-north all-clear "$id" --wait 20s >/dev/null 2>&1 || fail "all-clear not confirmed"
state_ok "duress open"

# 4. A peer alarm: clinic-north silent beyond supervision_timeout.
mesh_kill clinic-north KILL
wait_for "the supervision alarm" \
  'http hq /api/alarms >/dev/null; [ "$(json_field "$http_body" "\"clinic-north\" in d[\"supervision\"]")" = True ]' 60
render hq
expect_dom "peer alarm" 'data-peer="clinic-north" data-state="[a-z ]+" data-alarm="yes"'
expect_dom "SUPERVISION ALARM shown" 'SUPERVISION ALARM'
expect_dom "verdict ALARM" 'data-verdict="ALARM"'
# Suspect comes after a few missed probes, which may be after the 5 s alarm.
for incident in peer_suspect alarm_raised; do
  wait_for "the $incident line at hq" "grep -q 'incident=$incident peer=clinic-north' '$mesh_dir/hq/relayd.log'" 15
done
state_ok "peer alarm"

# 5. The database down.
pg_halt
wait_for "database down on the page" \
  'http hq /api/status >/dev/null; [ "$(json_field "$http_body" "d[\"database\"][\"state\"]")" = down ]'
render hq
expect_dom "database down" 'id="database" data-state="DOWN"'
expect_dom "the reason" 'database: down for'
expect_dom "verdict ALARM" 'data-verdict="ALARM"'
expect_dom "panels read from the database say when" 'class="as-of">as of '
state_ok "database down"

# 6. A duress pressed at hq with its database down: spooled, and an open
# alarm at its origin all the same, with who and where, everywhere.
id=$(ctl hq duress --location "Ward 5, bed 2" --by "desk 7" 2>/dev/null) || fail "duress not accepted with the database down"
wait_for "the spooled duress in /api/alarms" 'http hq /api/alarms >/dev/null; grep -q "$id" "$http_body"'
json_field "$http_body" '[(e["location"], e["sender"], e["spooled"]) for e in d["open_duress"]]' |
  grep -qF "('Ward 5, bed 2', 'desk 7', True)" || fail "/api/alarms: $(cat "$http_body")"
http hq /metrics >/dev/null
grep -qx "relay_duress_open 1" "$http_body" || fail "relay_duress_open: $(grep duress_open "$http_body")"
render hq
expect_dom "the spooled duress open" "data-event=\"$id\" data-kind=\"duress\" data-state=\"open\" data-spooled=\"yes\""
expect_dom "where" 'Ward 5, bed 2'
expect_dom "who" 'desk 7'
expect_dom "the reason" "duress $id open \(no all-clear; in the spool"
readable hq
pg_resume
state_ok "a spooled duress open at its origin, its database down"
echo "PASS browser"
