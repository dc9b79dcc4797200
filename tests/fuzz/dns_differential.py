"""The DNS fast path against dnspython: seed replies, mutations, and the oracle.

Shared by the hypothesis test (tests/test_dns_wire_fuzz.py, in the default run) and
the atheris harness (tests/fuzz/fuzz_dns_wire.py, a longer run; docs/fuzzing.md).

The property: wherever ``decode_response`` decides (returns a ``DnsResult``),
``dns.message.from_wire`` parses the same bytes, and the dnspython path, as the
transport runs it, decides the same ``DnsResult``.
"""

from __future__ import annotations

import dataclasses
import functools
import struct
from collections.abc import Callable

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset

from mxresolve import DnsQuery, DnsResult, DnsStatus, RecordType
from mxresolve._io.dns_transport import _result
from mxresolve._io.dns_wire import Question, decode_response, encode_query

SOA = "ns.example.org. hostmaster.example.org. 2026010101 3600 600 86400 60"

_Records = tuple[tuple[str, int, str, str], ...]  # owner, TTL, type, rdata text


@dataclasses.dataclass(frozen=True)
class Seed:
    """A real reply, built by dnspython (with its name compression), to mutate."""

    name: str
    query: DnsQuery
    question: Question
    wire: bytes


def _seed(
    name: str,
    qname: str,
    rdtype: RecordType,
    answer: _Records = (),
    authority: _Records = (),
    additional: _Records = (),
    rcode: dns.rcode.Rcode = dns.rcode.NOERROR,
) -> Seed:
    question = encode_query(qname, rdtype)
    assert question is not None
    response = dns.message.make_response(dns.message.from_wire(question.wire))
    for section, records in (
        (response.answer, answer),
        (response.authority, authority),
        (response.additional, additional),
    ):
        for owner, ttl, kind, text in records:
            section.append(dns.rrset.from_text(owner, ttl, "IN", kind, text))
    response.set_rcode(rcode)
    return Seed(name, DnsQuery(qname=qname, rdtype=rdtype), question, response.to_wire())


@functools.cache
def seeds() -> tuple[Seed, ...]:
    fed = "_matrix-fed._tcp.example.org."
    return (
        _seed("A", "a.example.org.", RecordType.A, (("a.example.org.", 300, "A", "192.0.2.1"),)),
        _seed(
            "two A",
            "a.example.org.",
            RecordType.A,
            (("a.example.org.", 300, "A", "192.0.2.1"), ("a.example.org.", 60, "A", "192.0.2.2")),
        ),
        _seed(
            "AAAA",
            "a.example.org.",
            RecordType.AAAA,
            (("a.example.org.", 300, "AAAA", "2001:db8::1"),),
        ),
        _seed(
            "SRV with glue",
            fed,
            RecordType.SRV,
            (
                (fed, 300, "SRV", "10 5 8448 matrix.example.org."),
                (fed, 300, "SRV", "20 0 443 backup.example.org."),
            ),
            (("example.org.", 3600, "NS", "ns.example.org."),),
            (
                ("matrix.example.org.", 300, "A", "192.0.2.7"),
                ("matrix.example.org.", 300, "AAAA", "2001:db8::7"),
            ),
        ),
        _seed(
            "NXDOMAIN with SOA",
            "gone.example.org.",
            RecordType.A,
            authority=(("example.org.", 600, "SOA", SOA),),
            rcode=dns.rcode.NXDOMAIN,
        ),
        _seed(
            "NODATA with SOA",
            fed,
            RecordType.SRV,
            authority=(("example.org.", 600, "SOA", SOA),),
        ),
        _seed(
            "CNAME chain to A",
            "www.example.org.",
            RecordType.A,
            (
                ("www.example.org.", 300, "CNAME", "web.example.org."),
                ("web.example.org.", 200, "CNAME", "host.example.net."),
                ("host.example.net.", 100, "A", "198.51.100.9"),
            ),
        ),
        _seed(
            "CNAME chain to NODATA",
            "www.example.org.",
            RecordType.AAAA,
            (("www.example.org.", 300, "CNAME", "web.example.org."),),
            (("example.org.", 600, "SOA", SOA),),
        ),
    )


class Refused(Exception):
    """dnspython refuses the message (from_wire raised)."""


