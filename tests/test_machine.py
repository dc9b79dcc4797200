"""The sans-I/O machine's protocol, its transition table, its traces, and its settings.

These tests drive ``ResolutionMachine`` by hand, as a transport would, to pin
what a driver may and may not do; FakeWorld is used where only the outcome of a
whole resolution matters.
"""

from __future__ import annotations

import math
import random
from collections import deque
from typing import Any

import pytest

from mxresolve import (
    NEED_RESULTS,
    DnsQuery,
    DnsResult,
    DnsStatus,
    FailureKind,
    FakeWorld,
    HttpsFailure,
    HttpsFailureKind,
    HttpsGet,
    HttpsResponse,
    InvalidServerName,
    InvalidSettings,
    IpPolicy,
    LocalProtocolError,
    RecordType,
    Resolution,
    ResolutionFailure,
    ResolutionMachine,
    ResolverCache,
    Settings,
    SrvRecord,
    Step,
    TraceKind,
    parse_server_name,
    server_name_advisories,
)
from mxresolve._core.machine import TRANSITIONS, Event, Phase
from one_by_one import ONE_BY_ONE

V4, V6 = "8.8.8.8", "2606:4700::1111"
A_ANSWER = DnsResult(status=DnsStatus.NOERROR, records=(V4,), ttl=300)
AAAA_ANSWER = DnsResult(status=DnsStatus.NOERROR, records=(V6,), ttl=300)
WELL_KNOWN_URL = "https://example.org/.well-known/matrix/server"


def machine(
    name: str = "example.org:8448", *, now: float = 1000.0, settings: Settings | None = None
) -> ResolutionMachine:
    return ResolutionMachine(
        name,
        now=now,
        random=random.Random(0).random,
        cache=ResolverCache(),
        settings=settings if settings is not None else Settings(**ONE_BY_ONE),
    )


def take_requests(m: ResolutionMachine) -> list[DnsQuery | HttpsGet]:
    """Everything ``next_event`` hands out before it says NEED_RESULTS."""
    requests: list[DnsQuery | HttpsGet] = []
    while True:
        event = m.next_event()
        if event is NEED_RESULTS:
            return requests
        assert isinstance(event, (DnsQuery, HttpsGet)), event
        requests.append(event)


def address_queries(qname: str) -> tuple[DnsQuery, DnsQuery]:
    return DnsQuery(qname=qname, rdtype=RecordType.AAAA), DnsQuery(qname=qname, rdtype=RecordType.A)


# --- next_event ---------------------------------------------------------------------------


def test_next_event_hands_out_each_request_once_then_need_results() -> None:
    m = machine("example.org:8448")
    aaaa, a = address_queries("example.org.")
    assert m.next_event() == aaaa
    assert list(m.pending) == [aaaa]
    assert m.next_event() == a
    assert m.next_event() is NEED_RESULTS
    assert m.next_event() is NEED_RESULTS  # asking again changes nothing
    assert list(m.pending) == [aaaa, a]


def test_need_results_is_a_sentinel() -> None:
    # It reads well in a driver's log and cannot be mistaken for a request or a result.
    assert repr(NEED_RESULTS) == "NEED_RESULTS"
    assert not isinstance(NEED_RESULTS, (DnsQuery, HttpsGet, Resolution, ResolutionFailure))


def test_step_3_asks_for_the_well_known_first() -> None:
    m = machine("example.org")
    (request,) = take_requests(m)
    assert isinstance(request, HttpsGet)
    assert request.url == WELL_KNOWN_URL


def test_an_ip_literal_needs_no_request_at_all() -> None:
    result = machine("[2606:4700::1111]:8448").next_event()
    assert isinstance(result, Resolution)
    assert result.step is Step.IP_LITERAL
    (target,) = result.targets
    assert (target.host, target.port, target.addresses, target.sni) == (V6, 8448, (V6,), None)


@pytest.mark.parametrize("a_first", [True, False])
@pytest.mark.parametrize(
    ("aaaa_outcome", "addresses"),
    [(AAAA_ANSWER, (V6, V4)), (DnsResult(status=DnsStatus.NODATA), (V4,))],
    ids=["aaaa-answer", "aaaa-nodata"],
)
def test_outcomes_are_accepted_in_any_order(
    a_first: bool, aaaa_outcome: DnsResult, addresses: tuple[str, ...]
) -> None:
    m = machine("example.org:8448")
    aaaa, a = take_requests(m)
    pairs = [(aaaa, aaaa_outcome), (a, A_ANSWER)]
    if a_first:
        pairs.reverse()
    m.receive(*pairs[0], now=1000.0)
    assert m.next_event() is NEED_RESULTS
    assert m.pending == (pairs[1][0],)
    m.receive(*pairs[1], now=1000.0)
    result = m.next_event()
    assert isinstance(result, Resolution)
    assert result.step is Step.EXPLICIT_PORT
    # Whatever the arrival order, IPv6 (when there is any) comes first.
    assert result.targets[0].addresses == addresses
    assert result.targets[0].host_header == "example.org:8448"


