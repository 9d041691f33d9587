#!/usr/bin/env bash
# The e-mail example (examples/email) with a real MTA, Debian's dma, which
# runs no daemon: /usr/sbin/sendmail spools the message and delivers it to
# /var/mail/USER. Each scenario creates a system user of its own as the
# mailbox and removes it, and its mailbox, on exit (needs root, as the
# tests run).
#   email_test.sh delivered|refused
# delivered: a duress raised at clinic-north reaches hq through relayd, hq's
#   relay-runner (examples/email/runner.toml) mails it, and the message read
#   back from the mailbox has the subject and the event id, its non-ASCII
#   text encoded in the headers and decoded as it was typed.
# refused: the recipient does not exist yet; the MTA refuses each attempt,
#   relay-runner retries the duress and alarms with the MTA's reason, and
#   once the user exists the next attempt is delivered, once.
set -euo pipefail
scenario=${1:?usage: email_test.sh delivered|refused}
repo=$(cd "$(dirname "$0")/../.." && pwd)
source "$repo/scripts/lib/mesh.sh"
source "$repo/scripts/lib/runner.sh"
source "$repo/tests/integration/test_lib.sh"

sendmail=/usr/sbin/sendmail
mail_user=relaymail-$$
mailbox=/var/mail/$mail_user
# A location in three scripts, as a clinic may type it.
location="Station Süd, Zimmer 12 / Психиатрия"

mail_cleanup() {
  # dma delivers in a process of its own after sendmail returned: a message
  # still queued for the user would be tried again for days.
  local q
  for _ in $(seq 1 50); do
    q=$(grep -lx "Recipient: $mail_user" /var/spool/dma/Q* 2>/dev/null || true)
    [ -z "$q" ] && break
    sleep 0.1
  done
  for f in $q; do
    echo "email: removing $f and its message, never delivered" >&2
    rm -f "$f" "/var/spool/dma/M${f##*/Q}"
  done
  userdel "$mail_user" 2>/dev/null || true
  rm -f "$mailbox"
}
trap 'mail_state; runner_cleanup; mesh_cleanup; mail_cleanup' EXIT

# mail_fail MESSAGE: fail, and on the way out show the mail side too (after
# the FAIL line and the relayd logs that test_lib's fail prints).
mail_failed=0
mail_fail() {
  mail_failed=1
  fail "$@"
}
mail_state() {
  [ "$mail_failed" = 1 ] || return 0
  {
    echo "--- relay-runner log (last lines)"
    tail -n 15 "$mesh_dir/runner-mail.log" || true
    echo "--- $mailbox"
    head -c 3000 "$mailbox" 2>/dev/null || echo "(none)"
    echo "--- dma's queue"
    "$sendmail" -bp 2>&1 | head -n 20 || true
  } >&2
}

# The runner of examples/email/runner.toml at hq, with the test's database,
# ports, handler path and recipient ("Name <user>", a name to encode).
email_runner() {
  runner_config mail email '["duress"]' ""
  sed -e "s|^dsn = .*|dsn = \"host=$mesh_pg user=postgres dbname=hq\"|" \
      -e "s|^listen = \"127.0.0.1:7497\"|listen = \"127.0.0.1:${runner_kick[mail]}\"|" \
      -e "s|^listen = \"127.0.0.1:7498\"|listen = \"127.0.0.1:${runner_status[mail]}\"|" \
      -e "s|/usr/local/share/relaymesh/relay-mail.py|$repo/examples/email/relay-mail.py|" \
      -e "s|Security desk <security@clinic-north.example>|Sicherheitsdienst Süd <$mail_user>|" \
      -e "s|^initial = .*|initial = \"200ms\"|" -e "s|^max = .*|max = \"500ms\"|" \
      "$repo/examples/email/runner.toml" > "$mesh_dir/runner-mail.toml"
  runner_kicked_by hq mail
}

# mail_of ID: the message for event ID in the mailbox: its Subject decoded
# and as it is on the wire, X-Relay-Event-Id, To decoded and on the wire, and
# the body, one a line, newlines as \n; nothing (exit 1) while there is none. More than one
# is an error: the runner handed it over once.
mail_of() {
  python3 - "$mailbox" "$1" <<'EOF'
import email.policy, mailbox, sys
box = mailbox.mbox(sys.argv[1], factory=None, create=False)
found = [m for m in box if m["X-Relay-Event-Id"] == sys.argv[2]]
if not found:
    sys.exit(1)
if len(found) > 1:
    print(f"{len(found)} messages for {sys.argv[2]}, expected one", file=sys.stderr)
    sys.exit(2)
raw = found[0].as_bytes()
msg = email.message_from_bytes(raw, policy=email.policy.default)
subject = email.message_from_bytes(raw, policy=email.policy.compat32)["Subject"]
print(msg["Subject"])
print(subject.replace("\n", "\\n"))
print(msg["X-Relay-Event-Id"])
print(msg["To"])
print(email.message_from_bytes(raw, policy=email.policy.compat32)["To"].replace("\n", "\\n"))
print(msg.get_content().replace("\n", "\\n"))
EOF
}

