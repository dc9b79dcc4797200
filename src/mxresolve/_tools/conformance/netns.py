"""A private network namespace for the black-box world (root only).

The world listens on fixed ports (443, 8448) of loopback addresses. In a namespace of
its own, with only its own ``lo``, it never clashes with the host's servers or with
another world; a homeserver joins it with ``nsenter --net=/proc/PID/ns/net``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os
import socket
import struct

__all__ = ["enter_private_network"]

_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def enter_private_network() -> bool:
    """Move this process into a new network namespace with ``lo`` up; False if not root.

    Call it before starting any thread: only the calling thread changes namespace.
    """
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.unshare(_CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | _IFF_UP, b""))
    return True