def test_outcomes_may_arrive_before_every_request_is_taken() -> None:
    m = machine("example.org:8448")
    aaaa = m.next_event()
    assert isinstance(aaaa, DnsQuery)
    m.receive(aaaa, AAAA_ANSWER, now=1000.0)
    a = m.next_event()
    assert isinstance(a, DnsQuery)
    m.receive(a, A_ANSWER, now=1000.0)
    assert isinstance(m.next_event(), Resolution)


@pytest.mark.parametrize(
    "outcome",
    [HttpsResponse(status=404), HttpsFailure(kind=HttpsFailureKind.CONNECTION_REFUSED)],
)
def test_the_next_batch_follows_once_every_outcome_is_in(
    outcome: HttpsResponse | HttpsFailure,
) -> None:
    m = machine("example.org")
    (get,) = take_requests(m)
    m.receive(get, outcome, now=1000.0)
    assert take_requests(m) == [
        DnsQuery(qname="_matrix-fed._tcp.example.org.", rdtype=RecordType.SRV)
    ]


def test_after_the_end_next_event_returns_the_same_result() -> None:
    m = machine("example.org:8448")
    aaaa, a = take_requests(m)
    m.receive(aaaa, AAAA_ANSWER, now=1000.0)
    m.receive(a, A_ANSWER, now=1000.0)
    result = m.next_event()
    assert isinstance(result, Resolution)
    assert m.next_event() is result
    assert m.next_event() is result
    assert m.pending == ()


# --- misuse is a LocalProtocolError -----------------------------------------------------


def test_an_outcome_for_an_unknown_request_is_refused() -> None:
    m = machine("example.org:8448")
    stranger = DnsQuery(qname="other.example.", rdtype=RecordType.A)
    message = r"not waiting for an outcome of DNS A other\.example\."
    m.next_event()  # refused while requests are still being handed out, too
    with pytest.raises(LocalProtocolError, match=message):
        m.receive(stranger, DnsResult(status=DnsStatus.NXDOMAIN), now=1000.0)
    take_requests(m)
    with pytest.raises(LocalProtocolError, match=message):
        m.receive(stranger, A_ANSWER, now=1000.0)


def test_an_outcome_for_a_request_not_handed_out_yet_is_refused() -> None:
    m = machine("example.org:8448")
    m.next_event()  # only the AAAA query is handed out
    _, a = address_queries("example.org.")
    with pytest.raises(LocalProtocolError, match="has not been handed out by next_event"):
        m.receive(a, A_ANSWER, now=1000.0)


@pytest.mark.parametrize("outcome", [AAAA_ANSWER, DnsResult(status=DnsStatus.NXDOMAIN)])
def test_a_second_outcome_for_one_request_is_refused(outcome: DnsResult) -> None:
    m = machine("example.org:8448")
    aaaa, _ = take_requests(m)
    m.receive(aaaa, outcome, now=1000.0)
    with pytest.raises(LocalProtocolError, match="already received an outcome for DNS AAAA"):
        m.receive(aaaa, outcome, now=1000.0)


def test_an_outcome_after_the_end_is_refused() -> None:
    m = machine("example.org:8448")
    aaaa, a = take_requests(m)
    m.receive(aaaa, AAAA_ANSWER, now=1000.0)
    m.receive(a, A_ANSWER, now=1000.0)
    with pytest.raises(LocalProtocolError, match="not waiting"):
        m.receive(a, A_ANSWER, now=1000.0)


def test_a_dns_result_for_an_https_get_is_refused() -> None:
    m = machine("example.org")
    (get,) = take_requests(m)
    with pytest.raises(
        LocalProtocolError,
        match=r"GET https://example\.org/\.well-known/matrix/server needs an HttpsResponse "
        r"or HttpsFailure, got DnsResult",
    ):
        m.receive(get, A_ANSWER, now=1000.0)


@pytest.mark.parametrize("rdtype", [RecordType.AAAA, RecordType.A])
@pytest.mark.parametrize(
    "outcome",
    [
        HttpsResponse(status=200, body=b"{}"),
        HttpsResponse(status=200),
        HttpsFailure(kind=HttpsFailureKind.CONNECT_TIMEOUT),
    ],
)
def test_an_https_outcome_for_a_dns_query_is_refused(
    rdtype: RecordType, outcome: HttpsResponse | HttpsFailure
) -> None:
    m = machine("example.org:8448")
    requests = {r.rdtype: r for r in take_requests(m) if isinstance(r, DnsQuery)}
    with pytest.raises(
        LocalProtocolError,
        match=f"DNS {rdtype.value} example.org. needs a DnsResult, got {type(outcome).__name__}",
    ):
        m.receive(requests[rdtype], outcome, now=1000.0)


