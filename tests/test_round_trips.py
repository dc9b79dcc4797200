"""Round trips on the critical path: what asking early buys, counted, not timed.

The model (issue 10): every request costs round trips on the world's clock, and every
request the machine hands out is in flight at once (``FakeWorld.resolve_timed``):

* a DNS query costs 1 RTT;
* an HTTPS GET costs 3 (TCP connect, TLS 1.3 handshake, the HTTP exchange), and 1 more
  when it carries no addresses, because the HTTPS transport must then resolve the host
  itself (AAAA and A together) before it can connect.

A resolution's cost is then the length of its critical path in RTTs. The floors: a 404
well-known ending at step 4 or 6 takes 4 (AAAA/A, TCP, TLS, GET, with the SRV records
and the targets' addresses asked alongside); a delegation to a name without a port that
ends at step 3.3 takes 6 (those 4, then SRV, then the target's addresses).
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from mxresolve import FakeWorld, Resolution, Settings
from mxresolve._core.cache import ResolverCache
from mxresolve._core.events import DnsQuery, HttpsGet, RecordType, Request, TraceKind
from mxresolve._core.settings import IpPolicy
from mxresolve._tools.vectors import DEFAULT_EPOCH, Vector, load_vectors, vector_settings

EARLY = Settings(
    ip_policy=IpPolicy.allow_all(),
    resolve_well_known_host=True,
    srv_with_well_known=True,
    legacy_srv_with_srv=True,
    addresses_with_srv=True,
)
SEQUENTIAL = dataclasses.replace(
    EARLY,
    resolve_well_known_host=False,
    srv_with_well_known=False,
    legacy_srv_with_srv=False,
    addresses_with_srv=False,
)
WELL_KNOWN = "https://example.org/.well-known/matrix/server"


def rtts(request: Request) -> float:
    if isinstance(request, DnsQuery):
        return 1
    assert isinstance(request, HttpsGet)
    return 3 if request.addresses else 4


def _srv(target: str, port: int = 8448) -> dict[str, Any]:
    return {"SRV": {"records": [{"priority": 10, "weight": 0, "port": port, "target": target}]}}


A = {"A": {"records": ["198.51.100.5"]}}
WORLDS: dict[str, dict[str, Any]] = {
    "404, step 6": {
        "dns": {"example.org.": A},
        "https": {WELL_KNOWN: {"status": 404}},
    },
    "404, step 4": {
        "dns": {
            "example.org.": A,
            "_matrix-fed._tcp.example.org.": _srv("fed.example.org."),
            "fed.example.org.": A,
        },
        "https": {WELL_KNOWN: {"status": 404}},
    },
    "404, step 5": {
        "dns": {
            "example.org.": A,
            "_matrix._tcp.example.org.": _srv("old.example.org."),
            "old.example.org.": A,
        },
        "https": {WELL_KNOWN: {"status": 404}},
    },
    "delegated, step 3.3": {
        "dns": {
            "example.org.": A,
            "_matrix-fed._tcp.example.org.": _srv("decoy.example.org."),
            "_matrix-fed._tcp.matrix.example.org.": _srv("fed.example.org."),
            "fed.example.org.": A,
        },
        "https": {WELL_KNOWN: {"body": '{"m.server": "matrix.example.org"}'}},
    },
    "delegated, step 3.5": {
        "dns": {"example.org.": A, "matrix.example.org.": A},
        "https": {WELL_KNOWN: {"body": '{"m.server": "matrix.example.org"}'}},
    },
    "delegated with a port, step 3.2": {
        "dns": {"example.org.": A, "matrix.example.org.": A},
        "https": {WELL_KNOWN: {"body": '{"m.server": "matrix.example.org:8449"}'}},
    },
}

# scenario: (the step that decides, RTTs asking early, RTTs one step after another)
EXPECTED = {
    "404, step 6": ("6", 4, 7),
    "404, step 4": ("4", 4, 6),
    "404, step 5": ("5", 4, 7),
    "delegated, step 3.3": ("3.3", 6, 6),
    "delegated, step 3.5": ("3.5", 5, 7),
    "delegated with a port, step 3.2": ("3.2", 5, 5),
}


def _cost(world: dict[str, Any], settings: Settings) -> tuple[str, float]:
    result, elapsed = FakeWorld(world).resolve_timed("example.org", cost=rtts, settings=settings)
    assert isinstance(result, Resolution), result
    return result.step.value, elapsed


@pytest.mark.parametrize("scenario", sorted(WORLDS))
def test_round_trips_of_each_scenario(scenario: str) -> None:
    step, early, sequential = EXPECTED[scenario]
    assert _cost(WORLDS[scenario], EARLY) == (step, early)
    assert _cost(WORLDS[scenario], SEQUENTIAL) == (step, sequential)


def test_the_floors_of_the_issue() -> None:
    assert _cost(WORLDS["404, step 6"], EARLY)[1] == 4
    assert _cost(WORLDS["404, step 4"], EARLY)[1] == 4
    assert _cost(WORLDS["delegated, step 3.3"], EARLY)[1] == 6


# Each setting alone, off: the scenario it shortens takes longer (so each is pinned).
@pytest.mark.parametrize(
    ("setting", "scenario", "rtts_without"),
    [
        ("resolve_well_known_host", "404, step 6", 5),  # the GET resolves, step 6 asks again
        ("srv_with_well_known", "404, step 6", 5),  # SRV (both at once) after the 404
        ("srv_with_well_known", "404, step 4", 6),  # SRV, then the target's addresses
        ("legacy_srv_with_srv", "404, step 5", 6),  # _matrix._tcp after the 404, then targets
        ("addresses_with_srv", "delegated, step 3.5", 6),  # addresses only after no SRV
    ],
)
def test_each_setting_saves_round_trips(setting: str, scenario: str, rtts_without: int) -> None:
    step, early, _ = EXPECTED[scenario]
    without = dataclasses.replace(EARLY, **{setting: False})
    assert _cost(WORLDS[scenario], without) == (step, rtts_without)
    assert rtts_without > early


@pytest.mark.parametrize("scenario", sorted(WORLDS))
def test_no_name_is_asked_twice_in_a_resolution(scenario: str) -> None:
    world = FakeWorld(WORLDS[scenario])
    world.resolve_timed("example.org", cost=rtts, settings=EARLY)
    assert len(world.requests) == len(set(world.requests)), world.requests


# --- asking early changes nothing but the requests ------------------------------------

EARLY_FIELDS = ("srv_with_well_known", "legacy_srv_with_srv", "addresses_with_srv")


def _story(vector: Vector, early: bool) -> list[Any]:
    """Every step's result, steps entered, and the cache after it, for one vector run."""
    epoch = float(vector.raw.get("epoch", DEFAULT_EPOCH))
    world = FakeWorld(vector.world, now=epoch)
    settings = vector_settings(vector)
    # The v1 world answers a described URL whatever DNS says of its host: the fetch
    # resolves its own host there, so resolve_well_known_host stays as the vector has it.
    settings = dataclasses.replace(settings, **{f: early for f in EARLY_FIELDS})
    cache = ResolverCache()
    rng = random.Random(0)
    story: list[Any] = []
    for step in vector.steps:
        if "world_patch" in step:
            world.patch(step["world_patch"])
        world.now = epoch + float(step.get("at", 0))
        result = world.resolve(step["resolve"], cache=cache, settings=settings, random=rng.random)
        outcome = (
            [t.to_json() for t in result.targets]
            if isinstance(result, Resolution)
            else result.kind.value
        )
        story.append(
            (
                result.step,
                outcome,
                [e.message for e in result.trace if e.kind in (TraceKind.STEP, TraceKind.DECISION)],
                sorted(cache._dns._data.items(), key=repr),
                sorted(cache._well_known._data.items(), key=repr),
            )
        )
    return story


