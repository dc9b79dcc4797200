"""N workers, one shared store: what a Redis store saves a deployment, and what it costs.

N worker processes resolve the same names against the loopback world (Knot DNS + nginx, the
bench world of _world.py: well-known delegations, SRV, 404s and refused :443), first each with
its own cache only, then sharing one real redis-server. Each worker resolves the names in its
own shuffled order (workers of a deployment do not meet names in lockstep), twice: a cold pass
and a warm pass. Reported, side by side in one run:

* DNS queries and well-known fetches the whole deployment made (counted by each worker's
  transports, below the shared store; the fetches cross-checked against nginx's access log);
* cold and warm latency per worker (median and p90 of one resolve_result());
* the cost of a hit that has to go to Redis: a new worker (empty local cache) resolving names
  the store knows, next to a rerun of the machine over a warm local cache and a memo hit;
* the local hit (the memo) with and without a store, to show it is unchanged.

    nox -s bench_store                              # 4 workers, 10,000 names
    python benchmarks/shared_store.py --workers 4 --names 10000 [--output results.json]

Needs knotd, nginx and redis-server (.ci/install-servers.sh) and root (for :443; the script
enters a private network namespace first, as the tests do). Traffic stays on loopback.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
import timeit
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))

from mxresolve import (  # noqa: E402
    DnspythonTransport,
    DnsQuery,
    DnsResult,
    H11HttpsTransport,
    HttpsFailure,
    HttpsGet,
    HttpsResponse,
    IpPolicy,
    Resolution,
    Resolver,
    Settings,
)

REQUEST_TIMEOUT = 5.0


def _log(message: str) -> None:
    print(f"[bench_store {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Counting:
    """Counts what reaches the network: DNS queries (the resolver's and the HTTPS transport's)
    and HTTPS fetches."""

    dns_inner: Any
    https_inner: Any = None
    dns_queries: int = 0
    fetches: int = 0
    seen: set[str] = field(default_factory=set)

    def query(self, query: DnsQuery, timeout: float) -> DnsResult:
        self.dns_queries += 1
        result: DnsResult = self.dns_inner.query(query, timeout)
        return result

    def fetch(self, request: HttpsGet, timeout: float) -> HttpsResponse | HttpsFailure:
        self.fetches += 1
        outcome: HttpsResponse | HttpsFailure = self.https_inner.fetch(request, timeout)
        return outcome


class _CountingHttps:
    def __init__(self, counting: Counting) -> None:
        self.counting = counting

    def fetch(self, request: HttpsGet, timeout: float) -> HttpsResponse | HttpsFailure:
        return self.counting.fetch(request, timeout)


def make_resolver(config: dict[str, Any], store: Any, **extra: Any) -> tuple[Resolver, Counting]:
    import ssl

    context = ssl.create_default_context(cafile=config["cafile"])
    counting = Counting(DnspythonTransport(config["nameservers"]))
    counting.https_inner = H11HttpsTransport(
        counting, ssl_context=context, ip_policy=IpPolicy.from_cidrs(config["allow_ips"])
    )
    resolver = Resolver(
        nameservers=config["nameservers"],
        ssl_context=context,
        allow_ips=config["allow_ips"],
        request_timeout=REQUEST_TIMEOUT,
        dns=counting,
        https=_CountingHttps(counting),
        store=store,
        settings=Settings(failure_initial_ttl=config["failure_ttl"]),
        **extra,
    )
    return resolver, counting


def _store(spec: dict[str, Any]) -> Any:
    if not spec.get("redis_url"):
        return None
    from mxresolve.stores.redis import RedisStore

    return RedisStore(
        spec["redis_url"],
        prefix=spec["prefix"],
        timeout=0.5,
        local_max_age=spec["config"]["local_max_age"],
    )


def _quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_us": statistics.median(ordered) * 1e6,
        "p90_us": ordered[int(len(ordered) * 0.9)] * 1e6,
        "total_s": sum(ordered),
    }


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One worker: a cold pass and a warm pass over the names, in this worker's own order."""
    names = list(spec["names"])
    random.Random(spec["seed"]).shuffle(names)
    store = _store(spec)
    resolver, counting = make_resolver(spec["config"], store)
    time.sleep(max(spec["start_at"] - time.time(), 0))
    out: dict[str, Any] = {"failed": []}
    for phase in ("cold", "warm"):
        before = (counting.dns_queries, counting.fetches)
        times = []
        for name in names:
            started = time.perf_counter()
            result = resolver.resolve_result(name)
            times.append(time.perf_counter() - started)
            if not isinstance(result, Resolution):
                out["failed"].append(f"{name}: {result.message}")
        out[phase] = {
            **_quantiles(times),
            "dns_queries": counting.dns_queries - before[0],
            "fetches": counting.fetches - before[1],
        }
    if store is not None:
        out["store"] = {"hits": store.stats.hits, "errors": store.stats.errors}
        store.close()
    return out