@pytest.mark.parametrize(
    ("rdtype", "record", "message"),
    [
        (RecordType.A, V6, "2606:4700::1111 is not an IPv4 address"),
        (RecordType.A, "2001:db8::1", "2001:db8::1 is not an IPv4 address"),
        (RecordType.AAAA, V4, "8.8.8.8 is not an IPv6 address"),
        (RecordType.A, "example.org", "'example.org' is not an IP address"),
        (RecordType.A, "not-an-ip", "'not-an-ip' is not an IP address"),
        (RecordType.A, "8.8.8.256", "is not an IP address"),
        (
            RecordType.A,
            SrvRecord(priority=0, weight=0, port=1, target="a."),
            "is not a string",
        ),
    ],
)
def test_a_bad_address_record_is_refused(rdtype: RecordType, record: Any, message: str) -> None:
    m = machine("example.org:8448")
    requests = {r.rdtype: r for r in take_requests(m) if isinstance(r, DnsQuery)}
    bad = DnsResult(status=DnsStatus.NOERROR, records=(record,))
    with pytest.raises(LocalProtocolError, match="bad record in the answer to DNS") as caught:
        m.receive(requests[rdtype], bad, now=1000.0)
    assert message in str(caught.value)


def test_a_string_in_an_srv_answer_is_refused() -> None:
    m = machine("example.org")
    (get,) = take_requests(m)
    m.receive(get, HttpsResponse(status=404), now=1000.0)
    (srv,) = take_requests(m)
    bad = DnsResult(status=DnsStatus.NOERROR, records=("10 5 8448 a.example.",))
    with pytest.raises(LocalProtocolError, match="is not an SrvRecord"):
        m.receive(srv, bad, now=1000.0)


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (HttpsResponse(status=99), "HTTP status 99 is not in 100-599"),
        (HttpsResponse(status=600), "HTTP status 600 is not in 100-599"),
        (HttpsResponse(status=200, body="{}"), "body must be bytes"),  # type: ignore[arg-type]
    ],
)
def test_a_malformed_https_response_is_refused(response: HttpsResponse, message: str) -> None:
    m = machine("example.org")
    (get,) = take_requests(m)
    with pytest.raises(LocalProtocolError, match=message):
        m.receive(get, response, now=1000.0)


def test_a_bad_alias_is_refused() -> None:
    m = machine("example.org:8448")
    aaaa, _ = take_requests(m)
    with pytest.raises(LocalProtocolError, match="bad alias ''"):
        m.receive(aaaa, DnsResult(status=DnsStatus.NODATA, aliases=("",)), now=1000.0)


def test_a_refused_outcome_leaves_the_machine_usable() -> None:
    m = machine("example.org:8448")
    aaaa, a = take_requests(m)
    with pytest.raises(LocalProtocolError):
        m.receive(aaaa, A_ANSWER, now=1000.0)  # an IPv4 address in an AAAA answer
    assert m.pending == (aaaa, a)
    m.receive(aaaa, AAAA_ANSWER, now=1000.0)
    m.receive(a, A_ANSWER, now=1000.0)
    assert isinstance(m.next_event(), Resolution)


def test_the_constructor_checks_its_arguments() -> None:
    for bad_name in ("exa_mple.org", "bad name"):
        with pytest.raises(InvalidServerName):
            machine(bad_name)
    for bad_now in (math.nan, math.inf, "0"):
        with pytest.raises(ValueError, match="now must be a finite number"):
            ResolutionMachine("example.org", now=bad_now, random=random.random)  # type: ignore[arg-type]
    parsed = parse_server_name("example.org:8448")
    assert ResolutionMachine(parsed, now=0, random=random.random).server_name is parsed


# --- the deadline -----------------------------------------------------------------------


def test_an_outcome_at_the_deadline_ends_the_resolution() -> None:
    m = machine("example.org", now=1000.0, settings=Settings(**ONE_BY_ONE, deadline=5.0))
    (get,) = take_requests(m)
    m.receive(get, HttpsResponse(status=404), now=1005.0)  # exactly started_at + deadline
    result = m.next_event()
    assert isinstance(result, ResolutionFailure)
    assert result.kind is FailureKind.DEADLINE_EXCEEDED
    assert result.step is Step.WELL_KNOWN
    assert "5 s deadline" in result.message


def test_an_outcome_just_before_the_deadline_does_not() -> None:
    m = machine("example.org", now=1000.0, settings=Settings(**ONE_BY_ONE, deadline=5.0))
    (get,) = take_requests(m)
    m.receive(get, HttpsResponse(status=404), now=1004.999)
    assert isinstance(m.next_event(), DnsQuery)


