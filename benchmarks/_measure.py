"""What bench.py times in its own process: the raw floor, mxresolve cold, cached, single-flight.

Every function here takes a ready world configuration (nameserver, CA file, allowed IPs) and
returns plain data. Times are ``time.perf_counter`` wall clock; nothing is subtracted.
"""

from __future__ import annotations

import asyncio
import gc
import secrets
import socket
import ssl
import statistics
import struct
import time
import timeit
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dns.asyncquery
import dns.message

from mxresolve import (
    AsyncDnspythonTransport,
    AsyncH11HttpsTransport,
    AsyncResolver,
    DnsQuery,
    DnsResult,
    HttpsFailure,
    HttpsGet,
    HttpsResponse,
    IpPolicy,
    Resolution,
    ResolutionError,
    ResolutionFailure,
    Resolver,
)

REQUEST_TIMEOUT = 5.0  # seconds per DNS query / HTTPS request (every wait is bounded)


@dataclass(frozen=True)
class WorldConfig:
    nameserver: str  # "127.0.0.1:PORT"
    cafile: str
    allow_ips: tuple[str, ...]

    def resolver_kwargs(self) -> dict[str, Any]:
        return {
            "nameservers": [self.nameserver],
            "cafile": self.cafile,
            "allow_ips": list(self.allow_ips),
            "request_timeout": REQUEST_TIMEOUT,
        }

    @property
    def ns_address(self) -> tuple[str, int]:
        host, _, port = self.nameserver.rpartition(":")
        return host.strip("[]"), int(port)


def client_ssl_context(cafile: str) -> ssl.SSLContext:
    """A verifying context set up as mxresolve sets up its own (TLS >= 1.2, ALPN http/1.1)."""
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    return context


# --- counting transports (wrapping is enough: they only count and record) -------------------


@dataclass
class CountingDns:
    """An AsyncDnsTransport that records every query it forwards and what came back."""

    inner: Any
    queries: list[DnsQuery] = field(default_factory=list)
    results: dict[tuple[str, str], DnsResult] = field(default_factory=dict)

    async def query(self, query: DnsQuery, timeout: float) -> DnsResult:
        self.queries.append(query)
        result: DnsResult = await self.inner.query(query, timeout)
        self.results[(query.qname, query.rdtype.value)] = result
        return result


@dataclass
class CountingHttps:
    """An AsyncHttpsTransport that records every fetch it forwards and its outcome."""

    inner: Any
    fetches: list[tuple[HttpsGet, HttpsResponse | HttpsFailure]] = field(default_factory=list)

    async def fetch(self, request: HttpsGet, timeout: float) -> HttpsResponse | HttpsFailure:
        outcome: HttpsResponse | HttpsFailure = await self.inner.fetch(request, timeout)
        self.fetches.append((request, outcome))
        return outcome


def counting_resolver(world: WorldConfig) -> tuple[AsyncResolver, CountingDns, CountingHttps]:
    """An AsyncResolver whose DNS (its own and the HTTPS transport's) and HTTPS are counted."""
    context = client_ssl_context(world.cafile)
    dns_t = CountingDns(AsyncDnspythonTransport([world.nameserver]))
    https_t = CountingHttps(
        AsyncH11HttpsTransport(
            dns_t, ssl_context=context, ip_policy=IpPolicy.from_cidrs(world.allow_ips)
        )
    )
    kwargs = world.resolver_kwargs()
    del kwargs["cafile"]
    resolver = AsyncResolver(**kwargs, ssl_context=context, dns=dns_t, https=https_t)
    return resolver, dns_t, https_t


# --- discovery: what one cold round needs (untimed) -----------------------------------------


@dataclass
class FloorPlan:
    """The I/O one cold round of mxresolve performs, for the raw floor to repeat."""

    dns_queries: list[tuple[str, str]]  # distinct (qname, rdtype) sent to the nameserver
    tls_gets: list[tuple[str, int, str, str]]  # (address, port, sni host, request bytes)
    results: dict[str, Resolution | ResolutionFailure]


def discover(world: WorldConfig, names: Sequence[str]) -> FloorPlan:
    """Run one cold round with counting transports; return the I/O it made."""

    async def run() -> FloorPlan:
        resolver, dns_t, https_t = counting_resolver(world)
        results = await asyncio.gather(*(resolver.resolve_result(n) for n in names))
        queries = list(dict.fromkeys((q.qname, q.rdtype.value) for q in dns_t.queries))
        gets = []
        for request, outcome in https_t.fetches:
            if not isinstance(outcome, HttpsResponse):
                continue  # refused connections: no TLS handshake to repeat
            fqdn = request.host.rstrip(".") + "."
            found = [dns_t.results.get((fqdn, rdtype)) for rdtype in ("AAAA", "A")]
            addresses = [str(a) for r in found if r is not None for a in r.records]
            addresses = addresses or [request.host]  # an IP literal: no lookup was made
            head = (
                f"GET {request.target} HTTP/1.1\r\nHost: {request.host_header}\r\n"
                "Accept: application/json\r\nConnection: close\r\n\r\n"
            )
            gets.append((addresses[0], request.port, request.host, head))
        return FloorPlan(queries, gets, dict(zip(names, results, strict=True)))

    return asyncio.run(run())


