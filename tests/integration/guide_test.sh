#!/usr/bin/env bash
# deploy/OPERATOR.md as written, for two sites on one machine: the guide's
# marked blocks run as the guide gives them, so that it cannot drift from
# the product. The convention is the guide's ("The guide is tested" there):
# a block right below `<!-- test: SITE -->` runs at SITE (`every site`: at
# each in turn), as root, with bash -e, in a work folder of that site;
# `<!-- test: every site: the unit -->` marks the systemctl block, for which
# the test does what systemd would: deploy/relayd.service's ExecStartPre,
# then its ExecStart, as its User=.
#
# Each site is a mount and network namespace of its own: its own /etc (a
# copy: adduser there changes nothing here), /usr/local, /var/lib, /home,
# and a PostgreSQL cluster with Debian's defaults (peer authentication,
# socket in /var/run/postgresql); the two are joined by a veth pair with the
# example configs' addresses. What the test does between the blocks is what
# the guide asks a person to do: copy mesh.keys from hq to the clinic, and
# paste each site's public_key into the other's [[peer]]. It checks that a
# send from hq and a duress from clinic-north arrive. Needs root.
set -euo pipefail
scenario=${1:-two-sites}
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=${MESH_BUILD:-$repo/build}
guide=$repo/deploy/OPERATOR.md
dir=$(mktemp -d /tmp/relaymesh-guide.XXXXXX)
chmod 755 "$dir"
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
sites=(hq clinic-north)
# The mesh addresses the example configs give the two sites.
declare -A address=([hq]=198.51.100.1 [clinic-north]=192.0.2.11) holder public_key

fail() {
  echo "FAIL ($scenario): $*" >&2
  for site in "${sites[@]}"; do
    echo "--- $site: relayd's output (last lines)" >&2
    tail -n 20 "$dir/$site/relayd.out" >&2 2>/dev/null || true
  done
  exit 1
}

# at SITE COMMAND...: runs COMMAND inside SITE's namespaces.
at() { local site=$1; shift; nsenter -t "${holder[$site]}" -m -n --wd="$dir/$site/work" -- "$@"; }

