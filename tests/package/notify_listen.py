#!/usr/bin/env python3
"""systemd's side of sd_notify(3) for tests/package/package_test.sh: binds a
unix datagram socket at PATH (what NOTIFY_SOCKET names), lets any user send
to it (relayd runs as relaymesh), and appends each datagram to LOG as one
line: the monotonic time in seconds, a tab, and the message with its
newlines written as '|'. Runs until killed."""
import os
import socket
import sys
import time

path, log = sys.argv[1], sys.argv[2]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
os.chmod(path, 0o666)
with open(log, "a", buffering=1) as out:
    while True:
        data = sock.recv(4096)
        text = data.decode("utf-8", "replace").strip("\n").replace("\n", "|")
        out.write(f"{time.monotonic():.3f}\t{text}\n")