@pytest.mark.parametrize("vector", load_vectors(), ids=lambda v: v.id)
def test_asking_early_changes_no_result_decision_or_cache(vector: Vector) -> None:
    # Unused early answers are dropped, used ones cached as of their arrival: with the
    # world's clock still during a resolution, the two runs must match exactly.
    assert _story(vector, early=True) == _story(vector, early=False)


def test_an_unused_early_srv_answer_is_not_cached() -> None:
    world = FakeWorld(WORLDS["delegated, step 3.3"])
    cache = ResolverCache()
    world.resolve("example.org", cache=cache, settings=EARLY)
    asked = DnsQuery(qname="_matrix-fed._tcp.example.org.", rdtype=RecordType.SRV)
    assert asked in world.requests  # asked early, alongside the well-known
    assert cache.dns(asked.qname, asked.rdtype, world.now) is None  # the delegation won
    used = "_matrix-fed._tcp.matrix.example.org."
    assert cache.dns(used, RecordType.SRV, world.now) is not None


@pytest.mark.parametrize("scenario", sorted(WORLDS))
def test_on_a_warm_cache_nothing_is_asked_early(scenario: str) -> None:
    # Early questions go out only while the step waits on the network; a warm cache
    # answers the step itself, so a second resolution asks nothing at all.
    world, cache = FakeWorld(WORLDS[scenario]), ResolverCache()
    first = world.resolve("example.org", cache=cache, settings=EARLY)
    asked = len(world.requests)
    again = world.resolve("example.org", cache=cache, settings=EARLY)
    assert isinstance(again, Resolution)
    assert isinstance(first, Resolution)
    assert again.targets == first.targets
    assert len(world.requests) == asked
    assert not [e for e in again.trace if e.kind is TraceKind.REQUEST]  # nor says it asks
