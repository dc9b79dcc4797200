"""The server-name grammar (Matrix spec v1.19, appendices, "Server Name").

The grammar, as the spec writes it::

    server_name = hostname [ ":" port ]
    port        = 1*5DIGIT
    hostname    = IPv4address / "[" IPv6address "]" / dns-name
    IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT
    IPv6address = 2*45IPv6char
    IPv6char    = DIGIT / %x41-46 / %x61-66 / ":" / "."
    dns-name    = 1*255dns-char
    dns-char    = DIGIT / ALPHA / "-" / "."

A delegated server name (the ``m.server`` value of a well-known) uses the same
grammar. Where the grammar is looser than anything that can be resolved, we
decide; each decision is in docs/interpretations.md with its vector:

* ports must be 1-65535 (the grammar allows 0 and 99999);
* an all-numeric dotted name must be a valid IPv4 literal (``256.1.1.1``,
  ``1.2.3`` are rejected, not looked up in DNS);
* IPv4 octets with leading zeros are rejected (some stacks read them as octal);
* a DNS name must fit in DNS: no empty labels, labels of at most 63 and names
  of at most 253 characters, one optional trailing dot;
* non-ASCII is rejected with a pointer to the IDNA A-label form.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import Enum

from .errors import InvalidServerName

__all__ = [
    "HostKind",
    "ServerName",
    "canonical_ip",
    "parse_server_name",
    "server_name_advisories",
]

DEFAULT_PORT = 8448
"""The port used when neither the server name nor SRV gives one (IANA: matrix-fed)."""

_DIGITS = frozenset("0123456789")
_DNS_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.")
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")
_MAX_DNS_NAME_GRAMMAR = 255
_MAX_DNS_NAME = 253  # RFC 1035 text form, without the trailing dot
_MAX_LABEL = 63
_RECOMMENDED_MAX = 230


class HostKind(Enum):
    """Which of the grammar's three hostname forms a server name uses."""

    IPV4 = "ipv4"
    IPV6 = "ipv6"
    DNS = "dns"


@dataclass(frozen=True, slots=True)
class ServerName:
    """A parsed, valid server name. Build one with :func:`parse_server_name`.

    Server names are identities and are compared case-sensitively (spec
    appendices: ``@user:matrix.org`` is not ``@user:MATRIX.ORG``), so equality is
    on :attr:`text` alone.

    Attributes:
        text: the server name exactly as given; ``str()`` returns it.
        hostname: the grammar's ``hostname``, as given (IPv6 keeps its brackets).
        port: the explicit port, or ``None``.
        kind: which hostname form this is.
    """

    text: str
    hostname: str = field(compare=False)
    port: int | None = field(compare=False)
    kind: HostKind = field(compare=False)

    def __str__(self) -> str:
        return self.text

    @property
    def is_ip_literal(self) -> bool:
        return self.kind is not HostKind.DNS

    @property
    def host(self) -> str:
        """The host without IPv6 brackets, in the form one connects to.

        IP literals are given in canonical form (``2001:db8::7``); DNS names are
        lower-cased without a trailing dot, because DNS, SNI and certificate
        matching are all case-insensitive and RFC 6066 forbids the dot in SNI.
        """
        if self.kind is HostKind.DNS:
            name = self.hostname[:-1] if self.hostname.endswith(".") else self.hostname
            return name.lower()
        return canonical_ip(self.hostname.strip("[]"))

    @property
    def fqdn(self) -> str:
        """The DNS name in absolute form for queries (``example.org.``)."""
        if self.kind is not HostKind.DNS:
            raise ValueError(f"{self.text!r} is an IP literal, not a DNS name")
        return self.host + "."


def canonical_ip(text: str) -> str:
    """RFC 5952 text form: compressed, lower-case, IPv4-mapped as ``::ffff:a.b.c.d``.

    Spelled out because ``ipaddress`` prints IPv4-mapped addresses differently
    before and after Python 3.13.
    """
    ip = ipaddress.ip_address(text)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return f"::ffff:{ip.ipv4_mapped}"
    return str(ip)


def parse_server_name(text: object) -> ServerName:
    """Parse ``text`` as a server name, or raise :class:`InvalidServerName`.

    The error says what is wrong and, where it is one character, at which
    offset: ``invalid server name 'example.org:123456': the port has 6 digits;
    the grammar allows at most 5 (at offset 12)``.
    """
    if not isinstance(text, str):
        raise InvalidServerName(repr(text), f"expected a string, got {type(text).__name__}")
    if not text:
        raise InvalidServerName(text, "it is empty")
    if len(text) > _MAX_DNS_NAME_GRAMMAR + 6:
        raise InvalidServerName(text, f"it is {len(text)} characters long")

    if text.startswith("["):
        hostname, rest_at = _split_ipv6(text)
        kind = HostKind.IPV6
    else:
        hostname, rest_at = _split_name(text)
        kind = _classify_name(text, hostname)

    port: int | None = None
    if rest_at < len(text):
        # Both splitters stop only at the end or at a ':'.
        port = _parse_port(text, rest_at + 1)
    return ServerName(text=text, hostname=hostname, port=port, kind=kind)


