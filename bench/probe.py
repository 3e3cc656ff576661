#!/usr/bin/env python3
"""Poll http://127.0.0.1:PORT/PATH (PATH defaults to /) every ~2 ms until
SECONDS pass or the file STOP exists; print the longest stretch (seconds)
during which the service did not answer, how many polls there were, how
many of them failed (no answer, or a 5xx), and when (Unix time) that
stretch began (the first failed poll) and ended (the answer after it; 0 0
without one)."""
import socket
import sys
import time

port, seconds, stop = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
path = sys.argv[4] if len(sys.argv) > 4 else "/"
request = b"GET %s HTTP/1.0\r\nHost: x\r\n\r\n" % path.encode()
end = time.monotonic() + seconds
down_since = None
longest = 0.0
gap = (0.0, 0.0)
# Wall-clock time of a monotonic reading, to set beside the engine's events.
wall = lambda t: t - time.monotonic() + time.time()
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
            if now - down_since > longest:
                longest, gap = now - down_since, (wall(down_since), wall(now))
            down_since = None
    else:
        failed += 1
        if down_since is None:
            down_since = now
    time.sleep(0.002)
if down_since is not None and time.monotonic() - down_since > longest:
    longest, gap = time.monotonic() - down_since, (wall(down_since), 0.0)
print(f"{longest:.4f} {polls} {failed} {gap[0]:.6f} {gap[1]:.6f}")
