"""mxresolve's benchmarks: cold, cached, scale and single-flight, side by side with the peers.

One command builds the loopback world (Knot DNS + nginx + a throwaway CA, see _world.py),
measures, prints Markdown tables of medians and ratios against the goals, and writes
benchmarks/results.json::

    nox -s bench                       # installs what it needs, makes the peer venvs
    python benchmarks/bench.py         # with mxresolve, trustme and the peer venvs present
    python benchmarks/bench.py --quick # a smoke run (~1 min)

Needs knotd and nginx (.ci/install-servers.sh) and root (or CAP_NET_BIND_SERVICE) for :443.
What each number includes: docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent / "tests"))

import _report as rep
from _measure import (
    FloorPlan,
    WorldConfig,
    async_cold_round,
    cached,
    client_ssl_context,
    discover,
    floor_round,
    single_flight,
    sync_cold_round,
)
from _peers import Peer, peers
from _rtt import measure as rtt_measure
from _servers import per_name, startup
from _world import COLD_SCENARIOS, PER_NAME_GROUPS, SINGLE_FLIGHT_NAME, BenchWorld

from netns import enter_private_network

HERE = Path(__file__).resolve().parent
PEER_TIMEOUT = 240.0  # seconds for one peer driver invocation
CONTENDERS = ("floor", "mx_async", "mx_sync", "synapse", "resolvematrix")
ROWS = ("floor", "floor_bare", *CONTENDERS[1:])  # floor_bare: measured in the floor's rounds
# Cold-round scenarios that end in an SRV step after a well-known (hit or cached 404).
BOTH_CACHES_SCENARIOS = ("wk-srv", "wk-srv-multi", "wk-404", "srv-fed")


def _median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- cold -------------------------------------------------------------------------------------


class Cold:
    """Interleaved blocks: each block runs every contender for ``rounds`` rounds, in a rotated
    order, so slow drift of the machine spreads over all of them."""

    def __init__(
        self,
        world: WorldConfig,
        bench_world: BenchWorld,
        names: list[str],
        plan: FloorPlan,
        peer_list: Sequence[Peer],
        rounds: int,
    ) -> None:
        self.world = world
        self.bench_world = bench_world
        self.names = names
        self.plan = plan
        self.peers = {p.key: p for p in peer_list}
        self.rounds = rounds
        self.samples: dict[str, list[float]] = {c: [] for c in ROWS}
        self.floor_parts: dict[str, list[float]] = {"dns": [], "tls": [], "dns_bare": []}
        self.problems: dict[str, list[str]] = {c: [] for c in ROWS}
        self.peer_runs: dict[str, list[dict[str, Any]]] = {"synapse": [], "resolvematrix": []}

    def _check(self, key: str, results: Sequence[Any]) -> None:
        for name, result in zip(self.names, results, strict=True):
            for problem in self.bench_world.check(name, result):
                if problem not in self.problems[key]:
                    self.problems[key].append(problem)

    def _floor(self) -> None:
        context = client_ssl_context(self.world.cafile)

        async def run() -> list[dict[str, float]]:
            out = []
            for _ in range(self.rounds):
                gc.collect()
                out.append(await floor_round(self.world, self.plan, context))
            return out

        for r in asyncio.run(run()):
            self.samples["floor"].append(r["total"])
            self.samples["floor_bare"].append(r["total_bare"])
            for part in self.floor_parts:
                self.floor_parts[part].append(r[part])

    def _mx_async(self) -> None:
        async def run() -> list[tuple[float, list[Any]]]:
            out = []
            for _ in range(self.rounds):
                gc.collect()
                out.append(await async_cold_round(self.world, self.names))
            return out

        for seconds, results in asyncio.run(run()):
            self.samples["mx_async"].append(seconds)
            self._check("mx_async", results)

    def _mx_sync(self) -> None:
        for _ in range(self.rounds):
            gc.collect()
            seconds, results = sync_cold_round(self.world, self.names)
            self.samples["mx_sync"].append(seconds)
            self._check("mx_sync", results)

    def _peer(self, key: str) -> None:
        peer = self.peers.get(key)
        if peer is None:
            return
        payload = {
            "nameserver": self.world.nameserver,
            "cafile": self.world.cafile,
            "names": self.names,
            "mode": "cold",
            "rounds": self.rounds + 1,  # round 0 warms the driver process up: dropped
        }
        out = peer.run(payload, PEER_TIMEOUT)
        self.peer_runs[key].append(
            {k: v for k, v in out.items() if k not in ("first_round_results",)}
        )
        if "error" in out:
            self.problems[key].append(str(out["error"]))
            return
        self.samples[key].extend(out.get("round_seconds", [])[1:])
        for name in out.get("names_failed", []):
            problem = f"{name}: {out.get('errors', {}).get(name, 'failed')}"
            if problem not in self.problems[key]:
                self.problems[key].append(problem)

    def run(self, blocks: int) -> None:
        # Untimed warm-up of the in-process contenders (imports, lazy initialisation).
        self._mx_sync_warm()
        steps: dict[str, Callable[[], None]] = {
            "floor": self._floor,
            "mx_async": self._mx_async,
            "mx_sync": self._mx_sync,
            "synapse": lambda: self._peer("synapse"),
            "resolvematrix": lambda: self._peer("resolvematrix"),
        }
        for block in range(blocks):
            order = CONTENDERS[block % len(CONTENDERS) :] + CONTENDERS[: block % len(CONTENDERS)]
            for key in order:
                started = time.monotonic()
                steps[key]()
                _log(f"cold block {block + 1}/{blocks}: {key} ({time.monotonic() - started:.1f} s)")

    def _mx_sync_warm(self) -> None:
        sync_cold_round(self.world, self.names)
        asyncio.run(floor_round(self.world, self.plan, client_ssl_context(self.world.cafile)))

    def summary(self) -> dict[str, Any]:
        medians = {k: _median(v) for k, v in self.samples.items()}
        return {
            "names": self.names,
            "scenarios": list(COLD_SCENARIOS),
            "rounds_per_block": self.rounds,
            "median_s": medians,
            "round_seconds": self.samples,
            "floor_dns_median_s": _median(self.floor_parts["dns"]),
            "floor_tls_median_s": _median(self.floor_parts["tls"]),
            "floor_dns_bare_median_s": _median(self.floor_parts["dns_bare"]),
            "floor_dns_queries": len(self.plan.dns_queries),
            "floor_tls_gets": len(self.plan.tls_gets),
            "problems": self.problems,
            "peer_runs": self.peer_runs,
        }


# --- the other phases ---------------------------------------------------------------------


def run_cached_peers(
    world: WorldConfig, names: list[str], peer_list: Sequence[Peer], quick: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    settings = {
        # Synapse re-queries SRV on every call for names without a _matrix-fed record: the
        # per-name time budget bounds those loops.
        "synapse": {"rounds": 3, "iterations": 20_000, "max_seconds_per_name": 0.15},
        # resolvematrix repeats the whole cold path on every call: a few calls per name.
        "resolvematrix": {"rounds": 3, "iterations": 200, "max_seconds_per_name": 0.1},
    }
    for peer in peer_list:
        extra = dict(settings[peer.key])
        if quick:
            extra["rounds"] = 1
        payload = {
            "nameserver": world.nameserver,
            "cafile": world.cafile,
            "names": names,
            "mode": "cached",
            **extra,
        }
        started = time.monotonic()
        result = peer.run(payload, PEER_TIMEOUT)
        _log(f"cached: {peer.key} ({time.monotonic() - started:.1f} s)")
        out[peer.key] = result
    return out


def count_log_lines(path: Path, host: str) -> int:
    try:
        with path.open() as fh:
            return sum(1 for line in fh if line.split(" ", 1)[0] == host)
    except OSError:
        return 0


def run_single_flight(world: WorldConfig, bench_world: BenchWorld, calls: int) -> dict[str, Any]:
    before = count_log_lines(bench_world.bench_access_log, SINGLE_FLIGHT_NAME)
    result = single_flight(world, SINGLE_FLIGHT_NAME, calls)
    time.sleep(0.3)  # nginx logs a request once it has finished sending the response
    result["nginx_logged_fetches"] = (
        count_log_lines(bench_world.bench_access_log, SINGLE_FLIGHT_NAME) - before
    )
    return result


def run_scale(world: WorldConfig, args: argparse.Namespace) -> dict[str, Any]:
    payload = {
        "nameserver": world.nameserver,
        "cafile": world.cafile,
        "allow_ips": list(world.allow_ips),
        "names": args.scale_names,
        "concurrency": args.concurrency,
        "rounds": args.scale_rounds,
        "tracemalloc_names": args.tracemalloc_names,
        "round_timeout": 240.0,
        "budget_seconds": args.scale_budget,
    }
    try:
        proc = subprocess.run(
            [sys.executable, str(HERE / "_scale.py")],
            input=json.dumps(payload),
            capture_output=True,
            text=True,
            timeout=240.0 * args.scale_rounds + 120.0,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": "the scale run timed out"}
    try:
        out: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return {"error": f"exit {proc.returncode}", "stderr_tail": proc.stderr[-3000:]}
    return out


# --- report -----------------------------------------------------------------------------------


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def _get(mapping: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def _growth(values: Sequence[float], first: int) -> float | None:
    return (values[-1] - values[first]) / values[first] * 100 if values[first] else None


COLD_LABELS = {
    "floor": "raw floor: all DNS queries at once (dnspython), then all TLS GETs at once",
    "floor_bare": "  the same, DNS over bare UDP sockets (no DNS library; context only)",
    "mx_async": "mxresolve AsyncResolver (all names at once)",
    "mx_sync": "mxresolve Resolver (one after another)",
    "synapse": "Synapse 1.163.2 (all names at once)",
    "resolvematrix": "resolvematrix 1.0.0 (one after another)",
}


def cold_section(cold: dict[str, Any]) -> list[str]:
    med = cold["median_s"]
    n = len(cold["names"])
    rows = []
    for key in ROWS:
        notes = []
        if key == "floor":
            notes.append(
                f"{cold['floor_dns_queries']} queries: {rep.ms(cold['floor_dns_median_s'])}; "
                f"{cold['floor_tls_gets']} GETs: {rep.ms(cold['floor_tls_median_s'])}"
            )
        elif key == "floor_bare":
            notes.append(f"bare DNS: {rep.ms(cold['floor_dns_bare_median_s'])}")
        elif key in ("mx_sync", "resolvematrix") and med[key] is not None:
            notes.append(f"{rep.ms(med[key] / n)} per resolution")
        problems = cold["problems"][key]
        if problems:
            notes.append(f"{len(problems)} problem(s): {problems[0][:70]}")
        samples = cold["round_seconds"][key]
        rows.append(
            [
                COLD_LABELS[key],
                rep.ms(med[key]),
                rep.spread(samples),
                str(len(samples)),
                rep.ratio(_div(med[key], med["mx_async"])),
                "; ".join(notes),
            ]
        )
    headers = ["contender", "median", "min-max (ms)", "rounds", "/ mxresolve async", "notes"]
    return [
        f"## Cold: one round of {n} distinct names from empty caches (median of rounds)",
        "",
        rep.table(headers, rows),
    ]


def cached_section(cold: dict[str, Any], cached_: dict[str, Any]) -> tuple[list[str], float | None]:
    """The cached table, and Synapse's cache-hit figure the goal compares with."""
    mx = cached_["mxresolve"]
    syn = cached_.get("synapse", {})
    rm = cached_.get("resolvematrix", {})
    mx_ns = mx["async_ns"]
    syn_hit = syn.get("ns_per_resolution_median_cache_hits_only")
    syn_flow = syn.get("flow_ns_per_resolution_median_cache_hits_only")
    # Names for which Synapse's core consults both of its caches: a well-known and an SRV hit.
    by_scenario = dict(zip(cold["scenarios"], cold["names"], strict=True))
    both = [
        by_scenario[sc]
        for sc in BOTH_CACHES_SCENARIOS
        if _get(syn, "core", "per_name", by_scenario[sc], "srv_queries_per_resolution") == 0
    ]
    syn_both = _mean([_get(syn, "core", "per_name", n, "ns_per_resolution_median") for n in both])
    mx_both = _mean([mx["async_per_name_ns"].get(n) for n in both])
    rm_ns = rm.get("ns_per_resolution_median")
    hit_names = len(syn.get("cache_hit_names", []))
    rows = [
        [
            "mxresolve `await AsyncResolver.resolve()`",
            rep.ns(mx_ns),
            f"harness {rep.ns(mx['async_harness_overhead_ns'])}",
            "1.00x",
        ],
        [
            "mxresolve `Resolver.resolve()`",
            rep.ns(mx["sync_ns"]),
            f"harness {rep.ns(mx['sync_harness_overhead_ns'])}",
            rep.ratio(_div(mx["sync_ns"], mx_ns)),
        ],
        [
            "mxresolve `Resolver(max_memo=0).resolve()` (no memo)",
            rep.ns(mx.get("sync_no_memo_ns")),
            "the machine again, over warm caches",
            rep.ratio(_div(mx.get("sync_no_memo_ns"), mx_ns)),
        ],
        [
            "Synapse core, cache-hit names (its headline)",
            rep.ns(syn_hit),
            f"{hit_names} names; harness {rep.ns(syn.get('harness_overhead_ns'))}",
            rep.ratio(_div(syn_hit, mx_ns)),
        ],
        [
            "Synapse core, names hitting both caches",
            rep.ns(syn_both),
            f"{len(both)} names; mxresolve on the same names {rep.ns(mx_both)}",
            rep.ratio(_div(syn_both, mx_both)),
        ],
        [
            "Synapse core, all names (re-queries uncached SRV)",
            rep.ns(syn.get("ns_per_resolution_median")),
            "",
            rep.ratio(_div(syn.get("ns_per_resolution_median"), mx_ns)),
        ],
        [
            "Synapse flow, cache-hit names (URI + endpoint)",
            rep.ns(syn_flow),
            "",
            rep.ratio(_div(syn_flow, mx_ns)),
        ],
        [
            "resolvematrix `resolve()` (never reads its cache)",
            rep.ns(rm_ns),
            f"cache.get() {rep.ns(rm.get('cache_get_ns_median'))}",
            rep.ratio(_div(rm_ns, mx_ns)),
        ],
    ]
    for key in ("synapse", "resolvematrix"):
        if "error" in cached_.get(key, {}):
            rows.append([f"{key}: not measured", "n/a", str(cached_[key]["error"])[:80], ""])
    return [
        "",
        "## Cached: resolve() of a name resolved before (median of rounds of the mean over names)",
        "",
        rep.table(["path", "per resolution", "notes", "/ mxresolve async"], rows),
    ], syn_hit


