#!/usr/bin/env bash
# The Debian packages (issue 25): builds them from the suite's build tree
# (RELAYMESH_PREBUILT, debian/rules), runs lintian, installs them with apt,
# and checks what a site gets: the account and folders postinst makes, the
# units (systemd-analyze verify, man pages included), `relayd --version`,
# `relayctl check-config` on the installed example, and relayd started as
# relayd.service starts it with a NOTIFY_SOCKET this test listens on:
# READY=1 once the database answered, STATUS= with the verdict, WATCHDOG=1
# pings that stop while relayd is stopped (SIGSTOP) and come back after,
# RELOADING=1 and READY=1 again around a restart in place (same PID),
# STOPPING=1 on SIGTERM; relay-runner likewise from its unit template. Then it removes (configuration and data stay) and
# purges, and finds nothing left behind.
# The machine is this one, seen through overlays on /etc, /var and /usr in
# a mount namespace of the test's own: the install, the account and the
# purge are real to everything the test runs, and gone with it, so that
# tests running beside it (and a relaymesh installed by hand) see none of
# it. MESH_BUILD: the build tree (default build/), built already.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${MESH_BUILD:-$repo/build}" && pwd)
packages=(relaymesh relaymesh-runner relaymesh-doc)
start=$SECONDS

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

if grep -q '^RELAY_SANITIZE:BOOL=ON' "$build/CMakeCache.txt"; then
  echo "skipped: $build is a sanitizer build, not what a site installs"
  exit 77
fi

if [ -z "${RELAY_PACKAGE_SANDBOX:-}" ]; then
  sandbox=$(mktemp -d /tmp/relay-package.XXXXXX)
  rc=0
  RELAY_PACKAGE_SANDBOX=$sandbox unshare --mount --propagation private bash "$0" "$@" || rc=$?
  rm -rf "$sandbox"
  exit "$rc"
fi
dir=$RELAY_PACKAGE_SANDBOX
for top in etc var usr; do
  mkdir "$dir/$top.upper" "$dir/$top.work"
  mount -t overlay "relay-package-$top" \
    -o "lowerdir=/$top,upperdir=$dir/$top.upper,workdir=$dir/$top.work" "/$top"
