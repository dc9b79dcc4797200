"""A small DNS wire codec for the common case, so a query needs no dnspython message objects.

It covers what resolution asks for almost every time: one A, AAAA or SRV question, answered
NOERROR (records, or none) or NXDOMAIN, with CNAME chains followed as dnspython does. Anything
else - truncation, another rcode, a name it would have to escape, a malformed or surprising
message - gives ``None``, and the transport asks dnspython instead. So the fast path never
decides an outcome differently from dnspython; it only skips building its objects, which cost
most of a query's time (see docs/performance.md).
"""

from __future__ import annotations

import secrets
import struct

import dns.ipv4
import dns.ipv6

from .._core.events import DnsResult, DnsStatus, RecordType, SrvRecord

__all__ = ["Question", "decode_response", "encode_query"]

_CODES = {RecordType.A: 1, RecordType.AAAA: 28, RecordType.SRV: 33}
_CNAME, _SOA, _IN = 5, 6, 1
_MAX_CHAIN = 16  # dnspython's MAX_CHAIN
_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_*")
_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")


class _Unhandled(Exception):
    """Internal: the message is not one this codec handles; dnspython decides."""


class Question:
    """An encoded query and what an answer must echo."""

    __slots__ = ("code", "id", "name", "wire")

    def __init__(self, qid: int, code: int, name: bytes, wire: bytes) -> None:
        self.id, self.code, self.name, self.wire = qid, code, name, wire


def encode_query(qname: str, rdtype: RecordType) -> Question | None:
    """The query for ``qname`` (absolute, ending in '.'), or None if dnspython should send it."""
    code = _CODES.get(rdtype)
    if code is None or not qname.endswith(".") or len(qname) > 254 or not qname.isascii():
        return None
    name = b""
    for label in qname[:-1].encode("ascii").split(b"."):
        if not 0 < len(label) < 64 or not _PLAIN.issuperset(label):
            return None
        name += bytes((len(label),)) + label
    name += b"\0"
    qid = secrets.randbits(16)
    head = _HEADER.pack(qid, 0x0100, 1, 0, 0, 0)  # RD, one question: as dnspython sends it
    return Question(qid, code, name.lower(), head + name + struct.pack("!HH", code, _IN))


def is_reply_to(wire: bytes, question: Question) -> bool:
    """Whether ``wire`` claims to answer ``question`` (ID, QR, same question); else ignore it."""
    if len(wire) < 12 or (wire[0] << 8 | wire[1]) != question.id or not wire[2] & 0x80:
        return False
    end = 12 + len(question.name) + 4
    # Names match case-insensitively. lower() only touches the bytes A-Z, which no label
    # length (< 64) and none of the type and class codes asked for (1, 28, 33; 1) can be.
    return wire[12:end].lower() == question.wire[12:].lower() and wire[4:6] == b"\0\1"


def decode_response(wire: bytes, question: Question) -> DnsResult | None:
    """The outcome of a reply to ``question``, or None when dnspython should decide."""
    try:
        return _decode(wire, question)
    except (_Unhandled, IndexError, struct.error, ValueError):
        return None


def _decode(wire: bytes, question: Question) -> DnsResult | None:
    if not is_reply_to(wire, question):
        return None
    _, flags, _, ancount, nscount, arcount = _HEADER.unpack_from(wire)
    if flags & 0x7A00:  # opcode other than QUERY, or TC: dnspython retries over TCP
        return None
    rcode = flags & 0x000F
    offset = 12 + len(question.name) + 4
    answer, offset = _section(wire, offset, ancount)
    authority, offset = _section(wire, offset, nscount)
    _, offset = _section(wire, offset, arcount)  # framing only: dnspython parses it too
    if offset != len(wire):
        return None  # trailing junk
    if rcode == 3:
        return DnsResult(status=DnsStatus.NXDOMAIN) if not answer else None
    if rcode != 0:
        return None
    owner = _text(question.name)
    aliases: list[str] = []
    for _ in range(_MAX_CHAIN):
        final = [rr for rr in answer if rr[0] == owner and rr[1] == question.code]
        if final:
            return DnsResult(
                status=DnsStatus.NOERROR,
                records=tuple(dict.fromkeys(_rdata(wire, question.code, rr) for rr in final)),
                ttl=min(rr[2] for rr in final),
                aliases=tuple(aliases),
            )
        cnames = [rr for rr in answer if rr[0] == owner and rr[1] == _CNAME]
        if not cnames:
            return DnsResult(
                status=DnsStatus.NODATA, aliases=tuple(aliases), ttl=_soa(wire, authority)
            )
        targets = list(dict.fromkeys(_name(wire, rr[3])[0] for rr in cnames))
        aliases.extend(targets)
        owner = targets[0]
    return None  # chain too long: dnspython raises, and says so


