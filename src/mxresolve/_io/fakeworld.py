"""FakeWorld: an in-memory DNS and HTTPS world with a clock, for tests.

It answers the machine's requests from a plain description - the same
``world`` object the spec-vectors use (spec-vectors/README.md, "The world") -
so a test reads as data::

    world = FakeWorld.from_json({
        "dns": {"example.org.": {"A": {"records": ["198.51.100.5"]}}},
        "https": {"https://example.org/.well-known/matrix/server": {"status": 404}},
    })
    result = world.resolve("example.org")

DNS rules, in order: an absent name is NXDOMAIN; a name with ``"*": {"error":
E}`` answers E to everything; ``{"error": E}`` for a type answers E; a name
with a CNAME (asked for another type) answers with the alias followed (at most
8 deep, deeper is SERVFAIL); records answer NOERROR; anything else is NODATA.

HTTPS rules: a URL in ``https`` gets its response or its ``failure``; a URL
that is not there gets 404 if the request carries addresses (the machine
resolved the host) or its host has an address in the world, and a
``no_address`` failure if not. A body over the request's limit is a
``body_too_large`` failure, as a real transport would report it.
"""

from __future__ import annotations

import base64
import copy
import heapq
import random as _random
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .._core.cache import ResolverCache
from .._core.errors import InvalidServerName
from .._core.events import (
    NEED_RESULTS,
    DnsQuery,
    DnsResult,
    DnsStatus,
    HttpsFailure,
    HttpsFailureKind,
    HttpsGet,
    HttpsResponse,
    Outcome,
    RecordType,
    Request,
    Resolution,
    ResolutionFailure,
    SrvRecord,
)
from .._core.grammar import ServerName
from .._core.machine import ResolutionMachine, invalid_server_name_failure
from .._core.settings import Settings

__all__ = ["FakeWorld", "WorldError", "merge_patch"]

_MAX_CHAIN = 8
_MAX_STEPS = 10_000  # a runaway driver loop is a bug; stop it loudly


