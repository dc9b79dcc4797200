"""The RTT table: cold latency in round trips, through a delaying proxy in front of the world.

The kernel's netem is not available here, so ``_delay_proxy.py`` delays in user space. The
resolvers see the integration world unchanged: Knot serves the same zone, and the proxy
listens on every address the zone gives on :443 and forwards to nginx and Caddy, which listen
on the same addresses moved to 127.77.x.y (``moved()``). The nameserver the resolvers are
given is the proxy's. IPv6 has one loopback address, so only IPv4 scenarios are measured.

The floor counts one RTT for each DNS exchange, TCP connect, TLS 1.3 handshake and HTTP
exchange, asking every independent question at once (issue 10, part 3): e.g. a well-known 404
ending at step 4 costs 4 (A/AAAA with both SRV, TCP, TLS, GET), a delegation to a name without
a port 6 (then SRV with the delegated name's addresses, then the SRV target's addresses).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from _measure import REQUEST_TIMEOUT, client_ssl_context

from mxresolve import AsyncResolver, Resolution, ResolutionFailure, Resolver

HERE = Path(__file__).resolve().parent
PROXY = HERE / "_delay_proxy.py"
MOVED_PREFIX = "127.77."
READY_SECONDS = 15.0

# (scenario, floor in RTTs, what it shows). IPv4 only; one of every step, a 404 well-known,
# a redirect, a down well-known host (:443 refused); the Caddy-served ones too.
RTT_SCENARIOS: tuple[tuple[str, int, str], ...] = (
    ("ip4", 0, "step 1: IP literal"),
    ("explicit-port", 1, "step 2: explicit port"),
    ("wk-ip", 4, "step 3.1: well-known -> IP"),
    ("wk-port", 5, "step 3.2: well-known -> name:port"),
    ("wk-srv", 6, "step 3.3: well-known -> name -> SRV"),
    ("wk-srv-legacy", 6, "step 3.4: well-known -> name -> _matrix SRV"),
    ("wk-nosrv", 5, "step 3.5: well-known -> name, no SRV"),
    ("wk-404", 4, "step 4: well-known 404 -> SRV"),
    ("srv-fed", 2, "step 4: well-known host down -> SRV"),
    ("srv-legacy", 2, "step 5: well-known host down -> _matrix SRV"),
    ("plain", 2, "step 6: well-known host down, no SRV"),
    ("wk-redir-301", 9, "301 redirect -> well-known -> name:port"),
    ("cy-wk-port", 5, "Caddy: step 3.2"),
    ("cy-wk-srv", 6, "Caddy: step 3.3"),
    ("cy-wk-404", 4, "Caddy: well-known 404 -> SRV"),
    ("cy-wk-redir", 9, "Caddy: 301 redirect"),
)


def moved(address: str) -> str:
    """Where a server really listens for a zone address: 127.0.a.b -> 127.77.a.b."""
    if not address.startswith("127.0."):
        return address
    return MOVED_PREFIX + address[len("127.0.") :]


def _make_servers(w: ModuleType) -> tuple[type, type]:
    class MovedNginx(w.NginxServer):  # type: ignore[misc, name-defined]
        def _config(self) -> str:
            text: str = super()._config()
            self.sockets = [((moved(a), p), tls) for (a, p), tls in self.sockets]
            return re.sub(r"listen 127\.0\.(\d+)\.(\d+):", r"listen 127.77.\1.\2:", text)

    class MovedCaddy(w.CaddyServer):  # type: ignore[misc, name-defined]
        def _config(self) -> dict[str, Any]:
            config: dict[str, Any] = super()._config()
            server = config["apps"]["http"]["servers"]["world"]
            server["listen"] = [re.sub(r"^127\.0\.", MOVED_PREFIX, x) for x in server["listen"]]
            self.sockets = [(moved(a), p) for a, p in self.sockets]
            return config

    return MovedNginx, MovedCaddy


class RttWorld:
    """Knot + nginx + Caddy on moved addresses, behind the delaying proxy. Context manager."""

    def __init__(self, w: ModuleType, one_way_delay: float) -> None:
        self.w = w
        self.delay = one_way_delay
        self._lock = w._MachineLock()
        self.dir: Path | None = None
        self.certs: Any = None
        self.parts: list[Any] = []
        self.proxy: subprocess.Popen[bytes] | None = None
        self.dns_port = 0

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.dns_port}"

    @property
    def cafile(self) -> str:
        return str(self.certs.cafile)

    def _zone_addresses(self) -> list[str]:
        found = set(re.findall(r"\bA\s+(127\.0\.\d+\.\d+)", self.w.ZONE_TEXT))
        return sorted(a for a in found if a != "127.0.0.1")

    def start(self) -> RttWorld:
        self._lock.acquire(float(os.environ.get(self.w.LOCK_WAIT_ENV, "120")))
        try:
            self.dir = Path(tempfile.mkdtemp(prefix="mxrtt-"))
            self.certs = self.w.Certs(self.dir / "certs")
            knot = self.w.KnotServer(self.dir / "knot")
            knot.start()
            self.parts.append(knot)
            nginx_cls, caddy_cls = _make_servers(self.w)
            for part in (
                nginx_cls(self.dir / "nginx", self.certs),
                caddy_cls(self.dir / "caddy", self.certs),
            ):
                part.start()
                self.parts.append(part)
            self.dns_port = self.w.pick_free_port()
            upstream_dns = ("127.0.0.1", knot.port)
            config = {
                "delay": self.delay,
                "udp": [["127.0.0.1", self.dns_port, *upstream_dns]],
                "tcp": [["127.0.0.1", self.dns_port, *upstream_dns]]
                + [[a, 443, moved(a), 443] for a in self._zone_addresses()],
                "max_seconds": 3600,
            }
            conf = self.dir / "proxy.json"
            conf.write_text(json.dumps(config))
            self.proxy = subprocess.Popen(
                [sys.executable, str(PROXY), str(conf)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=(self.dir / "proxy.log").open("wb"),
                preexec_fn=self.w._die_with_parent,
            )
            assert self.proxy.stdout is not None
            line = _readline(self.proxy.stdout, READY_SECONDS)
            if line.strip() != b"ready":
                log_tail = (self.dir / "proxy.log").read_text()[-2000:]
                raise RuntimeError(f"delay proxy not ready: {line!r} {log_tail}")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        try:
            if self.proxy is not None:
                with contextlib.suppress(OSError):
                    assert self.proxy.stdin is not None
                    self.proxy.stdin.close()
                try:
                    self.proxy.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proxy.kill()
                    self.proxy.wait(timeout=5)
                self.proxy = None
            for part in reversed(self.parts):
                part.stop()
            self.parts.clear()
        finally:
            if self.dir is not None:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = None
            self._lock.release()

    def __enter__(self) -> RttWorld:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _readline(stream: Any, timeout: float) -> bytes:
    import selectors

    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        if not sel.select(timeout):
            return b""
    line: bytes = stream.readline()
    return line


def _kwargs(world: RttWorld, context: Any) -> dict[str, Any]:
    return {
        "nameservers": [world.nameserver],
        "ssl_context": context,
        "allow_ips": ["127.0.0.0/8", "::1/128"],
        "request_timeout": REQUEST_TIMEOUT,
    }


def _mx_async(world: RttWorld, context: Any, name: str) -> tuple[float, Any]:
    async def run() -> tuple[float, Any]:
        resolver = AsyncResolver(**_kwargs(world, context))
        t0 = time.perf_counter()
        result = await resolver.resolve_result(name)
        return time.perf_counter() - t0, result

    return asyncio.run(run())


def _mx_sync(world: RttWorld, context: Any, name: str) -> tuple[float, Any]:
    resolver = Resolver(**_kwargs(world, context))
    t0 = time.perf_counter()
    result = resolver.resolve_result(name)
    return time.perf_counter() - t0, result


def measure(
    w: ModuleType, peer_list: Sequence[Any], rtt_ms: float, rounds: int, log: Any
) -> dict[str, Any]:
    """Each scenario's cold latency (median of ``rounds``) for every contender, in RTTs."""
    rtt = rtt_ms / 1e3
    names = {s: w.scenario(s).server_name for s, _, _ in RTT_SCENARIOS}
    out: dict[str, Any] = {"rtt_ms": rtt_ms, "rounds": rounds, "scenarios": {}}
    with RttWorld(w, rtt / 2) as world:
        context = client_ssl_context(world.cafile)
        _mx_sync(world, context, names["wk-port"])  # untimed: imports, lazy set-up
        seconds: dict[str, dict[str, list[float]]] = {
            s: {"mx_async": [], "mx_sync": []} for s in names
        }
        problems: dict[str, list[str]] = {s: [] for s in names}
        for _ in range(rounds):
            for scen, name in names.items():
                for key, run in (("mx_async", _mx_async), ("mx_sync", _mx_sync)):
                    elapsed, result = run(world, context, name)
                    seconds[scen][key].append(elapsed)
                    step = getattr(getattr(result, "step", None), "value", None)
                    if isinstance(result, ResolutionFailure) or (
                        isinstance(result, Resolution) and step != w.scenario(scen).step
                    ):
                        problems[scen].append(f"{key}: step {step}")
        log("rtt: mxresolve done")
        peer_out: dict[str, Any] = {}
        for peer in peer_list:
            started = time.monotonic()
            payload = {
                "nameserver": world.nameserver,
                "cafile": world.cafile,
                "names": list(names.values()),
                "mode": "cold_each",
                "rounds": rounds,
            }
            peer_out[peer.key] = peer.run(payload, 600.0)
            log(f"rtt: {peer.key} ({time.monotonic() - started:.1f} s)")
        for scen, floor, what in RTT_SCENARIOS:
            row: dict[str, Any] = {"floor_rtts": floor, "what": what, "name": names[scen]}
            for key in ("mx_async", "mx_sync"):
                row[key] = statistics.median(seconds[scen][key]) / rtt
            for key, po in peer_out.items():
                per = po.get("per_name_seconds", {}).get(names[scen])
                row[key] = statistics.median(per) / rtt if per else None
                if names[scen] in po.get("names_failed", []):
                    problems[scen].append(f"{key}: {po.get('errors', {}).get(names[scen])}")
            row["problems"] = sorted(set(problems[scen]))[:3]
            out["scenarios"][scen] = row
        out["peer_errors"] = {k: v["error"] for k, v in peer_out.items() if "error" in v}
    return out
