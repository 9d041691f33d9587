#!/usr/bin/python3
"""A site consumer of relaymesh's message_queue: poll plus kickstart.

Takes the rows of its types, duress first and then oldest first, handles
each (here: prints it as one JSON line) and deletes it. It looks at the
queue when relayd's kick datagram arrives on --kick, when a NOTIFY arrives
on channel message_queue, and every --poll seconds whatever happens, so a
lost kick costs one poll interval at most.

A row is deleted after it is handled: if this process dies in between, the
row is handled again on the next start (at least once); dedupe on its id.
One such consumer per type: for several integrations on one type (pop-up
and SMS both wanting every duress), use relay-runner's consumer groups.

Needs Debian's python3-psycopg2. Example:
  /usr/bin/python3 consumer.py --dsn "dbname=relaymesh" --types duress,notification \
      --kick 127.0.0.1:7495 --poll 1
"""
import argparse
import json
import select
import socket
import sys
import time

import psycopg2
import psycopg2.extensions

BATCH = 100


def handle(row):
    """The integration itself: replace with the pop-up, SMS or PA call."""
    queue_id, type_, data = row
    print(json.dumps({"queue_id": queue_id, "type": type_, "event_id": data.get("id"),
                      "title": data.get("title"), "location": data.get("location")},
                     sort_keys=True), flush=True)


def consume(conn, types):
    """Handles every row of our types that is there now; returns how many."""
    handled = 0
    while True:
        with conn:  # a short transaction: read, then let go
            with conn.cursor() as cur:
                cur.execute("SELECT id, type, data FROM message_queue WHERE type = ANY(%s) "
                            "ORDER BY priority DESC, id LIMIT %s", (types, BATCH))
                rows = cur.fetchall()
        for row in rows:
            handle(row)
            with conn:
                with conn.cursor() as cur:
                    cur.execute("DELETE FROM message_queue WHERE id = %s", (row[0],))
            handled += 1
        if len(rows) < BATCH:
            return handled


def connect(dsn):
    """A connection for the work and one that LISTENs (autocommit, no transaction held)."""
    work = psycopg2.connect(dsn)
    listen = psycopg2.connect(dsn)
    listen.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
    with listen.cursor() as cur:
        cur.execute("LISTEN message_queue")
    return work, listen


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="dbname=relaymesh")
    parser.add_argument("--types", default="duress", help="comma-separated message_queue types")
    parser.add_argument("--kick", help="host:port to receive relayd's kick datagrams on")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between polls")
    args = parser.parse_args()
    types = args.types.split(",")

    kick = None
    if args.kick:
        host, port = args.kick.rsplit(":", 1)
        kick = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        kick.bind((host, int(port)))
        kick.setblocking(False)

    backoff = 0.1
    while True:
        try:
            work, listen = connect(args.dsn)
            backoff = 0.1
            print("consumer: listening", file=sys.stderr, flush=True)
            consume(work, types)  # at start and after every reconnect: NOTIFYs were missed
            while True:
                waiting = [listen] + ([kick] if kick else [])
                ready, _, _ = select.select(waiting, [], [], args.poll)
                if kick in ready:
                    while True:  # kicks coalesce: drain them, then look once
                        try:
                            kick.recv(512)
                        except BlockingIOError:
                            break
                if listen in ready:
                    listen.poll()
                    listen.notifies.clear()
                consume(work, types)  # woken, or the poll interval passed
        except psycopg2.Error as e:
            print(f"consumer: database: {str(e).strip()}; retrying in {backoff:.1f} s",
                  file=sys.stderr, flush=True)
            time.sleep(backoff)
            backoff = min(backoff * 2, 5.0)


if __name__ == "__main__":
    main()
