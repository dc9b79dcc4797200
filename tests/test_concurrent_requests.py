"""Both drivers overlap a resolution's requests, up to max_concurrent_requests; the
blocking one without threads."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import subprocess
import sys
import threading
import time

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from mxresolve import (
    AsyncResolver,
    DnspythonTransport,
    FakeWorld,
    Resolver,
    ResolverCache,
    Settings,
)
from mxresolve._core.events import DnsQuery, DnsResult, HttpsGet, Outcome
from mxresolve._io.dns_transport import PendingQuery, two_phase

WORLD = {
    "dns": {"example.org.": {"A": {"records": ["198.51.100.5"]}}},
    "https": {"https://example.org/.well-known/matrix/server": {"status": 404}},
}


class _Counting:
    """A DNS transport that answers from the world and records how many were in flight."""

    def __init__(self, world: FakeWorld) -> None:
        self._dns, _ = world.transports()
        self._lock = threading.Lock()
        self.in_flight = self.most = 0

    def query(self, query: DnsQuery, timeout: float) -> DnsResult:
        with self._lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            return self._dns.query(query, timeout)
        finally:
            with self._lock:
                self.in_flight -= 1


def _resolver(world: FakeWorld, dns: _Counting, settings: Settings) -> Resolver:
    _, https = world.transports()
    return Resolver(
        dns=dns, https=https, clock=world.clock, settings=settings, allow_ips=["198.51.100.0/24"]
    )


class _HoldingNameserver:
    """A UDP nameserver on 127.0.0.1 that holds back example.org's AAAA and A answers
    until both questions have arrived (or 2 s passed), noting what happened when.

    It answers example.org A with 198.51.100.5, its AAAA with no records, and every
    other question NXDOMAIN, ``delay`` seconds after it came.
    """

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.arrived: list[tuple[float, str, str]] = []  # (when, name, type)
        self.answered_held_at: float | None = None
        self.threads_when_released: set[threading.Thread] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> _HoldingNameserver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def _serve(self) -> None:
        held: list[tuple[dns.message.Message, tuple[str, int]]] = []
        due: list[tuple[float, bytes, tuple[str, int]]] = []  # NXDOMAIN answers, by when
        first_held = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            for answer in [d for d in due if d[0] <= now]:
                due.remove(answer)
                self.sock.sendto(answer[1], answer[2])
            self.sock.settimeout(min([0.05] + [max(d[0] - now, 0.001) for d in due]))
            try:
                wire, peer = self.sock.recvfrom(4096)
            except OSError:  # the 50 ms timeout: look at the clock and the stop flag
                wire = b""
            if wire:
                request = dns.message.from_wire(wire)
                question = request.question[0]
                name, rdtype = str(question.name), dns.rdatatype.to_text(question.rdtype)
                self.arrived.append((time.monotonic(), name, rdtype))
                if name == "example.org." and rdtype in ("A", "AAAA"):
                    first_held = first_held or time.monotonic()
                    held.append((request, peer))
                else:
                    response = dns.message.make_response(request)
                    response.set_rcode(dns.rcode.NXDOMAIN)
                    due.append((time.monotonic() + self.delay, response.to_wire(), peer))
            both = {dns.rdatatype.to_text(r.question[0].rdtype) for r, _ in held} == {"A", "AAAA"}
            if held and (both or time.monotonic() - first_held > 2.0):
                self.threads_when_released = set(threading.enumerate())
                self.answered_held_at = time.monotonic()
                for request, peer in held:
                    response = dns.message.make_response(request)
                    if request.question[0].rdtype == dns.rdatatype.A:
                        rrset = dns.rrset.from_text("example.org.", 60, "IN", "A", "198.51.100.5")
                        response.answer.append(rrset)
                    self.sock.sendto(response.to_wire(), peer)
                held = []


class _RecordingTransport(DnspythonTransport):
    """The built-in transport, noting which thread sends each query."""

    def __init__(self, nameservers: list[str]) -> None:
        super().__init__(nameservers)
        self.threads: list[int] = []

    def start_query(self, query: DnsQuery, timeout: float) -> PendingQuery:
        self.threads.append(threading.get_ident())
        return super().start_query(query, timeout)


@pytest.mark.parametrize("shared", [False, True], ids=["alone", "with a shared store"])
def test_aaaa_and_a_are_out_together_without_a_thread(shared: bool) -> None:
    # The built-in transport's queries overlap in the calling thread: AAAA and A are
    # both sent before either is answered, and no thread but the caller's sends one.
    # With a shared store too: the store's wrapper keeps the transport's two phases.
    world = FakeWorld(WORLD)
    _, https = world.transports()
    store = ResolverCache() if shared else None
    with _HoldingNameserver() as nameserver:
        dns_transport = _RecordingTransport([f"127.0.0.1:{nameserver.port}"])

        def resolver() -> Resolver:
            return Resolver(
                dns=dns_transport,
                https=https,
                clock=world.clock,
                allow_ips=["198.51.100.0/24"],
                store=store,
            )

        threads_before = set(threading.enumerate())  # the nameserver's, and any other test's
        result = resolver().resolve("example.org")
        if shared:  # another worker: the store answers, nothing is sent
            asked = len(nameserver.arrived)
            again = resolver().resolve("example.org")
            assert again.targets == result.targets
            assert len(nameserver.arrived) == asked
    assert result.targets[0].addresses == ("198.51.100.5",)
    held = [when for when, name, rdtype in nameserver.arrived if name == "example.org."]
    assert len(held) == 2  # AAAA and A, once each
    assert nameserver.answered_held_at is not None
    assert max(held) <= nameserver.answered_held_at  # both were out before either answer
    assert nameserver.answered_held_at - min(held) < 1.0  # not released by the 2 s limit
    assert dns_transport.threads
    assert set(dns_transport.threads) == {threading.get_ident()}
    assert nameserver.threads_when_released  # the release happened, and looked
    assert nameserver.threads_when_released <= threads_before  # the resolver started none


def test_replies_wait_in_their_sockets_while_the_well_known_is_fetched() -> None:
    # The early SRV queries are out while the fetch blocks the thread for longer than
    # their wait; their replies, in while it ran, are taken from the sockets
    # afterwards, not asked again.
    world = FakeWorld(WORLD)
    _, https = world.transports()

    class SlowHttps:
        def fetch(self, request: HttpsGet, timeout: float) -> Outcome:
            time.sleep(1.0)
            return https.fetch(request, timeout)

    # The fetch is handed out with the SRV queries (its host is not looked up first).
    settings = dataclasses.replace(Settings(), resolve_well_known_host=False)
    with _HoldingNameserver(delay=0.2) as nameserver:  # the replies come during the fetch
        resolver = Resolver(
            nameservers=[f"127.0.0.1:{nameserver.port}"],
            https=SlowHttps(),
            clock=world.clock,
            allow_ips=["198.51.100.0/24"],
            settings=settings,
            request_timeout=0.5,  # each query's wait: over while the fetch runs
        )
        result = resolver.resolve("example.org")
    assert result.step.value == "6"
    asked = [(name, rdtype) for _, name, rdtype in nameserver.arrived]
    assert ("_matrix-fed._tcp.example.org.", "SRV") in asked
    assert len(asked) == len(set(asked))  # each question once


@pytest.mark.parametrize("limit", [8, 1], ids=["default limit", "limit 1"])
def test_a_custom_transport_is_asked_in_turn_in_the_calling_thread(limit: int) -> None:
    # A transport without the two-phase form can only block: its queries run one at a
    # time in the calling thread, whatever the limit, and no thread is started.
    world = FakeWorld(WORLD)
    dns_transport = _Counting(world)
    threads: set[int] = set()
    original = dns_transport.query

    def query(query: DnsQuery, timeout: float) -> DnsResult:
        threads.add(threading.get_ident())
        return original(query, timeout)

    dns_transport.query = query  # type: ignore[method-assign]
    settings = dataclasses.replace(Settings(), max_concurrent_requests=limit)
    result = _resolver(world, dns_transport, settings).resolve("example.org")
    assert result.step.value == "6"
    assert dns_transport.most == 1
    assert threads == {threading.get_ident()}


def test_a_transport_whose_query_is_replaced_is_asked_through_it() -> None:
    # A subclass of the built-in transport that overrides query() (to log, say) or an
    # instance given its own query() must see every query: the driver does not go
    # around it through the two phases it inherited.
    class Logging(DnspythonTransport):
        def query(self, query: DnsQuery, timeout: float) -> DnsResult:
            return super().query(query, timeout)

    plain = DnspythonTransport(["127.0.0.1"])
    recording = _RecordingTransport(["127.0.0.1"])  # overrides a phase: still two-phase
    patched = DnspythonTransport(["127.0.0.1"])
    patched.query = plain.query  # type: ignore[method-assign]
    assert two_phase(plain) is plain
    assert two_phase(recording) is recording
    assert two_phase(Logging(["127.0.0.1"])) is None
    assert two_phase(patched) is None
    assert two_phase(_Counting(FakeWorld(WORLD))) is None  # no phases at all


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
    srv = 0
    def query(self, query, timeout):
        if query.rdtype.value == "SRV":
            Silent.srv += 1
            threading.Event().wait(60)
        return dns.query(query, timeout)
resolver = Resolver(dns=Silent(), https=https, clock=world.clock, allow_ips=["198.51.100.0/24"])
print(resolver.resolve("example.org").step.value, Silent.srv)
"""


def test_an_abandoned_request_does_not_hold_up_the_exit() -> None:
    # The SRV lookups asked alongside the well-known would never answer; the delegation
    # decides first, and they are never performed: the process exits at once rather
    # than after 60 s. (A custom transport only blocks, so the resolver runs its
    # requests in turn: the well-known fetch, then the newest, the delegated name's.)
    done = subprocess.run(
        [sys.executable, "-c", _SILENT_SRV], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3.2", "0"]
