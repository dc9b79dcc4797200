"""The blocking Resolver runs a resolution's requests at once (max_concurrent_requests)."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import threading

import pytest

from mxresolve import AsyncResolver, FakeWorld, Resolver, Settings
from mxresolve._core.events import DnsQuery, DnsResult

WORLD = {
    "dns": {"example.org.": {"A": {"records": ["198.51.100.5"]}}},
    "https": {"https://example.org/.well-known/matrix/server": {"status": 404}},
}


class _Counting:
    """A DNS transport that answers from the world and records how many were in flight."""

    def __init__(self, world: FakeWorld, barrier: threading.Barrier | None = None) -> None:
        self._dns, _ = world.transports()
        self._lock = threading.Lock()
        self._barrier = barrier
        self.in_flight = self.most = 0

    def query(self, query: DnsQuery, timeout: float) -> DnsResult:
        with self._lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            if self._barrier is not None and query.qname == "example.org.":
                self._barrier.wait()  # AAAA and A: only passes if both are out at once
            return self._dns.query(query, timeout)
        finally:
            with self._lock:
                self.in_flight -= 1


def _resolver(world: FakeWorld, dns: _Counting, settings: Settings) -> Resolver:
    _, https = world.transports()
    return Resolver(
        dns=dns, https=https, clock=world.clock, settings=settings, allow_ips=["198.51.100.0/24"]
    )


def test_aaaa_and_a_are_asked_at_once() -> None:
    world = FakeWorld(WORLD)
    dns = _Counting(world, threading.Barrier(2, timeout=5))
    result = _resolver(world, dns, Settings()).resolve("example.org")
    assert result.step.value == "6"
    assert dns.most >= 2


def test_one_at_a_time_when_the_limit_is_one() -> None:
    world = FakeWorld(WORLD)
    dns = _Counting(world)
    settings = dataclasses.replace(Settings(), max_concurrent_requests=1)
    main = threading.get_ident()
    threads: set[int] = set()
    original = dns.query

    def query(query: DnsQuery, timeout: float) -> DnsResult:
        threads.add(threading.get_ident())
        return original(query, timeout)

    dns.query = query  # type: ignore[method-assign]
    assert _resolver(world, dns, settings).resolve("example.org").step.value == "6"
    assert dns.most == 1
    assert threads == {main}  # no thread started


@pytest.mark.parametrize("limit", [1, 2])
def test_the_asyncio_driver_keeps_to_the_limit(limit: int) -> None:
    world = FakeWorld(WORLD)
    in_flight = most = 0

    class Dns:
        async def query(self, query: DnsQuery, timeout: float) -> DnsResult:
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            await asyncio.sleep(0.01)
            in_flight -= 1
            return world.dns(query.qname, query.rdtype)

    _, https = world.async_transports()
    settings = dataclasses.replace(
        Settings(), max_concurrent_requests=limit, srv_with_well_known=True
    )
    resolver = AsyncResolver(
        dns=Dns(), https=https, clock=world.clock, settings=settings, allow_ips=["198.51.100.0/24"]
    )
    result = asyncio.run(resolver.resolve("example.org"))
    assert result.step.value == "6"
    assert most == limit


_SILENT_SRV = """
import sys, threading
from mxresolve import FakeWorld, Resolver
world = FakeWorld({
    "dns": {"example.org.": {"A": {"records": ["198.51.100.5"]}},
            "matrix.example.org.": {"A": {"records": ["198.51.100.6"]}}},
    "https": {"https://example.org/.well-known/matrix/server":
              {"body": '{"m.server": "matrix.example.org:8448"}'}},
})
dns, https = world.transports()
class Silent:  # a nameserver that drops SRV queries, as some middleboxes do
    def query(self, query, timeout):
        if query.rdtype.value == "SRV":
            threading.Event().wait(60)
        return dns.query(query, timeout)
resolver = Resolver(dns=Silent(), https=https, clock=world.clock, allow_ips=["198.51.100.0/24"])
print(resolver.resolve("example.org").step.value)
"""


def test_an_abandoned_request_does_not_hold_up_the_exit() -> None:
    # The SRV lookups asked alongside the well-known never answer; the delegation
    # decides without them, and the process exits at once rather than after 60 s.
    done = subprocess.run(
        [sys.executable, "-c", _SILENT_SRV], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "3.2"
