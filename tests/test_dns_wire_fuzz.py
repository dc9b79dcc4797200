"""Differential fuzz: wherever the DNS fast path decides, dnspython parses and agrees.

Replies to A, AAAA and SRV questions (answers with glue, NXDOMAIN and NODATA with an
SOA, CNAME chains), built by dnspython and then mutated: bit flips, truncations,
splices, rewritten compression pointers and section counts. The fast path may decline
anything; what it decides must be a message ``dns.message.from_wire`` accepts, decided
as the dnspython path decides it. A longer run: tests/fuzz/fuzz_dns_wire.py
(docs/fuzzing.md).
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz.dns_differential import (
    Refused,
    Seed,
    check,
    dnspython_decides,
    mutate,
    seeds,
)
from mxresolve._io.dns_wire import decode_response

SEEDS = seeds()


@st.composite
def mutated(draw: st.DrawFn) -> tuple[Seed, bytes]:
    seed = draw(st.sampled_from(SEEDS))
    return seed, mutate(seed, lambda low, high: draw(st.integers(low, high)))


@settings(max_examples=3000)
@given(mutated())
def test_wherever_the_fast_path_decides_dnspython_parses_and_agrees(
    case: tuple[Seed, bytes],
) -> None:
    seed, wire = case
    check(seed, wire)


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: s.name)
def test_every_seed_is_decided_by_the_fast_path(seed: Seed) -> None:
    # Otherwise the mutations above would test only the declining.
    assert check(seed, seed.wire) is not None


def _soa_with_a_bad_pointer() -> tuple[Seed, bytes]:
    seed = next(s for s in SEEDS if s.name == "NXDOMAIN with SOA")
    wire = bytearray(seed.wire)
    # The SOA's rname is "hostmaster" and a pointer: point it forwards, which dnspython refuses.
    at = wire.index(b"\x0ahostmaster") + 11
    assert wire[at] >= 0xC0
    wire[at : at + 2] = struct.pack("!H", 0xC000 | (len(wire) - 2))
    return seed, bytes(wire)


def test_a_bad_pointer_in_the_soa_is_left_to_dnspython() -> None:
    # The case the differential run found most: NXDOMAIN decided on a broken SOA.
    seed, wire = _soa_with_a_bad_pointer()
    with pytest.raises(Refused, match="BadPointer"):
        dnspython_decides(seed.query, wire)
    assert decode_response(wire, seed.question) is None


def test_two_cnames_at_one_owner_the_last_stands_as_in_dnspython() -> None:
    # Found by the atheris harness: CNAME is a singleton type, so dnspython keeps only the
    # last record of the rrset, and follows that one.
    seed = next(s for s in SEEDS if s.name == "CNAME chain to A")
    wire = bytearray(seed.wire)
    # The second CNAME's owner is a pointer to web.example.org; make it www.example.org.
    web = wire.index(b"\x03web")
    second = wire.index(struct.pack("!H", 0xC000 | web))
    wire[second : second + 2] = struct.pack("!H", 0xC00C)
    result = check(seed, bytes(wire))
    assert result is not None
    assert result.aliases == ("host.example.net.",)
    assert result.records == ("198.51.100.9",)