def scale_section(s: dict[str, Any]) -> tuple[list[str], float | None, float | None]:
    """The scale table, and the RSS and allocated-block growth (percent)."""
    if not s.get("rounds"):
        return (["", f"## Scale: not measured ({s.get('error', 'skipped')})"], None, None)
    rounds = s["rounds"]
    rss = [r["rss_mib_after_round"] for r in rounds]
    # Round 1 also warms the C allocator up, so flatness is judged from round 2 on, and
    # needs a third round to be judged at all.
    first = 1
    rss_growth = _growth(rss, first) if len(rss) > 2 else None
    blocks_growth = _growth([r["allocated_blocks_after_forget"] for r in rounds], 0)
    rows = [
        [
            str(i + 1),
            f"{r['names_per_second']:,.0f}",
            f"{r['seconds']:.1f} s",
            f"{r['cpu_seconds']:.1f} s",
            f"{r['rss_mib_after_round']:.1f} MiB",
            f"{r['rss_mib_after_forget']:.1f} MiB",
            f"{r['allocated_blocks_after_forget']:,}",
            str(r["failures"]),
        ]
        for i, r in enumerate(rounds)
    ]
    headers = [
        "round",
        "names/s",
        "wall",
        "CPU",
        "RSS after round",
        "RSS after forget()",
        "blocks after forget()",
        "failures",
    ]
    out = [
        "",
        f"## Scale: {s['names']:,} distinct names, cold, at most {s['concurrency']} in flight, "
        "one AsyncResolver, forget() between rounds",
        "",
        rep.table(headers, rows),
        "",
        f"Peak RSS (VmHWM, whole process): {s['peak_rss_mib']:.1f} MiB; after imports: "
        f"{s['rss_mib_baseline']:.1f} MiB. RSS growth, round {first + 1} -> {len(rss)}: "
        + (f"{rss_growth:+.1f}%" if rss_growth is not None else "n/a (fewer than 3 rounds)")
        + f"; allocated blocks after forget(), round 1 -> {len(rss)}: "
        f"{blocks_growth or 0:+.2f}%.",
    ]
    mem = s.get("memory", {})
    if mem:
        out.append(
            f"Memory held (tracemalloc, {mem['names']:,} names): "
            f"{mem['bytes_total_per_name']:,.0f} B per name in all; "
            f"{mem['bytes_per_memo_entry']:,.0f} B per memo entry (Resolution + trace); "
            f"{mem['bytes_per_cache_entry']:,.0f} B per ResolverCache entry "
            f"({mem['well_known_entries']:,} well-known + {mem['dns_entries']:,} DNS); "
            f"transient peak {mem['transient_peak_bytes'] / 2**20:.1f} MiB."
        )
    return out, rss_growth, blocks_growth


