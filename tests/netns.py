"""Run the tests in a private network namespace, so that worlds need no free host loopback.

The loopback worlds bind fixed addresses (127.0.1.N:443, [::1]:443, ...). On the host
they would clash with whatever else listens there, and two test runs would have to take
turns. As root, :func:`enter_private_network` moves this process (and every server it
starts later) into a new network namespace whose only interface is its own ``lo``.
Without root it leaves things as they are and says why; the worlds then fall back to
the host's loopback and a machine-wide lock.

Call it before any thread starts: a namespace is joined by the calling thread only.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os
import socket
import struct

__all__ = ["enter_private_network", "network_namespace_id"]

ENV = "MXRESOLVE_NETNS"  # "0": stay on the host's network; set to "entered" once inside
_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def network_namespace_id() -> str:
    """An id of this process's network namespace (its inode), for per-namespace locks."""
    try:
        return str(os.stat("/proc/self/ns/net").st_ino)
    except OSError:
        return "host"


def _bring_up_loopback() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | _IFF_UP, b""))


def enter_private_network() -> str:
    """Enter a new network namespace with loopback up; return a line saying what happened."""
    if os.environ.get(ENV) == "entered":
        return "already in a private network namespace"
    if os.environ.get(ENV) == "0":
        return f"on the host's network ({ENV}=0)"
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "on the host's network (a private network namespace needs root)"
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.unshare(_CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        return f"on the host's network (unshare(CLONE_NEWNET) failed: {os.strerror(error)})"
    _bring_up_loopback()
    os.environ[ENV] = "entered"  # children (servers, peers) are inside already
    return f"in a private network namespace ({network_namespace_id()})"
