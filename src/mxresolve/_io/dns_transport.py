"""DNS transports: dnspython, sync and asyncio, behind two tiny interfaces.

The asyncio transport is in :mod:`.aio_dns_transport`, so that blocking programs
never import asyncio; its interface and all it shares with the blocking one are here.

This is the edge where dnspython's exceptions become our closed set of
:class:`~mxresolve.DnsStatus` values; nothing past it sees a dnspython type.
"""

from __future__ import annotations

import copy
import enum
import ipaddress
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, cast

import dns.exception

from .._core.errors import InvalidSettings
from .._core.events import DnsQuery, DnsResult, DnsStatus, RecordType, SrvRecord
from .dns_wire import Question, decode_response, encode_query, is_reply_to

# dnspython's resolvers are imported when a transport first needs one: importing them costs
# more than the rest of mxresolve (importlib.metadata among others), and the fast path
# answers most queries without them. Past that point `dns.resolver` etc. are bound.
# socket, a few milliseconds, loads with the first query's socket: an IP literal asks none.
if TYPE_CHECKING:
    import socket

    import dns.asyncresolver
    import dns.nameserver
    import dns.rdatatype
    import dns.resolver

_R = TypeVar("_R", bound="dns.resolver.BaseResolver")

__all__ = [
    "AsyncDnsTransport",
    "DnsTransport",
    "DnspythonTransport",
    "PendingQuery",
    "TwoPhaseDnsTransport",
    "parse_nameserver",
    "two_phase",
]


class DnsTransport(Protocol):
    """Answers one query; never raises for a DNS outcome, only returns it."""

    def query(self, query: DnsQuery, timeout: float) -> DnsResult: ...


class TwoPhaseDnsTransport(DnsTransport, Protocol):
    """A DNS transport that can also start a query and finish it later (see
    :class:`DnspythonTransport`), so that one thread can have several out at once."""

    def start_query(self, query: DnsQuery, timeout: float) -> PendingQuery: ...
    def poll_query(self, pending: PendingQuery) -> DnsResult | None: ...
    def finish_query(self, pending: PendingQuery) -> DnsResult: ...


def two_phase(dns: DnsTransport) -> TwoPhaseDnsTransport | None:
    """``dns`` if it has the two-phase form, else ``None``.

    Not when ``query`` was replaced after the two phases were written (a subclass that
    overrides ``query()`` alone, an instance given its own): its queries must go
    through that ``query``.
    """
    parts = ("start_query", "poll_query", "finish_query")
    if not all(callable(getattr(dns, name, None)) for name in parts):
        return None
    if "query" in getattr(dns, "__dict__", ()):
        return None
    mro = type(dns).__mro__
    defines = [next((c for c in mro if name in vars(c)), object) for name in ("query", *parts)]
    if any(mro.index(defines[0]) < mro.index(owner) for owner in defines[1:]):
        return None  # query() overridden below where the phases are defined
    return cast(TwoPhaseDnsTransport, dns)


class AsyncDnsTransport(Protocol):
    async def query(self, query: DnsQuery, timeout: float) -> DnsResult: ...