def redis_hit_cost(spec: dict[str, Any]) -> dict[str, Any]:
    """A new worker over a full store: what a resolution costs when its entries are in Redis.

    The entries are fresh: a primer worker resolves the sample through the store first.
    """
    from mxresolve import RecordType

    names = spec["names"][: spec["sample"]]
    config = spec["config"]
    store = _store(spec)
    # First bring the sample's entries in the store up to date (answers with a short TTL,
    # such as the zone's 60 s negative answers, ended since the deployment ran them).
    primer, _ = make_resolver(config, store)
    for name in names:
        primer.resolve_result(name)
    fresh, counting = make_resolver(config, store)
    via_redis = []
    for name in names:
        started = time.perf_counter()
        fresh.resolve_result(name)
        via_redis.append(time.perf_counter() - started)
    misses = counting.dns_queries + counting.fetches
    store_trouble = {"errors": store.stats.errors, "skipped": store.stats.skipped}
    # The same names again with the local cache warm but no memo: the machine runs again.
    local, _ = make_resolver(config, None, max_memo=0)
    for name in names:
        local.resolve_result(name)
    rerun = []
    for name in names:
        started = time.perf_counter()
        local.resolve_result(name)
        rerun.append(time.perf_counter() - started)
    settings = Settings()
    gets = []
    for name in names:
        started = time.perf_counter()
        store.get_well_known(name, time.time(), settings)
        store.get_dns(name + ".", RecordType.A, time.time(), settings)
        gets.append((time.perf_counter() - started) / 2)
    # The local hit (the memo), with and without a store, alternated in one process.
    memo_ns: dict[str, list[float]] = {"no store": [], "redis store": []}
    warm = {"no store": local, "redis store": fresh}
    warm["no store"] = make_resolver(config, None)[0]
    for resolver in warm.values():
        for name in names[:200]:
            resolver.resolve_result(name)
    iterations = 20_000
    for _ in range(5):
        for label, resolver in warm.items():
            per_name = [
                timeit.Timer("r.resolve(n)", globals={"r": resolver, "n": n}).timeit(iterations)
                * 1e9
                / iterations
                for n in names[:50]
            ]
            memo_ns[label].append(statistics.fmean(per_name))
    store.close()
    return {
        "resolution_via_redis": _quantiles(via_redis),
        "network_requests_of_that_worker": misses,
        "store_errors_and_skipped_calls": store_trouble,
        "machine_rerun_local_cache": _quantiles(rerun),
        "one_redis_get": _quantiles(gets),
        "memo_hit_ns": {k: statistics.median(v) for k, v in memo_ns.items()},
    }