done
chmod 755 "$dir"  # relayd, as relaymesh, reaches the database and notify sockets in it
# As on a machine that never had relaymesh: what a hand install or a
# benchmark's relayd ([node] state_dir defaults to /var/lib/relaymesh/<id>)
# left here goes, in the overlays only.
if getent passwd relaymesh >/dev/null; then deluser --system --quiet relaymesh >/dev/null 2>&1 || true; fi
if getent group relaymesh >/dev/null; then delgroup --system --quiet relaymesh >/dev/null 2>&1 || true; fi
rm -rf /etc/relaymesh /var/lib/relaymesh
relayd_pid=
listener_pid=
cleanup() {
  if [ -n "$relayd_pid" ]; then
    kill -CONT "$relayd_pid" 2>/dev/null || true
    kill -KILL "$relayd_pid" 2>/dev/null || true
  fi
  # shellcheck disable=SC2086
  [ -z "$listener_pid" ] || kill $listener_pid 2>/dev/null || true
  "$repo/scripts/pg-ephemeral" stop "$dir/pg" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# What the machine holds of relaymesh before: after the purge it must hold
# exactly that again.
leftovers() {
  find /etc /var/lib /lib/systemd /usr/bin /usr/lib /usr/share \
    \( -name '*relaymesh*' -o -name 'relayd*' -o -name 'relayctl*' -o -name 'relay-runner*' \) \
    -print 2>/dev/null | sort
}
leftovers >"$dir/before"

echo "== building the packages from $build"
mkdir "$dir/src"
cp -a "$repo/debian" "$repo/CMakeLists.txt" "$dir/src/"
(cd "$dir/src" && RELAYMESH_PREBUILT=$build DEB_BUILD_OPTIONS="noddebs nocheck" \
  dpkg-buildpackage -b -us -uc) >"$dir/build.log" 2>&1 ||
  fail "dpkg-buildpackage: $(tail -n 30 "$dir/build.log")"
version=$(cd "$dir/src" && dpkg-parsechangelog -S Version)
arch=$(dpkg --print-architecture)
debs=("relaymesh_${version}_$arch.deb" "relaymesh-runner_${version}_$arch.deb"
  "relaymesh-doc_${version}_all.deb")
for deb in "${debs[@]}"; do [ -f "$dir/$deb" ] || fail "no $deb: $(ls "$dir")"; done
echo "   built ${debs[*]} ($((SECONDS - start)) s)"

echo "== lintian"
lintian --tag-display-limit 0 "$dir"/relaymesh_"${version}"_"$arch".changes >"$dir/lintian.out" 2>&1 || true
sed 's/^/   | /' "$dir/lintian.out"
! grep -q '^[EW]: ' "$dir/lintian.out" || fail "lintian reports errors or warnings (above)"
echo "   lintian: no errors, no warnings ($((SECONDS - start)) s)"

echo "== apt install ./${debs[*]}"
(cd "$dir" && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  "${debs[@]/#/./}") >"$dir/install.log" 2>&1 || fail "apt install: $(cat "$dir/install.log")"

getent passwd relaymesh >/dev/null || fail "postinst made no relaymesh account"
[ "$(stat -c '%U:%G %a' /etc/relaymesh)" = "root:relaymesh 750" ] ||
  fail "/etc/relaymesh is $(stat -c '%U:%G %a' /etc/relaymesh), not root:relaymesh 750 (OPERATOR.md)"
[ "$(stat -c '%U:%G %a' /var/lib/relaymesh)" = "relaymesh:relaymesh 710" ] ||
  fail "/var/lib/relaymesh is $(stat -c '%U:%G %a' /var/lib/relaymesh), not relaymesh:relaymesh 710"

unit=/lib/systemd/system/relayd.service
[ -f "$unit" ] && [ -f /lib/systemd/system/relay-runner@.service ] || fail "the units are not installed"
systemd-analyze verify "$unit" /lib/systemd/system/relay-runner@.service >"$dir/verify.out" 2>&1 ||
  fail "systemd-analyze verify: $(cat "$dir/verify.out")"
# A template verifies through an instance of it.
ln -s /lib/systemd/system/relay-runner@.service "$dir/relay-runner@popup.service"
systemd-analyze verify "$dir/relay-runner@popup.service" >"$dir/verify.out" 2>&1 ||
  fail "systemd-analyze verify relay-runner@popup: $(cat "$dir/verify.out")"
for page in relayd.8 relayctl.8 relay-runner.8 relayd.toml.5 runner.toml.5; do
  man -w "${page%.*}" "${page##*.}" >/dev/null 2>&1 ||
    man -w "${page##*.}" "${page%.*}" >/dev/null 2>&1 || fail "man page $page not installed"
done
[ "$(relayd --version)" = "relayd $version" ] ||
  fail "relayd --version says '$(relayd --version)', the package is $version"
[ "$(relayctl --version)" = "relayctl $version" ] ||
  fail "relayctl --version says '$(relayctl --version)', the package is $version"
echo "   account, folders, units verified, man pages, version $version ($((SECONDS - start)) s)"

as_relaymesh() { setpriv --reuid=relaymesh --regid=relaymesh --init-groups -- "$@"; }
# N free loopback ports (UDP, and free for TCP as far as this machine goes).
free_ports() {
  python3 -c '
import socket, sys
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])' "$1"
}

