#!/usr/bin/env python3
"""Listen on N loopback ports (127.0.0.1, ports the kernel picks), accept
every connection and never answer: N hung engines in one process. Writes
the ports, one a line, to PORTS_FILE once every port listens; ends by
itself after SECONDS (or when killed)."""
import os
import selectors
import socket
import sys
import time

count, ports_file, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
selector = selectors.DefaultSelector()
ports = []
for _ in range(count):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ)
    ports.append(listener.getsockname()[1])
with open(ports_file + ".tmp", "w") as f:
    f.write("\n".join(map(str, ports)) + "\n")
os.rename(ports_file + ".tmp", ports_file)

held = []  # accepted and kept open, never read: silence, not a reset
end = time.monotonic() + seconds
while time.monotonic() < end:
    for key, _ in selector.select(timeout=1.0):
        try:
            conn, _ = key.fileobj.accept()
            held.append(conn)
        except BlockingIOError:
            pass