class WorldError(ValueError):
    """A world description that does not follow the format; says where."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON Merge Patch (``null`` deletes a key)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class FakeWorld:
    """An in-memory network: DNS zones, HTTPS responses and a clock.

    Args:
        world: ``{"dns": {...}, "https": {...}}`` as in the vector format.
        now: the clock's start (POSIX seconds).
    """

    def __init__(self, world: Mapping[str, Any] | None = None, *, now: float = 0.0) -> None:
        self.world: dict[str, Any] = {"dns": {}, "https": {}}
        self.now = float(now)
        self.requests: list[Request] = []
        self.patch(dict(world or {}))

    @classmethod
    def from_json(cls, world: Mapping[str, Any], *, now: float = 0.0) -> FakeWorld:
        return cls(world, now=now)

    def patch(self, patch: Mapping[str, Any]) -> None:
        """Apply an RFC 7396 merge patch to the world, then check it."""
        merged = merge_patch(self.world, dict(patch))
        _check_world(merged)
        merged.setdefault("dns", {})
        merged.setdefault("https", {})
        self.world = merged

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self.now += seconds

    # --- answering requests -----------------------------------------------------------

    def answer(self, request: Request) -> Outcome:
        """The outcome ``request`` gets in this world (and log the request)."""
        self.requests.append(request)
        if isinstance(request, DnsQuery):
            return self.dns(request.qname, request.rdtype)
        return self._https(request)

    def dns(self, qname: str, rdtype: RecordType) -> DnsResult:
        aliases: list[str] = []
        name = qname.lower()
        for _ in range(_MAX_CHAIN + 1):
            node = self._dns_node(name)
            if node is None:
                return DnsResult(status=DnsStatus.NXDOMAIN, aliases=tuple(aliases))
            if "*" in node:
                return _error_result(node["*"], aliases)
            entry = node.get(rdtype.value)
            if isinstance(entry, dict) and "error" in entry:
                return _error_result(entry, aliases)
            if rdtype is not RecordType.CNAME and "CNAME" in node and not entry:
                cname = node["CNAME"]
                target = str(cname["records"][0]).lower()
                name = target if target.endswith(".") else target + "."
                aliases.append(name)
                continue
            if entry and entry.get("records"):
                records = tuple(_record(rdtype, r) for r in entry["records"])
                return DnsResult(
                    status=DnsStatus.NOERROR,
                    records=records,
                    ttl=int(entry.get("ttl", 300)),
                    aliases=tuple(aliases),
                )
            return DnsResult(status=DnsStatus.NODATA, aliases=tuple(aliases))
        return DnsResult(status=DnsStatus.SERVFAIL, message=f"CNAME chain longer than {_MAX_CHAIN}")

    def _dns_node(self, name: str) -> dict[str, Any] | None:
        zones: dict[str, Any] = self.world["dns"]
        node = zones.get(name)
        if node is None:
            # Names in the world are matched case-insensitively, as DNS does.
            for key, value in zones.items():
                if key.lower() == name:
                    return dict(value)
            return None
        return dict(node)

    def _https(self, request: HttpsGet) -> Outcome:
        described = self.world["https"].get(request.url)
        if described is None:
            host = urlsplit(request.url).hostname or ""
            if request.addresses or self._has_address(host):
                return HttpsResponse(status=404, headers=(), body=b"")
            return HttpsFailure(
                kind=HttpsFailureKind.NO_ADDRESS, message=f"{host} has no address in the world"
            )
        if "failure" in described:
            return HttpsFailure(
                kind=HttpsFailureKind(described["failure"]),
                message=str(described.get("message", "")),
            )
        body = _body(described)
        if len(body) > request.max_body_bytes:
            return HttpsFailure(
                kind=HttpsFailureKind.BODY_TOO_LARGE,
                message=f"more than {request.max_body_bytes} bytes",
            )
        headers = tuple((str(k), str(v)) for k, v in described.get("headers", []))
        return HttpsResponse(status=int(described.get("status", 200)), headers=headers, body=body)

    def _has_address(self, host: str) -> bool:
        if not host:
            return False
        if host.replace(".", "").isdigit() or ":" in host:
            return True  # an IP literal needs no DNS
        fqdn = host.lower().rstrip(".") + "."
        return any(
            self.dns(fqdn, t).status is DnsStatus.NOERROR for t in (RecordType.AAAA, RecordType.A)
        )

    # --- as transports for the drivers ------------------------------------------------

    def clock(self) -> float:
        """The world's time: pass as ``clock=`` so drivers read the same clock."""
        return self.now

    def transports(self) -> tuple[_WorldDns, _WorldHttps]:
        """(dns, https) transports for :class:`Resolver` that answer from this world.

        Use ``Resolver(dns=dns, https=https, clock=world.clock)``; every request lands in
        :attr:`requests`, as with :meth:`resolve`.
        """
        return _WorldDns(self), _WorldHttps(self)

    def async_transports(self) -> tuple[_AsyncWorldDns, _AsyncWorldHttps]:
        """The same for :class:`AsyncResolver`."""
        return _AsyncWorldDns(self), _AsyncWorldHttps(self)

    # --- driving a resolution ---------------------------------------------------------

    def resolve(
        self,
        server_name: str | ServerName,
        *,
        cache: ResolverCache | None = None,
        settings: Settings | None = None,
        random: Callable[[], float] | None = None,
    ) -> Resolution | ResolutionFailure:
        """Run one resolution against this world at the world's ``now``.

        Requests are answered in the order they are handed out, at once (the
        clock does not move during a resolution). An invalid server name gives
        a failure of kind ``invalid_server_name``, like any other ending.
        """
        try:
            machine = ResolutionMachine(
                server_name,
                now=self.now,
                random=random if random is not None else _random.Random(0).random,
                cache=cache,
                settings=settings,
            )
        except InvalidServerName as exc:
            return invalid_server_name_failure(exc)
        for _ in range(_MAX_STEPS):
            event = machine.next_event()
            if isinstance(event, (DnsQuery, HttpsGet)):
                machine.receive(event, self.answer(event), now=self.now)
            elif event is NEED_RESULTS:
                raise RuntimeError("FakeWorld answers every request at once; nothing can wait")
            else:
                assert isinstance(event, (Resolution, ResolutionFailure))
                return event
        raise RuntimeError(f"the resolution did not end within {_MAX_STEPS} events")

    def resolve_timed(
        self,
        server_name: str | ServerName,
        *,
        cost: Callable[[Request], float],
        cache: ResolverCache | None = None,
        settings: Settings | None = None,
        random: Callable[[], float] | None = None,
    ) -> tuple[Resolution | ResolutionFailure, float]:
        """Run one resolution where each request takes ``cost(request)`` on the world's clock.

        Every request handed out is in flight at once, as with a driver that runs
        them all concurrently; outcomes come back in order of completion and the
        clock moves to each. Returns the result and the time it took: with costs
        in round trips, the resolution's critical path in round trips.
        """
        machine = ResolutionMachine(
            server_name,
            now=self.now,
            random=random if random is not None else _random.Random(0).random,
            cache=cache,
            settings=settings,
        )
        started = self.now
        in_flight: list[tuple[float, int, Request]] = []
        for sequence in range(_MAX_STEPS):
            event = machine.next_event()
            if isinstance(event, (DnsQuery, HttpsGet)):
                heapq.heappush(in_flight, (self.now + cost(event), sequence, event))
            elif event is NEED_RESULTS:
                done_at, _, request = heapq.heappop(in_flight)
                self.now = max(self.now, done_at)
                machine.receive(request, self.answer(request), now=self.now)
            else:
                assert isinstance(event, (Resolution, ResolutionFailure))
                return event, self.now - started
        raise RuntimeError(f"the resolution did not end within {_MAX_STEPS} events")


