#!/usr/bin/python3
"""relay-mail: a relay-runner command handler that e-mails each row.

relay-runner (docs/runner.md, "Handlers") runs it once per message_queue
row with the row's data JSON on stdin and RELAY_QUEUE_ID, RELAY_EVENT_ID,
RELAY_TYPE, RELAY_PRIORITY and RELAY_ATTEMPT in the environment. It writes
one message (a subject with the priority and the title, "*** DURESS ***"
first for a duress; a body with the location, sender, time and event id)
and hands it to the local MTA through /usr/sbin/sendmail, recipients on
its command line. Exit 0 means the MTA took the message; when sendmail
refuses it (exit status not 0), the last line on stderr says why and the
exit status is 1, so relay-runner retries it (a duress for as long as it
takes, raising an alarm). What the MTA does after it took the message
(a bounce, a remote server that is down) is the MTA's queue's business.

The Message-ID is made from the event id and its time, so a repeat of the
same row (the runner delivers at least once) is the same message to a mail
system. Headers that carry text (Subject, names) are encoded as RFC 2047 by
Python's email package, the body is UTF-8 in quoted-printable: any text the
alert carries arrives as it was written.

Needs python3 only, and an MTA (examples/email/README.md). In relay-runner's
[handler] (examples/email/runner.toml):
  command = ["/usr/bin/python3", "/usr/local/share/relaymesh/relay-mail.py",
             "--to", "Security desk <security@clinic-north.example>"]
"""
import argparse
import datetime
import email.policy
import email.utils
import json
import os
import re
import socket
import subprocess
import sys
from email.message import EmailMessage

KIND_LABEL = {"all-clear": "ALL CLEAR", "cancel": "CANCELLED", "update": "UPDATE", "test": "TEST"}
URGENT = ("duress", "emergency")


class Refused(Exception):
    """The message cannot go out now; relay-runner retries the row."""


def one_line(value):
    """Text fit for a header: no line breaks or control characters (the
    alert's fields are whatever the sending site typed)."""
    return re.sub(r"[\x00-\x1f\x7f]+", " ", str(value if value is not None else "")).strip()


def message_id(event_id, created):
    """The Message-ID of an event ("origin:seq") raised at CREATED (Unix ms):
    the same on every repeat and at every site that mails it, so that a
    mail system may drop the copies; the time keeps apart the events of two
    meshes (a test one and the real one, both with an hq) that a mailbox
    may share. None for a row that is not an event."""
    m = re.fullmatch(r"([A-Za-z0-9._-]+):([0-9]+)", event_id)
    if not m or not isinstance(created, (int, float)):
        return None
    return f"<{m.group(1)}.{m.group(2)}.{int(created)}@relaymesh>"


def when(unix_ms):
    """'2026-12-03 22:30:15 CET (21:30:15 UTC)' for a Unix time in ms, in
    the zone of this machine (TZ), which is where the reader is."""
    if not isinstance(unix_ms, (int, float)):
        return "unknown"
    t = datetime.datetime.fromtimestamp(unix_ms / 1000, datetime.timezone.utc)
    local = t.astimezone()
    if local.utcoffset() == datetime.timedelta(0):
        return f"{t:%Y-%m-%d %H:%M:%S} UTC"
    return f"{local:%Y-%m-%d %H:%M:%S %Z} ({t:%H:%M:%S} UTC)"


def field(name, value):
    """One 'Name:     value' line of the body."""
    if isinstance(value, (list, dict)):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return f"{name + ':':<12}{one_line(value)}"


def place(d):
    where = " — " + one_line(d["location"]) if d.get("location") else ""
    return f"{one_line(d.get('title')) or '(no title)'}{where} ({one_line(d.get('origin'))})"


def alert_subject(d):
    kind, priority = d.get("kind", ""), one_line(d.get("priority")).upper()
    if kind == "duress":
        head = "*** DURESS ***"
    elif kind in KIND_LABEL:
        head = f"{KIND_LABEL[kind]} [{priority}]"
    else:
        head = f"[{priority}]"
    return f"{'[EXERCISE] ' if d.get('exercise') else ''}{head} {place(d)}"