def test_later_outcomes_for_abandoned_requests_are_ignored() -> None:
    m = machine("example.org:8448", now=0.0, settings=Settings(**ONE_BY_ONE, deadline=1.0))
    aaaa = m.next_event()
    assert isinstance(aaaa, DnsQuery)
    m.receive(aaaa, DnsResult(status=DnsStatus.TIMEOUT), now=2.0)
    ended = m.next_event()
    assert isinstance(ended, ResolutionFailure)
    assert ended.kind is FailureKind.DEADLINE_EXCEEDED
    assert ended.step is Step.EXPLICIT_PORT
    # The A query was never taken; its outcome, or anything for it, is dropped.
    _, a = address_queries("example.org.")
    m.receive(a, A_ANSWER, now=3.0)
    m.receive(a, A_ANSWER, now=3.0)
    assert m.next_event() is ended


def test_pending_never_lists_a_request_that_was_not_handed_out() -> None:
    # pending: "Requests handed out whose outcome has not come back yet". The A
    # query below is never handed out: the deadline ends the resolution first.
    m = machine("example.org:8448", now=0.0, settings=Settings(**ONE_BY_ONE, deadline=1.0))
    aaaa = m.next_event()
    assert isinstance(aaaa, DnsQuery)
    assert list(m.pending) == [aaaa]
    m.receive(aaaa, DnsResult(status=DnsStatus.TIMEOUT), now=2.0)
    assert isinstance(m.next_event(), ResolutionFailure)
    assert list(m.pending) == []


def test_the_deadline_counts_from_the_start_whatever_the_steps() -> None:
    # Each outcome is on time for its own step, but the whole resolution is not.
    m = machine("example.org", now=0.0, settings=Settings(**ONE_BY_ONE, deadline=10.0))
    (get,) = take_requests(m)
    m.receive(get, HttpsResponse(status=404), now=6.0)
    (srv,) = take_requests(m)
    m.receive(srv, DnsResult(status=DnsStatus.NXDOMAIN), now=10.0)
    result = m.next_event()
    assert isinstance(result, ResolutionFailure)
    assert result.kind is FailureKind.DEADLINE_EXCEEDED
    assert result.step is Step.SRV


@pytest.mark.parametrize(("start", "backwards"), [(1000.0, -1e9), (0.0, -100.0)])
def test_a_clock_going_backwards_is_held_not_trusted(start: float, backwards: float) -> None:
    m = machine("example.org", now=start, settings=Settings(**ONE_BY_ONE, deadline=5.0))
    (get,) = take_requests(m)
    m.receive(get, HttpsResponse(status=404), now=backwards)
    # The failure is cached from the last time the machine trusted (its start).
    entry = m.cache.well_known("example.org")
    assert entry is not None
    assert (entry.stored_at, entry.expires_at) == (start, start + 60.0)
    (srv,) = take_requests(m)
    m.receive(srv, DnsResult(status=DnsStatus.NXDOMAIN), now=start - 997.0)
    (legacy,) = take_requests(m)
    m.receive(legacy, DnsResult(status=DnsStatus.NXDOMAIN), now=start + 1.0)
    aaaa, a = take_requests(m)
    m.receive(aaaa, AAAA_ANSWER, now=start + 2.0)
    m.receive(a, A_ANSWER, now=start - 500.0)
    result = m.next_event()
    assert isinstance(result, Resolution)
    assert result.step is Step.ADDRESS
    assert result.expires_at >= start


def test_after_a_backwards_clock_the_deadline_still_counts_from_the_start() -> None:
    m = machine("example.org", now=1000.0, settings=Settings(**ONE_BY_ONE, deadline=5.0))
    (get,) = take_requests(m)
    m.receive(get, HttpsResponse(status=404), now=0.0)
    (srv,) = take_requests(m)
    m.receive(srv, DnsResult(status=DnsStatus.NXDOMAIN), now=1005.0)
    result = m.next_event()
    assert isinstance(result, ResolutionFailure)
    assert result.kind is FailureKind.DEADLINE_EXCEEDED


@pytest.mark.parametrize("bad_now", [math.nan, math.inf, -math.inf])
def test_a_non_finite_clock_reading_is_ignored(bad_now: float) -> None:
    m = machine("example.org:8448", now=1000.0, settings=Settings(**ONE_BY_ONE, deadline=5.0))
    aaaa, a = take_requests(m)
    m.receive(aaaa, AAAA_ANSWER, now=bad_now)
    m.receive(a, A_ANSWER, now=1001.0)
    result = m.next_event()
    assert isinstance(result, Resolution)
    assert math.isfinite(result.expires_at)


# --- the transition table ---------------------------------------------------------------


def test_every_step_appears_in_the_table() -> None:
    states = {s for s, _ in TRANSITIONS} | set(TRANSITIONS.values())
    assert set(Step) <= states


