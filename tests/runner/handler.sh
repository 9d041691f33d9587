#!/usr/bin/env bash
# A handler command for the runner tests: appends one line per run to $OUT
# ("start ID TYPE PRIORITY ATTEMPT EVENT_ID", then "done ID" on success) and
# follows the knobs in the environment: HANDLER_SLEEP seconds to take,
# HANDLER_FAIL=1 to exit 1 (unless $HANDLER_FIX exists: a repaired gateway),
# HANDLER_ORPHAN=SECONDS to leave a background child that long, detached from
# stdin, stdout and stderr but holding whatever else it inherited, and
# HANDLER_BACKGROUND=FILE to start a child in its group that writes FILE 2 s later.
# The row's JSON on stdin is checked for the same event id.
set -u
data=$(cat)
printf 'start %s %s %s %s %s %s\n' "$RELAY_QUEUE_ID" "$RELAY_TYPE" "$RELAY_PRIORITY" \
  "$RELAY_ATTEMPT" "${RELAY_EVENT_ID:--}" "$EPOCHREALTIME" >> "$OUT"
if [ -n "$RELAY_EVENT_ID" ] && ! grep -q "\"id\": *\"$RELAY_EVENT_ID\"" <<< "$data"; then
  echo "stdin does not carry event $RELAY_EVENT_ID: $data" >&2
  exit 3
fi
[ -n "${HANDLER_BACKGROUND:-}" ] && (sleep 2; echo late >> "$HANDLER_BACKGROUND") &
[ -n "${HANDLER_SLEEP:-}" ] && sleep "$HANDLER_SLEEP"
[ -n "${HANDLER_ORPHAN:-}" ] && (sleep "$HANDLER_ORPHAN" </dev/null >/dev/null 2>&1 &)
if [ "${HANDLER_FAIL:-0}" = 1 ] && [ ! -e "${HANDLER_FIX:-/nonexistent}" ]; then
  echo "gateway unreachable (test)" >&2
  exit 1
fi
printf 'done %s\n' "$RELAY_QUEUE_ID" >> "$OUT"
