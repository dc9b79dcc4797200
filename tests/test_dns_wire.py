"""The DNS fast path decodes exactly as the dnspython path does, or declines.

Every reply here is built with dnspython. The reference is what the transport made of it
before the fast path existed: ``_result()`` of a dnspython ``Answer`` (NXDOMAIN: the bare
status). The fast path must give the same ``DnsResult`` or ``None`` (dnspython decides).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mxresolve import DnsQuery, DnsResult, DnsStatus, RecordType
from mxresolve._io.dns_transport import _result
from mxresolve._io.dns_wire import Question, decode_response, encode_query, is_reply_to

SOA = "ns.example.org. hostmaster.example.org. 1 3600 600 86400 60"


Records = Sequence[tuple[str, int, str, str]]  # owner, TTL, type, rdata text


def _reply(
    qname: str,
    rdtype: RecordType,
    answer: Records = (),
    authority: Records = (),
    rcode: dns.rcode.Rcode = dns.rcode.NOERROR,
) -> tuple[DnsQuery, Question, bytes]:
    query = DnsQuery(qname=qname, rdtype=rdtype)
    question = encode_query(qname, rdtype)
    assert question is not None
    request = dns.message.from_wire(question.wire)
    response = dns.message.make_response(request)
    for section, records in ((response.answer, answer), (response.authority, authority)):
        for owner, ttl, kind, text in records:
            section.append(dns.rrset.from_text(owner, ttl, "IN", kind, text))
    response.set_rcode(rcode)
    return query, question, response.to_wire()


def _reference(query: DnsQuery, wire: bytes) -> DnsResult:
    response = dns.message.from_wire(wire)
    assert isinstance(response, dns.message.QueryMessage)
    if response.rcode() == dns.rcode.NXDOMAIN:
        return DnsResult(status=DnsStatus.NXDOMAIN)
    answer = dns.resolver.Answer(
        dns.name.from_text(query.qname),
        dns.rdatatype.from_text(query.rdtype.value),
        dns.rdataclass.IN,
        response,
    )
    return _result(query, answer)


CASES = {
    "one A": ("a.example.org.", RecordType.A, [("a.example.org.", 300, "A", "192.0.2.1")], []),
    "A records, the lowest TTL, duplicates once": (
        "a.example.org.",
        RecordType.A,
        [
            ("a.example.org.", 300, "A", "192.0.2.1"),
            ("a.example.org.", 60, "A", "192.0.2.2"),
        ],
        [],
    ),
    "AAAA in RFC 5952 form": (
        "a.example.org.",
        RecordType.AAAA,
        [("a.example.org.", 300, "AAAA", "2001:db8:0:0:0:0:0:1")],
        [],
    ),
    "IPv4-mapped AAAA": (
        "a.example.org.",
        RecordType.AAAA,
        [("a.example.org.", 300, "AAAA", "::ffff:192.0.2.1")],
        [],
    ),
    "SRV records, compressed targets": (
        "_matrix-fed._tcp.example.org.",
        RecordType.SRV,
        [
            ("_matrix-fed._tcp.example.org.", 300, "SRV", "10 5 8448 fed.example.org."),
            ("_matrix-fed._tcp.example.org.", 300, "SRV", "20 0 8443 Other.Example.ORG."),
        ],
        [],
    ),
    "SRV target '.'": (
        "_matrix-fed._tcp.example.org.",
        RecordType.SRV,
        [("_matrix-fed._tcp.example.org.", 300, "SRV", "0 0 0 .")],
        [],
    ),
    "a CNAME chain": (
        "a.example.org.",
        RecordType.A,
        [
            ("a.example.org.", 300, "CNAME", "b.example.org."),
            ("b.example.org.", 300, "CNAME", "c.example.net."),
            ("c.example.net.", 30, "A", "192.0.2.3"),
        ],
        [],
    ),
    "a CNAME to nothing, with an SOA": (
        "a.example.org.",
        RecordType.AAAA,
        [("a.example.org.", 300, "CNAME", "b.example.org.")],
        [("example.org.", 600, "SOA", SOA)],
    ),
    "NODATA with an SOA": (
        "a.example.org.",
        RecordType.AAAA,
        [],
        [("example.org.", 30, "SOA", SOA)],
    ),
    "NODATA without an SOA": ("a.example.org.", RecordType.AAAA, [], []),
    "answers for other names are ignored": (
        "a.example.org.",
        RecordType.A,
        [("x.example.org.", 300, "A", "192.0.2.9"), ("a.example.org.", 300, "A", "192.0.2.1")],
        [],
    ),
    "owner names in another case": (
        "a.example.org.",
        RecordType.A,
        [("A.EXAMPLE.org.", 300, "A", "192.0.2.1")],
        [],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_fast_path_decodes_as_dnspython_does(case: str) -> None:
    qname, rdtype, answer, authority = CASES[case]
    query, question, wire = _reply(qname, rdtype, answer, authority)
    assert decode_response(wire, question) == _reference(query, wire)


def test_nxdomain() -> None:
    _, question, wire = _reply("nx.example.org.", RecordType.A, [], [], dns.rcode.NXDOMAIN)
    assert decode_response(wire, question) == DnsResult(status=DnsStatus.NXDOMAIN)


def _flip(wire: bytes, offset: int, mask: int) -> bytes:
    return wire[:offset] + bytes((wire[offset] | mask,)) + wire[offset + 1 :]


@pytest.mark.parametrize(
    ("case", "change"),
    [
        ("truncated (TC)", lambda w: _flip(w, 2, 0x02)),
        ("trailing junk", lambda w: w + b"\0"),
        ("cut short", lambda w: w[:-3]),
    ],
)
def test_what_it_cannot_vouch_for_goes_to_dnspython(
    case: str, change: Callable[[bytes], bytes]
) -> None:
    _, question, wire = _reply(
        "a.example.org.", RecordType.A, [("a.example.org.", 300, "A", "192.0.2.1")]
    )
    assert decode_response(change(wire), question) is None


@pytest.mark.parametrize("rcode", [dns.rcode.SERVFAIL, dns.rcode.REFUSED, dns.rcode.FORMERR])
def test_other_rcodes_go_to_dnspython(rcode: dns.rcode.Rcode) -> None:
    _, question, wire = _reply("a.example.org.", RecordType.A, [], [], rcode)
    assert decode_response(wire, question) is None


def test_names_dnspython_would_escape_go_to_dnspython() -> None:
    _, question, wire = _reply(
        "_matrix-fed._tcp.example.org.",
        RecordType.SRV,
        [("_matrix-fed._tcp.example.org.", 300, "SRV", r"0 0 8448 odd\032name.example.org.")],
    )
    assert decode_response(wire, question) is None


def test_a_chain_longer_than_dnspython_follows_goes_to_dnspython() -> None:
    chain = [(f"c{i}.example.org.", 300, "CNAME", f"c{i + 1}.example.org.") for i in range(17)]
    _, question, wire = _reply("c0.example.org.", RecordType.A, chain)
    assert decode_response(wire, question) is None


def test_nxdomain_with_an_answer_goes_to_dnspython() -> None:
    _, question, wire = _reply(
        "a.example.org.",
        RecordType.A,
        [("a.example.org.", 300, "CNAME", "b.example.org.")],
        [],
        dns.rcode.NXDOMAIN,
    )
    assert decode_response(wire, question) is None


def test_replies_to_other_questions_are_not_replies() -> None:
    _, question, wire = _reply(
        "a.example.org.", RecordType.A, [("a.example.org.", 300, "A", "192.0.2.1")]
    )
    _, other, _ = _reply("b.example.org.", RecordType.A)
    assert is_reply_to(wire, question)
    assert not is_reply_to(wire, other)
    assert not is_reply_to(question.wire, question)  # the query itself: QR is not set
    assert not is_reply_to(b"\xde\xad", question)


def test_queries_are_what_dnspython_sends() -> None:
    question = encode_query("Example.ORG.", RecordType.SRV)
    assert question is not None
    sent = dns.message.from_wire(question.wire)
    expected = dns.message.make_query("Example.ORG.", "SRV")
    expected.id = sent.id
    assert question.wire == expected.to_wire()
    assert sent.flags == dns.flags.RD


@pytest.mark.parametrize(
    ("qname", "rdtype"),
    [
        ("bücher.example.", RecordType.A),
        ("a" * 64 + ".example.", RecordType.A),
        ("no-dot", RecordType.A),
        ("a.example.", RecordType.CNAME),
        ("odd name.example.", RecordType.A),
    ],
)
def test_queries_it_does_not_encode(qname: str, rdtype: RecordType) -> None:
    assert encode_query(qname, rdtype) is None


_LABEL = st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9-]{0,10}", fullmatch=True)
_NAME = st.lists(_LABEL, min_size=1, max_size=4).map(lambda ls: ".".join(ls) + ".")


@settings(max_examples=200, deadline=None)
@given(
    chain=st.lists(_NAME, max_size=3, unique_by=str.lower),
    addresses=st.lists(st.integers(0, 2**32 - 1), max_size=4),
    ttls=st.lists(st.integers(0, 2**31 - 1), min_size=8, max_size=8),
    noise=st.lists(st.tuples(_NAME, st.integers(0, 2**32 - 1)), max_size=3),
)
def test_random_chains_decode_as_dnspython_does(
    chain: list[str], addresses: list[int], ttls: list[int], noise: list[tuple[str, int]]
) -> None:
    names = ["start.example.", *[n for n in chain if n.lower() != "start.example."]]
    answer = [(a, ttls[i], "CNAME", b) for i, (a, b) in enumerate(itertools.pairwise(names))]
    answer += [
        (names[-1].upper() if i % 2 else names[-1], ttls[4 + i % 4], "A", _ip(a))
        for i, a in enumerate(addresses)
    ]
    answer += [
        (n, 300, "A", _ip(a)) for n, a in noise if n.lower() not in {x.lower() for x in names}
    ]
    query, question, wire = _reply(
        names[0], RecordType.A, answer, [("example.", ttls[3], "SOA", SOA)]
    )
    assert decode_response(wire, question) == _reference(query, wire)


def _ip(value: int) -> str:
    return ".".join(str(value >> shift & 255) for shift in (24, 16, 8, 0))