def dnspython_decides(query: DnsQuery, wire: bytes) -> DnsResult | None:
    """What the dnspython path makes of ``wire``, as its resolver would use it.

    Raises :class:`Refused` if ``dns.message.from_wire`` refuses the bytes; ``None``
    when the resolver would not take the reply as an answer (another rcode, or an
    ``Answer`` it cannot build, such as a chain longer than it follows).
    """
    try:
        response = dns.message.from_wire(wire)
    except Exception as exc:  # every refusal counts, whatever its type
        raise Refused(f"{type(exc).__name__}: {exc}") from exc
    qname = dns.name.from_text(query.qname)
    rcode = response.rcode()
    try:
        if rcode == dns.rcode.NXDOMAIN:  # the resolver validates it as an ANY answer
            dns.resolver.Answer(qname, dns.rdatatype.ANY, dns.rdataclass.IN, response)
            return DnsResult(status=DnsStatus.NXDOMAIN)
        if rcode != dns.rcode.NOERROR:
            return None
        answer = dns.resolver.Answer(
            qname, dns.rdatatype.from_text(query.rdtype.value), dns.rdataclass.IN, response
        )
    except dns.exception.DNSException:
        return None
    return _result(query, answer)


class Disagreement(AssertionError):
    pass


def check(seed: Seed, wire: bytes) -> DnsResult | None:
    """Raise :class:`Disagreement` if the fast path decides ``wire`` unlike dnspython."""
    fast = decode_response(wire, seed.question)
    if fast is None:
        return None
    try:
        reference = dnspython_decides(seed.query, wire)
    except Refused as exc:
        raise Disagreement(
            f"fast path decided {fast} on a message dnspython refuses: {exc}"
        ) from exc
    if fast != reference:
        raise Disagreement(f"fast path decided {fast!r}, dnspython {reference!r}")
    return fast


def pointer_offsets(wire: bytes) -> list[int]:
    """Offsets of bytes that look like the first byte of a compression pointer."""
    return [i for i in range(12, len(wire) - 1) if wire[i] >= 0xC0]


MUTATIONS = ("flip", "byte", "truncate", "splice", "pointer", "count")
_BYTES = (0, 1, 63, 64, 0x80, 0xBF, 0xC0, 0xFF)  # label lengths and types at their edges


def mutate(seed: Seed, pick: Callable[[int, int], int]) -> bytes:
    """One to three mutations of ``seed``'s reply; ``pick(a, b)`` chooses in [a, b].

    The same mutator serves hypothesis (``pick`` draws, so examples shrink) and plain
    counting runs (``pick`` is ``random.Random(n).randint``).
    """
    donors = seeds()
    wire = bytearray(seed.wire)
    for _ in range(pick(1, 3)):
        kind = MUTATIONS[pick(0, len(MUTATIONS) - 1)]
        if kind == "flip" and len(wire) > 12:
            wire[pick(12, len(wire) - 1)] ^= 1 << pick(0, 7)
        elif kind == "byte" and len(wire) > 12:
            wire[pick(12, len(wire) - 1)] = _BYTES[pick(0, len(_BYTES) - 1)]
        elif kind == "truncate" and len(wire) > 13:
            del wire[pick(13, len(wire) - 1) :]
        elif kind == "splice":
            donor = donors[pick(0, len(donors) - 1)].wire
            start = pick(12, len(donor) - 1)
            end = pick(start, len(donor))
            at = pick(12, len(wire))
            wire[at : at + pick(0, 12)] = donor[start:end]
        elif kind == "pointer":
            offsets = pointer_offsets(bytes(wire))
            if offsets:
                i = offsets[pick(0, len(offsets) - 1)]
                wire[i : i + 2] = struct.pack("!H", 0xC000 | pick(0, 0x3FFF))
        elif kind == "count" and len(wire) >= 12:
            which = (6, 8, 10)[pick(0, 2)]
            value = struct.unpack_from("!H", wire, which)[0] + pick(-2, 2)
            struct.pack_into("!H", wire, which, value % 0x10000)
    return bytes(wire)


def count(mutations: int, seed: int) -> tuple[int, int]:
    """(replies the fast path decided, disagreements) over ``mutations`` random mutations."""
    import random

    rng = random.Random(seed)
    decided = disagreements = 0
    for _ in range(mutations):
        base = seeds()[rng.randrange(len(seeds()))]
        try:
            decided += check(base, mutate(base, rng.randint)) is not None
        except Disagreement:
            decided += 1
            disagreements += 1
    return decided, disagreements


if __name__ == "__main__":
    import sys

    runs, seed = (int(a) for a in [*sys.argv[1:], "60000", "1"][:2])
    decided, disagreements = count(runs, seed)
    print(f"{runs} mutated replies: the fast path decided {decided}, disagreed {disagreements}")
