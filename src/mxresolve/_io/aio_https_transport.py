"""The asyncio HTTPS transport (the well-known fetch): the asyncio half of
:mod:`.https_transport`.

Apart so that blocking programs never import asyncio. What the two transports
share (address choice, the IP policy, TLS settings, the h11 exchange) is in
:mod:`.https_transport` and :mod:`.http1`.
"""

from __future__ import annotations

import asyncio
import ssl
import time

from .._core.events import HttpsFailure, HttpsFailureKind, HttpsGet, HttpsResponse
from .aio_net import async_connect_tcp
from .dns_transport import AsyncDnsTransport
from .https_transport import _READ_CHUNK, _allowed, _given, _H11Transport, _literal, _queries
from .net import ConnectFailed, classify_error

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
