"""The shared store against a real redis-server, with worker processes sharing it.

Each worker is its own process (tests/integration/redis_worker.py) with its own FakeWorld
(its own view of the network, whose requests it counts) and the real clock; they share
one Redis, started per test by the ``redis_server`` fixture on loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mxresolve import FakeWorld, RecordType, Resolver, Settings, WellKnownEntry, parse_server_name

from .conftest import REQUIRE_ENV, integration_required
from .redis_server import RedisServer, missing_redis

pytestmark = pytest.mark.integration

WORKER = Path(__file__).with_name("redis_worker.py")
SECRET = "0123456789abcdef-test-deployment"

WORLD: dict[str, Any] = {
    "dns": {
        "deleg.example.": {"A": {"records": ["198.51.100.1"], "ttl": 300}},
        "target.example.": {"A": {"records": ["198.51.100.2"], "ttl": 300}},
        "down.example.": {"A": {"records": ["198.51.100.3"], "ttl": 300}},
        "_matrix-fed._tcp.srv.example.": {
            "SRV": {
                "records": [{"priority": 0, "weight": 0, "port": 8448, "target": "t.srv.example."}],
                "ttl": 600,
            }
        },
        "t.srv.example.": {"A": {"records": ["198.51.100.4"], "ttl": 600}},
        "srv.example.": {"A": {"records": ["198.51.100.5"], "ttl": 600}},
    },
    "https": {
        "https://deleg.example/.well-known/matrix/server": {
            "status": 200,
            "body": '{"m.server": "target.example:8448"}',
        },
        "https://down.example/.well-known/matrix/server": {"failure": "connection_refused"},
        "https://srv.example/.well-known/matrix/server": {"status": 404},
    },
}
ALLOW = ["198.51.100.0/24"]


def _require_redis() -> None:
    missing = missing_redis()
    if missing:
        if integration_required():
            pytest.fail(f"{missing} ({REQUIRE_ENV}=1)", pytrace=False)
        pytest.skip(missing)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    _require_redis()
    with RedisServer() as server:
        yield server


def run_workers(*specs: dict[str, Any], timeout: float = 60) -> list[dict[str, Any]]:
    """Start every worker at once; their outputs, in order."""
    env = dict(os.environ)
    processes = [
        subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps(spec)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for spec in specs
    ]
    outputs = []
    for process in processes:
        out, err = process.communicate(timeout=timeout)
        assert process.returncode == 0, err.decode(errors="replace")[-3000:]
        outputs.append(json.loads(out))
    return outputs


def spec(server: RedisServer, *names: str, **extra: Any) -> dict[str, Any]:
    return {"redis_url": server.url, "world": WORLD, "names": list(names), **extra}


def fetches(output: dict[str, Any]) -> list[str]:
    return [r for r in output["https"] if "well-known" in r]


def stored_well_known(server: RedisServer, host: str, **codec: Any) -> Any:
    import redis

    from mxresolve._core.store import StoreCodec

    store_codec = StoreCodec(**codec)
    with redis.Redis.from_url(server.url) as client:
        raw = client.get(store_codec.well_known_key(host))
    return store_codec.decode_well_known(host, raw, time.time(), Settings())


# --- workers share what they learn ---------------------------------------------------------


@pytest.mark.parametrize("second_driver", ["sync", "asyncio"])
def test_a_delegation_learned_by_one_worker_is_used_by_another(
    redis_server: RedisServer, second_driver: str
) -> None:
    (first,) = run_workers(spec(redis_server, "deleg.example", "srv.example"))
    (second,) = run_workers(
        spec(redis_server, "deleg.example", "srv.example", driver=second_driver)
    )
    assert [r["ok"] for r in first["results"] + second["results"]] == [True] * 4
    assert [r["targets"] for r in second["results"]] == [r["targets"] for r in first["results"]]
    assert [r["step"] for r in second["results"]] == [r["step"] for r in first["results"]]
    assert len(fetches(first)) == 2
    assert first["dns"]  # the first worker asked its DNS ...
    assert second["https"] == second["dns"] == []  # ... the second asked nobody
    notes = second["results"][0]["cache_notes"]
    assert notes[0].startswith("the well-known entry for deleg.example came from the shared store")
    assert any("m.server is 'target.example:8448'" in n for n in notes)
    assert stored_well_known(redis_server, "deleg.example").value.delegation.text == (
        "target.example:8448"
    )


def test_a_failure_and_its_back_off_are_seen_by_another_worker(redis_server: RedisServer) -> None:
    settings = {"failure_initial_ttl": 1.0, "failure_max_ttl": 60.0}
    (first,) = run_workers(spec(redis_server, "down.example", settings=settings))
    assert first["results"][0]["ok"]  # step 6: the well-known is down, the name still resolves
    assert len(fetches(first)) == 1
    assert stored_well_known(redis_server, "down.example").value.failures == 1

    (second,) = run_workers(spec(redis_server, "down.example", settings=settings))
    assert fetches(second) == []  # backing off: the other worker's failure counts here
    assert any("consecutive failures: 1" in n for n in second["results"][0]["cache_notes"])

    time.sleep(1.1)  # the first back-off ends; the next failure, by another worker, is the 2nd
    (third,) = run_workers(spec(redis_server, "down.example", settings=settings))
    assert len(fetches(third)) == 1
    entry = stored_well_known(redis_server, "down.example").value
    assert entry.failures == 2
    assert entry.expires_at - entry.stored_at == pytest.approx(2.0)  # 1 s, doubled


def test_concurrent_failures_are_all_counted(redis_server: RedisServer) -> None:
    workers, each = 4, 25
    start_at = time.time() + 1.5  # after every worker has imported and connected
    outputs = run_workers(
        *[
            {"redis_url": redis_server.url, "mode": "add_failures", "host": "down.example",
             "count": each, "start_at": start_at, "timeout": 2.0}
            for _ in range(workers)
        ]
    )  # fmt: skip
    counts = [c for o in outputs for c in o["counts"]]
    assert None not in counts
    assert sorted(counts) == list(range(1, workers * each + 1))  # each count given out once
    assert stored_well_known(redis_server, "down.example").value.failures == workers * each


# --- Redis slow, down, restarted ---------------------------------------------------------------


def _many_world(count: int) -> dict[str, Any]:
    world: dict[str, Any] = {"dns": {}, "https": {}}
    for i in range(count):
        world["dns"][f"n{i}.example."] = {"A": {"records": [f"198.51.100.{i % 250 + 1}"]}}
        world["https"][f"https://n{i}.example/.well-known/matrix/server"] = {"status": 404}
    return world


@pytest.mark.parametrize("driver", ["sync", "asyncio"])
def test_resolutions_go_on_while_redis_is_slow_down_and_restarted(
    redis_server: RedisServer, driver: str
) -> None:
    from mxresolve import AsyncResolver
    from mxresolve.stores.redis import AsyncRedisStore, RedisStore

    world = FakeWorld(_many_world(80), now=time.time())
    settings = Settings(deadline=2.0)
    options: dict[str, Any] = {"timeout": 0.1, "breaker_initial": 0.2, "breaker_max": 0.5}
    phases = ["up", "paused", "up", "stopped", "restarted"]
    names = iter(f"n{i}.example" for i in range(80))
    elapsed: dict[str, list[float]] = {p: [] for p in phases}
    failures: list[str] = []

    async def main() -> Any:
        store: Any
        if driver == "sync":
            store = RedisStore(redis_server.url, **options)
            dns, https = world.transports()
            resolver: Any = Resolver(
                dns=dns, https=https, store=store, settings=settings, allow_ips=ALLOW
            )
        else:
            store = AsyncRedisStore(redis_server.url, **options)
            adns, ahttps = world.async_transports()
            resolver = AsyncResolver(
                dns=adns, https=ahttps, store=store, settings=settings, allow_ips=ALLOW
            )
        for phase in phases:
            if phase == "paused":
                redis_server.pause()
            elif phase == "up":
                redis_server.resume()
            elif phase == "stopped":
                redis_server.stop()
            elif phase == "restarted":
                redis_server.start()
                await asyncio.sleep(0.6)  # past the breaker's longest wait: sharing resumes
            for _ in range(16):
                name = next(names)
                started = time.monotonic()
                result = resolver.resolve_result(name)
                if driver != "sync":
                    result = await result
                elapsed[phase].append(time.monotonic() - started)
                if not hasattr(result, "targets"):
                    failures.append(f"{phase} {name}: {result.message}")
                await asyncio.sleep(0.02)
        if driver == "sync":
            store.close()
        else:
            await store.aclose()
        return store

    store = asyncio.run(main())
    assert failures == []
    worst = max(max(v) for v in elapsed.values())
    assert worst < settings.deadline
    # Once a hung Redis is noticed, a resolution does not wait for it: the breaker answers.
    # (Without the breaker each would wait out the 0.1 s timeout of every call it makes.)
    for phase in ("paused", "stopped"):
        assert sorted(elapsed[phase])[len(elapsed[phase]) // 2] < 0.05, elapsed[phase]
    assert store.stats.errors > 0
    assert store.stats.skipped > 0
    # After the restart (an empty Redis), names were shared again. Not necessarily every one:
    # on a loaded machine one write may miss the 0.1 s timeout and open the breaker briefly.
    shared = [stored_well_known(redis_server, f"n{i}.example").value for i in range(64, 80)]
    shared_again = [entry for entry in shared if entry is not None]
    assert shared_again, "nothing was shared after Redis came back"
    assert all(entry.failures == 1 for entry in shared_again)


# --- what is in Redis is not trusted -----------------------------------------------------------


def test_garbage_old_versions_and_bad_macs_are_ignored_and_rewritten(
    redis_server: RedisServer,
) -> None:
    import redis

    from mxresolve._core.store import StoreCodec

    unsigned = StoreCodec()
    signed_elsewhere = StoreCodec(secrets=["another-deployment-secret"])
    planted_delegation = (
        b'{"d":"evil.example:8448","e":null,"s":%d,"x":%d,"f":0,'
        b'"g":"evil.example:8448","gx":%d,"u":false}'
        % (time.time(), time.time() + 3600, time.time() + 3600)
    )
    planted = {
        "deleg.example": b"\x00\xffgarbage",
        "srv.example": b"mxr0 - " + planted_delegation,  # an old format
        "down.example": b"mxr1 - " + planted_delegation,  # well-formed, unsigned
    }
    key = unsigned.well_known_key
    with redis.Redis.from_url(redis_server.url) as client:
        for host, value in planted.items():
            client.set(key(host), value)
        signed = signed_elsewhere.encode_well_known(
            "target.example", stored_well_known_entry_for_evil()
        )
        client.set(key("target.example"), signed)
        client.set(unsigned.dns_key("target.example.", RecordType.A), b"mxr1 - not json")

    names = ["deleg.example", "srv.example", "down.example"]
    (out,) = run_workers(spec(redis_server, *names, secrets=[SECRET]))
    assert [r["ok"] for r in out["results"]] == [True] * 3
    assert all("evil" not in json.dumps(r["targets"]) for r in out["results"])
    assert len(fetches(out)) == 3  # nothing planted was used: every well-known was fetched
    assert out["stats"]["ignored"] >= 4  # three well-known entries, one DNS answer
    # Each planted entry was overwritten by a good, signed one.
    for host in names:
        decoded = stored_well_known(redis_server, host, secrets=[SECRET])
        assert decoded.problem is None
        assert decoded.value is not None


def stored_well_known_entry_for_evil() -> WellKnownEntry:
    evil = parse_server_name("evil.example:8448")
    now = time.time()
    return WellKnownEntry(
        delegation=evil,
        error=None,
        stored_at=now,
        expires_at=now + 3600,
        last_good=evil,
        last_good_expired_at=now + 3600,
    )


def test_a_worker_without_the_secret_cannot_plant_a_delegation(redis_server: RedisServer) -> None:
    # A process that can write to Redis but has another (or no) secret writes a delegation.
    from mxresolve.stores.redis import RedisStore

    attacker = RedisStore(redis_server.url, secrets=["not-the-deployment-secret"])
    attacker.put_well_known("deleg.example", stored_well_known_entry_for_evil(), time.time(),
                            Settings())  # fmt: skip
    attacker.close()
    (out,) = run_workers(spec(redis_server, "deleg.example", secrets=[SECRET]))
    assert out["results"][0]["targets"][0][0] == "target.example"
    assert len(fetches(out)) == 1
    assert "MAC" in out["stats"]["last_problem"]


# --- expiry and eviction -------------------------------------------------------------------------


def test_redis_expiry_follows_each_entry(redis_server: RedisServer) -> None:
    import redis

    from mxresolve._core.store import StoreCodec

    world = {
        **WORLD,
        "dns": {**WORLD["dns"], "target.example.": {"A": {"records": ["198.51.100.2"], "ttl": 3}}},
    }
    settings = {"failure_initial_ttl": 1.0, "failure_max_ttl": 2.0, "stale_if_error": 5.0}
    run_workers({**spec(redis_server, "deleg.example", "down.example"), "world": world,
                 "settings": settings})  # fmt: skip
    codec = StoreCodec()
    with redis.Redis.from_url(redis_server.url) as client:
        ttl = {
            "dns": client.pttl(codec.dns_key("target.example.", RecordType.A)) / 1000,
            "delegation": client.pttl(codec.well_known_key("deleg.example")) / 1000,
            "failure": client.pttl(codec.well_known_key("down.example")) / 1000,
        }
        assert 0 < ttl["dns"] <= 3.0  # the record's TTL
        assert 86000 < ttl["delegation"] <= 86400 + 5  # its lifetime (24 h) + stale_if_error
        assert 1.0 < ttl["failure"] <= 1.0 + 2.0  # its back-off (1 s) + failure_max_ttl
        time.sleep(3.1)
        assert client.exists(codec.dns_key("target.example.", RecordType.A)) == 0
        assert client.exists(codec.well_known_key("down.example")) == 0
        assert client.exists(codec.well_known_key("deleg.example")) == 1


def test_eviction_under_maxmemory_only_costs_misses() -> None:
    _require_redis()
    import redis

    from mxresolve import DnsResult, DnsStatus
    from mxresolve.stores.redis import RedisStore

    with RedisServer(maxmemory=2 * 1024 * 1024, maxmemory_policy="allkeys-lru") as server:
        store = RedisStore(server.url, timeout=1.0)
        now = time.time()
        result = DnsResult(status=DnsStatus.NOERROR, records=("198.51.100.9",) * 8, ttl=600)
        for i in range(20_000):
            store.put_dns(f"name{i}.example.", RecordType.A, result, now + 600, now)
        with redis.Redis.from_url(server.url) as client:
            info = client.info()
        assert info["evicted_keys"] > 0
        assert info["used_memory"] <= 2.2 * 1024 * 1024
        settings = Settings()
        hits = [
            store.get_dns(f"name{i}.example.", RecordType.A, now, settings) for i in range(20_000)
        ]
        assert hits[0] is None  # evicted: a miss, not an error
        assert hits[-1] is not None  # the most recent survive
        assert store.stats.errors == 0
        store.close()


def test_local_cache_bounds_hold_with_a_store(redis_server: RedisServer) -> None:
    from mxresolve import ResolverCache
    from mxresolve.stores.redis import RedisStore

    world = FakeWorld(_many_world(40), now=time.time())
    dns, https = world.transports()
    cache = ResolverCache(max_well_known_entries=10, max_dns_entries=20)
    store = RedisStore(redis_server.url)
    resolver = Resolver(dns=dns, https=https, cache=cache, store=store, allow_ips=ALLOW)
    for i in range(40):
        assert hasattr(resolver.resolve_result(f"n{i}.example"), "targets")
    assert cache.well_known_entries == 10
    assert cache.dns_entries == 20
    # What the local cache dropped is still shared: a new worker reads it, asking nobody.
    world2 = FakeWorld(_many_world(40), now=time.time())
    dns2, https2 = world2.transports()
    other = Resolver(dns=dns2, https=https2, store=store, allow_ips=ALLOW)
    assert hasattr(other.resolve_result("n0.example"), "targets")
    assert world2.requests == []
    store.close()


def test_one_store_serves_many_threads(redis_server: RedisServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from mxresolve.stores.redis import RedisStore

    store = RedisStore(redis_server.url, timeout=1.0)
    worlds = [FakeWorld(_many_world(60), now=time.time()) for _ in range(2)]
    resolvers = [
        Resolver(dns=w.transports()[0], https=w.transports()[1], store=store, allow_ips=ALLOW)
        for w in worlds
    ]
    jobs = [(resolvers[i // 60 % 2], f"n{i % 60}.example") for i in range(480)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda job: job[0].resolve_result(job[1]), jobs))
    assert all(hasattr(r, "targets") for r in results)
    assert store.stats.errors == 0
    fetched = [str(r) for w in worlds for r in w.requests if "well-known" in str(r)]
    assert len(set(fetched)) == 60
    assert len(fetched) <= 60 + 8, len(fetched)  # shared (8 threads may race on a name)
    store.close()
