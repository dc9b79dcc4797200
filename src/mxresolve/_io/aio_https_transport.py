"""The asyncio HTTPS transport (the well-known fetch): the asyncio half of
:mod:`.https_transport`.

Apart so that blocking programs never import asyncio. What the two transports
share (address choice, the IP policy, TLS settings, the h11 exchange) is in
:mod:`.https_transport` and :mod:`.http1`.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .._core.events import HttpsFailure, HttpsFailureKind, HttpsGet, HttpsResponse
from .aio_net import async_connect_tcp, settle
from .dns_transport import AsyncDnsTransport
from .https_transport import _READ_CHUNK, _allowed, _given, _H11Transport, _literal, _queries
from .net import ConnectFailed, classify_error

if TYPE_CHECKING:
    from .http1 import Http1Exchange

__all__ = ["AsyncH11HttpsTransport"]


class AsyncH11HttpsTransport(_H11Transport[AsyncDnsTransport]):
    """The asyncio form of :class:`H11HttpsTransport`."""

    async def fetch(self, request: HttpsGet, timeout: float) -> HttpsResponse | HttpsFailure:
        deadline = time.monotonic() + timeout
        try:
            return await asyncio.wait_for(self._fetch(request, deadline), timeout)
        except asyncio.TimeoutError:
            return HttpsFailure(kind=HttpsFailureKind.READ_TIMEOUT, message="no response in time")

    async def _fetch(self, request: HttpsGet, deadline: float) -> HttpsResponse | HttpsFailure:
        addresses = _given(request) or _literal(request.host, self._policy)
        if addresses is None:
            remaining = max(deadline - time.monotonic(), 0.001)
            results = await asyncio.gather(
                *(self._dns.query(q, remaining) for q in _queries(request.host))
            )
            addresses = _allowed(request.host, list(results), self._policy)
        if isinstance(addresses, HttpsFailure):
            return addresses
        try:
            raw = await async_connect_tcp(addresses, request.port, deadline)
        except ConnectFailed as exc:
            return HttpsFailure(kind=exc.kind, message=exc.message)
        exchange = self._exchange(request)
        if not _watchable(asyncio.get_running_loop()):
            return await self._exchange_over_streams(raw, request, exchange, deadline)
        connecting = True
        try:
            # TLS on the bare non-blocking socket, woken by the loop's reader and writer
            # callbacks: one request and one response need none of asyncio's transport,
            # protocol and stream layers. The blocking transport does the same, blocking.
            tls = self._ssl.wrap_socket(
                raw, server_hostname=request.host, do_handshake_on_connect=False
            )
        except (OSError, ValueError) as exc:
            raw.close()
            return HttpsFailure(kind=classify_error(exc, connecting=True), message=str(exc)[:300])
        with tls:
            try:
                await _tls_call(tls, tls.do_handshake)
                connecting = False
                data = memoryview(exchange.request_bytes())
                while data:
                    data = data[await _tls_call(tls, tls.send, data) :]
                while True:
                    outcome = exchange.receive(await _tls_call(tls, tls.recv, _READ_CHUNK))
                    if outcome is not None:
                        return outcome
            except OSError as exc:  # ssl.SSLError is an OSError too
                return HttpsFailure(
                    kind=classify_error(exc, connecting=connecting), message=str(exc)[:300]
                )

    async def _exchange_over_streams(
        self, raw: socket.socket, request: HttpsGet, exchange: Http1Exchange, deadline: float
    ) -> HttpsResponse | HttpsFailure:
        """The same exchange through asyncio's streams, for loops that cannot watch a file
        descriptor (Windows' proactor loop)."""
        connecting = True
        writer: asyncio.StreamWriter | None = None
        try:
            reader, writer = await asyncio.open_connection(
                sock=raw,
                ssl=self._ssl,
                server_hostname=request.host,
                ssl_handshake_timeout=max(deadline - time.monotonic(), 0.001),
            )
            connecting = False
            writer.write(exchange.request_bytes())
            await writer.drain()
            while True:
                outcome = exchange.receive(await reader.read(_READ_CHUNK))
                if outcome is not None:
                    return outcome
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            return HttpsFailure(
                kind=classify_error(exc, connecting=connecting), message=str(exc)[:300]
            )
        finally:
            if writer is not None:
                writer.close()
                # A peer that never answers the TLS close must not hold us up, nor keep
                # the socket open until the garbage collector finds it.
                try:
                    await asyncio.wait_for(writer.wait_closed(), 1.0)
                except Exception:
                    writer.transport.abort()
            else:
                raw.close()


def _watchable(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop`` has add_reader/add_writer (selector loops and uvloop do)."""
    return not isinstance(loop, getattr(asyncio, "ProactorEventLoop", ()))


_T = TypeVar("_T")


async def _tls_call(tls: ssl.SSLSocket, call: Callable[..., _T], *args: Any) -> _T:
    """``call(*args)`` on the non-blocking ``tls``, waiting while OpenSSL wants to read or
    write. A TLS read may need a write (and the other way round), hence both."""
    while True:
        try:
            return call(*args)
        except ssl.SSLWantReadError:
            await _ready(tls, write=False)
        except ssl.SSLWantWriteError:
            await _ready(tls, write=True)


async def _ready(sock: ssl.SSLSocket, *, write: bool) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    fd = sock.fileno()
    if write:
        loop.add_writer(fd, settle, ready, None)
    else:
        loop.add_reader(fd, settle, ready, None)
    try:
        await ready  # fetch()'s wait_for bounds it, and cancels it on time-out
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)