# --- the raw floor -----------------------------------------------------------------------


async def _floor_dns(world: WorldConfig, queries: Sequence[tuple[str, str]]) -> None:
    host, port = world.ns_address

    async def one(qname: str, rdtype: str) -> None:
        await dns.asyncquery.udp(
            dns.message.make_query(qname, rdtype), host, port=port, timeout=REQUEST_TIMEOUT
        )

    await asyncio.gather(*(one(q, t) for q, t in queries))


async def _floor_dns_bare(world: WorldConfig, queries: Sequence[tuple[str, str]]) -> None:
    """The same queries with no DNS library: a hand-built query, one UDP socket each, the
    reply read but not parsed. What the network part of the DNS work costs in asyncio."""
    loop = asyncio.get_running_loop()
    host, port = world.ns_address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    async def one(qname: str, rdtype: str) -> None:
        labels = b"".join(
            bytes((len(label),)) + label for label in qname.encode("ascii").split(b".") if label
        )
        wire = struct.pack("!HHHHHH", secrets.randbits(16), 0x0100, 1, 0, 0, 0)
        wire += labels + b"\0" + struct.pack("!HH", _RDTYPES[rdtype], 1)
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.connect((host, port))
            sock.send(wire)
            readable: asyncio.Future[None] = loop.create_future()

            def wake() -> None:  # the reader fires on every loop pass until it is removed
                if not readable.done():
                    readable.set_result(None)

            loop.add_reader(sock.fileno(), wake)
            try:
                await asyncio.wait_for(readable, REQUEST_TIMEOUT)
            finally:
                loop.remove_reader(sock.fileno())
            sock.recv(65535)

    await asyncio.gather(*(one(q, t) for q, t in queries))


_RDTYPES = {"A": 1, "AAAA": 28, "CNAME": 5, "SRV": 33}


async def _floor_tls(context: ssl.SSLContext, gets: Sequence[tuple[str, int, str, str]]) -> None:
    async def one(address: str, port: int, host: str, head: str) -> None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(address, port, ssl=context, server_hostname=host),
            REQUEST_TIMEOUT,
        )
        try:
            writer.write(head.encode("ascii"))
            body = await asyncio.wait_for(reader.read(), REQUEST_TIMEOUT)  # until EOF
            if not body.startswith(b"HTTP/1.1 "):
                raise RuntimeError(f"floor: unexpected response from {host}: {body[:40]!r}")
        finally:
            writer.close()

    await asyncio.gather(*(one(*g) for g in gets))


async def floor_round(
    world: WorldConfig, plan: FloorPlan, context: ssl.SSLContext
) -> dict[str, float]:
    """All the round's DNS queries at once (dnspython), then all its TLS handshakes + GETs at
    once; then the same queries again over bare sockets, for context."""
    t0 = time.perf_counter()
    await _floor_dns(world, plan.dns_queries)
    t1 = time.perf_counter()
    await _floor_tls(context, plan.tls_gets)
    t2 = time.perf_counter()
    await _floor_dns_bare(world, plan.dns_queries)
    t3 = time.perf_counter()
    return {
        "total": t2 - t0,
        "dns": t1 - t0,
        "tls": t2 - t1,
        "dns_bare": t3 - t2,
        "total_bare": t3 - t2 + t2 - t1,
    }


# --- mxresolve cold -----------------------------------------------------------------------


async def _resolve_async(resolver: AsyncResolver, name: str) -> Resolution | ResolutionFailure:
    try:
        return await resolver.resolve(name)
    except ResolutionError as exc:
        return exc.failure


def _resolve_sync(resolver: Resolver, name: str) -> Resolution | ResolutionFailure:
    try:
        return resolver.resolve(name)
    except ResolutionError as exc:
        return exc.failure


async def async_cold_round(world: WorldConfig, names: Sequence[str]) -> tuple[float, list[Any]]:
    """A fresh AsyncResolver (built before the timer); ``resolve()`` of every name at once."""
    resolver = AsyncResolver(**world.resolver_kwargs())
    t0 = time.perf_counter()
    results = await asyncio.gather(*(_resolve_async(resolver, n) for n in names))
    return time.perf_counter() - t0, list(results)


def sync_cold_round(world: WorldConfig, names: Sequence[str]) -> tuple[float, list[Any]]:
    """A fresh Resolver (built before the timer); ``resolve()`` of each name in turn."""
    resolver = Resolver(**world.resolver_kwargs())
    t0 = time.perf_counter()
    results = [_resolve_sync(resolver, n) for n in names]
    return time.perf_counter() - t0, results