def server_name_advisories(name: ServerName) -> tuple[str, ...]:
    """Things the spec recommends against that are still valid (for traces and the CLI)."""
    notes = []
    if name.kind is HostKind.DNS and name.hostname != name.hostname.lower():
        notes.append("server names should not use upper-case characters (spec appendices)")
    if len(name.text) > _RECOMMENDED_MAX:
        notes.append(
            f"the server name is {len(name.text)} characters; the spec recommends "
            f"at most {_RECOMMENDED_MAX}"
        )
    if name.kind is HostKind.DNS and name.hostname.endswith("."):
        notes.append("the trailing dot is dropped for DNS queries, SNI and certificate names")
    return tuple(notes)


def _split_ipv6(text: str) -> tuple[str, int]:
    close = text.find("]")
    if close == -1:
        raise InvalidServerName(text, "the IPv6 literal is missing its closing ']'", len(text))
    inner = text[1:close]
    for i, ch in enumerate(inner, start=1):
        if ch not in _IPV6_CHARS:
            what = "a zone index ('%') is not allowed" if ch == "%" else f"{ch!r} is not allowed"
            raise InvalidServerName(text, f"in the IPv6 literal, {what}", i)
    if not 2 <= len(inner) <= 45:
        raise InvalidServerName(text, "an IPv6 literal has 2 to 45 characters", 1)
    try:
        ipaddress.IPv6Address(inner)
    except ValueError:
        raise InvalidServerName(
            text, f"{inner!r} is not a valid IPv6 address (RFC 3513)", 1
        ) from None
    after = close + 1
    if after < len(text) and text[after] != ":":
        raise InvalidServerName(
            text, f"expected ':' and a port after the IPv6 literal, found {text[after]!r}", after
        )
    return text[: close + 1], after


def _split_name(text: str) -> tuple[str, int]:
    for i, ch in enumerate(text):
        if ch in _DNS_CHARS:
            continue
        if ch == ":":
            if ":" in text[i + 1 :] and _is_ipv6(text):
                raise InvalidServerName(text, "an IPv6 literal must be in brackets: [addr]", 0)
            if i == 0:
                raise InvalidServerName(text, "the hostname is empty", 0)
            return text[:i], i
        raise InvalidServerName(text, _bad_char_reason(ch), i)
    return text, len(text)


def _bad_char_reason(ch: str) -> str:
    if ord(ch) > 127:
        return (
            f"{ch!r} is not ASCII; internationalised names must be written in "
            "their IDNA A-label form (xn--...)"
        )
    if ch == "_":
        return "'_' is not allowed in a hostname"
    if ch == "]":
        return "']' without a matching '['"
    return f"{ch!r} is not allowed in a hostname (only letters, digits, '-' and '.')"


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _classify_name(text: str, hostname: str) -> HostKind:
    if all(ch in _DIGITS or ch == "." for ch in hostname):
        _check_ipv4(text, hostname)
        return HostKind.IPV4
    _check_dns_name(text, hostname)
    return HostKind.DNS


def _check_ipv4(text: str, hostname: str) -> None:
    parts = hostname.split(".")
    if len(parts) != 4:
        raise InvalidServerName(
            text,
            "an all-numeric hostname must be an IPv4 literal of four decimal octets",
            0,
        )
    offset = 0
    for part in parts:
        if not 1 <= len(part) <= 3:
            raise InvalidServerName(text, "an IPv4 octet has 1 to 3 digits", offset)
        if len(part) > 1 and part.startswith("0"):
            raise InvalidServerName(
                text, f"the IPv4 octet {part!r} has a leading zero (ambiguous: octal?)", offset
            )
        if int(part) > 255:
            raise InvalidServerName(text, f"the IPv4 octet {part} is out of range 0-255", offset)
        offset += len(part) + 1


def _check_dns_name(text: str, hostname: str) -> None:
    if len(hostname) > _MAX_DNS_NAME_GRAMMAR:
        raise InvalidServerName(text, f"the DNS name has {len(hostname)} characters; max 255")
    bare = hostname[:-1] if hostname.endswith(".") else hostname
    if len(bare) > _MAX_DNS_NAME:
        raise InvalidServerName(
            text, f"the DNS name has {len(bare)} characters; DNS allows at most {_MAX_DNS_NAME}"
        )
    offset = 0
    for label in bare.split("."):
        if not label:
            raise InvalidServerName(text, "a DNS name cannot have an empty label", offset)
        if len(label) > _MAX_LABEL:
            raise InvalidServerName(
                text, f"a DNS label has {len(label)} characters; max {_MAX_LABEL}", offset
            )
        offset += len(label) + 1


def _parse_port(text: str, start: int) -> int:
    digits = text[start:]
    if not digits:
        raise InvalidServerName(text, "the port after ':' is empty", start)
    for i, ch in enumerate(digits, start=start):
        if ch not in _DIGITS:
            raise InvalidServerName(text, f"{ch!r} is not allowed in the port", i)
    if len(digits) > 5:
        raise InvalidServerName(
            text, f"the port has {len(digits)} digits; the grammar allows at most 5", start
        )
    port = int(digits)
    if not 1 <= port <= 65535:
        raise InvalidServerName(text, f"the port {port} is out of range 1-65535", start)
    return port