def single_flight_section(sf: dict[str, Any]) -> list[str]:
    return [
        "",
        f"## Single-flight: {sf['concurrent_calls']:,} concurrent resolve() of one uncached name",
        "",
        f"Well-known fetches: {sf['well_known_fetches']} (transport count), "
        f"{sf['nginx_logged_fetches']} (nginx access log); DNS queries: {sf['dns_queries']}; "
        f"failures: {sf['failures']}; distinct result objects: {sf['distinct_results']}; "
        f"time: {sf['seconds'] * 1e3:.1f} ms.",
    ]


def caddy_cold_section(cold: dict[str, Any]) -> list[str]:
    lines = cold_section(cold)
    lines[0] = lines[0].replace(
        "## Cold:", "## Cold on the Caddy world (every well-known from Go TLS):"
    )
    return ["", *lines]


def per_name_section(pn: dict[str, Any]) -> list[str]:
    keys = (
        "floor_fetch",
        "mx_fetch",
        "mx_async",
        "mx_sync",
        "mx_sync_nagle_on",
        "synapse",
        "resolvematrix",
    )
    rows = []
    for r in pn["rows"]:
        med = r["median_s"]
        rows.append(
            [r["group"], r["server"], r["name"]]
            + [rep.ms(med.get(k)) for k in keys]
            + [rep.ratio(_div(med.get("mx_fetch"), med.get("floor_fetch")))]
        )
    headers = [
        "group",
        "server",
        "name",
        "bare ssl fetch (floor)",
        "mx fetch",
        "mx async",
        "mx sync",
        "mx sync, Nagle on",
        "Synapse",
        "resolvematrix",
        "mx fetch / floor",
    ]
    ratios = pn["fetch_ratio"]
    return [
        "",
        f"## Per name, cold, against nginx (OpenSSL) and Caddy (Go TLS) (median of "
        f"{pn['rounds']} rounds, each from a fresh resolver)",
        "",
        rep.table(headers, rows),
        "",
        "Fetch = the first well-known URL only (mxresolve: its HTTPS transport, DNS answered "
        "from memory; floor: a bare `ssl` client with Nagle off). The other columns are whole "
        "resolutions. Median mx fetch / floor: nginx "
        f"{rep.ratio(ratios.get('nginx'))}, Caddy {rep.ratio(ratios.get('caddy'))}."
        + (f" Peer errors: {pn['peer_errors']}" if pn.get("peer_errors") else ""),
    ]


