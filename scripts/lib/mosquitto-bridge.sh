# shellcheck shell=bash
# The peer a buyer compares relaymesh against: two Mosquitto brokers from
# Debian on loopback, "hq" bridging bench/# to "clinic" with QoS 1, each with
# persistence as Debian's /etc/mosquitto/mosquitto.conf ships it. Figure: N
# JSON messages of a relaymesh event's size, QoS 1, published at hq, timed
# from the first publish until a QoS 1 subscriber at clinic has them all (or,
# when the brokers dropped some, until the last one that came).
#
# Sourced by scripts/bench-e2e (mosq_install; mosq_bridge N prints its line
# and sets mosq_rate and mosq_lost; mosq_cleanup from its EXIT trap), or run
# alone while developing:
#   bash scripts/lib/mosquitto-bridge.sh [N]
# MOSQ_MAX_QUEUED=0 (say) sets max_queued_messages in both brokers, to see
# the bridge without its default queue limit; the figure then says so.
#
# What it is and is not (for reading the ratio):
# - Mosquitto's persistence is a snapshot of memory written every
#   autosave_interval (1800 s by default) and at shutdown, not a write per
#   message: a QoS 1 message is acknowledged before it is on disk. relaymesh
#   commits every event to PostgreSQL at both ends (log and message_queue).
# - No signatures, no receipts; the bridge is plain MQTT over TCP.
# - Bridge and queue settings are Mosquitto's defaults, which is what Debian
#   ships (its mosquitto.conf sets none): cleansession false, max_inflight 20,
#   max_queued_messages 1000 per client, beyond which QoS 1 messages to a
#   client whose queue is full are dropped. Losses are counted and reported:
#   a burst of 20,000 lost some in most runs on the 2-core machine (276 to
#   13,086 of them), at the bridge's queue in hq and once at the
#   subscriber's in clinic; none with MOSQ_MAX_QUEUED=0, at the same rate.

mosq_dir=
mosq_pids=()
mosq_rate=''
mosq_lost=''

# Installs mosquitto and mosquitto-clients when missing (as scripts/setup
# does), and stops the system service if the package's install started it:
# the bench runs brokers of its own and must not share the cores with one.
mosq_install() {
  local p missing=() sudo=()
  for p in mosquitto mosquitto-clients; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  echo "bench: installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's service writes its pid here (pid_file in mosquitto.conf).
  # No systemctl needed: the init script where there is one, else the pid.
  local pidfile=/run/mosquitto/mosquitto.pid
  if [ -s "$pidfile" ]; then
    if command -v service >/dev/null && [ -x /etc/init.d/mosquitto ]; then
      "${sudo[@]}" service mosquitto stop >/dev/null 2>&1 || true
    fi
    if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      "${sudo[@]}" kill "$(cat "$pidfile")" 2>/dev/null || true
    fi
  fi
}

mosq_cleanup() {
  local pid
  for pid in "${mosq_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${mosq_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  mosq_pids=()
  if [ -n "$mosq_dir" ]; then rm -rf "$mosq_dir"; fi
  mosq_dir=
}

# A free TCP port on loopback below the kernel's ephemeral range.
mosq_port() {
  local port
  while :; do
    port=$((10000 + RANDOM % 22000))
    ss -Htln "sport = :$port" 2>/dev/null | grep -q . || { echo "$port"; return; }
  done
}

# mosq_broker NAME PORT [BRIDGE_PORT]: config and start of one broker, its
# persistence in the temp dir; with BRIDGE_PORT, bench/# goes out there at QoS 1.
mosq_broker() {
  local name=$1 port=$2 bridge=${3:-} conf=$mosq_dir/$1.conf dir=$mosq_dir/brokers
  mkdir -p "$dir/$name"
  [ "$(id -u)" -eq 0 ] && id mosquitto >/dev/null 2>&1 && chown mosquitto "$dir/$name"
  {
    printf 'persistence true\npersistence_location %s/%s/\n' "$dir" "$name"
    printf 'log_dest file %s/%s.log\n\n' "$dir" "$name"
    printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port"
    if [ -n "${MOSQ_MAX_QUEUED:-}" ]; then printf 'max_queued_messages %s\n' "$MOSQ_MAX_QUEUED"; fi
    if [ -n "$bridge" ]; then
      printf '\nconnection %s-to-clinic\naddress 127.0.0.1:%s\ntopic bench/# out 1\n' "$name" "$bridge"
    fi
  } > "$conf"
  mosquitto -c "$conf" 2>>"$mosq_dir/$name.err" &
  mosq_pids+=($!)
  local _
  for _ in $(seq 1 50); do
    ss -Htln "sport = :$port" 2>/dev/null | grep -q . && return 0
    sleep 0.1
  done
  echo "mosquitto $name did not start:" >&2
  cat "$dir/$name.log" "$mosq_dir/$name.err" >&2
  return 1
}

