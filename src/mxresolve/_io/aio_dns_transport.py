"""The asyncio DNS transport: the asyncio half of :mod:`.dns_transport`.

Apart so that blocking programs never import asyncio. The fast path's wire
format, the dnspython configuration and the mapping of its exceptions are
:mod:`.dns_transport`'s.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._core.events import DnsQuery, DnsResult
from .aio_net import settle
from .dns_transport import _HANDLED, _Dnspython, _failure, _Fast, _result, _udp_socket
from .dns_wire import Question, decode_response, encode_query, is_reply_to

if TYPE_CHECKING:
    import dns.asyncresolver

__all__ = ["AsyncDnspythonTransport"]


def _async_resolver(configure: bool) -> dns.asyncresolver.Resolver:
    import dns.asyncresolver

    return dns.asyncresolver.Resolver(configure=configure)


class AsyncDnspythonTransport(_Dnspython["dns.asyncresolver.Resolver"]):
    """The asyncio form of :class:`DnspythonTransport`, with the same fast path."""

    def __init__(self, nameservers: Sequence[str] | None = None) -> None:
        super().__init__(_async_resolver, nameservers)

    async def query(self, query: DnsQuery, timeout: float) -> DnsResult:
        deadline = time.monotonic() + timeout
        fast = await self._fast(query, timeout)
        if isinstance(fast, DnsResult):
            return fast
        resolver = self._dnspython_after(fast)
        try:
            answer = await resolver.resolve(
                query.qname,
                query.rdtype.value,
                lifetime=max(deadline - time.monotonic(), 0.001),
                raise_on_no_answer=False,
                search=False,
            )
        except _HANDLED as exc:
            return _failure(exc)
        return _result(query, answer)

    async def _fast(self, query: DnsQuery, timeout: float) -> DnsResult | _Fast:
        # A reader callback on a bare socket: no datagram transport and protocol per query.
        question = encode_query(query.qname, query.rdtype)
        server, wait = self._fast_route
        if server is None or question is None:
            return _Fast.DECLINED
        wait = min(timeout, wait)
        loop = asyncio.get_running_loop()
        try:
            sock = _udp_socket(server)
        except OSError:
            return _Fast.DECLINED
        done: asyncio.Future[DnsResult | _Fast] = loop.create_future()
        with sock:
            try:
                sock.send(question.wire)
                loop.add_reader(sock.fileno(), _on_readable, sock, question, done)
            except (OSError, NotImplementedError):  # NotImplementedError: a proactor loop
                return _Fast.DECLINED
            expiry = loop.call_later(wait, settle, done, _Fast.NO_REPLY)
            try:
                return await done
            finally:
                expiry.cancel()
                loop.remove_reader(sock.fileno())


def _on_readable(
    sock: socket.socket, question: Question, done: asyncio.Future[DnsResult | _Fast]
) -> None:
    try:
        wire = sock.recv(65535)
    except (BlockingIOError, InterruptedError):
        return
    except OSError:
        settle(done, _Fast.DECLINED)
        return
    if is_reply_to(wire, question):  # anything else is ignored, as a late or forged reply
        settle(done, decode_response(wire, question) or _Fast.DECLINED)