def startup_section(su: dict[str, Any]) -> list[str]:
    rows = [
        [k, rep.ms(v["median_s"]), f"{v['added_s'] * 1e3:+.1f} ms", f"{v['ratio']:.2f}x"]
        for k, v in su["rows"].items()
    ]
    rows.append(
        ["second and later Resolver() (in-process)", rep.ns(su["second_resolver_s"] * 1e9), "", ""]
    )
    return [
        "",
        f"## Start-up: fresh interpreters, in turn in one loop ({su['turns']} turns; median)",
        "",
        rep.table(["command", "wall", "added to python -c pass", "/ python -c pass"], rows),
        "",
        f"A cached `mxresolve resolve` is a resolve of `{su['cached_resolve_name']}`: an IP "
        "literal, which needs no DNS and no connection (step 1).",
    ]


def rtt_section(rtt: dict[str, Any]) -> tuple[list[str], int | None, int | None]:
    rows = []
    over = not_below = 0
    for scen, r in rtt["scenarios"].items():
        cells = [
            f"{r[k]:.2f}" if isinstance(r.get(k), float) else "n/a"
            for k in ("mx_async", "mx_sync", "synapse", "resolvematrix")
        ]
        mx, syn, floor = r.get("mx_async"), r.get("synapse"), r["floor_rtts"]
        if mx is not None and mx > floor + 1:
            over += 1
        if mx is not None and syn is not None and syn > floor + 0.5 and mx >= syn:
            not_below += 1
        rows.append([scen, r["what"], str(floor), *cells, "; ".join(r["problems"])[:60]])
    headers = [
        "scenario",
        "what",
        "floor",
        "mx async",
        "mx sync",
        "Synapse",
        "resolvematrix",
        "problems",
    ]
    return (
        [
            "",
            "## Round trips: cold latency / RTT through the delaying proxy "
            f"(RTT {rtt['rtt_ms']:g} ms, median of {rtt['rounds']})",
            "",
            rep.table(headers, rows),
            "",
            "Floor: one RTT per DNS exchange, TCP connect, TLS 1.3 handshake and HTTP exchange, "
            "with every independent question asked at once (benchmarks/_rtt.py)."
            + (f" Peer errors: {rtt['peer_errors']}" if rtt.get("peer_errors") else ""),
        ],
        over,
        not_below,
    )