def test_every_state_is_reachable_from_start() -> None:
    seen: set[object] = {Phase.START}
    queue: deque[object] = deque([Phase.START])
    while queue:
        state = queue.popleft()
        for (source, _), target in TRANSITIONS.items():
            if source == state and target not in seen:
                seen.add(target)
                queue.append(target)
    assert seen == set(Step) | set(Phase)


def test_the_endings_are_entered_only_by_targets_found_or_failed() -> None:
    for (source, event), target in TRANSITIONS.items():
        if target is Phase.RESOLVED:
            assert event is Event.TARGETS_FOUND, (source, event)
        if target is Phase.FAILED:
            assert event is Event.FAILED, (source, event)
        if event is Event.TARGETS_FOUND:
            assert target is Phase.RESOLVED
        if event is Event.FAILED:
            assert target is Phase.FAILED


def test_the_endings_have_no_way_out_and_start_has_no_way_in() -> None:
    sources = {s for s, _ in TRANSITIONS}
    assert Phase.RESOLVED not in sources
    assert Phase.FAILED not in sources
    assert Phase.START not in set(TRANSITIONS.values())
    # Every step can move on: none is a dead end.
    assert set(Step) <= sources


# --- traces -------------------------------------------------------------------------------

WORLD_DNS: dict[str, Any] = {
    "example.org.": {"A": {"records": [V4]}, "AAAA": {"records": [V6]}},
    "delegate.example.net.": {"A": {"records": ["1.1.1.1"]}},
    "srv.example.net.": {"AAAA": {"records": ["2001:4860:4860::8888"]}},
}
SRV_RECORD = {"priority": 10, "weight": 5, "port": 8443, "target": "srv.example.net."}


def well_known(m_server: str) -> dict[str, Any]:
    return {WELL_KNOWN_URL: {"status": 200, "body": f'{{"m.server": "{m_server}"}}'}}


SCENARIOS: list[tuple[str, dict[str, Any], dict[str, Any], Step]] = [
    ("8.8.8.8:8448", {}, {}, Step.IP_LITERAL),
    ("example.org:8448", {}, {}, Step.EXPLICIT_PORT),
    ("example.org", {}, well_known("1.1.1.1"), Step.DELEGATED_IP_LITERAL),
    ("example.org", {}, well_known("delegate.example.net:443"), Step.DELEGATED_EXPLICIT_PORT),
    (
        "example.org",
        {"_matrix-fed._tcp.delegate.example.net.": {"SRV": {"records": [SRV_RECORD]}}},
        well_known("delegate.example.net"),
        Step.DELEGATED_SRV,
    ),
    (
        "example.org",
        {"_matrix._tcp.delegate.example.net.": {"SRV": {"records": [SRV_RECORD]}}},
        well_known("delegate.example.net"),
        Step.DELEGATED_LEGACY_SRV,
    ),
    ("example.org", {}, well_known("delegate.example.net"), Step.DELEGATED_ADDRESS),
    (
        "example.org",
        {"_matrix-fed._tcp.example.org.": {"SRV": {"records": [SRV_RECORD]}}},
        {},
        Step.SRV,
    ),
    (
        "example.org",
        {"_matrix._tcp.example.org.": {"SRV": {"records": [SRV_RECORD]}}},
        {},
        Step.LEGACY_SRV,
    ),
    ("example.org", {}, {}, Step.ADDRESS),
    ("Example.org.", {}, {}, Step.ADDRESS),
]


def first_step(name: str) -> Step:
    parsed = parse_server_name(name)
    if parsed.is_ip_literal:
        return Step.IP_LITERAL
    return Step.EXPLICIT_PORT if parsed.port is not None else Step.WELL_KNOWN


@pytest.mark.parametrize(
    ("name", "dns", "https", "deciding_step"),
    SCENARIOS,
    ids=[f"{s[3].value}-{s[0]}" for s in SCENARIOS],
)
def test_each_step_decides_and_the_trace_tells_the_story(
    name: str, dns: dict[str, Any], https: dict[str, Any], deciding_step: Step
) -> None:
    world = FakeWorld({"dns": {**WORLD_DNS, **dns}, "https": https})
    result = world.resolve(name)
    assert isinstance(result, Resolution), result
    assert result.step is deciding_step
    trace = result.trace

    # Only start-time advisories come before the first step's STEP event.
    first = next(i for i, e in enumerate(trace) if e.kind is TraceKind.STEP)
    assert all(e.kind is TraceKind.WARNING and e.step is None for e in trace[:first])
    assert len(trace[:first]) == len(server_name_advisories(parse_server_name(name)))
    assert trace[first].step is first_step(name)
    # The steps entered end with the deciding one.
    steps = [e.step for e in trace if e.kind is TraceKind.STEP]
    assert steps[-1] is deciding_step

    # One OUTCOME per REQUEST, after it, and exactly the requests the world saw.
    requests = [e.request for e in trace if e.kind is TraceKind.REQUEST]
    outcomes = [e.request for e in trace if e.kind is TraceKind.OUTCOME]
    assert sorted(map(str, requests)) == sorted(map(str, outcomes))
    assert len(set(requests)) == len(requests)
    assert requests == world.requests
    for event in trace:
        if event.kind is TraceKind.OUTCOME:
            asked = next(i for i, e in enumerate(trace) if e.request == event.request)
            assert trace[asked].kind is TraceKind.REQUEST
            assert event.outcome is not None