echo "== relayctl check-config on the installed example, as the unit's ExecStartPre"
relayctl keygen --out /etc/relaymesh/node.key >/dev/null 2>&1
relayctl keygen --mesh --out /etc/relaymesh/mesh.keys >/dev/null 2>&1
chown relaymesh: /etc/relaymesh/node.key /etc/relaymesh/mesh.keys
install -m 640 -g relaymesh /usr/share/doc/relaymesh/hq.toml /etc/relaymesh/relayd.toml
user=$(sed -n 's/^User=//p' "$unit")
pre=$(sed -n 's/^ExecStartPre=//p' "$unit")
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[ "$user" = relaymesh ] && [ -n "$pre" ] && [ -n "$exec_start" ] || fail "unexpected unit: $(cat "$unit")"
# shellcheck disable=SC2086
as_relaymesh $pre >"$dir/check.out" 2>&1 || fail "check-config --offline on hq.toml: $(cat "$dir/check.out")"

# The example once more, on this machine: a database of its own, free
# loopback ports, and its peer on a loopback port where nothing answers.
"$repo/scripts/pg-ephemeral" start "$dir/pg" >/dev/null
psql -h "$dir/pg" -U postgres -qc 'CREATE DATABASE relaymesh' >/dev/null
read -r p_mesh p_kick p_status p_peer p_consumer < <(free_ports 5)
sed -e "s|^listen = \"0.0.0.0:7400\"|listen = \"127.0.0.1:$p_mesh\"|" \
  -e "s|^listen = \"127.0.0.1:7401\"|listen = \"127.0.0.1:$p_kick\"|" \
  -e "s|^listen = \"127.0.0.1:7480\"|listen = \"127.0.0.1:$p_status\"|" \
  -e "s|^address = \"192.0.2.11:7400\"|address = \"127.0.0.1:$p_peer\"|" \
  -e "s|^kick = \\[\"127.0.0.1:7491\"\\]|kick = [\"127.0.0.1:$p_consumer\"]|" \
  -e "s|^dsn = .*|dsn = \"host=$dir/pg dbname=relaymesh user=postgres\"|" \
  /usr/share/doc/relaymesh/hq.toml >"$dir/relayd.toml"
for port in $p_mesh $p_kick $p_status $p_peer $p_consumer; do
  grep -q ":$port\"" "$dir/relayd.toml" || fail "the example changed: no place for port $port"
done
grep -Eq "^[^#]*192\.0\.2\." "$dir/relayd.toml" && fail "the example still names a peer off this machine"
install -m 640 -g relaymesh "$dir/relayd.toml" /etc/relaymesh/relayd.toml
as_relaymesh relayctl --config /etc/relaymesh/relayd.toml check-config >"$dir/check.out" 2>&1 ||
  fail "check-config with its database: $(cat "$dir/check.out")"
echo "   check-config: the example offline, and online with its database ($((SECONDS - start)) s)"

echo "== relayd as relayd.service starts it, NOTIFY_SOCKET and WATCHDOG_USEC set"
python3 "$repo/tests/package/notify_listen.py" "$dir/notify.sock" "$dir/notify.log" &
listener_pid=$!
for _ in $(seq 50); do [ -S "$dir/notify.sock" ] && break; sleep 0.1; done
[ -S "$dir/notify.sock" ] || fail "the notify listener did not start"
: >>"$dir/notify.log"
log=$dir/notify.log
count() { grep -c -- "$1" "$log" || true; }
wait_count() {  # PATTERN AT-LEAST SECONDS
  local end=$((SECONDS + $3))
  while [ "$(count "$1")" -lt "$2" ]; do
    [ "$SECONDS" -lt "$end" ] || return 1
    sleep 0.2
  done
}
# systemd's environment for a Type=notify unit with WatchdogSec=1s (the
# unit says 30s; the test waits less).
# shellcheck disable=SC2086
setpriv --reuid=relaymesh --regid=relaymesh --init-groups -- \
  env NOTIFY_SOCKET="$dir/notify.sock" WATCHDOG_USEC=1000000 $exec_start >"$dir/relayd.out" 2>&1 &