def build_report(results: dict[str, Any]) -> str:
    """The printed tables; also stores the evaluated goals in ``results["goals"]``."""
    cold = results["cold"]
    med = cold["median_s"]
    out = cold_section(cold)
    lines, syn_hit = cached_section(cold, results["cached"])
    out += lines
    lines, rss_growth, blocks_growth = scale_section(results.get("scale", {}))
    out += lines
    sf = results.get("single_flight", {})
    if sf:
        out += single_flight_section(sf)
    caddy = results.get("caddy_cold")
    cmed: dict[str, Any] = caddy["median_s"] if caddy else {}
    if caddy:
        out += caddy_cold_section(caddy)
    pn = results.get("per_name")
    if pn:
        out += per_name_section(pn)
    su = results.get("startup")
    if su:
        out += startup_section(su)
    rtt_over = rtt_not_below = None
    if results.get("rtt"):
        lines, rtt_over, rtt_not_below = rtt_section(results["rtt"])
        out += lines
    mx_cached = results["cached"]["mxresolve"]
    values: dict[str, float | None] = {
        "cold_vs_resolvematrix": _div(med["resolvematrix"], med["mx_async"]),
        "cold_vs_synapse": _div(med["synapse"], med["mx_async"]),
        "cold_vs_floor": _div(med["mx_async"], med["floor"]),
        "cached_async_ns": mx_cached["async_ns"],
        "cached_sync_ns": mx_cached["sync_ns"],
        "cached_vs_synapse": _div(syn_hit, mx_cached["async_ns"]),
        "scale_rss_flat": rss_growth,
        "scale_blocks_flat": blocks_growth,
        "single_flight": float(sf["well_known_fetches"]) if sf else None,
        "fetch_vs_bare_nginx": pn["fetch_ratio"].get("nginx") if pn else None,
        "fetch_vs_bare_caddy": pn["fetch_ratio"].get("caddy") if pn else None,
        "caddy_cold_vs_floor": _div(cmed.get("mx_async"), cmed.get("floor")),
        "caddy_cold_vs_synapse": _div(cmed.get("synapse"), cmed.get("mx_async")),
        "caddy_cold_vs_resolvematrix": _div(cmed.get("resolvematrix"), cmed.get("mx_async")),
        "rtt_over_floor": None if rtt_over is None else float(rtt_over),
        "rtt_not_below_synapse": None if rtt_not_below is None else float(rtt_not_below),
    }
    if su:
        su_rows = su["rows"]
        resolve_key = next(k for k in su_rows if k.startswith("mxresolve resolve"))
        values["startup_import_ms"] = su_rows["import mxresolve"]["added_s"] * 1e3
        values["startup_help_ms"] = su_rows["mxresolve --help"]["added_s"] * 1e3
        values["startup_resolve_ms"] = su_rows[resolve_key]["added_s"] * 1e3
        values["second_resolver_us"] = su["second_resolver_s"] * 1e6
    goals = rep.evaluate_goals(values)
    rows = [[g["goal"], g["shown"], g["status"], g["by"]] for g in goals]
    out += ["", "## Goals", "", rep.table(["goal", "measured", "status", "missed by"], rows)]
    ceiling = _div(med["synapse"], med["floor_bare"])
    if ceiling is not None:
        # The floor's TLS runs over asyncio streams, as any asyncio resolver's must.
        out += [
            "",
            f"Ceiling for the Synapse ratio here: Synapse / bare-socket floor = {ceiling:.2f}x. "
            "A resolver that cost nothing beyond that floor's DNS datagrams and asyncio TLS "
            "GETs would reach no more.",
        ]
    c_rm, c_mx = (
        _div(cmed.get("resolvematrix"), cmed.get("floor_bare")),
        _div(cmed.get("mx_async"), cmed.get("floor_bare")),
    )
    if c_rm is not None and c_mx is not None:
        out += [
            "",
            f"Context for the Caddy round's resolvematrix goal: resolvematrix / bare-socket floor "
            f"= {c_rm:.2f}x, mxresolve async / bare-socket floor = {c_mx:.2f}x. Reaching 3x "
            f"takes a whole resolution within {c_rm / 3:.2f}x of a floor that makes the same "
            "DNS queries and TLS GETs and does nothing else.",
        ]
    results["goals"] = goals
    results["synapse_ratio_ceiling"] = ceiling
    results["caddy_bare_floor_ratios"] = {"resolvematrix": c_rm, "mx_async": c_mx}
    return "\n".join(out)


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=3, help="interleaved cold blocks (default 3)")
    ap.add_argument("--rounds", type=int, default=5, help="cold rounds per block and contender")
    ap.add_argument("--cached-iterations", type=int, default=20_000, help="calls per name")
    ap.add_argument("--cached-rounds", type=int, default=5)
    ap.add_argument("--scale-names", type=int, default=10_000)
    ap.add_argument("--scale-rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=200, help="scale: resolutions in flight")
    ap.add_argument(
        "--scale-budget", type=float, default=210.0, help="seconds; rounds after 2 must fit"
    )
    ap.add_argument("--tracemalloc-names", type=int, default=500)
    ap.add_argument("--single-flight", type=int, default=1_000, help="concurrent calls")
    ap.add_argument("--no-peers", action="store_true", help="skip Synapse and resolvematrix")
    ap.add_argument("--no-scale", action="store_true")
    ap.add_argument("--no-rtt", action="store_true", help="skip the round-trip table")
    ap.add_argument("--rtt-ms", type=float, default=50.0, help="RTT of the delaying proxy")
    ap.add_argument("--rtt-rounds", type=int, default=3)
    ap.add_argument("--per-name-rounds", type=int, default=7)
    ap.add_argument("--startup-turns", type=int, default=21)
    ap.add_argument("--quick", action="store_true", help="a short smoke run")
    ap.add_argument("--synapse-python", type=Path, default=None)
    ap.add_argument("--resolvematrix-python", type=Path, default=None)
    ap.add_argument("--output", type=Path, default=HERE / "results.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.blocks, args.rounds, args.cached_iterations, args.cached_rounds = 1, 3, 2_000, 2
        args.scale_names, args.scale_rounds, args.tracemalloc_names = 1_000, 3, 300
        args.rtt_rounds, args.per_name_rounds, args.startup_turns = 1, 2, 5
    for name in (
        "blocks",
        "rounds",
        "cached_iterations",
        "cached_rounds",
        "scale_rounds",
        "concurrency",
        "single_flight",
        "rtt_rounds",
        "per_name_rounds",
        "startup_turns",
    ):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if not 2.0 <= args.rtt_ms <= 1000.0:
        ap.error("--rtt-ms must be 2-1000")
    if not 1 <= args.scale_names <= 99_998 or not 0 <= args.tracemalloc_names <= args.scale_names:
        ap.error("--scale-names must be 1-99998 and --tracemalloc-names at most that")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    _log(enter_private_network())  # before any thread: the worlds' fixed addresses are ours
    t_start = time.monotonic()
    peer_list = [] if args.no_peers else peers(args.synapse_python, args.resolvematrix_python)
    for peer in peer_list:
        if not peer.available:
            _log(f"{peer.label}: {peer.python} missing; its columns will be empty")
    results: dict[str, Any] = {"environment": rep.environment(), "config": vars(args).copy()}
    results["config"]["output"] = str(args.output)
    for key in ("synapse_python", "resolvematrix_python"):
        results["config"][key] = str(results["config"][key] or "")

    _log(f"starting the loopback world ({args.scale_names:,} generated names)")
    with BenchWorld(args.scale_names) as bench_world:
        world = WorldConfig(
            bench_world.nameserver, bench_world.cafile, tuple(bench_world.allow_ips)
        )
        names = bench_world.cold_names()
        plan = discover(world, names)  # also the first warm-up round
        wrong = [p for n, r in plan.results.items() for p in bench_world.check(n, r)]
        if wrong:
            _log("mxresolve resolved some cold names wrongly: " + "; ".join(wrong))
        _log(f"cold plan: {len(plan.dns_queries)} DNS queries, {len(plan.tls_gets)} TLS GETs")

        cold = Cold(world, bench_world, names, plan, peer_list, args.rounds)
        cold.run(args.blocks)
        results["cold"] = cold.summary()

        started = time.monotonic()
        results["cached"] = {
            "mxresolve": cached(
                world, names, iterations=args.cached_iterations, rounds=args.cached_rounds
            )
        }
        _log(f"cached: mxresolve ({time.monotonic() - started:.1f} s)")
        results["cached"].update(run_cached_peers(world, names, peer_list, args.quick))

        results["single_flight"] = run_single_flight(world, bench_world, args.single_flight)
        _log("single-flight done")

        caddy_names = bench_world.caddy_cold_names()
        caddy_plan = discover(world, caddy_names)
        wrong = [p for n, r in caddy_plan.results.items() for p in bench_world.check(n, r)]
        if wrong:
            _log("mxresolve resolved some Caddy names wrongly: " + "; ".join(wrong))
        caddy_cold = Cold(world, bench_world, caddy_names, caddy_plan, peer_list, args.rounds)
        caddy_cold.run(args.blocks)
        results["caddy_cold"] = caddy_cold.summary()
        _log("Caddy cold round done")

        results["per_name"] = per_name(
            world, bench_world.w, PER_NAME_GROUPS, peer_list, args.per_name_rounds, _log
        )

        if not args.no_scale:
            started = time.monotonic()
            results["scale"] = run_scale(world, args)
            _log(f"scale ({time.monotonic() - started:.1f} s)")

    started = time.monotonic()
    results["startup"] = startup(args.startup_turns)
    _log(f"start-up ({time.monotonic() - started:.1f} s)")
    if not args.no_rtt:
        started = time.monotonic()
        results["rtt"] = rtt_measure(bench_world.w, peer_list, args.rtt_ms, args.rtt_rounds, _log)
        _log(f"round trips ({time.monotonic() - started:.1f} s)")

    text = build_report(results)
    results["elapsed_seconds"] = time.monotonic() - t_start
    env = results["environment"]
    header = (
        f"# mxresolve benchmarks\n\n{env['nproc']} CPUs ({env['cpu_model']}), Python "
        f"{env['python']}, {env['openssl']}, mxresolve {env['mxresolve']} from "
        f"{env['mxresolve_path']} (digest {env['mxresolve_digest']}); {env['knotd']}; "
        f"{env['nginx']}; {env.get('caddy', 'caddy ?')}; "
        f"run took {results['elapsed_seconds']:.0f} s\n"
    )
    print(header)
    print(text)
    args.output.write_text(json.dumps(results, indent=1, default=str) + "\n")
    _log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