# --- cached ---------------------------------------------------------------------------------


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def cached(
    world: WorldConfig, names: Sequence[str], *, iterations: int, rounds: int
) -> dict[str, Any]:
    """ns per cache-hit ``resolve()``: sync (timeit loop) and async (awaited in a loop).

    Per round: for each name a loop of ``iterations`` calls; the round's figure is the mean
    over names (equal weight); reported: the median over rounds (the peers' statistic).
    """
    sync_resolver = Resolver(**world.resolver_kwargs())
    for name in names:
        sync_resolver.resolve(name)  # warm: the full cold path once per name

    def sync_ns(name: str) -> float:
        timer = timeit.Timer("r.resolve(name)", globals={"r": sync_resolver, "name": name})
        return timer.timeit(number=iterations) * 1e9 / iterations

    sync_rounds = [statistics.fmean(sync_ns(n) for n in names) for _ in range(rounds)]

    # With no memo (max_memo=0) the state machine runs again, over the warm caches: what a
    # resolution costs once its memo entry is gone but its cached answers are still fresh.
    no_memo = Resolver(**world.resolver_kwargs(), max_memo=0)
    for name in names:
        no_memo.resolve(name)
    machine_iterations = max(iterations // 100, 20)

    def machine_ns(name: str) -> float:
        timer = timeit.Timer("r.resolve(name)", globals={"r": no_memo, "name": name})
        return timer.timeit(number=machine_iterations) * 1e9 / machine_iterations

    machine_rounds = [statistics.fmean(machine_ns(n) for n in names) for _ in range(rounds)]
    loop_overhead = [
        timeit.Timer("f(name)", globals={"f": _identity, "name": names[0]}).timeit(iterations)
        * 1e9
        / iterations
        for _ in range(rounds)
    ]

    async def run_async() -> tuple[list[float], list[float]]:
        resolver = AsyncResolver(**world.resolver_kwargs())
        for name in names:
            await resolver.resolve(name)

        async def loop(name: str) -> float:
            start = time.perf_counter_ns()
            for _ in range(iterations):
                await resolver.resolve(name)
            return (time.perf_counter_ns() - start) / iterations

        async def noop(name: str) -> str:
            return name

        async def noop_loop(name: str) -> float:
            start = time.perf_counter_ns()
            for _ in range(iterations):
                await noop(name)
            return (time.perf_counter_ns() - start) / iterations

        per_round = []
        for _ in range(rounds):
            per_name = {n: await loop(n) for n in names}
            for n, v in per_name.items():
                async_per_name[n].append(v)
            per_round.append(statistics.fmean(per_name.values()))
        overhead = [await noop_loop(names[0]) for _ in range(rounds)]
        return per_round, overhead

    async_per_name: dict[str, list[float]] = {n: [] for n in names}
    async_rounds, async_overhead = asyncio.run(run_async())
    return {
        "sync_ns": _median(sync_rounds),
        "sync_rounds_ns": sync_rounds,
        "sync_harness_overhead_ns": _median(loop_overhead),
        "async_ns": _median(async_rounds),
        "async_rounds_ns": async_rounds,
        "async_harness_overhead_ns": _median(async_overhead),
        "async_per_name_ns": {n: _median(v) for n, v in async_per_name.items()},
        "sync_no_memo_ns": _median(machine_rounds),
        "sync_no_memo_iterations_per_name": machine_iterations,
        "iterations_per_name": iterations,
        "names": len(names),
        "includes": (
            "one resolver warmed with one cold resolve() per name; timed per name: "
            f"{iterations} calls. sync: timeit of 'r.resolve(name)' (harness overhead = the same "
            "loop calling a one-line Python function); async: 'await r.resolve(name)' in a "
            "coroutine loop on a running event loop (harness overhead = awaiting an empty "
            "coroutine). Overheads are reported, not subtracted. sync_no_memo_ns: "
            "Resolver(max_memo=0).resolve(name): no memo, so the state machine runs again "
            "over the warm well-known and DNS caches. Per round: mean over names; "
            "reported: median over rounds"
        ),
    }


def _identity(name: str) -> str:
    return name


# --- single-flight ----------------------------------------------------------------------------


def single_flight(world: WorldConfig, name: str, concurrency: int) -> dict[str, Any]:
    """``concurrency`` concurrent resolve() calls of one uncached name on a fresh resolver."""

    async def run() -> dict[str, Any]:
        resolver, dns_t, https_t = counting_resolver(world)
        t0 = time.perf_counter()
        results = await asyncio.gather(
            *(_resolve_async(resolver, name) for _ in range(concurrency))
        )
        elapsed = time.perf_counter() - t0
        failures = [r for r in results if not isinstance(r, Resolution)]
        return {
            "name": name,
            "concurrent_calls": concurrency,
            "well_known_fetches": len(https_t.fetches),
            "dns_queries": len(dns_t.queries),
            "failures": len(failures),
            "distinct_results": len({id(r) for r in results}),
            "seconds": elapsed,
        }

    gc.collect()
    return asyncio.run(run())