relayd_pid=$!
wait_count 'READY=1' 1 30 || fail "no READY=1 within 30 s: $(cat "$dir/notify.log") $(tail -n 20 "$dir/relayd.out")"
grep -q 'database answered' "$dir/relayd.out" || fail "READY=1 before the database answered: $(cat "$dir/relayd.out")"
grep 'READY=1' "$dir/notify.log" | grep -Eq 'STATUS=(OK|DEGRADED|ALARM)' ||
  fail "READY=1 without the verdict in STATUS=: $(cat "$dir/notify.log")"
wait_count 'WATCHDOG=1' 3 5 || fail "fewer than 3 WATCHDOG=1 in 5 s: $(cat "$dir/notify.log")"
echo "   READY=1 and the verdict: $(grep -m1 'READY=1' "$dir/notify.log" | cut -f2)"

hung() {  # NAME: a stopped process misses its pings, and sends them again once continued
  kill -STOP "$relayd_pid"
  sleep 0.3  # a ping sent just before the stop has arrived by now
  local stopped
  stopped=$(count 'WATCHDOG=1')
  sleep 2.5  # past WATCHDOG_USEC (1 s): systemd would have killed it
  [ "$(count 'WATCHDOG=1')" = "$stopped" ] ||
    fail "WATCHDOG=1 arrived while $1 was stopped: $(tail -n 5 "$log")"
  kill -CONT "$relayd_pid"
  wait_count 'WATCHDOG=1' $((stopped + 2)) 3 || fail "$1: no WATCHDOG=1 after SIGCONT"
}
hung relayd
echo "   a stopped relayd sent no WATCHDOG=1 for 2.5 s; the pings came back with SIGCONT"

# A change that needs a restart in place: same PID, RELOADING=1, READY=1 again.
sed -i 's/^supervision_timeout = "90s"/supervision_timeout = "91s"/' /etc/relaymesh/relayd.toml
as_relaymesh relayctl --config /etc/relaymesh/relayd.toml reload >"$dir/reload.out" 2>&1 ||
  fail "relayctl reload: $(cat "$dir/reload.out")"
wait_count 'READY=1' 2 30 || fail "no second READY=1 after the restart in place: $(cat "$dir/notify.log")"
grep -n 'RELOADING=1' "$dir/notify.log" | grep -q 'MONOTONIC_USEC=' || fail "no RELOADING=1: $(cat "$dir/notify.log")"
[ "$(grep -n 'RELOADING=1' "$dir/notify.log" | cut -d: -f1)" -lt \
  "$(grep -n 'READY=1' "$dir/notify.log" | tail -n 1 | cut -d: -f1)" ] || fail "READY=1 came before RELOADING=1"
grep -q 're-executing' "$dir/relayd.out" || fail "relayd did not restart in place: $(cat "$dir/relayd.out")"
kill -0 "$relayd_pid" || fail "relayd's PID is gone after the restart in place"
echo "   restart in place: RELOADING=1, then READY=1 again from the same PID $relayd_pid"

kill -TERM "$relayd_pid"
rc=0
wait "$relayd_pid" || rc=$?
relayd_pid=
[ "$rc" = 0 ] || fail "relayd exited $rc on SIGTERM"
grep -q 'STOPPING=1' "$dir/notify.log" || fail "no STOPPING=1 on SIGTERM"

echo "== relay-runner as relay-runner@popup.service starts it, on the installed example"
read -r p_kick p_status p_http < <(free_ports 3)
sed -e "s|^listen = \"127.0.0.1:7491\"|listen = \"127.0.0.1:$p_kick\"|" \
  -e "s|^listen = \"127.0.0.1:7490\"|listen = \"127.0.0.1:$p_status\"|" \
  -e "s|^url = \"http://127.0.0.1:8080/alert\"|url = \"http://127.0.0.1:$p_http/alert\"|" \
  -e "s|^dsn = .*|dsn = \"host=$dir/pg dbname=relaymesh user=postgres\"|" \
  /usr/share/doc/relaymesh/runner.toml >"$dir/runner.toml"