def test_a_failure_trace_also_pairs_requests_and_outcomes() -> None:
    world = FakeWorld({"dns": {}, "https": {WELL_KNOWN_URL: {"status": 500}}})
    result = world.resolve("example.org")
    assert isinstance(result, ResolutionFailure)
    assert result.kind is FailureKind.NO_ADDRESS
    kinds = [e.kind for e in result.trace]
    assert kinds[0] is TraceKind.STEP
    assert kinds.count(TraceKind.REQUEST) == kinds.count(TraceKind.OUTCOME) == len(world.requests)


def test_an_abandoned_request_has_a_request_event_but_no_outcome() -> None:
    m = machine("example.org:8448", now=0.0, settings=Settings(**ONE_BY_ONE, deadline=1.0))
    aaaa, _ = take_requests(m)
    m.receive(aaaa, AAAA_ANSWER, now=1.0)
    result = m.next_event()
    assert isinstance(result, ResolutionFailure)
    kinds = [e.kind for e in result.trace]
    assert (kinds.count(TraceKind.REQUEST), kinds.count(TraceKind.OUTCOME)) == (2, 1)


# --- stale_if_error -----------------------------------------------------------------------

STALE_WORLD: dict[str, Any] = {
    "dns": WORLD_DNS,
    "https": {
        WELL_KNOWN_URL: {
            "status": 200,
            "headers": [["Cache-Control", "max-age=600"]],
            "body": '{"m.server": "delegate.example.net:443"}',
        }
    },
}


def resolve_after_outage(
    outage: dict[str, Any], at: float, settings: Settings | None = None
) -> tuple[Resolution | ResolutionFailure, ResolverCache]:
    """Delegate at t=0 (fresh for 600 s), then break the well-known and resolve at ``at``."""
    cache = ResolverCache()
    world = FakeWorld(STALE_WORLD, now=0.0)
    first = world.resolve("example.org", cache=cache, settings=settings)
    assert isinstance(first, Resolution)
    assert first.step is Step.DELEGATED_EXPLICIT_PORT
    world.patch({"https": {WELL_KNOWN_URL: outage}})
    world.now = at
    return world.resolve("example.org", cache=cache, settings=settings), cache


def test_an_unreachable_well_known_keeps_a_recently_expired_delegation() -> None:
    result, cache = resolve_after_outage({"failure": "connect_timeout"}, at=700.0)
    assert isinstance(result, Resolution)
    assert result.step is Step.DELEGATED_EXPLICIT_PORT
    assert any(
        e.kind is TraceKind.WARNING and "keeping the last valid delegation" in e.message
        for e in result.trace
    )
    entry = cache.well_known("example.org")
    assert entry is not None
    assert (entry.delegation, entry.failures, entry.unavailable) == (None, 1, True)
    assert entry.last_good == parse_server_name("delegate.example.net:443")
    # The stand-in is good only until the failure is retried.
    assert result.expires_at <= entry.expires_at


def test_a_delegation_too_long_expired_is_not_kept() -> None:
    # It stopped being fresh at 600; stale_if_error allows 3600 s more.
    result, _ = resolve_after_outage({"failure": "connect_timeout"}, at=4200.0)
    assert isinstance(result, Resolution)
    assert result.step is Step.ADDRESS


@pytest.mark.parametrize(
    "outage",
    [{"status": 404}, {"status": 200, "body": "not json"}, {"status": 302}],
)
def test_a_definite_answer_replaces_the_delegation_at_once(outage: dict[str, Any]) -> None:
    # "Not here" or an invalid file is an answer, not an outage: no stale stand-in.
    result, _ = resolve_after_outage(outage, at=700.0)
    assert isinstance(result, Resolution)
    assert result.step is Step.ADDRESS


def test_stale_if_error_zero_disables_the_stand_in() -> None:
    settings = Settings(stale_if_error=0)
    result, _ = resolve_after_outage({"failure": "connect_timeout"}, at=700.0, settings=settings)
    assert isinstance(result, Resolution)
    assert result.step is Step.ADDRESS