# mosq_bridge N: the measurement; prints its line, sets mosq_rate (messages
# that came, per second) and mosq_lost (how many did not). Returns non-zero
# with a reason on stderr when it has no figure (it may run under || , where
# set -e does not hold).
#
# The clients are not the limit: in a 20,000-message run of 1.6 s on the
# 2-core machine, mosquitto_pub used 0.3 s of CPU, mosquitto_sub 0.4 s and
# each broker 0.5 s (mostly system time), no process near a core. The chain
# is bound by its QoS 1 windows (20 in flight at each hop), not by a client,
# so Debian's own clients measure the brokers honestly.
mosq_bridge() {
  local total=$1
  mosq_dir=$(mktemp -d /tmp/relaymesh-mosquitto.XXXXXX) || return 1
  # Started as root, mosquitto runs as the user mosquitto (Debian's service
  # does too): its persistence and logs must be writable by that user.
  mkdir -p "$mosq_dir/brokers"
  if [ "$(id -u)" -eq 0 ] && id mosquitto >/dev/null 2>&1; then
    chmod 755 "$mosq_dir"
    chown mosquitto "$mosq_dir/brokers"
  fi
  local hq clinic
  clinic=$(mosq_port)
  mosq_broker clinic "$clinic" || return 1
  hq=$(mosq_port)
  while [ "$hq" = "$clinic" ]; do hq=$(mosq_port); done
  mosq_broker hq "$hq" "$clinic" || return 1

  # Messages shaped like a flood event in clinic-north's message_queue.
  local now
  now=$(date +%s%3N)
  awk -v n="$total" -v t="$now" 'BEGIN { for (i = 1; i <= n; i++)
    printf "{\"id\":\"hq:%d\",\"origin\":\"hq\",\"seq\":%d,\"kind\":\"normal\",\"priority\":\"bulk\",\"title\":\"flood\",\"body\":\"\",\"location\":\"\",\"sender\":\"\",\"created\":%d,\"exercise\":false,\"late\":false,\"redelivered\":false,\"targets\":[\"clinic-north\"],\"references\":[],\"data\":null}\n", i, i, t + i }' \
    > "$mosq_dir/messages" || return 1

  # The subscriber first, into a FIFO that awk reads. mosquitto_sub stamps
  # each message as it receives it (-F %U): the last data message's stamp
  # ends the timing. Warm-ups (bench/warmup) are noted apart; awk leaves at
  # the N-th data message (mosquitto_sub -C would count the warm-ups too, and
  # how many of them come through is not known beforehand).
  mkfifo "$mosq_dir/sub.fifo" || return 1
  # (stdbuf: line by line, or stdio holds the last messages in its buffer.)
  stdbuf -oL mosquitto_sub -h 127.0.0.1 -p "$clinic" -q 1 -i bench-sub -F '%U %t' -t 'bench/#' \
    > "$mosq_dir/sub.fifo" 2> "$mosq_dir/sub.err" &
  local sub=$!
  mosq_pids+=("$sub")
  # mawk (Debian's awk) reads a pipe in blocks unless told otherwise.
  local interactive=()
  awk -W version 2>/dev/null | grep -q mawk && interactive=(-W interactive)
  awk "${interactive[@]}" -v n="$total" -v warm="$mosq_dir/warm" -v got="$mosq_dir/got" '
    $2 == "bench/warmup" { print > warm; fflush(warm); next }
    $2 == "bench/data" { c++; last = $1 } c == n { exit }
    END { print c + 0, (c ? last : 0) > got }' < "$mosq_dir/sub.fifo" &
  local count=$!
  mosq_pids+=("$count")

  # The bridge is up and the subscriber subscribed once a warm-up comes through.
  local i
  for i in $(seq 1 100); do
    [ -s "$mosq_dir/warm" ] && break
    mosquitto_pub -h 127.0.0.1 -p "$hq" -q 1 -t bench/warmup -m "warm-up $i"
    sleep 0.2
  done
  if [ ! -s "$mosq_dir/warm" ]; then
    echo "mosquitto bridge: no warm-up message came through in 20 s" >&2
    tail -n 20 "$mosq_dir"/brokers/*.log "$mosq_dir"/*.err >&2
    return 1
  fi

  local start
  start=$(date +%s.%N)
  mosquitto_pub -h 127.0.0.1 -p "$hq" -q 1 -i bench-pub -t bench/data -l < "$mosq_dir/messages" &
  local pub=$!
  mosq_pids+=("$pub")
  # Until all have come, bounded: a message a broker dropped never comes, so
  # 10 s after the publisher has had its last acknowledgement, or 120 s in
  # all, what came is what there is.
  local deadline=$((SECONDS + 120)) quiet=0
  while kill -0 "$count" 2>/dev/null && [ $SECONDS -lt $deadline ] && [ $quiet -lt 100 ]; do
    kill -0 "$pub" 2>/dev/null || quiet=$((quiet + 1))
    sleep 0.1
  done
  kill "$sub" 2>/dev/null || true
  wait "$count" 2>/dev/null || true
  if kill -0 "$pub" 2>/dev/null; then
    echo "mosquitto bridge: the publisher was still running after 120 s" >&2
    return 1
  fi
  wait "$pub" || { echo "mosquitto bridge: mosquitto_pub exited with $?" >&2; return 1; }

  local got last
  read -r got last < "$mosq_dir/got"
  if [ "$got" -eq 0 ]; then
    echo "mosquitto bridge: no message of $total came through" >&2
    tail -n 20 "$mosq_dir"/brokers/*.log "$mosq_dir"/*.err >&2
    return 1
  fi
  mosq_lost=$((total - got))
  # shellcheck disable=SC2034  # read by scripts/bench-e2e
  mosq_rate=$(awk -v n="$got" -v a="$start" -v b="$last" 'BEGIN { printf "%.0f", n / (b - a) }')
  local how='QoS 1, persistence as Debian ships it'
  [ -n "${MOSQ_MAX_QUEUED:-}" ] && how="$how, but max_queued_messages $MOSQ_MAX_QUEUED"
  if [ "$mosq_lost" -eq 0 ]; then
    awk -v how="$how" -v n="$got" -v a="$start" -v b="$last" 'BEGIN { printf "mosquitto bridge (%s): %d messages in %.2f s: %.0f messages/s\n", how, n, b - a, n / (b - a) }'
  else
    # Said on stdout: a lost message is part of the figure.
    awk -v how="$how" -v n="$got" -v t="$total" -v a="$start" -v b="$last" 'BEGIN { printf "mosquitto bridge (%s): %d of %d messages in %.2f s: %.0f messages/s; %d LOST\n", how, n, t, b - a, n / (b - a), t - n }'
    local broker
    for broker in hq clinic; do
      grep -h -i 'dropped' "$mosq_dir/brokers/$broker.log" | cut -d' ' -f2- | sort -u |
        sed "s/^/  $broker broker: /" || true
    done
    grep -q -i 'dropped' "$mosq_dir"/brokers/*.log ||
      echo "  (no broker logged a drop: the rest may have been on their way 10 s after the last publish)"
    [ -z "${MOSQ_MAX_QUEUED:-}" ] &&
      echo "  (max_queued_messages is 1000 per client by default, and Debian's mosquitto.conf leaves it so)"
  fi
  mosq_cleanup  # the brokers leave the cores before whatever is measured next
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  mosq_install
  trap mosq_cleanup EXIT
  mosq_bridge "${1:-20000}"
fi
