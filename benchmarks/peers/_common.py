"""Stdlib-only helpers shared by the peer drivers (imported from the script directory)."""

from __future__ import annotations

import ipaddress
import json
import statistics
import sys
from dataclasses import dataclass
from typing import Any

MODES = ("resolve", "cold", "cached", "cold_each")
PER_NAME_TIMEOUT_S = 10.0
DEFAULT_ITERATIONS = 100_000
DEFAULT_MAX_SECONDS_PER_NAME = 2.0


class InputError(ValueError):
    """The JSON given on stdin is unusable."""


def is_loopback(ip: str) -> bool:
    """True for 127.0.0.0/8 and ::1 (and ::ffff:127.x.y.z)."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def parse_hostport(text: str) -> tuple[str, int]:
    """Parse ``ip:port`` or ``[v6]:port``; the IP must be loopback."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise InputError(f"bad nameserver {text!r}")
        port_s = rest[1:]
    else:
        host, sep, port_s = text.rpartition(":")
        if not sep:
            host, port_s = text, "53"
    try:
        port = int(port_s)
    except ValueError as e:
        raise InputError(f"bad nameserver port in {text!r}") from e
    if not 0 < port < 65536:
        raise InputError(f"bad nameserver port in {text!r}")
    if not is_loopback(host):
        raise InputError(f"nameserver {host!r} is not a loopback address")
    return host, port


@dataclass
class Request:
    nameserver: tuple[str, int]
    cafile: str
    names: list[str]
    rounds: int
    mode: str
    iterations: int
    max_seconds_per_name: float
    timeout_s: float


def read_request(stream: Any = None) -> Request:
    raw = json.load(stream or sys.stdin)
    if not isinstance(raw, dict):
        raise InputError("stdin must hold one JSON object")
    mode = raw.get("mode", "resolve")
    if mode not in MODES:
        raise InputError(f"mode must be one of {MODES}, got {mode!r}")
    names = raw.get("names")
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise InputError("names must be a list of non-empty strings")
    if "nameserver" not in raw or "cafile" not in raw:
        raise InputError("nameserver and cafile are required")
    rounds = int(raw.get("rounds", 5))
    if not 1 <= rounds <= 1000:
        raise InputError("rounds must be in 1..1000")
    iterations = int(raw.get("iterations", DEFAULT_ITERATIONS))
    if not 1 <= iterations <= 10_000_000:
        raise InputError("iterations must be in 1..10_000_000")
    max_s = float(raw.get("max_seconds_per_name", DEFAULT_MAX_SECONDS_PER_NAME))
    timeout_s = min(float(raw.get("timeout", PER_NAME_TIMEOUT_S)), PER_NAME_TIMEOUT_S)
    return Request(
        nameserver=parse_hostport(str(raw["nameserver"])),
        cafile=str(raw["cafile"]),
        names=list(names),
        rounds=rounds,
        mode=mode,
        iterations=iterations,
        max_seconds_per_name=max(0.01, min(max_s, 60.0)),
        timeout_s=max(0.1, timeout_s),
    )


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def write_result(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def describe_exception(exc: BaseException) -> str:
    """One-line text for an exception, unwrapping Twisted's lists of Failures."""
    text = f"{type(exc).__name__}: {exc}"
    reasons = getattr(exc, "reasons", None)
    if isinstance(reasons, list) and reasons:
        inner = []
        for r in reasons:
            v = getattr(r, "value", r)
            inner.append(f"{type(v).__name__}: {v}")
        text = f"{type(exc).__name__}([{'; '.join(inner)}])"
    return text