def alert_body(d, event_id):
    lines = ["*** DURESS ***", ""] if d.get("kind") == "duress" else []
    if d.get("exercise"):
        lines += ["This is an exercise.", ""]
    fields = [("Title", d.get("title")), ("Location", d.get("location")),
              ("Sender", d.get("sender")), ("Raised", when(d.get("created"))),
              ("Priority", d.get("priority")), ("Kind", d.get("kind")),
              ("Event id", event_id), ("Origin", d.get("origin")),
              ("Targets", ", ".join(map(str, d.get("targets") or [])))]
    if d.get("references"):
        fields.append(("References", ", ".join(map(str, d["references"]))))
    if d.get("expires"):
        fields.append(("Expires", when(d["expires"])))
    lines += [field(k, v) for k, v in fields if v not in (None, "")]
    if d.get("body"):
        lines += ["", str(d["body"])]
    if d.get("data") not in (None, {}):
        lines += ["", "Data: " + json.dumps(d["data"], ensure_ascii=False, sort_keys=True)]
    if d.get("late"):
        lines += ["", "Note: this arrived long after it was raised."]
    if d.get("redelivered"):
        lines += ["", "Note: this site may have delivered it before (its database was restored)."]
    return lines


def other_subject(row_type, d, priority):
    """relayd's own rows: acknowledgements, escalations, supervision alarms."""
    p = priority.upper()
    if row_type == "relay.ack":
        return (f"ACK {one_line(d.get('state')).upper()} [{p}] {one_line(d.get('by'))} "
                f"({one_line(d.get('site'))}) to {one_line(d.get('references'))}")
    if row_type == "relay.escalation":
        return f"ESCALATION {d.get('round')}/{d.get('max')} [{p}] {place(d)}"
    if row_type == "relay.supervision":
        return (f"SUPERVISION {one_line(d.get('state')).upper()} [{p}] "
                f"{one_line(d.get('peer'))}: {one_line(d.get('reason'))}")
    return f"[{p}] {row_type}"


def compose(row_type, d, args):
    event_id = str(d.get("id") or os.environ.get("RELAY_EVENT_ID", ""))
    priority = str(d.get("priority") or os.environ.get("RELAY_PRIORITY", "normal"))
    is_alert = "kind" in d and "title" in d
    msg = EmailMessage(policy=email.policy.default)
    msg["Subject"] = alert_subject(d) if is_alert else other_subject(row_type, d, priority)
    msg["From"] = args.sender
    msg["To"] = ", ".join(args.to)
    msg["Date"] = email.utils.formatdate(localtime=True)
    created = d.get("created", d.get("created_at"))
    msg["Message-ID"] = message_id(event_id, created) or email.utils.make_msgid("relaymesh")
    msg["Auto-Submitted"] = "auto-generated"  # no vacation replies (RFC 3834)
    if priority in URGENT:
        msg["Importance"] = "high"
        msg["X-Priority"] = "1"
    if event_id:
        msg["X-Relay-Event-Id"] = one_line(event_id)
    msg["X-Relay-Type"] = one_line(row_type)
    msg["X-Relay-Priority"] = one_line(priority)
    lines = alert_body(d, event_id) if is_alert else [field(k, v) for k, v in sorted(d.items())]
    lines += ["", "--", f"relay-runner row {os.environ.get('RELAY_QUEUE_ID', '?')}, "
              f"type {row_type}, attempt {os.environ.get('RELAY_ATTEMPT', '?')}, "
              f"on {socket.gethostname()}"]
    msg.set_content("\n".join(lines) + "\n", cte="quoted-printable")
    return msg, event_id


def send(msg, args, event_id):
    envelope = [a for _, a in email.utils.getaddresses(args.to) if a]
    sender = email.utils.parseaddr(args.sender)[1]
    command = [args.sendmail, "-i"] + (["-f", sender] if sender else []) + ["--"] + envelope
    try:
        done = subprocess.run(command, input=msg.as_bytes(), capture_output=True)
    except OSError as e:
        raise Refused(f"cannot run {args.sendmail}: {e.strerror}") from e
    if done.returncode != 0:
        said = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
        raise Refused(f"{args.sendmail} refused {event_id or 'the row'} for {', '.join(envelope)} "
                      f"(exit status {done.returncode}){': ' + said[-1] if said else ''}")
    return envelope


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--to", action="append", required=True,
                        help="a recipient, 'Name <addr>' or addr; repeat for more")
    parser.add_argument("--from", dest="sender",
                        default=f"relaymesh <relaymesh@{socket.gethostname()}>")
    parser.add_argument("--sendmail", default="/usr/sbin/sendmail")
    args = parser.parse_args()
    row_type = os.environ.get("RELAY_TYPE", "")
    try:
        data = json.loads(sys.stdin.buffer.read())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except ValueError as e:
        print(f"relay-mail: row {os.environ.get('RELAY_QUEUE_ID', '?')} is not a JSON object: {e}",
              file=sys.stderr)
        return 1
    msg, event_id = compose(row_type, data, args)
    try:
        envelope = send(msg, args, event_id)
    except Refused as e:
        print(f"relay-mail: {e}", file=sys.stderr)
        return 1
    print(f"relay-mail: {event_id or row_type} mailed to {', '.join(envelope)}: {msg['Subject']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