def parse_nameserver(text: str) -> tuple[str, int]:
    """``"IP"``, ``"IP:PORT"``, ``"[IPv6]:PORT"`` or a bare IPv6 address -> (ip, port)."""
    if not isinstance(text, str) or not text:
        raise InvalidSettings(f"nameserver {text!r}: expected 'IP' or 'IP:PORT'")
    host, port = text, 53
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise InvalidSettings(f"nameserver {text!r}: expected '[IPv6]:PORT'")
        if rest:
            port = _port(text, rest[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _port(text, port_text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise InvalidSettings(f"nameserver {text!r}: {host!r} is not an IP address") from None
    return host, port


def _port(text: str, port_text: str) -> int:
    if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise InvalidSettings(f"nameserver {text!r}: the port must be 1-65535")
    return int(port_text)


def _parse_nameservers(nameservers: Sequence[str] | None) -> list[tuple[str, int]] | None:
    if nameservers is None:
        return None
    if isinstance(nameservers, str):
        raise InvalidSettings("nameservers takes a list, not one string")
    servers = [parse_nameserver(n) for n in nameservers]
    if not servers:
        raise InvalidSettings("nameservers is empty")
    return servers


def _configure(
    resolver: dns.resolver.BaseResolver, servers: Sequence[tuple[str, int]] | None
) -> None:
    import dns.nameserver

    resolver.cache = None  # the core caches, with its own bounds
    if servers is not None:
        resolver.nameservers = [dns.nameserver.Do53Nameserver(ip, port) for ip, port in servers]


def _result(query: DnsQuery, answer: dns.resolver.Answer) -> DnsResult:
    rrset = answer.rrset
    aliases = tuple(
        str(rdata.target).lower() for rrs in answer.chaining_result.cnames for rdata in rrs
    )
    if rrset is None or len(rrset) == 0:
        return DnsResult(status=DnsStatus.NODATA, aliases=aliases, ttl=_negative_ttl(answer))
    records: list[str | SrvRecord] = []
    for rdata in rrset:
        if query.rdtype is RecordType.SRV:
            records.append(
                SrvRecord(
                    priority=rdata.priority,
                    weight=rdata.weight,
                    port=rdata.port,
                    target=str(rdata.target).lower(),
                )
            )
        elif query.rdtype is RecordType.CNAME:
            records.append(str(rdata.target).lower())
        else:
            records.append(str(rdata.address))
    return DnsResult(
        status=DnsStatus.NOERROR, records=tuple(records), ttl=rrset.ttl, aliases=aliases
    )


def _negative_ttl(answer: dns.resolver.Answer) -> int | None:
    # RFC 2308: a negative answer may be cached for the SOA's minimum (and TTL).
    for rrset in answer.response.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            return int(min(rrset.ttl, rrset[0].minimum))
    return None


def _failure(exc: BaseException) -> DnsResult:
    """Map a dnspython exception onto our outcomes: the one place that knows them."""
    if isinstance(exc, dns.resolver.NXDOMAIN):
        return DnsResult(status=DnsStatus.NXDOMAIN)
    if isinstance(exc, dns.resolver.NoAnswer):
        return DnsResult(status=DnsStatus.NODATA)
    if isinstance(exc, (dns.resolver.LifetimeTimeout, dns.exception.Timeout)):
        return DnsResult(status=DnsStatus.TIMEOUT, message="no answer in time")
    if isinstance(exc, dns.resolver.NoNameservers):
        text = str(exc)
        status = DnsStatus.REFUSED if "REFUSED" in text else DnsStatus.SERVFAIL
        return DnsResult(status=status, message=text[:300])
    return DnsResult(status=DnsStatus.SERVFAIL, message=f"{type(exc).__name__}: {exc}"[:300])


_HANDLED = (dns.exception.DNSException, OSError, ValueError)


class _Fast(enum.Enum):
    """What the fast path says when it has no :class:`DnsResult` to give."""

    DECLINED = "declined"  # not a query or reply it vouches for: dnspython decides
    NO_REPLY = "no reply"  # the first nameserver was silent: dnspython asks the others first


def _first_udp_server(resolver: dns.resolver.BaseResolver) -> tuple[str, int] | None:
    import dns.nameserver

    """Where the fast path sends a query: the first nameserver, if it is plain DNS."""
    servers = resolver.nameservers
    if not servers:
        return None
    first = servers[0]
    if isinstance(first, dns.nameserver.Do53Nameserver):
        return first.address, first.port
    if isinstance(first, str):
        return first, resolver.port
    return None


def _rotated(resolver: _R) -> _R:
    """The resolver asked after the fast path's silent server: the same, that server last.

    Without it, a dead first nameserver would cost each query two timeouts (the fast
    path's, then dnspython's own first try) instead of the one it costs dnspython alone.
    """
    servers = list(resolver.nameservers)
    if len(servers) < 2:
        return resolver
    fallback = copy.copy(resolver)
    fallback.nameservers = servers[1:] + servers[:1]
    return fallback


def _udp_socket(server: tuple[str, int]) -> socket.socket:
    import socket  # here: see the imports above

    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)  # a fresh random source port per query
    try:
        sock.setblocking(False)
        sock.connect(server)  # the kernel drops datagrams from any other address
    except OSError:
        sock.close()
        raise
    return sock


# dnspython's per-nameserver timeout when no /etc/resolv.conf sets another (the fast path
# waits this long for the first nameserver given as ``nameservers``, as dnspython would).
DNSPYTHON_TIMEOUT = 2.0


class _Dnspython(Generic[_R]):
    """What both transports share: the configured resolver, and which one to ask when.

    The resolver is built on first use (a bad ``nameservers`` still fails at once); a race
    between two first uses builds two equal resolvers and keeps one, which is harmless.
    """

    def __init__(self, make: Callable[[bool], _R], nameservers: Sequence[str] | None) -> None:
        self._make = make
        self._servers = _parse_nameservers(nameservers)
        self._state: tuple[_R, _R, tuple[str, int] | None] | None = None

    def _built(self) -> tuple[_R, _R, tuple[str, int] | None]:
        state = self._state
        if state is None:
            resolver = self._make(self._servers is None)  # True: read /etc/resolv.conf
            _configure(resolver, self._servers)
            # (the resolver, the one asked after the fast path's silent server, and where
            # the fast path asks)
            state = self._state = (resolver, _rotated(resolver), _first_udp_server(resolver))
        return state

    @property
    def _resolver(self) -> _R:
        return self._built()[0]

    @property
    def _fast_route(self) -> tuple[tuple[str, int] | None, float]:
        """Where the fast path asks (``None``: it cannot) and how long it waits there.

        With ``nameservers`` given, both are known without dnspython, which is then built
        (and imported) only for a query that falls back to it; otherwise they come from the
        system configuration as dnspython reads it.
        """
        if self._servers is not None:
            return self._servers[0], DNSPYTHON_TIMEOUT
        resolver, _, server = self._built()
        return server, resolver.timeout

    def _dnspython_after(self, fast: _Fast) -> _R:
        resolver, after_silence, _ = self._built()
        return after_silence if fast is _Fast.NO_REPLY else resolver


def _sync_resolver(configure: bool) -> dns.resolver.Resolver:
    import dns.resolver

    return dns.resolver.Resolver(configure=configure)


class DnspythonTransport(_Dnspython["dns.resolver.Resolver"]):
    """Blocking DNS over dnspython, from the system configuration or ``nameservers``.

    A query first tries a fast path: one UDP exchange with the first nameserver, decoded
    by :mod:`._dns_wire` without dnspython's message objects. Whatever that path does not
    vouch for goes to dnspython, which then decides exactly as it would have alone.

    Besides :meth:`query`, it has a two-phase form (:meth:`start_query`, then
    :meth:`poll_query` or :meth:`finish_query`) with which the blocking
    :class:`~mxresolve.Resolver` overlaps a resolution's queries in one thread.

    Args:
        nameservers: ``["IP[:PORT]", ...]``; every query goes to them. ``None``
            reads /etc/resolv.conf.
    """

    def __init__(self, nameservers: Sequence[str] | None = None) -> None:
        super().__init__(_sync_resolver, nameservers)

    def query(self, query: DnsQuery, timeout: float) -> DnsResult:
        return self.finish_query(self.start_query(query, timeout))

    # The two-phase form, for a driver that overlaps queries in one thread (the blocking
    # Resolver): start several, wait for their sockets together, then finish each.

    def start_query(self, query: DnsQuery, timeout: float) -> PendingQuery:
        """Send ``query`` by the fast path and return at once; finish it later.

        The returned query's ``sock`` is the one to wait on (readable: its reply may be
        in); ``None`` when the fast path is not for this query, which
        :meth:`finish_query` then hands to dnspython.
        """
        now = time.monotonic()
        pending = PendingQuery(query, now + timeout)
        question = encode_query(query.qname, query.rdtype)
        server, wait = self._fast_route
        if server is None or question is None:
            pending.fast = _Fast.DECLINED
            return pending
        try:
            sock = _udp_socket(server)
        except OSError:
            pending.fast = _Fast.DECLINED
            return pending
        try:
            sock.send(question.wire)
        except OSError:  # dnspython says what it means
            sock.close()
            pending.fast = _Fast.DECLINED
            return pending
        pending.sock, pending.question = sock, question
        pending.wait_until = now + min(timeout, wait)
        return pending

    def poll_query(self, pending: PendingQuery) -> DnsResult | None:
        """The outcome of a started query if it is in (or its wait is over), else ``None``.

        Never blocks on the network, except to ask dnspython once the fast path is done
        without an answer it vouches for.
        """
        if pending.fast is None:
            fast = _reply(pending, wait=False)
            if fast is None:
                return None
            pending.fast = fast
            pending.close()
        return self._settle(pending)

    def finish_query(self, pending: PendingQuery) -> DnsResult:
        """The outcome of a started query, waiting for it as long as the query may take."""
        if pending.fast is None:
            pending.fast = _reply(pending, wait=True)
            pending.close()
        return self._settle(pending)

    def _settle(self, pending: PendingQuery) -> DnsResult:
        fast = pending.fast
        if isinstance(fast, DnsResult):
            return fast
        query = pending.query
        resolver = self._dnspython_after(fast if fast is not None else _Fast.DECLINED)
        try:
            answer = resolver.resolve(
                query.qname,
                query.rdtype.value,
                lifetime=max(pending.deadline - time.monotonic(), 0.001),
                raise_on_no_answer=False,
                search=False,
            )
        except _HANDLED as exc:
            return _failure(exc)
        return _result(query, answer)


class PendingQuery:
    """A query :meth:`DnspythonTransport.start_query` sent, not yet finished."""

    __slots__ = ("deadline", "fast", "query", "question", "sock", "wait_until")

    def __init__(self, query: DnsQuery, deadline: float) -> None:
        self.query = query
        self.deadline = deadline  # the query's whole time, dnspython's fallback included
        self.wait_until = deadline  # how long the fast path waits for its reply
        self.sock: socket.socket | None = None
        self.question: Question | None = None
        self.fast: DnsResult | _Fast | None = None  # what the fast path gave, once it has

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


_MAX_STRAYS = 64  # datagrams read past the wait that answer another question


def _reply(pending: PendingQuery, *, wait: bool) -> DnsResult | _Fast | None:
    """What the fast path makes of the datagrams in; ``None``: none yet, and no ``wait``.

    A reply that came in while the caller was busy elsewhere still counts after the wait
    is over: the socket is read once more, without blocking, before ``NO_REPLY``.
    """
    sock, question = pending.sock, pending.question
    assert sock is not None
    assert question is not None
    strays = 0
    try:
        while True:
            remaining = pending.wait_until - time.monotonic()
            blocking = wait and remaining > 0
            sock.settimeout(remaining if blocking else 0.0)
            try:
                wire = sock.recv(65535)
            except (BlockingIOError, TimeoutError):  # nothing (more) in
                if blocking:
                    continue  # the wait is over: one last look
                return None if remaining > 0 else _Fast.NO_REPLY
            if is_reply_to(wire, question):  # else: late or forged, keep waiting
                return decode_response(wire, question) or _Fast.DECLINED
            if remaining <= 0:
                strays += 1
                if strays > _MAX_STRAYS:
                    return _Fast.NO_REPLY
    except OSError:  # e.g. ICMP port unreachable: dnspython says what it means
        return _Fast.DECLINED