def _spawn(mode: str, spec: dict[str, Any]) -> subprocess.Popen[bytes]:
    """A worker process; its spec goes in on stdin (10,000 names are too long for argv)."""
    process = subprocess.Popen(
        [sys.executable, __file__, f"--{mode}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert process.stdin is not None
    process.stdin.write(json.dumps(spec).encode())
    process.stdin.close()
    process.stdin = None  # communicate() must not flush it
    return process


def _collect(process: subprocess.Popen[bytes]) -> dict[str, Any]:
    out, _ = process.communicate(timeout=3600)  # stdin is already closed
    if process.returncode != 0:
        raise RuntimeError(f"a worker exited with {process.returncode}")
    result: dict[str, Any] = json.loads(out)
    return result


def _access_log_lines(path: Path) -> int:
    try:
        return len(path.read_bytes().splitlines())
    except FileNotFoundError:
        return 0


def deployment(
    config: dict[str, Any],
    world: Any,
    names: list[str],
    workers: int,
    redis_url: str | None,
    prefix: str,
) -> dict[str, Any]:
    logged = _access_log_lines(world.bench_access_log)
    start_at = time.time() + 2.0  # every worker imported and ready
    processes = [
        _spawn(
            "worker",
            {
                "names": names,
                "seed": i,
                "config": config,
                "redis_url": redis_url,
                "prefix": prefix,
                "start_at": start_at,
            },
        )
        for i in range(workers)
    ]
    outputs = [_collect(p) for p in processes]
    time.sleep(0.5)  # nginx writes its access log as each request ends
    total = {
        phase: {key: sum(o[phase][key] for o in outputs) for key in ("dns_queries", "fetches")}
        for phase in ("cold", "warm")
    }
    return {
        "workers": outputs,
        "total": total,
        "nginx_well_known_requests": _access_log_lines(world.bench_access_log) - logged,
        "failed": sum(len(o["failed"]) for o in outputs),
    }


def _row(label: str, result: dict[str, Any]) -> str:
    cold = result["total"]["cold"]
    warm = result["total"]["warm"]
    lat = [f"{w['cold']['median_us']:.0f}" for w in result["workers"]]
    warm_lat = [f"{w['warm']['median_us']:.2f}" for w in result["workers"]]
    return (
        f"| {label} | {cold['dns_queries']} | {cold['fetches']} "
        f"| {result['nginx_well_known_requests']} | {warm['dns_queries'] + warm['fetches']} "
        f"| {' / '.join(lat)} | {' / '.join(warm_lat)} | {result['failed']} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--names", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=2000, help="names for the Redis-hit cost")
    parser.add_argument(
        "--failure-ttl",
        type=float,
        default=600.0,
        help="failure_initial_ttl (s): longer than a run, so no back-off ends mid-run",
    )
    parser.add_argument(
        "--local-max-age",
        type=float,
        default=600.0,
        help="the store's local_max_age (s): longer than a run, so the warm pass is all memo",
    )
    parser.add_argument("--output", type=Path)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--hit-cost", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.load(sys.stdin))))
        return 0
    if args.hit_cost:
        print(json.dumps(redis_hit_cost(json.load(sys.stdin))))
        return 0

    from netns import enter_private_network

    _log(enter_private_network())
    from _world import BenchWorld, bench_names
    from redis_server import RedisServer

    names = bench_names(args.names)
    results: dict[str, Any] = {"workers": args.workers, "names": args.names}
    results["settings"] = {
        "failure_initial_ttl": args.failure_ttl,
        "local_max_age": args.local_max_age,
    }
    with BenchWorld(args.names) as world, RedisServer() as redis_server:
        config = {
            **world.resolver_config(),
            "failure_ttl": args.failure_ttl,
            "local_max_age": args.local_max_age,
        }
        _log(f"world up; {args.workers} workers x {args.names} names, without a store")
        results["one_worker"] = deployment(config, world, names, 1, None, "solo")
        _log("one worker done")
        results["local_only"] = deployment(config, world, names, args.workers, None, "none")
        _log("without a store done; with the shared Redis store")
        results["shared"] = deployment(
            config, world, names, args.workers, redis_server.url, "bench"
        )
        _log("with the store done; the cost of a hit in Redis")
        results["redis_hit"] = _collect(
            _spawn(
                "hit-cost",
                {
                    "names": names,
                    "sample": min(args.sample, len(names)),
                    "config": config,
                    "redis_url": redis_server.url,
                    "prefix": "bench",
                },
            )
        )
    print(report(results))
    if args.output:
        args.output.write_text(json.dumps(results, indent=2) + "\n")
    failed = sum(results[k]["failed"] for k in ("one_worker", "local_only", "shared"))
    return 1 if failed else 0


def report(results: dict[str, Any]) -> str:
    n = results["workers"]
    one, local, shared = results["one_worker"], results["local_only"], results["shared"]
    hit = results["redis_hit"]
    lines = [
        f"## {n} workers x {results['names']} names (loopback world)",
        "",
        f"Settings: {results['settings']} (everything else default).",
        "",
        "| deployment | DNS queries (cold) | well-known fetches (cold) | nginx saw "
        "| network requests (warm) | cold median us per worker | warm median us per worker "
        "| failed |",
        "|---|---|---|---|---|---|---|---|",
        _row("1 worker, own cache", one),
        _row(f"{n} workers, own caches", local),
        _row(f"{n} workers, shared Redis", shared),
        "",
        "Requests relative to one worker: "
        f"own caches x{_ratio(local, one):.2f}, shared Redis x{_ratio(shared, one):.2f} "
        f"(the store cuts the deployment's requests {_ratio(local, shared):.1f}-fold).",
        "",
        "| cost of one resolution | median us | p90 us |",
        "|---|---|---|",
        _hit_row("new worker, entries in Redis (read-through)", hit["resolution_via_redis"]),
        _hit_row(
            "machine rerun over a warm local cache (no memo)", hit["machine_rerun_local_cache"]
        ),
        _hit_row(
            "one Redis GET (well-known or DNS entry, decoded and checked)", hit["one_redis_get"]
        ),
        "",
        f"The new worker made {hit['network_requests_of_that_worker']} network requests "
        f"(store calls failed or skipped: {hit.get('store_errors_and_skipped_calls')}).",
        "Memo hit (resolve() of a warm name), ns: "
        + ", ".join(f"{k} {v:.0f}" for k, v in hit["memo_hit_ns"].items()),
    ]
    return "\n".join(lines)


def _ratio(a: dict[str, Any], b: dict[str, Any]) -> float:
    def requests(r: dict[str, Any]) -> int:
        return int(r["total"]["cold"]["dns_queries"] + r["total"]["cold"]["fetches"])

    return requests(a) / max(requests(b), 1)


def _hit_row(label: str, q: dict[str, float]) -> str:
    return f"| {label} | {q['median_us']:.1f} | {q['p90_us']:.1f} |"


if __name__ == "__main__":
    sys.exit(main())