class _WorldDns:
    def __init__(self, world: FakeWorld) -> None:
        self.world = world

    def query(self, query: DnsQuery, timeout: float) -> DnsResult:
        outcome = self.world.answer(query)
        assert isinstance(outcome, DnsResult)
        return outcome


class _WorldHttps:
    def __init__(self, world: FakeWorld) -> None:
        self.world = world

    def fetch(self, request: HttpsGet, timeout: float) -> HttpsResponse | HttpsFailure:
        outcome = self.world.answer(request)
        assert isinstance(outcome, (HttpsResponse, HttpsFailure))
        return outcome


class _AsyncWorldDns:
    def __init__(self, world: FakeWorld) -> None:
        self._sync = _WorldDns(world)

    async def query(self, query: DnsQuery, timeout: float) -> DnsResult:
        return self._sync.query(query, timeout)


class _AsyncWorldHttps:
    def __init__(self, world: FakeWorld) -> None:
        self._sync = _WorldHttps(world)

    async def fetch(self, request: HttpsGet, timeout: float) -> HttpsResponse | HttpsFailure:
        return self._sync.fetch(request, timeout)


def _error_result(entry: Any, aliases: list[str]) -> DnsResult:
    status = DnsStatus(entry["error"])
    if status is DnsStatus.NOERROR:
        raise WorldError("'error' cannot be NOERROR")
    return DnsResult(status=status, aliases=tuple(aliases), message="from the world")


def _record(rdtype: RecordType, raw: Any) -> str | SrvRecord:
    if rdtype is RecordType.SRV:
        return SrvRecord(
            priority=raw["priority"], weight=raw["weight"], port=raw["port"], target=raw["target"]
        )
    return str(raw)


def _body(described: Mapping[str, Any]) -> bytes:
    if "body_base64" in described:
        return base64.b64decode(described["body_base64"])
    if "body_repeat" in described:
        rep = described["body_repeat"]
        return (str(rep["text"]) * int(rep["times"]) + str(rep.get("then", ""))).encode()
    return str(described.get("body", "")).encode()


_RECORD_TYPES = {"A", "AAAA", "CNAME", "SRV", "*"}
_ERRORS = {s.value for s in DnsStatus} - {"NOERROR"}
_FAILURES = {k.value for k in HttpsFailureKind}


def _check_world(world: Mapping[str, Any]) -> None:
    """Reject a malformed world up front, naming the offending path."""
    if not isinstance(world, dict):
        raise WorldError("the world must be an object")
    unknown = set(world) - {"dns", "https"}
    if unknown:
        raise WorldError(f"unknown world keys: {sorted(unknown)}")
    for name, node in world.get("dns", {}).items():
        where = f"dns[{name!r}]"
        if not name.endswith("."):
            raise WorldError(f"{where}: names are absolute and end with '.'")
        if not isinstance(node, dict):
            raise WorldError(f"{where} must be an object")
        for rtype, entry in node.items():
            if rtype not in _RECORD_TYPES:
                raise WorldError(f"{where}: unknown record type {rtype!r}")
            if not isinstance(entry, dict):
                raise WorldError(f"{where}[{rtype!r}] must be an object")
            if "error" in entry:
                if entry["error"] not in _ERRORS:
                    raise WorldError(f"{where}[{rtype!r}]: unknown error {entry['error']!r}")
                continue
            records = entry.get("records")
            if not isinstance(records, list):
                raise WorldError(f"{where}[{rtype!r}] needs a 'records' list or an 'error'")
            if rtype == "SRV":
                for r in records:
                    try:
                        _record(RecordType.SRV, r)
                    except (KeyError, TypeError, ValueError) as exc:
                        raise WorldError(f"{where}['SRV']: bad record {r!r}: {exc}") from None
            elif rtype == "CNAME" and len(records) != 1:
                raise WorldError(f"{where}['CNAME'] must have exactly one record")
    for url, response in world.get("https", {}).items():
        where = f"https[{url!r}]"
        if not isinstance(response, dict):
            raise WorldError(f"{where} must be an object")
        if "failure" in response and response["failure"] not in _FAILURES:
            raise WorldError(f"{where}: unknown failure {response['failure']!r}")