cleanup() {
  for site in "${sites[@]}"; do
    [ -n "${holder[$site]:-}" ] || continue
    local pid
    pid=$(cat "$dir/$site/varlib/relaymesh/$site/lock" 2>/dev/null || true)
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    at "$site" runuser -u postgres -- "$pg_bin/pg_ctl" -D "$dir/$site/pgdata" -m immediate -w stop \
      >/dev/null 2>&1 || true
    kill "${holder[$site]}" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

# A machine of its own for SITE: namespaces held by a sleeping process, the
# folders the guide writes to mounted from $dir/SITE, PostgreSQL started.
machine() {
  local site=$1 d=$dir/$1
  mkdir -p "$d"/{usrlocal,varlib,home,run-pg,work}
  cp -a /etc "$d/etc"
  chown postgres: "$d" "$d/run-pg"
  chmod 755 "$d" "$d/work"
  # The checkout as the guide's step 1 left it: `build` beside the work.
  ln -s "$build" "$d/work/build"
  unshare -m -n --propagation private sleep 600 &
  holder[$site]=$!
  for _ in $(seq 1 50); do
    [ "$(readlink "/proc/${holder[$site]}/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ] && break
    sleep 0.05
  done
  at "$site" sh -ec "
    mount --bind '$d/etc' /etc
    mount --bind '$d/usrlocal' /usr/local
    mount --bind '$d/varlib' /var/lib
    mount --bind '$d/home' /home
    mount --bind '$d/run-pg' /run/postgresql
    ip link set lo up"
  at "$site" runuser -u postgres -- "$pg_bin/initdb" -D "$d/pgdata" -U postgres --auth-local=peer \
    --auth-host=reject --no-sync >"$d/initdb.log" 2>&1 || { cat "$d/initdb.log" >&2; fail "initdb"; }
  at "$site" runuser -u postgres -- "$pg_bin/pg_ctl" -D "$d/pgdata" -l "$d/server.log" -w -t 60 \
    -o "-c listen_addresses='' -k /run/postgresql" start >/dev/null ||
    { cat "$d/server.log" >&2; fail "PostgreSQL did not start at $site"; }
  # What the guide takes for granted: an operator's account.
  at "$site" adduser --quiet --disabled-password --gecos "" alice >/dev/null
}

# The veth pair between the two, with the examples' addresses.
wire() {
  local a=rmg$$a b=rmg$$b
  ip link add "$a" type veth peer name "$b"
  ip link set "$a" netns "${holder[hq]}"
  ip link set "$b" netns "${holder[clinic-north]}"
  at hq sh -ec "ip addr add ${address[hq]}/32 dev $a; ip link set $a up
                ip route add ${address[clinic-north]}/32 dev $a"
  at clinic-north sh -ec "ip addr add ${address[clinic-north]}/32 dev $b; ip link set $b up
                          ip route add ${address[hq]}/32 dev $b"
}

# Each marked block of the guide as a file, numbered in order, with the
# site it runs at on its first line.
extract() {
  mkdir -p "$dir/blocks"
  awk -v out="$dir/blocks" '
    /^<!-- test: .* -->$/ { who = $0; sub(/^<!-- test: /, "", who); sub(/ -->$/, "", who); next }
    who != "" && /^```sh$/ { n++; file = sprintf("%s/%02d", out, n); print who > file; inside = 1; next }
    inside && /^```$/ { inside = 0; who = ""; close(file); next }
    inside { print >> file; next }
    /^$/ { next }
    { who = "" }' "$guide"
  [ "$(ls "$dir/blocks" | wc -l)" -ge 10 ] || fail "the guide has too few marked blocks: $(ls "$dir/blocks")"
  # psql that went on after an error exited 0: the guide's must stop.
  if grep -h 'psql' "$dir"/blocks/* | grep -v 'ON_ERROR_STOP=1' | grep -q .; then
    fail "a psql in the guide without -v ON_ERROR_STOP=1: $(grep -h psql "$dir"/blocks/* | grep -v ON_ERROR_STOP=1)"
  fi
}

# What a person does between blocks, after BLOCK ran at SITE.
after_block() {
  local site=$1 block=$2 out=$3
  if grep -q 'keygen --out' "$block"; then
    public_key[$site]=$(sed -n 's/^public_key = "\(.*\)"$/\1/p' "$out")
    [ -n "${public_key[$site]}" ] || fail "$site: keygen printed no public_key: $(cat "$out")"
  fi
  if grep -q 'keygen --mesh' "$block"; then
    for other in "${sites[@]}"; do
      [ "$other" = "$site" ] || install -m 600 "$dir/$site/work/mesh.keys" "$dir/$other/work/mesh.keys"
    done
  fi
  if [ -f "$dir/$site/work/relayd.toml" ] && [ ! -e "$dir/$site/pasted" ]; then
    paste_keys "$dir/$site/work/relayd.toml"
    touch "$dir/$site/pasted"
  fi
}

# Step 4's edit: each [[peer]]'s public_key, as the other site's keygen printed it.
paste_keys() {
  local file=$1 site keys=""
  for site in "${sites[@]}"; do
    [ -n "${public_key[$site]:-}" ] || fail "no public key of $site yet when the config was written"
    keys+="$site=${public_key[$site]} "
  done
  awk -v keys="$keys" '
    BEGIN { n = split(keys, pairs, " "); for (i = 1; i <= n; i++) { split(pairs[i], kv, "="); key[kv[1]] = substr(pairs[i], length(kv[1]) + 2) } }
    /^\[/ { peer = ($0 == "[[peer]]"); id = "" }
    peer && /^id = / { id = $3; gsub(/"/, "", id) }
    peer && id in key && /^public_key = / { $0 = "public_key = \"" key[id] "\"" }
    { print }' "$file" >"$file.new"
  mv "$file.new" "$file"
}

# The unit, as systemd would run it: ExecStartPre, then ExecStart, as User=.
start_unit() {
  local site=$1 unit=$repo/deploy/relayd.service user pre start
  user=$(sed -n 's/^User=//p' "$unit")
  pre=$(sed -n 's/^ExecStartPre=//p' "$unit")
  start=$(sed -n 's/^ExecStart=//p' "$unit")
  if [ "$site" = hq ]; then
    # relayd once started by hand as root left its state directory root's:
    # the unit's check refuses it with exit 2 (no restart), naming the owner.
    at "$site" install -d -m 0700 "/var/lib/relaymesh/$site"
    local rc=0
    # shellcheck disable=SC2086
    at "$site" runuser -u "$user" -- $pre >"$dir/$site/check.out" 2>&1 || rc=$?
    [ "$rc" = 2 ] || fail "ExecStartPre on a root-owned state directory exited $rc: $(cat "$dir/$site/check.out")"
    grep -q "/var/lib/relaymesh/$site belongs to root:root (mode 0700), and relayd, running as $user, cannot write it" \
      "$dir/$site/check.out" || fail "ExecStartPre does not name the owner: $(cat "$dir/$site/check.out")"
    at "$site" rmdir "/var/lib/relaymesh/$site"
  fi
  # shellcheck disable=SC2086
  at "$site" runuser -u "$user" -- $pre >"$dir/$site/check.out" 2>&1 ||
    fail "$site: the unit's ExecStartPre failed: $(cat "$dir/$site/check.out")"
  # shellcheck disable=SC2086
  at "$site" runuser -u "$user" -- $start >"$dir/$site/relayd.out" 2>&1 &
}

run_guide() {
  local block who site out
  for block in "$dir"/blocks/*; do
    who=$(head -n 1 "$block")
    tail -n +2 "$block" >"$block.sh"
    for site in "${sites[@]}"; do
      case "$who" in
        "every site" | "$site") ;;
        "every site: the unit") start_unit "$site"; continue ;;
        *) continue ;;
      esac
      out=$dir/$site/out.$(basename "$block")
      echo "== $site: block $(basename "$block") of the guide"
      sed 's/^/   | /' "$block.sh"
      at "$site" bash -euo pipefail "$block.sh" >"$out" 2>&1 ||
        fail "$site: the guide's block failed:
$(cat "$block.sh")
--- its output:
$(cat "$out")"
      after_block "$site" "$block.sh" "$out"
    done
    grep -q '^[a-z-]*$\|^every site' <<<"$who" || fail "a block marked for '$who', who is not a site here"
  done
}

# sql SITE QUERY: as the site's postgres.
sql() { at "$1" runuser -u postgres -- psql -X -At -d relaymesh -c "$2"; }

wait_row() {
  local site=$1 query=$2 got=""
  for _ in $(seq 1 100); do
    got=$(sql "$site" "$query" 2>/dev/null || true)
    [ "$got" -ge 1 ] 2>/dev/null && return 0
    sleep 0.1
  done
  fail "$site: $query gave '$got'"
}

case "$scenario" in
  two-sites)
    for site in "${sites[@]}"; do machine "$site"; done
    wire
    extract
    start=$SECONDS
    run_guide
    wait_row clinic-north "SELECT count(*) FROM message_queue WHERE data->>'title' = 'Test of the alert system' AND data->>'origin' = 'hq'"
    wait_row hq "SELECT count(*) FROM message_queue WHERE type = 'duress' AND data->>'origin' = 'clinic-north'"
    wait_row hq "SELECT count(*) FROM message_queue WHERE data->>'origin' = 'clinic-north' AND data->>'title' = 'Installation test from the site software'"
    echo "two-sites: the guide's blocks ran as written ($((SECONDS - start)) s), the unit's ExecStartPre refused a root-owned state directory (exit 2, owner named); hq's send, clinic-north's duress and site_app's insert arrived"
    ;;
  *)
    echo "unknown scenario $scenario" >&2
    exit 2
    ;;
esac
