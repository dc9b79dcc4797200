"""Sockets and TLS: connection racing (Happy Eyeballs) and the TLS context.

Shared by the HTTPS transports (the well-known fetch) and ``connect()`` (the
federation connection itself). Exceptions from ``socket`` and ``ssl`` are
mapped here, once, onto :class:`~mxresolve.HttpsFailureKind`. The asyncio form
of the racing is in :mod:`.aio_net`, so that blocking programs never import asyncio.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._core.events import HttpsFailureKind

# ssl costs ~15 ms to import, socket and selectors a few: a blocking resolve that connects
# nowhere (an IP literal) never needs them, so they load with the first TLS context or socket.
if TYPE_CHECKING:
    import socket
    import ssl

__all__ = [
    "ConnectFailed",
    "classify_error",
    "connect_tcp",
    "default_ssl_context",
    "interleave",
    "make_ssl_context",
    "own_ssl_context",
    "tcp_socket",
]

ATTEMPT_DELAY = 0.25  # RFC 8305 §5: "Connection Attempt Delay", recommended 250 ms


class ConnectFailed(Exception):
    """Internal: why no connection could be made, as one of our failure kinds."""

    def __init__(self, kind: HttpsFailureKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


_default_context: ssl.SSLContext | None = None
_default_context_lock = threading.Lock()


def default_ssl_context() -> ssl.SSLContext:
    """The process's one verifying context over certifi's CAs, built on first use.

    Loading certifi's bundle costs tens of milliseconds, so every resolver and transport
    that was given neither ``ssl_context`` nor ``cafile`` shares this one (an
    ``SSLContext`` may wrap sockets from any thread). It must not be modified: a caller
    who wants other settings passes a context of their own.
    """
    global _default_context
    context = _default_context
    if context is None:
        with _default_context_lock:
            if _default_context is None:
                _default_context = make_ssl_context()
            context = _default_context
    return context


def own_ssl_context(
    cafile: str | None = None, ssl_context: ssl.SSLContext | None = None
) -> ssl.SSLContext | None:
    """The context a caller asked for, or None when they asked for none: then the holder
    uses :func:`default_ssl_context` when it first connects, and no CA bundle is loaded
    again for it."""
    if cafile is None and ssl_context is None:
        return None
    return make_ssl_context(cafile, ssl_context)


def make_ssl_context(
    cafile: str | None = None, ssl_context: ssl.SSLContext | None = None
) -> ssl.SSLContext:
    """A verifying client context: ``ssl_context`` itself, else a new one trusting certifi's
    CA bundle (or ``cafile``'s CAs instead)."""
    if ssl_context is not None:
        return ssl_context
    import ssl

    import certifi  # here: it pulls in importlib.resources, which nothing else needs

    try:
        context = ssl.create_default_context(cafile=cafile or certifi.where())
    except (OSError, ssl.SSLError) as exc:
        from .._core.errors import InvalidSettings

        raise InvalidSettings(f"cafile {cafile!r} cannot be loaded: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    return context


def interleave(addresses: Sequence[str]) -> list[str]:
    """IPv6 and IPv4 alternately, IPv6 first (RFC 8305 §4)."""
    v6 = [a for a in addresses if ":" in a]
    v4 = [a for a in addresses if ":" not in a]
    out: list[str] = []
    for i in range(max(len(v6), len(v4))):
        out.extend(family[i] for family in (v6, v4) if i < len(family))
    return out


def classify_error(exc: BaseException, *, connecting: bool) -> HttpsFailureKind:
    import ssl

    if isinstance(exc, ssl.SSLCertVerificationError):
        return HttpsFailureKind.CERTIFICATE_INVALID
    if isinstance(exc, ssl.SSLError):
        return HttpsFailureKind.TLS_HANDSHAKE_FAILED
    if isinstance(exc, TimeoutError):  # socket.timeout too: an alias since Python 3.10
        return HttpsFailureKind.CONNECT_TIMEOUT if connecting else HttpsFailureKind.READ_TIMEOUT
    if isinstance(exc, ConnectionRefusedError):
        return HttpsFailureKind.CONNECTION_REFUSED
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return HttpsFailureKind.CONNECTION_RESET
    if connecting:
        return HttpsFailureKind.CONNECTION_REFUSED
    return HttpsFailureKind.CONNECTION_RESET


def _family(address: str) -> socket.AddressFamily:
    import socket  # here: see the imports above

    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def tcp_socket(address: str) -> socket.socket:
    """A non-blocking TCP socket for ``address`` with Nagle's algorithm off.

    Nagle must be off: a Go ``crypto/tls`` server (Caddy, Traefik) sends its session
    tickets before it reads our Finished, so it has nothing to send back when the
    Finished arrives and delays its ACK (40 ms on Linux). With Nagle on, the request
    written right after the Finished waits for that ACK.
    """
    import socket  # here: see the imports above

    sock = socket.socket(_family(address), socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _summary(errors: list[tuple[str, BaseException]]) -> ConnectFailed:
    if not errors:
        return ConnectFailed(HttpsFailureKind.CONNECT_TIMEOUT, "no connection in time")
    kinds = {classify_error(e, connecting=True) for _, e in errors}
    kind = kinds.pop() if len(kinds) == 1 else HttpsFailureKind.CONNECTION_REFUSED
    text = "; ".join(f"{a}: {e}" for a, e in errors[:4])
    return ConnectFailed(kind, text)


def connect_tcp(addresses: Sequence[str], port: int, deadline: float) -> socket.socket:
    """Race connections to ``addresses`` (staggered), return the first that connects.

    ``deadline`` is on ``time.monotonic()``. Raises :class:`ConnectFailed`.
    """
    import selectors  # here: see the imports above
    import socket

    ordered = interleave(addresses)
    selector = selectors.DefaultSelector()
    errors: list[tuple[str, BaseException]] = []
    started = 0
    next_start = time.monotonic()
    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise ConnectFailed(
                    HttpsFailureKind.CONNECT_TIMEOUT, f"no connection to port {port} in time"
                )
            if started < len(ordered) and (now >= next_start or not selector.get_map()):
                address = ordered[started]
                started += 1
                next_start = now + ATTEMPT_DELAY
                sock = tcp_socket(address)
                code = sock.connect_ex((address, port))
                if code in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
                    selector.register(sock, selectors.EVENT_WRITE, address)
                else:
                    sock.close()
                    errors.append((address, OSError(code, errno.errorcode.get(code, "error"))))
                continue
            if not selector.get_map():
                raise _summary(errors)
            wake = deadline if started >= len(ordered) else min(deadline, next_start)
            for key, _ in selector.select(max(wake - now, 0)):
                ready = key.fileobj
                assert isinstance(ready, socket.socket)
                selector.unregister(ready)
                code = ready.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code == 0:
                    ready.setblocking(True)
                    return ready
                ready.close()
                errors.append((key.data, ConnectionRefusedError(code, "connection refused")))
    finally:
        for key in list(selector.get_map().values()):
            with contextlib.suppress(OSError):
                key.fileobj.close()  # type: ignore[union-attr]
        selector.close()
