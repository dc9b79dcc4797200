"""DNS transports: dnspython, sync and asyncio, behind two tiny interfaces.

This is the edge where dnspython's exceptions become our closed set of
:class:`~mxresolve.DnsStatus` values; nothing past it sees a dnspython type.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Protocol

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from ._errors import InvalidSettings
from ._events import DnsQuery, DnsResult, DnsStatus, RecordType, SrvRecord

__all__ = [
    "AsyncDnsTransport",
    "AsyncDnspythonTransport",
    "DnsTransport",
    "DnspythonTransport",
    "parse_nameserver",
]


class DnsTransport(Protocol):
    """Answers one query; never raises for a DNS outcome, only returns it."""

    def query(self, query: DnsQuery, timeout: float) -> DnsResult: ...


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


def _configure(resolver: dns.resolver.BaseResolver, nameservers: Sequence[str] | None) -> None:
    resolver.cache = None  # the core caches, with its own bounds
    if nameservers is not None:
        if isinstance(nameservers, str):
            raise InvalidSettings("nameservers takes a list, not one string")
        servers = [parse_nameserver(n) for n in nameservers]
        if not servers:
            raise InvalidSettings("nameservers is empty")
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


class DnspythonTransport:
    """Blocking DNS over dnspython, from the system configuration or ``nameservers``.

    Args:
        nameservers: ``["IP[:PORT]", ...]``; every query goes to them. ``None``
            reads /etc/resolv.conf.
    """

    def __init__(self, nameservers: Sequence[str] | None = None) -> None:
        self._resolver = dns.resolver.Resolver(configure=nameservers is None)
        _configure(self._resolver, nameservers)

    def query(self, query: DnsQuery, timeout: float) -> DnsResult:
        try:
            answer = self._resolver.resolve(
                query.qname,
                query.rdtype.value,
                lifetime=max(timeout, 0.001),
                raise_on_no_answer=False,
                search=False,
            )
        except _HANDLED as exc:
            return _failure(exc)
        return _result(query, answer)


class AsyncDnspythonTransport:
    """The asyncio form of :class:`DnspythonTransport`."""

    def __init__(self, nameservers: Sequence[str] | None = None) -> None:
        self._resolver = dns.asyncresolver.Resolver(configure=nameservers is None)
        _configure(self._resolver, nameservers)

    async def query(self, query: DnsQuery, timeout: float) -> DnsResult:
        try:
            answer = await self._resolver.resolve(
                query.qname,
                query.rdtype.value,
                lifetime=max(timeout, 0.001),
                raise_on_no_answer=False,
                search=False,
            )
        except _HANDLED as exc:
            return _failure(exc)
        return _result(query, answer)
