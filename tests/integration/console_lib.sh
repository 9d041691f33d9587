# Helpers of console_test.sh and browser_test.sh; source after scripts/lib/mesh.sh.
source "$(dirname "${BASH_SOURCE[0]}")/test_lib.sh"


pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
pg_as_owner() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
# Stops and starts the cluster without removing it (scripts/pg-ephemeral's own options).
pg_halt() { pg_as_owner "$pg_bin/pg_ctl" -D "$mesh_dir/pg/data" -m fast -w stop >/dev/null; }
pg_resume() {
  pg_as_owner "$pg_bin/pg_ctl" -D "$mesh_dir/pg/data" -l "$mesh_dir/pg/server.log" -w \
    -o "-c listen_addresses='' -k $mesh_dir/pg -c max_connections=100 -c shared_buffers=64MB" start >/dev/null
}

status_port() { echo $((mesh_port[$1] + 2)); }

# http NODE PATH: prints the HTTP status code; the body is in $http_body.
http_body=$mesh_dir/http.body
http() {
  curl -s -o "$http_body" -w '%{http_code}' --max-time 5 "http://127.0.0.1:$(status_port "$1")$2" || echo 000
}

# json_field FILE EXPR: prints EXPR of the JSON document d in FILE.
json_field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

# wait_for WHAT CONDITION [SECONDS]
wait_for() {
  local what=$1 condition=$2 limit=${3:-30}
  for _ in $(seq 1 $((limit * 5))); do
    if eval "$condition"; then return 0; fi
    sleep 0.2
  done
  fail "timed out waiting for $what"
}

# expect_rc CODE WHAT COMMAND...
expect_rc() {
  local want=$1 what=$2 rc=0
  shift 2
  "$@" >/dev/null 2>&1 || rc=$?
  [ "$rc" = "$want" ] || fail "$what: exit $rc, expected $want"
}

# expect_json CODE WHAT COMMAND...: the exit code, and exactly one JSON
# document on stdout (kept in $json_out) whose exit_code, if any, agrees.
json_out=$mesh_dir/out.json
expect_json() {
  local want=$1 what=$2 rc=0
  shift 2
  "$@" >"$json_out" 2>/dev/null || rc=$?
  [ "$rc" = "$want" ] || fail "$what: exit $rc, expected $want; stdout: $(cat "$json_out")"
  python3 -c '
import json, sys
text = open(sys.argv[1]).read()
doc = json.loads(text)  # exactly one document: anything after it fails here
want = int(sys.argv[2])
assert doc.get("exit_code", 0) == want, doc
assert doc.get("ok") == (want == 0), doc
' "$json_out" "$want" || fail "$what: not one JSON document agreeing with exit $want: $(cat "$json_out")"
}
