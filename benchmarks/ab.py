"""A/B: mxresolve's cold round at a baseline revision against the working tree, in one world.

    python benchmarks/ab.py                       # baseline HEAD: what the uncommitted change buys
    python benchmarks/ab.py --baseline 7e810ae    # or any revision with the same Resolver API
    python benchmarks/ab.py --world caddy         # the Caddy world's cold round
    python benchmarks/ab.py --startup             # start-up (import, CLI, Resolver()) instead

The baseline's ``src/mxresolve`` is taken with ``git archive``. Each variant runs in its own
interpreter, so each imports its own code; processes alternate (A B A B ...) against the same
loopback world. Each process does one untimed round, then ``--rounds`` timed cold rounds of the
20 bench names through ``AsyncResolver`` and then ``Resolver``. Prints medians and ratios: the
way to show an optimisation's win before it lands (needs what bench.py needs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent / "tests"))

from _servers import compile_package, timed_run
from _world import BenchWorld

from netns import enter_private_network

ROOT = Path(__file__).resolve().parent.parent
CHILD = Path(__file__).resolve().parent / "_ab_child.py"


def export_src(revision: str, into: Path) -> Path:
    """``src/mxresolve`` as it was at ``revision``, unpacked under ``into``; returns its src/."""
    archive = into / "baseline.tar"
    with archive.open("wb") as out:
        subprocess.run(
            ["git", "archive", revision, "src/mxresolve"], stdout=out, cwd=ROOT, check=True
        )
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):  # Python 3.10.12+ and 3.11.4+
            tar.extractall(into, filter="data")
        else:
            tar.extractall(into)  # our own repository's archive: trusted
    return into / "src"


def run_child(src: Path, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(CHILD)],
        input=json.dumps({**payload, "src": str(src)}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"A/B process for {src} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout)
    if not result["mxresolve"].startswith(str(src)):
        raise SystemExit(f"expected mxresolve from {src}, the process imported {result}")
    return result


STARTUP_COMMANDS: dict[str, list[str]] = {
    "python -c pass": ["-c", "pass"],
    "import mxresolve": ["-c", "import mxresolve"],
    "mxresolve --help": ["-m", "mxresolve", "--help"],
    "mxresolve resolve 8.8.8.8:8448": ["-m", "mxresolve", "resolve", "8.8.8.8:8448"],
    "import + Resolver() (certifi CAs)": [
        "-c",
        "import mxresolve; r = mxresolve.Resolver(); getattr(r, '_ssl_context')",
    ],
    "import + 10 x Resolver()": [
        "-c",
        "import mxresolve\nfor _ in range(10): getattr(mxresolve.Resolver(), '_ssl_context')",
    ],
}


def startup_ab(revision: str, turns: int) -> int:
    """Start-up of the baseline's src against the working tree's, alternating every command."""
    import os

    samples: dict[str, dict[str, list[float]]] = {
        v: {k: [] for k in STARTUP_COMMANDS} for v in ("baseline", "candidate")
    }
    with tempfile.TemporaryDirectory(prefix="mxresolve-ab-") as tmp:
        sources = {"baseline": export_src(revision, Path(tmp)), "candidate": ROOT / "src"}
        for src in sources.values():  # as installed wheels have it, whatever the environment
            compile_package(src / "mxresolve")
        for i in range(turns):
            order = ("baseline", "candidate") if i % 2 == 0 else ("candidate", "baseline")
            for key, argv in STARTUP_COMMANDS.items():
                for variant in order:
                    env = {**os.environ, "PYTHONPATH": str(sources[variant])}
                    samples[variant][key].append(timed_run([sys.executable, *argv], env=env))
    print(f"baseline: {revision} ; candidate: the working tree ({ROOT / 'src'})")
    print(f"{turns} turns, each command alternating baseline and candidate; medians\n")
    print("| command | baseline | candidate | baseline / candidate |")
    print("|---|---|---|---|")
    for key in STARTUP_COMMANDS:
        before = statistics.median(samples["baseline"][key])
        after = statistics.median(samples["candidate"][key])
        print(f"| {key} | {before * 1e3:.1f} ms | {after * 1e3:.1f} ms | {before / after:.2f}x |")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="HEAD", help="git revision (default HEAD)")
    ap.add_argument("--processes", type=int, default=4, help="processes per variant")
    ap.add_argument("--rounds", type=int, default=10, help="timed rounds per process and path")
    ap.add_argument(
        "--world",
        choices=("nginx", "caddy"),
        default="nginx",
        help="the cold round's names: the nginx round (20) or the Caddy world's (29)",
    )
    ap.add_argument(
        "--startup",
        action="store_true",
        help="compare start-up instead (no world): fresh interpreters, A B A B ...",
    )
    args = ap.parse_args(argv)
    if args.startup:
        return startup_ab(args.baseline, args.processes * args.rounds)
    print(f"[ab] {enter_private_network()}", file=sys.stderr)
    if not 1 <= args.processes <= 50 or not 1 <= args.rounds <= 200:
        ap.error("--processes must be 1-50 and --rounds 1-200")
    samples: dict[str, dict[str, list[float]]] = {
        v: {"async": [], "sync": []} for v in ("baseline", "candidate")
    }
    with tempfile.TemporaryDirectory(prefix="mxresolve-ab-") as tmp:
        sources = {"baseline": export_src(args.baseline, Path(tmp)), "candidate": ROOT / "src"}
        with BenchWorld(1) as world:
            payload = {
                "world": {
                    "nameserver": world.nameserver,
                    "cafile": world.cafile,
                    "allow_ips": world.allow_ips,
                },
                "names": world.cold_names() if args.world == "nginx" else world.caddy_cold_names(),
                "rounds": args.rounds,
            }
            for i in range(args.processes):
                order = ("baseline", "candidate") if i % 2 == 0 else ("candidate", "baseline")
                for variant in order:
                    started = time.monotonic()
                    result = run_child(sources[variant], payload, timeout=60 + 10 * args.rounds)
                    for path in ("async", "sync"):
                        samples[variant][path] += result[path]
                    print(
                        f"[ab] process {i + 1}/{args.processes} {variant} "
                        f"({time.monotonic() - started:.1f} s)",
                        file=sys.stderr,
                    )
    print(f"baseline: {args.baseline} ; candidate: the working tree ({ROOT / 'src'})")
    count = 20 if args.world == "nginx" else 29
    print(
        f"{args.processes} processes x {args.rounds} rounds per variant, {count} names a round "
        f"({args.world} world)\n"
    )
    print("| cold round | baseline median | candidate median | baseline / candidate |")
    print("|---|---|---|---|")
    for path, label in (("async", "AsyncResolver, all at once"), ("sync", "Resolver, in turn")):
        before = statistics.median(samples["baseline"][path])
        after = statistics.median(samples["candidate"][path])
        print(f"| {label} | {before * 1e3:.1f} ms | {after * 1e3:.1f} ms | {before / after:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
