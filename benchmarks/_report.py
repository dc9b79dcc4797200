"""The machine description, the goals, and the printed tables."""

from __future__ import annotations

import hashlib
import math
import os
import platform
import shutil
import ssl
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import mxresolve


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version_of(argv: list[str]) -> str:
    exe = shutil.which(argv[0]) or shutil.which(argv[0], path="/usr/sbin:/usr/local/sbin:/sbin")
    if exe is None:
        return "not found"
    try:
        proc = subprocess.run(
            [exe, *argv[1:]], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    return (proc.stdout + proc.stderr).strip().splitlines()[0] if proc.stdout + proc.stderr else ""


def _package_digest() -> str:
    """sha256 over mxresolve's .py files: ties a result to the code that produced it."""
    digest = hashlib.sha256()
    root = Path(mxresolve.__file__).parent
    for path in sorted(root.rglob("*.py")):  # every layer's folder, not the top alone
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def environment() -> dict[str, Any]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "nproc": affinity or os.cpu_count(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "openssl": ssl.OPENSSL_VERSION,
        "mxresolve": mxresolve.__version__,
        "mxresolve_path": str(Path(mxresolve.__file__).parent),
        "mxresolve_digest": _package_digest(),
        "dnspython": metadata.version("dnspython"),
        "h11": metadata.version("h11"),
        "knotd": _version_of(["knotd", "--version"]),
        "nginx": _version_of(["nginx", "-v"]),
        "caddy": _version_of(["caddy", "version"]),
    }


# --- goals -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    key: str
    text: str
    op: str  # ">=", "<=", "=="
    target: float
    unit: str  # "x" for ratios, "ns", "%", ""

    def evaluate(self, value: float | None) -> dict[str, Any]:
        out: dict[str, Any] = {"goal": self.text, "value": value, "shown": self.show(value)}
        if value is None or math.isnan(value):
            return {**out, "status": "not measured", "by": ""}
        if self.op == ">=":
            met = value >= self.target
            by = f"{self.target / value:.2f}x short ({value / self.target:.0%} of the goal)"
        elif self.op == "<=":
            met = value <= self.target
            by = f"{value / self.target:.2f}x over" if self.unit != "%" else "grew more"
        else:
            met = value == self.target
            by = f"{value:g} instead of {self.target:g}"
        return {**out, "status": "met" if met else "MISSED", "by": "" if met else by}

    def show(self, value: float | None) -> str:
        if value is None or math.isnan(value):
            return "n/a"
        if self.unit == "x":
            return f"{value:.2f}x"
        if self.unit == "%":
            return f"{value:+.2f}%"
        return f"{value:,.0f} {self.unit}".strip()


GOALS: tuple[Goal, ...] = (
    Goal(
        "cold_vs_resolvematrix",
        "cold round: resolvematrix / mxresolve async >= 1.5x",
        ">=",
        1.5,
        "x",
    ),
    Goal("cold_vs_synapse", "cold round: Synapse / mxresolve async >= 9x", ">=", 9.0, "x"),
    Goal("cold_vs_floor", "cold round: mxresolve async / raw floor <= 1.3x", "<=", 1.3, "x"),
    Goal("cached_async_ns", "cached: await AsyncResolver.resolve() <= 1000 ns", "<=", 1000.0, "ns"),
    Goal("cached_sync_ns", "cached: Resolver.resolve() <= 1000 ns", "<=", 1000.0, "ns"),
    Goal("cached_vs_synapse", "cached: Synapse cache hit / mxresolve async >= 3x", ">=", 3.0, "x"),
    Goal(
        "scale_rss_flat",
        "scale: RSS after each round flat (growth to the last <= 5%)",
        "<=",
        5.0,
        "%",
    ),
    Goal(
        "scale_blocks_flat",
        "scale: allocated blocks after forget(), round 1 -> last, grow <= 1%",
        "<=",
        1.0,
        "%",
    ),
    Goal(
        "single_flight",
        "single-flight: well-known fetches for N concurrent calls == 1",
        "==",
        1.0,
        "",
    ),
    # Issue 10.
    Goal(
        "fetch_vs_bare_nginx",
        "nginx: mxresolve well-known fetch / bare ssl <= 1.5x",
        "<=",
        1.5,
        "x",
    ),
    Goal(
        "fetch_vs_bare_caddy",
        "Caddy: mxresolve well-known fetch / bare ssl <= 1.5x",
        "<=",
        1.5,
        "x",
    ),
    Goal(
        "caddy_cold_vs_floor", "Caddy cold round: mxresolve async / floor <= 1.2x", "<=", 1.2, "x"
    ),
    Goal(
        "caddy_cold_vs_synapse", "Caddy cold round: Synapse / mxresolve async >= 6x", ">=", 6.0, "x"
    ),
    Goal(
        "caddy_cold_vs_resolvematrix",
        "Caddy cold round: resolvematrix / mxresolve async >= 3x",
        ">=",
        3.0,
        "x",
    ),
    Goal("startup_import_ms", "start-up: import mxresolve adds <= 40 ms", "<=", 40.0, "ms"),
    Goal("startup_help_ms", "start-up: mxresolve --help adds <= 80 ms", "<=", 80.0, "ms"),
    Goal(
        "startup_resolve_ms", "start-up: cached mxresolve resolve adds <= 80 ms", "<=", 80.0, "ms"
    ),
    Goal("second_resolver_us", "start-up: second Resolver() < 1000 us", "<=", 1000.0, "us"),
    Goal(
        "rtt_over_floor",
        "RTT: scenarios where mxresolve async > floor + 1 RTT == 0",
        "==",
        0.0,
        "",
    ),
    Goal(
        "rtt_not_below_synapse",
        "RTT: scenarios where Synapse is above its floor and mxresolve async not below it == 0",
        "==",
        0.0,
        "",
    ),
)


def evaluate_goals(values: dict[str, float | None]) -> list[dict[str, Any]]:
    return [{"key": g.key, **g.evaluate(values.get(g.key))} for g in GOALS]


# --- formatting ----------------------------------------------------------------------------


def ms(seconds: float | None) -> str:
    return "n/a" if seconds is None or math.isnan(seconds) else f"{seconds * 1e3:.1f} ms"


def ns(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:,.0f} ns" if value < 100_000 else f"{value / 1e6:,.2f} ms"


def ratio(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.2f}x"


def spread(values: Sequence[float], scale: float = 1e3) -> str:
    if not values:
        return ""
    return f"{min(values) * scale:.1f}-{max(values) * scale:.1f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (also readable as plain text)."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
        for r in rows
    ]
    return "\n".join([line, rule, *body])