# wait_mail ID SECONDS: until the message for ID is in the mailbox, once.
wait_mail() {
  local id=$1 limit=$2 end=$((SECONDS + $2)) status
  while :; do
    status=1
    if [ -e "$mailbox" ]; then
      status=0
      mail_of "$id" >/dev/null 2>&1 || status=$?
    fi
    case $status in
      0) return 0 ;;
      1) [ "$SECONDS" -lt "$end" ] ||
           mail_fail "no message for $id in $mailbox within ${limit}s; the runner's last error: $(runner_api mail | jq -r .last_error)" ;;
      *) mail_fail "$mailbox: $(mail_of "$id" 2>&1 >/dev/null)" ;;
    esac
    sleep 0.1
  done
}

add_user() {
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$mail_user" ||
    fail "cannot create the mailbox's user $mail_user"
}

# duress: raised at clinic-north by relayctl, to clinic-north and hq; its id.
duress() {
  ctl clinic-north duress --location "$location" --by "Pflege 3" --body "Panic button pressed" \
    --wait=30s 2>/dev/null || mail_fail "the duress was not confirmed by its targets"
}

[ -x "$sendmail" ] || fail "no MTA: $sendmail is missing (scripts/setup installs Debian's dma)"
mesh_init hq clinic-north
email_runner
mesh_start hq
mesh_start clinic-north
mesh_ready hq clinic-north

case "$scenario" in
  delivered)
    add_user
    runner_start mail
    id=$(duress)
    start=$SECONDS
    wait_mail "$id" 20
    mapfile -t got < <(mail_of "$id")
    expected="*** DURESS *** Duress — $location (clinic-north)"
    [ "${got[0]}" = "$expected" ] || mail_fail "the subject reads '${got[0]}', expected '$expected'"
    # On the wire the header is ASCII: RFC 2047 words carry the rest.
    LC_ALL=C grep -q '^[ -~]*$' <<<"${got[1]}" && grep -q '=?utf-8?' <<<"${got[1]}" ||
      mail_fail "the Subject header is not encoded for mail: ${got[1]}"
    [ "${got[2]}" = "$id" ] || mail_fail "X-Relay-Event-Id is '${got[2]}', expected $id"
    [ "${got[3]}" = "Sicherheitsdienst Süd <$mail_user>" ] && LC_ALL=C grep -q '^[ -~]*$' <<<"${got[4]}" ||
      mail_fail "To reads '${got[3]}', on the wire '${got[4]}'"
    for line in "Event id:   $id" "Location:   $location" "Sender:     Pflege 3" "Panic button pressed" "Raised:     "; do
      grep -qF -- "$line" <<<"${got[5]}" || mail_fail "the body has no '$line': ${got[5]}"
    done
    wait_for hq "SELECT count(*) FROM message_queue" 0 10
    wait_mail "$id" 0
    [ "$(runner_api mail | jq .handled)" = 1 ] || mail_fail "the runner handled $(runner_api mail | jq .handled) rows, expected 1"
    echo "delivered: duress $id in $mailbox $((SECONDS - start)) s after it was confirmed: ${got[0]}"
    ;;

  refused)
    runner_start mail
    id=$(duress)
    refused() {
      local api
      api=$(runner_api mail) && jq -e '.alarms | length == 1' <<<"$api" >/dev/null &&
        grep -q "invalid recipient" <<<"$(jq -r .last_error <<<"$api")"
    }
    eventually refused ||
      mail_fail "no duress alarm saying the MTA refused the recipient: $(runner_api mail | jq -c '{failed, last_error, alarms}')"
    reason=$(runner_api mail | jq -r .last_error)
    grep -q "relay-mail: /usr/sbin/sendmail refused $id for $mail_user (exit status 65)" <<<"$reason" ||
      mail_fail "the runner's error does not say which MTA refused what: $reason"
    [ ! -e "$mailbox" ] || mail_fail "$mailbox exists for a user that does not"
    tries=$(runner_api mail | jq .failed)
    add_user
    start=$SECONDS
    wait_mail "$id" 20
    no_alarm() { [ "$(runner_api mail | jq '.alarms | length')" = 0 ]; }
    eventually no_alarm || mail_fail "the duress alarm did not clear"
    wait_for hq "SELECT count(*) FROM message_queue" 0 10
    wait_mail "$id" 0
    echo "refused: $tries attempts refused ($reason); delivered $((SECONDS - start)) s after the user existed"
    ;;

  *)
    echo "unknown scenario $scenario" >&2
    exit 2
    ;;
esac
echo "PASS $scenario"