# --- Settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"well_known_default_ttl": -1}, "well_known_default_ttl must be a finite number >= 0"),
        ({"well_known_min_ttl": -0.5}, "well_known_min_ttl must be a finite number >= 0"),
        ({"well_known_min_ttl": -1}, "well_known_min_ttl must be a finite number >= 0"),
        ({"failure_max_ttl": math.inf}, "failure_max_ttl must be a finite number >= 0"),
        ({"dns_negative_ttl": math.nan}, "dns_negative_ttl must be a finite number >= 0"),
        ({"stale_if_error": "3600"}, "stale_if_error must be a finite number >= 0"),
        ({"stale_if_error": math.inf}, "stale_if_error must be a finite number >= 0"),
        ({"dns_failure_ttl": None}, "dns_failure_ttl must be a finite number >= 0"),
        ({"well_known_min_ttl": 90000}, "need well_known_min_ttl <= well_known_default_ttl"),
        (
            {"well_known_min_ttl": 100, "well_known_default_ttl": 50},
            "need well_known_min_ttl <= well_known_default_ttl",
        ),
        ({"well_known_default_ttl": 200000}, "well_known_default_ttl <= well_known_max_ttl"),
        ({"well_known_max_ttl": 60}, "well_known_default_ttl <= well_known_max_ttl"),
        ({"failure_initial_ttl": 0}, "need 0 < failure_initial_ttl <= failure_max_ttl"),
        ({"failure_initial_ttl": 7200}, "need 0 < failure_initial_ttl <= failure_max_ttl"),
        ({"failure_backoff_factor": 0.5}, "failure_backoff_factor must be >= 1"),
        ({"failure_backoff_factor": 0}, "failure_backoff_factor must be >= 1"),
        ({"failure_backoff_factor": -2}, "failure_backoff_factor must be >= 1"),
        ({"failure_backoff_factor": math.nan}, "failure_backoff_factor must be >= 1"),
        ({"dns_min_ttl": 10, "dns_max_ttl": 5}, "need dns_min_ttl <= dns_max_ttl"),
        ({"max_redirects": -1}, "max_redirects must be an integer >= 0"),
        ({"max_redirects": 1.5}, "max_redirects must be an integer >= 0"),
        ({"max_redirects": True}, "max_redirects must be an integer >= 0"),
        ({"max_body_bytes": "51200"}, "max_body_bytes must be an integer >= 0"),
        ({"max_cname_chain": -3}, "max_cname_chain must be an integer >= 0"),
        ({"max_srv_records": 0}, "max_srv_records and max_addresses_per_name must be >= 1"),
        ({"max_addresses_per_name": 0}, "max_srv_records and max_addresses_per_name must be >= 1"),
        ({"deadline": 0}, "deadline must be a positive number"),
        ({"deadline": -1}, "deadline must be a positive number"),
        ({"deadline": math.inf}, "deadline must be a positive number"),
        ({"deadline": math.nan}, "deadline must be a positive number"),
        ({"deadline": "60"}, "deadline must be a positive number"),
        ({"ip_policy": None}, "ip_policy must be an IpPolicy"),
        ({"ip_policy": ["10.0.0.0/8"]}, "ip_policy must be an IpPolicy"),
    ],
)
def test_invalid_settings_are_refused_with_a_reason(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSettings, match=message.replace("(", r"\(")):
        Settings(**kwargs)


@pytest.mark.parametrize("factor", ["2", None, [2], True])
def test_a_backoff_factor_of_the_wrong_type_is_invalid_settings(factor: object) -> None:
    # Every other setting reports a wrong type as InvalidSettings; a factor read
    # from a config file as a string must not escape as a TypeError instead.
    with pytest.raises(InvalidSettings):
        Settings(failure_backoff_factor=factor)  # type: ignore[arg-type]


def test_settings_at_their_edges_are_valid() -> None:
    edge = Settings(
        well_known_min_ttl=0,
        well_known_default_ttl=0,
        well_known_max_ttl=0,
        failure_initial_ttl=3600,
        failure_max_ttl=3600,
        failure_backoff_factor=1,
        stale_if_error=0,
        dns_min_ttl=5,
        dns_max_ttl=5,
        dns_failure_ttl=0,
        max_redirects=0,
        max_body_bytes=0,
        max_cname_chain=0,
        max_srv_records=1,
        max_addresses_per_name=1,
        deadline=0.001,
    )
    assert edge.max_redirects == 0


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.deadline = 1.0  # type: ignore[misc]


# --- IpPolicy -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("169.254.1.1", "link-local"),
        ("169.254.0.1", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        # Python calls global-scope multicast "global"; it is still not a server.
        ("ff0e::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("100.64.0.1", "non-global"),
    ],
)
def test_special_addresses_are_refused_by_default(address: str, kind: str) -> None:
    refusal = IpPolicy().refusal(address)
    assert refusal is not None
    assert f"is not a public address ({kind})" in refusal


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", V6, "2001:4860:4860::8888"])
def test_public_addresses_are_allowed_by_default(address: str) -> None:
    assert IpPolicy().refusal(address) is None


