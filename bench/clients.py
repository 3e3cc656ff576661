#!/usr/bin/env python3
"""Clients of every API of the all-in-one, each on a thread of its own,
until the file STOP exists: a token validated and the images, networks,
servers and stacks listed every 50 ms, a new token every 5 s (a password
hash: Keystone's costliest request), the dashboard's login page every
50 ms. Prints one line per client:

    NAME REQUESTS FAILED TYPICAL_MS SLOWEST_MS SLOWEST_AT_S

(failed: no answer in 60 s, or a status not 2xx; typical: the median;
slowest_at: seconds since the clients began). The admin's password comes
from the environment (OS_PASSWORD), never the command line.

usage: clients.py STOP
"""
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request

HOST = "127.0.0.1"
OFTEN, RARELY = 0.05, 5.0


def call(method, port, path, token=None, headers=None, body=None):
    """(status, headers, body); status 0 when nothing answered."""
    request = urllib.request.Request(
        f"http://{HOST}:{port}{path}", method=method, data=body,
        headers={**(headers or {}), **({"X-Auth-Token": token} if token else {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, reply.headers, reply.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, b""
    except OSError:
        return 0, {}, b""


def issue_token(password):
    body = json.dumps({"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"name": "admin", "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}).encode()
    return call("POST", 5000, "/v3/auth/tokens",
                headers={"Content-Type": "application/json"}, body=body)


def main():
    stop = sys.argv[1]
    password = os.environ["OS_PASSWORD"]
    status, headers, body = issue_token(password)
    if status != 201:
        sys.exit(f"clients.py: no token from Keystone ({status})")
    token = headers["X-Subject-Token"]
    project = json.loads(body)["token"]["project"]["id"]
    clients = {
        "validate-token": (OFTEN, lambda: call(
            "GET", 5000, "/v3/auth/tokens", token, {"X-Subject-Token": token})[0]),
        "issue-token": (RARELY, lambda: issue_token(password)[0]),
        "list-images": (OFTEN, lambda: call("GET", 9292, "/v2/images", token)[0]),
        "list-networks": (OFTEN, lambda: call("GET", 9696, "/v2.0/networks", token)[0]),
        "list-servers": (OFTEN, lambda: call("GET", 8774, "/v2.1/servers", token)[0]),
        "list-stacks": (OFTEN, lambda: call("GET", 8004, f"/v1/{project}/stacks", token)[0]),
        "dashboard-login": (OFTEN, lambda: call("GET", 80, "/auth/login/")[0]),
    }
    began = time.monotonic()
    seen = {}

    def run(name, pause, request):
        waits, failed, slowest = [], 0, (0.0, 0.0)
        while not os.path.exists(stop):
            started = time.monotonic()
            status = request()
            waited = time.monotonic() - started
            waits.append(waited)
            if not 200 <= status < 300:
                failed += 1
            if waited > slowest[0]:
                slowest = (waited, started - began)
            time.sleep(pause)
        waits.sort()
        seen[name] = (len(waits), failed, waits[len(waits) // 2] if waits else 0.0, slowest)

    threads = [threading.Thread(target=run, args=(name, pause, request))
               for name, (pause, request) in clients.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, (requests, failed, typical, (slowest, at)) in seen.items():
        print(f"{name} {requests} {failed} {typical * 1000:.0f} {slowest * 1000:.0f} {at:.1f}")


if __name__ == "__main__":
    main()