_Record = tuple[str, int, int, int, int]  # owner (lower-case text), type, ttl, rdata start, end


def _section(wire: bytes, offset: int, count: int) -> tuple[list[_Record], int]:
    records = []
    for _ in range(count):
        owner, offset = _name(wire, offset)
        rdtype, rdclass, ttl, length = _RR.unpack_from(wire, offset)
        start = offset + 10
        offset = start + length
        if offset > len(wire):
            raise _Unhandled
        if rdclass == _IN and ttl < 2**31:
            records.append((owner, rdtype, ttl, start, offset))
        elif rdtype in (_CNAME, _SOA, *_CODES.values()):
            raise _Unhandled  # another class, or a TTL dnspython would read differently
    return records, offset


def _name(wire: bytes, offset: int) -> tuple[str, int]:
    """A (possibly compressed) name as lower-case absolute text, and the offset after it."""
    labels: list[bytes] = []
    end = -1
    pointer_limit = offset
    while True:
        length = wire[offset]
        if length == 0:
            offset += 1
            break
        if length >= 0xC0:
            target = (length & 0x3F) << 8 | wire[offset + 1]
            if target >= pointer_limit:
                raise _Unhandled  # pointers must go backwards, as dnspython requires
            if end < 0:
                end = offset + 2
            offset = pointer_limit = target
            continue
        if length > 63:
            raise _Unhandled
        label = wire[offset + 1 : offset + 1 + length]
        if len(label) != length or not _PLAIN.issuperset(label):
            raise _Unhandled  # dnspython would escape it: let it
        labels.append(label)
        offset += 1 + length
    text = b".".join(labels).decode("ascii").lower() + "."
    if len(text) > 255:
        raise _Unhandled
    return text, (end if end >= 0 else offset)


def _text(name: bytes) -> str:
    labels, i = [], 0
    while name[i]:
        labels.append(name[i + 1 : i + 1 + name[i]])
        i += 1 + name[i]
    return b".".join(labels).decode("ascii") + "."


def _rdata(wire: bytes, code: int, rr: _Record) -> str | SrvRecord:
    start, end = rr[3], rr[4]
    if code == 1:
        if end - start != 4:
            raise _Unhandled
        return dns.ipv4.inet_ntoa(wire[start:end])
    if code == 28:
        if end - start != 16:
            raise _Unhandled
        return dns.ipv6.inet_ntoa(wire[start:end])
    priority, weight, port = struct.unpack_from("!HHH", wire, start)
    target, after = _name(wire, start + 6)
    if after != end:
        raise _Unhandled
    return SrvRecord(priority=priority, weight=weight, port=port, target=target)


def _soa(wire: bytes, authority: list[_Record]) -> int | None:
    """RFC 2308 negative TTL from the first SOA in the authority section, as the transport did."""
    soas = [rr for rr in authority if rr[1] == _SOA]
    if not soas:
        return None
    owner = soas[0][0]
    rrset = [rr for rr in soas if rr[0] == owner]
    _, offset = _name(wire, rrset[0][3])  # mname
    _, offset = _name(wire, offset)  # rname
    if offset + 20 != rrset[0][4]:
        raise _Unhandled  # the five counters must end the record, as dnspython checks
    minimum = struct.unpack_from("!IIIII", wire, offset)[4]
    return int(min(min(rr[2] for rr in rrset), minimum))
