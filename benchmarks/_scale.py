"""The scale phase, run by bench.py in a fresh interpreter so its RSS is its own.

Reads one JSON object on stdin, writes one on stdout::

    {"nameserver": "127.0.0.1:PORT", "cafile": "...", "allow_ips": [...],
     "names": 10000, "concurrency": 200, "rounds": 3, "budget_seconds": 210,
     "round_timeout": 240, "tracemalloc_names": 500}

* ``rounds`` cold rounds of ``names`` distinct generated names through ONE long-lived
  AsyncResolver (``await resolve()``, so finished resolutions are memoised), at most
  ``concurrency`` resolutions in flight (a semaphore); ``forget()`` between rounds, so every
  round is cold and any leak would pile up in the same resolver. Rounds after the second
  start only if the time budget allows another one. Per round: names/s, CPU
  seconds, cache sizes, RSS after the round (``VmRSS``) and after ``forget()``, and the
  interpreter's allocated blocks after ``forget()`` (``sys.getallocatedblocks()``: flat
  unless objects leak; RSS also shows the C allocator's high-water mark).
* then, on a fresh resolver with tracemalloc on, ``tracemalloc_names`` names: the bytes the
  memo of finished resolutions and the ResolverCache hold, per entry.

Peak RSS is the process's ``VmHWM``: interpreter, imports and all rounds included.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import WorldConfig
from _world import bench_names, expected_step

from mxresolve import AsyncResolver, Resolution, ResolutionError

SETTLE_SECONDS = 0.5  # lets closing TLS transports finish before memory is read


def _status_kib(field: str) -> int:
    """A field of /proc/self/status in KiB (0 where there is no procfs)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _rss_mib() -> float:
    return _status_kib("VmRSS") / 1024


async def _bounded(resolver: AsyncResolver, names: list[str], concurrency: int) -> list[Any]:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(name: str) -> Any:
        async with semaphore:
            try:
                return await resolver.resolve(name)  # what a homeserver calls: memoised
            except ResolutionError as exc:
                return exc.failure

    return await asyncio.gather(*(one(n) for n in names))


def _problems(names: list[str], results: list[Any]) -> list[str]:
    out = []
    for name, result in zip(names, results, strict=True):
        if not isinstance(result, Resolution):
            out.append(f"{name}: {getattr(result, 'message', result)}")
        elif result.step.value != expected_step(name):
            out.append(f"{name}: step {result.step.value}, expected {expected_step(name)}")
    return out


async def _rounds(cfg: dict[str, Any], world: WorldConfig) -> list[dict[str, Any]]:
    names = bench_names(int(cfg["names"]))
    resolver = AsyncResolver(**world.resolver_kwargs())
    out: list[dict[str, Any]] = []
    started = time.monotonic()
    for index in range(int(cfg["rounds"])):
        spent = time.monotonic() - started
        if index >= 2 and spent + out[-1]["seconds"] > float(cfg["budget_seconds"]):
            break  # another round would overrun the time budget: two are enough to compare
        gc.collect()
        cpu0, t0 = time.process_time(), time.perf_counter()
        results = await asyncio.wait_for(
            _bounded(resolver, names, int(cfg["concurrency"])), timeout=float(cfg["round_timeout"])
        )
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        problems = _problems(names, results)
        entry = {
            "seconds": elapsed,
            "cpu_seconds": cpu,
            "names_per_second": len(names) / elapsed,
            "failures": len(problems),
            "first_failures": problems[:5],
            "well_known_entries": resolver.cache.well_known_entries,
            "dns_entries": resolver.cache.dns_entries,
            "memo_entries": len(resolver._memo),  # private: read for the report only
        }
        del results
        await asyncio.sleep(SETTLE_SECONDS)
        gc.collect()
        entry["rss_mib_after_round"] = _rss_mib()
        resolver.forget()
        gc.collect()
        entry["rss_mib_after_forget"] = _rss_mib()
        entry["allocated_blocks_after_forget"] = sys.getallocatedblocks()
        out.append(entry)
    return out


async def _bytes_per_entry(cfg: dict[str, Any], world: WorldConfig) -> dict[str, Any]:
    names = bench_names(int(cfg["tracemalloc_names"]))
    gc.collect()
    tracemalloc.start()
    try:
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        resolver = AsyncResolver(**world.resolver_kwargs())
        results = await _bounded(resolver, names, int(cfg["concurrency"]))
        failures = len(_problems(names, results))
        del results
        await asyncio.sleep(SETTLE_SECONDS)
        gc.collect()
        held, peak = tracemalloc.get_traced_memory()
        memo_n = len(resolver._memo)  # private: read for the report only
        wk_n, dns_n = resolver.cache.well_known_entries, resolver.cache.dns_entries
        resolver._memo.clear()
        gc.collect()
        without_memo = tracemalloc.get_traced_memory()[0]
        resolver.cache.clear()
        gc.collect()
        empty = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    cache_n = wk_n + dns_n
    return {
        "names": len(names),
        "failures": failures,
        "memo_entries": memo_n,
        "well_known_entries": wk_n,
        "dns_entries": dns_n,
        "bytes_total_per_name": (held - empty) / len(names),
        "bytes_per_memo_entry": (held - without_memo) / max(memo_n, 1),
        "bytes_per_cache_entry": (without_memo - empty) / max(cache_n, 1),
        "bytes_resolver_empty": empty - base,
        "transient_peak_bytes": peak - base,
        "includes": (
            "tracemalloc on a fresh resolver after one bounded round: held - (after clearing the "
            "memo of finished resolutions) = memo bytes (Resolutions with their traces); "
            "(after clearing the memo) - (after cache.clear()) = ResolverCache bytes, per "
            "well-known + DNS entry. Objects shared between the two are counted where they "
            "are finally freed"
        ),
    }


def main() -> int:
    cfg = json.load(sys.stdin)
    world = WorldConfig(cfg["nameserver"], cfg["cafile"], tuple(cfg["allow_ips"]))
    baseline = _rss_mib()
    rounds = asyncio.run(_rounds(cfg, world))
    peak = _status_kib("VmHWM") / 1024
    per_entry = asyncio.run(_bytes_per_entry(cfg, world)) if cfg.get("tracemalloc_names") else {}
    json.dump(
        {
            "names": int(cfg["names"]),
            "concurrency": int(cfg["concurrency"]),
            "rss_mib_baseline": baseline,
            "peak_rss_mib": peak,
            "rounds": rounds,
            "memory": per_entry,
        },
        sys.stdout,
    )
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
