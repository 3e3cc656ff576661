#!/usr/bin/env python3
"""Poll http://127.0.0.1:PORT/PATH (PATH defaults to /) every ~2 ms until
SECONDS pass or the file STOP exists; print the longest stretch (seconds)
during which the service did not answer, how many polls there were, and
how many of them failed (no answer, or a 5xx)."""
import socket
import sys
import time

port, seconds, stop = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
path = sys.argv[4] if len(sys.argv) > 4 else "/"
request = b"GET %s HTTP/1.0\r\nHost: x\r\n\r\n" % path.encode()
end = time.monotonic() + seconds
down_since = None
longest = 0.0
polls = 0
failed = 0
import os
while time.monotonic() < end and not os.path.exists(stop):
    polls += 1
    now = time.monotonic()
    ok = False
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(request)
            status = s.recv(64)
            ok = status.startswith(b"HTTP/") and status[9:10] != b"5"
    except OSError:
        ok = False
    if ok:
        if down_since is not None:
            longest = max(longest, now - down_since)
            down_since = None
    else:
        failed += 1
        if down_since is None:
            down_since = now
    time.sleep(0.002)
if down_since is not None:
    longest = max(longest, time.monotonic() - down_since)
print(f"{longest:.4f} {polls} {failed}")
