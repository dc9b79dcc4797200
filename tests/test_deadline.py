"""The overall deadline (I-35), at the level of the sans-I/O machine."""

from __future__ import annotations

from mxresolve import (
    NEED_RESULTS,
    DnsResult,
    DnsStatus,
    FailureKind,
    HttpsGet,
    HttpsResponse,
    ResolutionFailure,
    ResolutionMachine,
    Settings,
)
from one_by_one import ONE_BY_ONE


def test_an_outcome_after_the_deadline_ends_the_resolution() -> None:
    machine = ResolutionMachine(
        "example.org", now=1000.0, random=lambda: 0.0, settings=Settings(**ONE_BY_ONE, deadline=5.0)
    )
    request = machine.next_event()
    assert isinstance(request, HttpsGet)
    assert machine.next_event() is NEED_RESULTS
    machine.receive(request, HttpsResponse(status=404), now=1005.0)
    result = machine.next_event()
    assert isinstance(result, ResolutionFailure)
    assert result.kind is FailureKind.DEADLINE_EXCEEDED
    assert result.step is not None
    assert result.step.value == "3"


def test_outcomes_for_abandoned_requests_are_ignored() -> None:
    machine = ResolutionMachine(
        "example.org:8448",
        now=0.0,
        random=lambda: 0.0,
        settings=Settings(**ONE_BY_ONE, deadline=1.0),
    )
    first, second = machine.next_event(), machine.next_event()
    machine.receive(first, DnsResult(status=DnsStatus.TIMEOUT), now=2.0)  # type: ignore[arg-type]
    ended = machine.next_event()
    assert isinstance(ended, ResolutionFailure)
    assert ended.kind is FailureKind.DEADLINE_EXCEEDED
    machine.receive(second, DnsResult(status=DnsStatus.NXDOMAIN), now=2.5)  # type: ignore[arg-type]
    assert machine.next_event() is ended


def test_just_before_the_deadline_the_resolution_goes_on() -> None:
    machine = ResolutionMachine(
        "example.org", now=0.0, random=lambda: 0.0, settings=Settings(**ONE_BY_ONE, deadline=5.0)
    )
    request = machine.next_event()
    assert isinstance(request, HttpsGet)
    machine.receive(request, HttpsResponse(status=404), now=4.999)
    follow_up = machine.next_event()
    assert not isinstance(follow_up, ResolutionFailure)


def test_the_asyncio_driver_gives_up_on_a_transport_that_never_answers() -> None:
    # A transport that ignores its timeout must not hold a resolution past its deadline:
    # the driver's backstop (the deadline plus a second) cancels it and the machine ends
    # the resolution, instead of the caller waiting forever.
    import asyncio
    import time

    from mxresolve import AsyncResolver, DnsQuery, FakeWorld

    world = FakeWorld({"dns": {}, "https": {}})
    _, https = world.async_transports()
    cancelled: list[DnsQuery] = []

    class Hanging:
        async def query(self, query: DnsQuery, timeout: float) -> DnsResult:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(query)
                raise
            raise AssertionError("unreachable")

    async def run() -> object:
        resolver = AsyncResolver(
            dns=Hanging(), https=https, settings=Settings(deadline=0.2), allow_ips=[]
        )
        return await asyncio.wait_for(resolver.resolve_result("example.org:8448"), 10)

    started = time.monotonic()
    result = asyncio.run(run())
    assert time.monotonic() - started < 5
    assert isinstance(result, ResolutionFailure)
    assert result.kind is FailureKind.DEADLINE_EXCEEDED
    assert cancelled  # the hanging queries were cancelled, not left behind
