"""HTTPS transports for the well-known fetch: h11 over ``ssl``, sync and asyncio.

Each fetch is one hop (the machine follows redirects). The transport connects
to the addresses the machine resolved for the URL's host (or, for a request
without them, resolves the host through the same DNS transport as everything
else and refuses addresses the IP policy refuses), races the connections,
verifies the certificate for the URL's host, and reads within the time and size
limits.
Whatever goes wrong comes back as an :class:`~mxresolve.HttpsFailure`.
The asyncio transport is in :mod:`.aio_https_transport`, so that blocking
programs never import asyncio; what the two share is here.
"""

from __future__ import annotations

import ipaddress
import time
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from .._core.events import (
    DnsQuery,
    DnsResult,
    DnsStatus,
    HttpsFailure,
    HttpsFailureKind,
    HttpsGet,
    HttpsResponse,
    RecordType,
)
from .._core.settings import IpPolicy
from .dns_transport import AsyncDnsTransport, DnsTransport
from .net import (
    ConnectFailed,
    classify_error,
    connect_tcp,
    default_ssl_context,
)

if TYPE_CHECKING:
    import ssl  # at run time with the first TLS context (net.py)

    from .http1 import Http1Exchange

__all__ = ["AsyncHttpsTransport", "H11HttpsTransport", "HttpsTransport"]

MAX_HEADER_BYTES = 16 * 1024
D = TypeVar("D", DnsTransport, AsyncDnsTransport)
_READ_CHUNK = 16 * 1024


class HttpsTransport(Protocol):
    def fetch(self, request: HttpsGet, timeout: float) -> HttpsResponse | HttpsFailure: ...


class AsyncHttpsTransport(Protocol):
    async def fetch(self, request: HttpsGet, timeout: float) -> HttpsResponse | HttpsFailure: ...


def _given(request: HttpsGet) -> list[str] | None:
    """The addresses the machine resolved, through its cache and IP policy, if any."""
    return list(request.addresses) or None


def _literal(host: str, policy: IpPolicy) -> list[str] | HttpsFailure | None:
    """For an IP-literal host: itself (if the policy allows it); ``None`` for a name."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return _allowed(host, [DnsResult(status=DnsStatus.NOERROR, records=(host,))], policy)


def _queries(host: str) -> list[DnsQuery]:
    fqdn = host.rstrip(".").lower() + "."
    return [DnsQuery(qname=fqdn, rdtype=t) for t in (RecordType.AAAA, RecordType.A)]


def _allowed(host: str, results: list[DnsResult], policy: IpPolicy) -> list[str] | HttpsFailure:
    """The usable addresses of ``host``, or why there are none."""
    found = [str(r) for result in results for r in result.records]
    if not found:
        statuses = ", ".join(r.status.value for r in results)
        return HttpsFailure(kind=HttpsFailureKind.NO_ADDRESS, message=f"{host}: {statuses}")
    refusals = [(a, policy.refusal(a)) for a in found]
    allowed = [a for a, why in refusals if why is None]
    if not allowed:
        return HttpsFailure(
            kind=HttpsFailureKind.ADDRESS_REFUSED,
            message="; ".join(f"{why}" for _, why in refusals),
        )
    return allowed


class _H11Transport(Generic[D]):
    """What both HTTPS transports hold: a DNS transport, TLS settings, the IP policy."""

    def __init__(
        self,
        dns: D,
        *,
        ssl_context: ssl.SSLContext | None = None,
        ip_policy: IpPolicy,
        max_header_bytes: int = MAX_HEADER_BYTES,
    ) -> None:
        self._dns: D = dns
        self._own_ssl = ssl_context  # None: the shared default, built on first use
        self._policy = ip_policy
        self._max_header_bytes = max_header_bytes

    @property
    def _ssl(self) -> ssl.SSLContext:
        return self._own_ssl if self._own_ssl is not None else default_ssl_context()

    def _exchange(self, request: HttpsGet) -> Http1Exchange:
        # h11 is imported with the first fetch: a resolution that fetches nothing (an IP
        # literal, a cached name) should not pay for it at start-up.
        from .http1 import Http1Exchange

        return Http1Exchange(request, max_header_bytes=self._max_header_bytes)


class H11HttpsTransport(_H11Transport[DnsTransport]):
    """Blocking HTTPS GET (one hop) over h11 and ``ssl``."""

    def fetch(self, request: HttpsGet, timeout: float) -> HttpsResponse | HttpsFailure:
        deadline = time.monotonic() + timeout
        addresses = _given(request) or _literal(request.host, self._policy)
        if addresses is None:
            results = [
                self._dns.query(q, max(deadline - time.monotonic(), 0.001))
                for q in _queries(request.host)
            ]
            addresses = _allowed(request.host, results, self._policy)
        if isinstance(addresses, HttpsFailure):
            return addresses
        try:
            raw = connect_tcp(addresses, request.port, deadline)
        except ConnectFailed as exc:
            return HttpsFailure(kind=exc.kind, message=exc.message)
        exchange = self._exchange(request)
        connecting = True
        try:
            raw.settimeout(max(deadline - time.monotonic(), 0.001))
            with self._ssl.wrap_socket(raw, server_hostname=request.host) as tls:
                connecting = False
                tls.sendall(exchange.request_bytes())
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return HttpsFailure(
                            kind=HttpsFailureKind.READ_TIMEOUT, message="the response was too slow"
                        )
                    tls.settimeout(remaining)
                    outcome = exchange.receive(tls.recv(_READ_CHUNK))
                    if outcome is not None:
                        return outcome
        except OSError as exc:  # ssl.SSLError is an OSError too
            return HttpsFailure(
                kind=classify_error(exc, connecting=connecting), message=str(exc)[:300]
            )
        finally:
            raw.close()
