"""Send a shared port's new connections to its oldest listener.

During a start-first swap two generations of an API listen on one port
with SO_REUSEPORT, and the kernel spreads new connections over both by a
hash. A server binds its port before it can answer: uWSGI binds before it
loads the application (Keystone, Placement: seconds of imports), Neutron's
server before its worker has started. A connection hashed to the new
generation in that time waits for it: a client saw single requests take
5.7 s (Keystone) and 6.4 s (neutron-server) with no request failing.

This attaches a one-instruction classic BPF program to the port's
SO_REUSEPORT group (SO_ATTACH_REUSEPORT_CBPF): "socket 0", the group's
first member, which is the oldest listener (the kernel appends members
and, when one leaves, moves the last into its place). The old generation
takes every new connection until it closes its listener; then the new one
is the only member and takes them all, and the connections queued on the
old one move to it (net.ipv4.tcp_migrate_req). The program belongs to the
group: every generation attaches it, so it is there whichever one started
the group.

Servers call `steer_all()` once they listen: kolla's eventlet patch does
at the start of eventlet.wsgi.server(); under uWSGI, importing this module
(`import = kolla_reuseport` in uwsgi.ini, run in the master after it bound
its sockets) does.

The other half is the stop: the old generation's listener must leave the
group as soon as it stops accepting, or the connections steered to it wait
until its last process exits. `unlisten_all()` shuts a process's shared
listeners down (the kernel then moves their queued connections to the
other generation); kolla's patch of oslo.service calls it first thing when
its process launcher stops. uWSGI does the same itself with
`shutdown-sockets`.
"""

import ctypes
import os
import socket
import sys

SO_ATTACH_REUSEPORT_CBPF = 51
BPF_RET_K = 0x06  # BPF_RET | BPF_K: return the constant k
OLDEST = 0


class SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(SockFilter))]


def _shared_listener(fd):
    """The address of fd when it is a TCP socket listening with
    SO_REUSEPORT, else None."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return None
    try:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return None
        if sock.type != socket.SOCK_STREAM:
            return None
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            return None
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT):
            return None
        return sock.getsockname()
    except OSError:
        return None
    finally:
        # The descriptor stays the server's.
        sock.detach()


def _shared_listeners():
    """(fd, address) of each shared TCP listener of this process."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        address = _shared_listener(fd)
        if address is not None:
            yield fd, address


def unlisten_all():
    """Shut every shared TCP listener of this process down: it leaves its
    port's group, for every process holding it."""
    for fd, address in list(_shared_listeners()):
        try:
            _shutdown(fd)
        except OSError as error:
            print(f"kolla_reuseport: {address}: not shut down: {error}", file=sys.stderr)
        else:
            print(f"kolla_reuseport: {address}: shut down, its queue moves on", file=sys.stderr)


def _shutdown(fd):
    sock = socket.socket(fileno=fd)
    try:
        sock.shutdown(socket.SHUT_RDWR)
    finally:
        sock.detach()


def steer_all():
    """Attach the program to every shared TCP listener of this process."""
    libc = ctypes.CDLL(None, use_errno=True)
    program = (SockFilter * 1)(SockFilter(BPF_RET_K, 0, 0, OLDEST))
    fprog = SockFprog(1, program)
    for fd, address in list(_shared_listeners()):
        done = libc.setsockopt(
            fd,
            socket.SOL_SOCKET,
            SO_ATTACH_REUSEPORT_CBPF,
            ctypes.byref(fprog),
            ctypes.sizeof(fprog),
        )
        if done != 0:
            error = os.strerror(ctypes.get_errno())
            print(f"kolla_reuseport: {address}: not steered: {error}", file=sys.stderr)
        else:
            print(f"kolla_reuseport: {address}: new connections go to the oldest listener",
                  file=sys.stderr)


try:
    import uwsgi  # noqa: F401 (there only under uWSGI)
except ImportError:
    pass
else:
    steer_all()
