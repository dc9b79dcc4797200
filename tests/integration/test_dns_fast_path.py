"""The DNS fast path against the real Knot server: it answers as dnspython alone does.

For every owner name in the test zone, its SRV names, a missing name and the SERVFAIL zones,
and for each record type the resolver asks for, the transport's answer must equal what the
pure dnspython path makes of the same question. The fast path may decline (SERVFAIL goes to
dnspython), but it may never decide differently.
"""

from __future__ import annotations

import asyncio

import pytest

from mxresolve import AsyncDnspythonTransport, DnspythonTransport, DnsQuery, DnsResult, RecordType
from mxresolve._io.dns_transport import _HANDLED, _failure, _reply, _result

from .world import SERVFAIL_ZONES, ZONE, LoopbackWorld, parse_zone

pytestmark = pytest.mark.integration


def _questions() -> list[DnsQuery]:
    owners = {str(name).rstrip(".") for name in parse_zone().nodes}
    names = set()
    for owner in owners:
        bare = owner.removeprefix("_matrix-fed._tcp.").removeprefix("_matrix._tcp.")
        names |= {owner, f"_matrix-fed._tcp.{bare}", f"_matrix._tcp.{bare}"}
    names |= {f"nx.{ZONE}", f"NoDaTa.{ZONE.upper()}", *SERVFAIL_ZONES}
    return [
        DnsQuery(qname=f"{name}.", rdtype=rdtype)
        for name in sorted(names)
        for rdtype in (RecordType.A, RecordType.AAAA, RecordType.SRV)
    ]


def _by_dnspython(transport: DnspythonTransport, query: DnsQuery) -> object:
    try:
        answer = transport._resolver.resolve(
            query.qname, query.rdtype.value, lifetime=5.0, raise_on_no_answer=False, search=False
        )
    except _HANDLED as exc:
        return _failure(exc)
    return _result(query, answer)


def test_the_fast_path_answers_as_dnspython_does(loopback_world: LoopbackWorld) -> None:
    servers = [loopback_world.nameserver]
    sync = DnspythonTransport(servers)
    questions = _questions()

    async def through_asyncio() -> list[object]:
        transport = AsyncDnspythonTransport(servers)
        return [await transport.query(q, timeout=5.0) for q in questions]

    async_answers = asyncio.run(through_asyncio())
    differences, declined = [], set()
    for query, async_answer in zip(questions, async_answers, strict=True):
        expected = _by_dnspython(sync, query)
        pending = sync.start_query(query, 2.0)  # the fast path alone, dnspython not asked
        fast = pending.fast if pending.fast is not None else _reply(pending, wait=True)
        pending.close()
        if not isinstance(fast, DnsResult):
            declined.add(query.qname.rstrip("."))
        answers = [("sync", sync.query(query, timeout=5.0)), ("asyncio", async_answer)]
        if isinstance(fast, DnsResult):
            answers.append(("fast path alone", fast))
        differences += [
            f"{how} {query.qname} {query.rdtype.value}: {got} != {expected}"
            for how, got in answers
            if got != expected
        ]
    assert len(questions) > 300  # the whole zone was asked, not a handful
    assert not differences, "\n".join(differences[:20])
    # Only the SERVFAIL zones go to dnspython: everything else the fast path itself answered.
    assert declined == set(SERVFAIL_ZONES)