def test_ipv4_mapped_ipv6_is_judged_as_ipv4() -> None:
    default = IpPolicy()
    assert default.refusal("::ffff:127.0.0.1") == "127.0.0.1 is not a public address (loopback)"
    assert default.refusal("::ffff:10.0.0.1") == "10.0.0.1 is not a public address (private)"
    assert default.refusal("::ffff:8.8.8.8") is None
    assert IpPolicy.from_cidrs(allow=["10.0.0.0/8"]).refusal("::ffff:10.0.0.1") is None
    assert IpPolicy.from_cidrs(deny=["8.8.8.0/24"]).refusal("::ffff:8.8.8.8") is not None


def test_the_allow_list_admits_special_addresses_and_wins_over_deny() -> None:
    policy = IpPolicy.from_cidrs(allow=["10.0.0.0/8", "fd00::/8"], deny=["10.9.0.0/16"])
    assert policy.refusal("10.1.2.3") is None
    assert policy.refusal("10.9.0.1") is None  # allow is checked first
    assert policy.refusal("fd12::1") is None
    assert policy.refusal("192.168.1.1") is not None  # not in allow: still special
    # allow is the first positional parameter.
    loopback = IpPolicy.from_cidrs(["127.0.0.0/8"])
    assert loopback.refusal("127.0.0.1") is None
    assert loopback.refusal("10.0.0.1") is not None


def test_the_deny_list_refuses_public_addresses() -> None:
    policy = IpPolicy.from_cidrs(deny=["8.8.8.0/24", "2606:4700::/32"])
    assert policy.refusal("8.8.8.8") == "8.8.8.8 is in a denied range"
    assert policy.refusal(V6) == f"{V6} is in a denied range"
    assert policy.refusal("8.8.4.4") is None
    no_special = IpPolicy.from_cidrs(deny=["8.8.8.0/24"], refuse_special=False)
    assert no_special.refusal("8.8.8.8") is not None
    assert no_special.refusal("127.0.0.1") is None


def test_allow_all_refuses_only_what_is_not_an_address() -> None:
    policy = IpPolicy.allow_all()
    assert all(policy.refusal(a) is None for a in ("127.0.0.1", "::1", "10.0.0.1", "ff02::1"))
    assert policy.refusal("example.org") == "'example.org' is not an IP address"
    # The default policy says the same, not that the text is a special address.
    assert IpPolicy().refusal("not an ip") == "'not an ip' is not an IP address"


def test_from_cidrs_accepts_host_bits() -> None:
    # "10.1.2.3/8" means 10.0.0.0/8: an admin's typo should not be a crash.
    assert IpPolicy.from_cidrs(allow=["10.1.2.3/8"]) == IpPolicy.from_cidrs(allow=["10.0.0.0/8"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"allow": ["10.0.0.0/33"]}, "allow_ips: '10.0.0.0/33' is not a CIDR network"),
        ({"allow": ["not-a-network"]}, "allow_ips: 'not-a-network' is not a CIDR network"),
        ({"allow": ["nonsense"]}, "allow_ips: 'nonsense' is not a CIDR network"),
        ({"deny": [""]}, "deny_ips: '' is not a CIDR network"),
        ({"deny": ["fe80::/129"]}, "deny_ips"),
        ({"deny": [None]}, "deny_ips: None is not a CIDR network"),
    ],
)
def test_from_cidrs_with_a_bad_cidr_is_invalid_settings(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidSettings, match=message):
        IpPolicy.from_cidrs(**kwargs)


@pytest.mark.parametrize(
    "kwargs", [{"allow": "10.0.0.0/8"}, {"allow": "127.0.0.0/8"}, {"deny": "10.0.0.0/8"}]
)
def test_from_cidrs_with_one_string_instead_of_a_list_is_invalid_settings(
    kwargs: dict[str, Any],
) -> None:
    # Iterating a string would make each character a "network": refuse it outright.
    with pytest.raises(InvalidSettings, match="take a list of CIDR strings, not one string"):
        IpPolicy.from_cidrs(**kwargs)


def test_the_policy_in_settings_decides_the_resolution() -> None:
    world = FakeWorld({"dns": {}, "https": {}})
    refused = world.resolve("127.0.0.1:8448")
    assert isinstance(refused, ResolutionFailure)
    assert refused.kind is FailureKind.REFUSED_ADDRESS
    allowed = world.resolve("127.0.0.1:8448", settings=Settings(ip_policy=IpPolicy.allow_all()))
    assert isinstance(allowed, Resolution)
    assert allowed.targets[0].addresses == ("127.0.0.1",)
