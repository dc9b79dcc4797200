"""Profile mxresolve's cold and cached paths on the bench world (cProfile, stdlib only).

    python benchmarks/profile_mx.py                 # cold async, cold sync, cached
    python benchmarks/profile_mx.py --rounds 20 --top 30 --out /tmp/mx-profiles

Prints, per path, the wall and CPU time of the profiled rounds without the profiler, then the
top functions by own time and by cumulative time under cProfile. ``--out`` also writes the
raw ``.pstats`` files (open them with ``python -m pstats`` or snakeviz).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import statistics
import sys
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import WorldConfig, async_cold_round, sync_cold_round
from _world import BenchWorld

from mxresolve import AsyncResolver, Resolver


def _component(filename: str, function: str) -> str:
    """Which part of the stack a profiled function belongs to (for the share table)."""
    if filename == "~":  # a C function
        if "_ssl." in function or "SSL" in function:
            return "OpenSSL (handshakes, reads, writes)"
        if "socket" in function or "epoll" in function or "select" in function:
            return "socket and epoll calls"
        return "other C builtins"
    path = filename.replace("\\", "/")
    stem = path.rsplit("/", 1)[-1].removesuffix(".py")
    if "/dns/" in path:
        return "dnspython"
    if "/h11/" in path:
        return "h11"
    if stem in ("sslproto", "ssl"):
        return "asyncio SSL layer (sslproto, ssl.py)"
    if "/asyncio/" in path or stem in ("selectors", "socket", "weakref", "_weakrefset"):
        return "asyncio event loop, tasks, selectors"
    if "/mxresolve/" in path:
        if "/mxresolve/_core/" in path:
            return "mxresolve core (machine, grammar, cache)"
        return f"mxresolve {stem}"
    return stem


def _print_shares(profile: cProfile.Profile) -> None:
    totals: dict[str, float] = {}
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    for (filename, _, function), (_, _, own, _, _) in stats.items():
        key = _component(filename, function)
        totals[key] = totals.get(key, 0.0) + own
    whole = sum(totals.values()) or 1.0
    print("own time by component (cProfile inflates Python-level costs against C calls):")
    for key, value in sorted(totals.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {value / whole * 100:5.1f}%  {key}")


def _print_stats(title: str, profile: cProfile.Profile, top: int, out: Path | None) -> None:
    print(f"\n### {title}\n")
    _print_shares(profile)
    for key in ("tottime", "cumulative"):
        buffer = io.StringIO()
        stats = pstats.Stats(profile, stream=buffer)
        stats.strip_dirs().sort_stats(key).print_stats(top)
        text = buffer.getvalue()
        body = text[text.index("   ncalls") :] if "   ncalls" in text else text
        print(f"sorted by {key}:\n```\n{body.rstrip()}\n```")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        profile.dump_stats(str(out / f"{title.split()[0]}.pstats"))


def profile_cold_async(world: WorldConfig, names: list[str], rounds: int) -> cProfile.Profile:
    async def run(profile: cProfile.Profile | None) -> tuple[float, float]:
        await async_cold_round(world, names)  # warm-up
        wall, cpu = [], []
        for _ in range(rounds):
            c0 = time.process_time()
            if profile is not None:
                profile.enable()
            seconds, _ = await async_cold_round(world, names)
            if profile is not None:
                profile.disable()
            wall.append(seconds)
            cpu.append(time.process_time() - c0)
        return statistics.median(wall), statistics.median(cpu)

    wall, cpu = asyncio.run(run(None))
    print(
        f"cold async, unprofiled: median {wall * 1e3:.1f} ms wall, {cpu * 1e3:.1f} ms CPU a round"
    )
    profile = cProfile.Profile()
    asyncio.run(run(profile))
    return profile


def profile_cold_sync(world: WorldConfig, names: list[str], rounds: int) -> cProfile.Profile:
    sync_cold_round(world, names)
    wall, cpu = [], []
    for _ in range(rounds):
        c0 = time.process_time()
        wall.append(sync_cold_round(world, names)[0])
        cpu.append(time.process_time() - c0)
    print(
        f"cold sync, unprofiled: median {statistics.median(wall) * 1e3:.1f} ms wall, "
        f"{statistics.median(cpu) * 1e3:.1f} ms CPU a round"
    )
    profile = cProfile.Profile()
    for _ in range(rounds):
        profile.enable()
        sync_cold_round(world, names)
        profile.disable()
    return profile


def profile_cached(world: WorldConfig, names: list[str], iterations: int) -> cProfile.Profile:
    sync = Resolver(**world.resolver_kwargs())
    for name in names:
        sync.resolve(name)
    per = timeit.timeit("r.resolve(n)", globals={"r": sync, "n": names[5]}, number=iterations)
    print(f"cached sync, unprofiled: {per / iterations * 1e9:.0f} ns per resolve()")

    async def run() -> cProfile.Profile:
        resolver = AsyncResolver(**world.resolver_kwargs())
        for name in names:
            await resolver.resolve(name)
        t0 = time.perf_counter_ns()
        for _ in range(iterations):
            await resolver.resolve(names[5])
        print(
            f"cached async, unprofiled: {(time.perf_counter_ns() - t0) / iterations:.0f} ns "
            "per await resolve()"
        )
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(iterations):
            await resolver.resolve(names[5])
        profile.disable()
        return profile

    return asyncio.run(run())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--iterations", type=int, default=200_000)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    with BenchWorld(scale_names=10) as bench_world:
        world = WorldConfig(
            bench_world.nameserver, bench_world.cafile, tuple(bench_world.allow_ips)
        )
        names = bench_world.cold_names()
        _print_stats(
            "cold-async rounds", profile_cold_async(world, names, args.rounds), args.top, args.out
        )
        _print_stats(
            "cold-sync rounds", profile_cold_sync(world, names, args.rounds), args.top, args.out
        )
        _print_stats(
            "cached resolve()", profile_cached(world, names, args.iterations), args.top, args.out
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
