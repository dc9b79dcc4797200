"""A small DNS wire codec for the common case, so a query needs no dnspython message objects.

It covers what resolution asks for almost every time: one A, AAAA or SRV question, answered
NOERROR (records, or none) or NXDOMAIN, with CNAME chains followed as dnspython does. Anything
else - truncation, another rcode, a name it would have to escape, a malformed or surprising
message - gives ``None``, and the transport asks dnspython instead. So the fast path never
decides an outcome differently from dnspython; it only skips building its objects, which cost
most of a query's time (see docs/performance.md).
"""

from __future__ import annotations

import os
import struct

from .._core.events import DnsResult, DnsStatus, RecordType, SrvRecord

# dnspython's dns.ipv4 and dns.ipv6 (and dns.exception with them) are imported by the first
# address decoded (_rdata): a resolution that sends no query, as of an IP literal, never
# needs them.

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
    # Unpredictable, as secrets.randbits(16) is; `secrets` would import hmac and hashlib.
    qid = int.from_bytes(os.urandom(2), "big")
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
        # CNAME is a singleton type: dnspython keeps the last of an owner's records.
        owner = _name(wire, cnames[-1][3], cnames[-1][4])[0]
        aliases.append(owner)
    return None  # chain too long: dnspython raises, and says so


_Record = tuple[str, int, int, int, int]  # owner (lower-case text), type, ttl, rdata start, end

# The record types it checks as strictly as dnspython parses them; any other type, any other
# class, OPT and TSIG (which dnspython checks for position and keys) make it step aside.
_NS = 2
_CHECKED = frozenset({*_CODES.values(), _CNAME, _SOA, _NS})
_MAX_POINTERS = 16  # dnspython's MAX_COMPRESSION_POINTER_CHAIN


def _section(wire: bytes, offset: int, count: int) -> tuple[list[_Record], int]:
    records = []
    for _ in range(count):
        owner, offset = _name(wire, offset, len(wire))
        rdtype, rdclass, ttl, length = _RR.unpack_from(wire, offset)
        start = offset + 10
        offset = start + length
        if offset > len(wire) or rdclass != _IN or rdtype not in _CHECKED or ttl >= 2**31:
            raise _Unhandled  # cut short, or not a record it vouches for
        _check_rdata(wire, rdtype, start, offset)
        records.append((owner, rdtype, ttl, start, offset))
    return records, offset


def _check_rdata(wire: bytes, rdtype: int, start: int, end: int) -> None:
    """Raise unless dnspython would parse this rdata: it parses every record, used or not."""
    if rdtype == 1:
        after = start + 4
    elif rdtype == 28:
        after = start + 16
    elif rdtype == 33:
        after = _name(wire, start + 6, end)[1] if start + 6 <= end else -1
    elif rdtype == _SOA:
        after = _name(wire, _name(wire, start, end, plain=False)[1], end, plain=False)[1] + 20
    else:  # CNAME, NS: one name
        after = _name(wire, start, end, plain=rdtype == _CNAME)[1]
    if after != end:
        raise _Unhandled  # dnspython requires the rdata to end exactly there


def _name(wire: bytes, offset: int, end: int, *, plain: bool = True) -> tuple[str, int]:
    """A (possibly compressed) name as lower-case absolute text, and the offset after it.

    Checked as dnspython's ``from_wire_parser`` checks it: labels up to 63 bytes, no other
    label type, pointers strictly backwards, each pointed-to part ending before the part
    that points to it, at most 16 pointers, at most 255 bytes in all; nothing read at or
    past ``end`` (the message's, or the rdata's for a name in rdata). With ``plain``, a
    label dnspython would escape in text makes it step aside: the text is compared and kept.
    """
    labels: list[bytes] = []
    size = 1  # the root label's length byte
    after = -1
    start = lowest = offset
    pointers = 0
    while True:
        if offset >= end:
            raise _Unhandled
        length = wire[offset]
        offset += 1
        if length == 0:
            break
        if length < 64:
            if offset + length > end:
                raise _Unhandled
            label = wire[offset : offset + length]
            if plain and not _PLAIN.issuperset(label):
                raise _Unhandled  # dnspython would escape it: let it
            labels.append(label)
            size += 1 + length
            offset += length
        elif length >= 0xC0:
            if offset >= end:
                raise _Unhandled
            target = (length & 0x3F) << 8 | wire[offset]
            offset += 1
            if after < 0:
                after = offset
            pointers += 1
            if target >= lowest or pointers > _MAX_POINTERS:
                raise _Unhandled
            end, offset, start, lowest = start, target, target, target
        else:
            raise _Unhandled  # label types 0x40 and 0x80: dnspython refuses them
    if size > 255:
        raise _Unhandled
    text = b".".join(labels).decode("ascii", "replace").lower() + "."
    return text, (after if after >= 0 else offset)


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
        import dns.ipv4  # here: see the note on the imports above

        return dns.ipv4.inet_ntoa(wire[start:end])
    if code == 28:
        if end - start != 16:
            raise _Unhandled
        import dns.ipv6  # here: see the note on the imports above

        return dns.ipv6.inet_ntoa(wire[start:end])
    priority, weight, port = struct.unpack_from("!HHH", wire, start)
    target, after = _name(wire, start + 6, end)
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
    end = rrset[-1][4]  # a singleton type too: the last record stands; its rdata is checked
    minimum = struct.unpack_from("!I", wire, end - 4)[0]
    return int(min(min(rr[2] for rr in rrset), minimum))
