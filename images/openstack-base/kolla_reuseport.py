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
import stat
import sys

SOL_SOCKET = 1
SO_TYPE = 3
SO_REUSEPORT = 15
SO_ACCEPTCONN = 30
SO_DOMAIN = 39
SO_ATTACH_REUSEPORT_CBPF = 51
SHUT_RDWR = 2
BPF_RET_K = 0x06  # BPF_RET | BPF_K: return the constant k
OLDEST = 0

# Plain libc calls on the descriptors, never a Python socket object: under
# eventlet's monkey patching a socket object made over a descriptor turns
# it non-blocking, which another user of it (a privsep channel, a native
# thread) would not expect.
LIBC = ctypes.CDLL(None, use_errno=True)


class SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(SockFilter))]


def _option(fd, name):
    """An integer socket option of fd, or None where there is none."""
    value = ctypes.c_int(0)
    size = ctypes.c_uint32(ctypes.sizeof(value))
    if LIBC.getsockopt(fd, SOL_SOCKET, name, ctypes.byref(value), ctypes.byref(size)) != 0:
        return None
    return value.value


def _shared_listener(fd):
    """Whether fd is a TCP socket listening with SO_REUSEPORT."""
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            return False
    except OSError:
        return False
    return (
        _option(fd, SO_DOMAIN) in (socket.AF_INET, socket.AF_INET6)
        and _option(fd, SO_TYPE) == socket.SOCK_STREAM
        and _option(fd, SO_ACCEPTCONN) == 1
        and _option(fd, SO_REUSEPORT) == 1
    )


def _shared_listeners():
    """The descriptors of this process's shared TCP listeners."""
    return [int(name) for name in os.listdir("/proc/self/fd") if _shared_listener(int(name))]


def _say(fd, what):
    print(f"kolla_reuseport: pid {os.getpid()} fd {fd}: {what}", file=sys.stderr)


def unlisten_all():
    """Shut every shared TCP listener of this process down: it leaves its
    port's group, for every process holding it."""
    for fd in _shared_listeners():
        if LIBC.shutdown(fd, SHUT_RDWR) != 0:
            _say(fd, f"not shut down: {os.strerror(ctypes.get_errno())}")
        else:
            _say(fd, "shut down, its queue moves on")


def steer_all():
    """Attach the program to every shared TCP listener of this process."""
    program = (SockFilter * 1)(SockFilter(BPF_RET_K, 0, 0, OLDEST))
    fprog = SockFprog(1, program)
    for fd in _shared_listeners():
        done = LIBC.setsockopt(
            fd,
            SOL_SOCKET,
            SO_ATTACH_REUSEPORT_CBPF,
            ctypes.byref(fprog),
            ctypes.sizeof(fprog),
        )
        if done != 0:
            _say(fd, f"not steered: {os.strerror(ctypes.get_errno())}")
        else:
            _say(fd, "new connections go to the oldest listener")


try:
    import uwsgi  # noqa: F401 (there only under uWSGI)
except ImportError:
    pass
else:
    steer_all()
