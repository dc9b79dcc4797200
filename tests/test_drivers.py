"""The sync and asyncio drivers over FakeWorld's transports: the memo of finished resolutions.

A finished resolution is kept until its inputs expire, and both ``resolve()`` and
``resolve_result()`` answer from it without running the machine again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from mxresolve import AsyncResolver, FakeWorld, Resolution, ResolutionFailure, Resolver

WORLD = {
    "dns": {
        "_matrix-fed._tcp.example.org.": {
            "SRV": {
                "records": [
                    {"priority": 0, "weight": 0, "port": 8448, "target": "fed.example.org."}
                ],
                "ttl": 300,
            }
        },
        "fed.example.org.": {"A": {"records": ["198.51.100.7"], "ttl": 300}},
        "example.org.": {"A": {"records": ["198.51.100.5"], "ttl": 300}},
    },
    "https": {"https://example.org/.well-known/matrix/server": {"status": 404}},
}

Call = Callable[[str], Resolution | ResolutionFailure]


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _drivers(world: FakeWorld, loop: asyncio.AbstractEventLoop) -> dict[str, tuple[Call, Call]]:
    """For each driver: (resolve, resolve_result) as plain functions."""
    dns, https = world.transports()
    sync = Resolver(dns=dns, https=https, clock=world.clock, allow_ips=["198.51.100.0/24"])
    adns, ahttps = world.async_transports()
    asy = AsyncResolver(dns=adns, https=ahttps, clock=world.clock, allow_ips=["198.51.100.0/24"])

    def run(make: Callable[[str], Awaitable[Resolution | ResolutionFailure]]) -> Call:
        return lambda name: loop.run_until_complete(make(name))

    return {
        "sync": (sync.resolve, sync.resolve_result),
        "asyncio": (run(asy.resolve), run(asy.resolve_result)),
    }


@pytest.mark.parametrize("driver", ["sync", "asyncio"])
@pytest.mark.parametrize("first", ["resolve", "resolve_result"])
@pytest.mark.parametrize("second", ["resolve", "resolve_result"])
def test_a_finished_resolution_is_answered_from_the_memo(
    driver: str, first: str, second: str, loop: asyncio.AbstractEventLoop
) -> None:
    world = FakeWorld(WORLD, now=1_000.0)
    calls = dict(zip(["resolve", "resolve_result"], _drivers(world, loop)[driver], strict=True))
    result = calls[first]("example.org")
    assert isinstance(result, Resolution)
    assert [(t.host, t.port, t.host_header) for t in result.targets] == [
        ("fed.example.org", 8448, "example.org")  # step 4: the SRV target, Host the server name
    ]
    asked = len(world.requests)
    # AAAA and A of the well-known host, the two SRV lookups (asked alongside the
    # well-known), the well-known, and AAAA and A of the SRV target.
    assert asked == 7
    world.advance(result.expires_at - world.now - 1)  # still fresh, one second before
    assert calls[second]("example.org") is result
    assert len(world.requests) == asked  # nothing asked: not even the warm cache was read


@pytest.mark.parametrize("driver", ["sync", "asyncio"])
def test_the_memo_ends_when_its_inputs_expire(driver: str, loop: asyncio.AbstractEventLoop) -> None:
    world = FakeWorld(WORLD, now=1_000.0)
    resolve, _ = _drivers(world, loop)[driver]
    first = resolve("example.org")
    assert isinstance(first, Resolution)
    world.advance(first.expires_at - world.now + 1)
    again = resolve("example.org")
    assert again is not first
    assert isinstance(again, Resolution)
    assert again.targets == first.targets
    assert len(world.requests) > 4  # the expired answers were asked for again


@pytest.mark.parametrize("driver", ["sync", "asyncio"])
def test_failures_are_not_memoised(driver: str, loop: asyncio.AbstractEventLoop) -> None:
    world = FakeWorld({"dns": {}, "https": {}}, now=1_000.0)
    _, resolve_result = _drivers(world, loop)[driver]
    first = resolve_result("nowhere.example.org")
    assert isinstance(first, ResolutionFailure)
    second = resolve_result("nowhere.example.org")
    assert isinstance(second, ResolutionFailure)
    assert second is not first  # the machine ran again (answered by the cached failures)
    assert second.kind is first.kind


def test_the_memo_stays_bounded_under_threads() -> None:
    names = [f"s{i}.example.org" for i in range(64)]
    world = FakeWorld(
        {
            "dns": {f"{n}.": {"A": {"records": ["198.51.100.9"], "ttl": 300}} for n in names},
            "https": {},
        },
        now=1_000.0,
    )
    dns, https = world.transports()
    resolver = Resolver(
        dns=dns, https=https, clock=world.clock, allow_ips=["198.51.100.0/24"], max_memo=8
    )
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(resolver.resolve, names * 4))
    assert [r.server_name for r in results] == names * 4
    assert all(r.targets[0].addresses == ("198.51.100.9",) for r in results)
    assert 0 < len(resolver._memo) <= 8  # read for the test only: the bound is the point
