"""One worker process of a deployment sharing a Redis store: run as a script, JSON in and out.

``python redis_worker.py SPEC_JSON`` prints one JSON object. The spec says:

* ``redis_url``, ``prefix``, ``secrets`` (strings), ``local_max_age``: the store;
* ``world``: a FakeWorld description (each worker has its own, like its own network view);
* ``settings``: Settings fields; ``driver``: ``sync`` or ``asyncio``;
* ``start_at``: a wall-clock time to start at, so several workers start together;
* ``mode``: ``resolve`` (resolve ``names`` in order) or ``add_failures`` (count ``count``
  failures of ``host`` straight in the store: the back-off counter under contention).

The output has each result, the requests this worker's world answered, and the store's stats.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
from typing import Any

from mxresolve import AsyncResolver, FakeWorld, Resolution, Resolver, Settings
from mxresolve.stores.redis import AsyncRedisStore, RedisStore


def _summary(name: str, result: Any, elapsed: float) -> dict[str, Any]:
    ok = isinstance(result, Resolution)
    return {
        "name": name,
        "ok": ok,
        "step": str(result.step) if result.step is not None else None,
        "targets": [[t.host, t.port, list(t.addresses)] for t in result.targets] if ok else [],
        "message": "" if ok else result.message,
        "cache_notes": [t.message for t in result.trace if t.kind.value == "cache"],
        "elapsed": elapsed,
    }


def _store_options(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "prefix": spec.get("prefix", "mxresolve"),
        "secrets": spec.get("secrets", ()),
        "local_max_age": spec.get("local_max_age", 60.0),
        "timeout": spec.get("timeout", 0.1),
    }


def main(spec: dict[str, Any]) -> dict[str, Any]:
    settings = Settings(**spec.get("settings", {}))
    world = FakeWorld(spec.get("world", {}), now=time.time())
    if spec.get("start_at"):
        time.sleep(max(spec["start_at"] - time.time(), 0))
    results: list[dict[str, Any]] = []
    common: dict[str, Any] = {
        "settings": settings,
        "allow_ips": ["198.51.100.0/24", "2001:db8::/32"],
        "clock": time.time,
    }
    if spec.get("driver", "sync") == "sync":
        store = RedisStore(spec["redis_url"], **_store_options(spec))
        if spec.get("mode") == "add_failures":
            counts = [
                getattr(
                    store.add_failure(
                        spec["host"], "HTTP 503", unavailable=True, now=time.time(),
                        settings=settings,
                    ),
                    "failures",
                    None,
                )
                for _ in range(spec["count"])
            ]  # fmt: skip
            return {"counts": counts, "stats": dataclasses.asdict(store.stats)}
        dns, https = world.transports()
        resolver = Resolver(dns=dns, https=https, store=store, **common)
        for name in spec["names"]:
            started = time.monotonic()
            result = resolver.resolve_result(name)
            results.append(_summary(name, result, time.monotonic() - started))
        store.close()
        stats = store.stats
    else:

        async def run() -> AsyncRedisStore:
            astore = AsyncRedisStore(spec["redis_url"], **_store_options(spec))
            adns, ahttps = world.async_transports()
            aresolver = AsyncResolver(dns=adns, https=ahttps, store=astore, **common)
            for name in spec["names"]:
                started = time.monotonic()
                result = await aresolver.resolve_result(name)
                results.append(_summary(name, result, time.monotonic() - started))
            await astore.aclose()
            return astore

        stats = asyncio.run(run()).stats
    return {
        "results": results,
        "https": [str(r) for r in world.requests if not str(r).startswith("DNS")],
        "dns": [str(r) for r in world.requests if str(r).startswith("DNS")],
        "stats": dataclasses.asdict(stats),
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