for port in $p_kick $p_status $p_http; do
  grep -q ":$port" "$dir/runner.toml" || fail "the runner example changed: no place for port $port"
done
install -m 640 -g relaymesh "$dir/runner.toml" /etc/relaymesh/runner-popup.toml
runner_unit=/lib/systemd/system/relay-runner@.service
runner_pre=$(sed -n 's/^ExecStartPre=//p' "$runner_unit" | sed 's/%i/popup/g')
runner_start=$(sed -n 's/^ExecStart=//p' "$runner_unit" | sed 's/%i/popup/g')
# shellcheck disable=SC2086
as_relaymesh $runner_pre >"$dir/runner-check.out" 2>&1 ||
  fail "relay-runner's ExecStartPre: $(cat "$dir/runner-check.out")"
python3 "$repo/tests/package/notify_listen.py" "$dir/runner.sock" "$dir/runner-notify.log" &
listener_pid="$listener_pid $!"
for _ in $(seq 50); do [ -S "$dir/runner.sock" ] && break; sleep 0.1; done
log=$dir/runner-notify.log
: >>"$log"
# shellcheck disable=SC2086
setpriv --reuid=relaymesh --regid=relaymesh --init-groups -- \
  env NOTIFY_SOCKET="$dir/runner.sock" WATCHDOG_USEC=1000000 $runner_start >"$dir/runner.out" 2>&1 &
relayd_pid=$!
wait_count 'READY=1' 1 30 || fail "relay-runner: no READY=1 within 30 s: $(tail -n 20 "$dir/runner.out")"
wait_count 'WATCHDOG=1' 3 5 || fail "relay-runner: fewer than 3 WATCHDOG=1 in 5 s: $(cat "$log")"
hung relay-runner
kill -TERM "$relayd_pid"
rc=0
wait "$relayd_pid" || rc=$?
relayd_pid=
[ "$rc" = 0 ] || fail "relay-runner exited $rc on SIGTERM"
grep -q 'STOPPING=1' "$log" || fail "relay-runner: no STOPPING=1 on SIGTERM"
echo "   READY=1, WATCHDOG=1 missed while stopped and back after, STOPPING=1"
"$repo/scripts/pg-ephemeral" stop "$dir/pg" >/dev/null

echo "== remove keeps configuration and data; purge leaves nothing behind"
dpkg -L "${packages[@]}" 2>/dev/null | sort -u >"$dir/files"
apt-get remove -y -qq "${packages[@]}" >"$dir/remove.log" 2>&1 || fail "apt remove: $(cat "$dir/remove.log")"
[ -f /etc/relaymesh/relayd.toml ] && [ -f /etc/relaymesh/node.key ] && [ -d /var/lib/relaymesh/hq ] &&
  [ -d /var/lib/relaymesh/runner-popup ] &&
  getent passwd relaymesh >/dev/null || fail "remove took configuration, data or the account"
apt-get purge -y -qq "${packages[@]}" >"$dir/purge.log" 2>&1 || fail "apt purge: $(cat "$dir/purge.log")"
! getent passwd relaymesh >/dev/null || fail "purge left the relaymesh account"
! getent group relaymesh >/dev/null || fail "purge left the relaymesh group"
for path in /etc/relaymesh /var/lib/relaymesh; do [ ! -e "$path" ] || fail "purge left $path"; done
while read -r path; do
  [ -d "$path" ] && continue  # shared folders such as /usr/bin stay (leftovers checks the others)
  [ ! -e "$path" ] && [ ! -L "$path" ] || fail "purge left $path"
done <"$dir/files"
leftovers >"$dir/after"
diff "$dir/before" "$dir/after" >"$dir/diff" || fail "purge left behind: $(cat "$dir/diff")"
echo "package: built, lintian clean, installed, verified, notified systemd, purged clean ($((SECONDS - start)) s)"
