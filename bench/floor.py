#!/usr/bin/env python3
"""The Engine API floor the benches hold kolla against: the same calls kolla
makes, sent straight to the engine's socket over persistent connections
(opened, and answered once, before the clock starts), so no process start
and no connection setup sits inside what is measured.

    floor.py swap NAME
        Swap NAME for the created-but-not-started NAME-new, over one
        connection: restart policy off, stop, rename NAME to NAME-old,
        NAME-new to NAME, start. The probe times the dark window; this
        prints how long the calls took, in seconds.

    floor.py deploy IMAGE PREFIX SERVICES CONNECTIONS
        Create PREFIX-data (a /data volume, never started), then create and
        start PREFIX-svc01.. (host network, init, volumes from the data
        container), SERVICES of them, spread over CONNECTIONS connections
        (one thread each; 1 = every call in turn over one connection).
        Everything is labelled kolla.project=PREFIX. Prints the seconds from
        the first create to the last start.

Any call the engine refuses stops the program with its answer (exit 1).
"""
import http.client
import json
import socket
import sys
import threading
import time

SOCKET = "/var/run/docker.sock"
API = "/v1.41"


class Refused(Exception):
    """The engine answered a call with an error status."""


class Engine(http.client.HTTPConnection):
    """One persistent HTTP/1.1 connection to the engine's unix socket."""

    def __init__(self):
        super().__init__("engine")

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(SOCKET)

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {} if data is None else {"Content-Type": "application/json"}
        self.request(method, API + path, body=data, headers=headers)
        response = self.getresponse()
        answer = response.read()
        if response.status >= 300 and response.status != 304:
            raise Refused(f"{method} {path}: {response.status} {answer.decode(errors='replace').strip()}")
        return answer


def ready():
    """A connection that has already answered once."""
    engine = Engine()
    engine.call("GET", "/_ping")
    return engine


def swap(name):
    engine = ready()
    started = time.monotonic()
    engine.call("POST", f"/containers/{name}/update", {"RestartPolicy": {"Name": "no"}})
    engine.call("POST", f"/containers/{name}/stop?t=10")
    engine.call("POST", f"/containers/{name}/rename?name={name}-old")
    engine.call("POST", f"/containers/{name}-new/rename?name={name}")
    engine.call("POST", f"/containers/{name}/start")
    return time.monotonic() - started


def deploy(image, prefix, services, connections):
    labels = {"kolla.project": prefix}
    data = {"Image": image, "Cmd": ["true"], "Labels": labels, "Volumes": {"/data": {}}}
    service = {
        "Image": image,
        "Cmd": ["sleep", "3600"],
        "Labels": labels,
        "HostConfig": {"NetworkMode": "host", "Init": True, "VolumesFrom": [f"{prefix}-data"]},
    }
    names = [f"{prefix}-svc{i:02d}" for i in range(1, services + 1)]
    engines = [ready() for _ in range(connections)]
    # Each connection takes every CONNECTIONS-th service, in turn.
    shares = [names[i::connections] for i in range(connections)]

    refused = []

    def run(engine, share):
        try:
            for name in share:
                engine.call("POST", f"/containers/create?name={name}", service)
                engine.call("POST", f"/containers/{name}/start")
        except Refused as error:
            refused.append(error)

    started = time.monotonic()
    engines[0].call("POST", f"/containers/create?name={prefix}-data", data)
    if connections == 1:
        run(engines[0], shares[0])
    else:
        threads = [threading.Thread(target=run, args=pair) for pair in zip(engines, shares)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if refused:
        raise refused[0]
    return time.monotonic() - started


def main(argv):
    try:
        if len(argv) == 2 and argv[0] == "swap":
            took = swap(argv[1])
        elif len(argv) == 5 and argv[0] == "deploy":
            took = deploy(argv[1], argv[2], int(argv[3]), int(argv[4]))
        else:
            sys.exit(__doc__)
    except Refused as error:
        sys.exit(f"floor.py: {error}")
    print(f"{took:.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
