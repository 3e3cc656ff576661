#!/usr/bin/env python3
"""Poll http://127.0.0.1:PORT/ every ~2 ms until SECONDS pass or the file
STOP exists; print the longest stretch (seconds) during which the service
did not answer, and how many polls there were."""
import socket
import sys
import time

port, seconds, stop = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
request = b"GET / HTTP/1.0\r\nHost: x\r\n\r\n"
end = time.monotonic() + seconds
down_since = None
longest = 0.0
polls = 0
import os
while time.monotonic() < end and not os.path.exists(stop):
    polls += 1
    now = time.monotonic()
    ok = False
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(request)
            ok = s.recv(64).startswith(b"HTTP/")
    except OSError:
        ok = False
    if ok:
        if down_since is not None:
            longest = max(longest, now - down_since)
            down_since = None
    elif down_since is None:
        down_since = now
    time.sleep(0.002)
if down_since is not None:
    longest = max(longest, time.monotonic() - down_since)
print(f"{longest:.4f} {polls}")
