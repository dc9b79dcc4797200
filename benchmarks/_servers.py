"""Issue 10's measurements: time per name against nginx and Caddy, and start-up cost.

Per name (``per_name``): for one scenario of each group, served by nginx (OpenSSL) and by
Caddy (Go crypto/tls), each from a fresh resolver:

* floor: a bare ``ssl`` client's fetch of the same well-known URL (TCP connect with Nagle off,
  TLS handshake, GET, read to the end; the address given, no DNS);
* mxresolve's fetch of that URL alone (its HTTPS transport, DNS answered from memory), the
  figure the 1.5x goal compares with the floor;
* whole cold resolutions: mxresolve async and sync, the sync one again with Nagle forced on
  (every TCP socket mxresolve makes, so the stall it avoids shows side by side), Synapse and
  resolvematrix (their drivers' ``cold_each`` mode).

Start-up (``startup``): fresh interpreters, run in turn in one loop (``python -c pass`` first
in every turn) so that drift affects them alike, each timed from spawn to exit by
``timed_run``; and ``Resolver()`` constructions in-process.
"""

from __future__ import annotations

import asyncio
import compileall
import contextlib
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from _measure import REQUEST_TIMEOUT, WorldConfig, client_ssl_context

from mxresolve import (
    AsyncResolver,
    DnsQuery,
    DnsResult,
    DnsStatus,
    H11HttpsTransport,
    HttpsGet,
    HttpsResponse,
    IpPolicy,
    Resolver,
)
from mxresolve._io import net

WK_PATH = "/.well-known/matrix/server"
# "A cached mxresolve resolve": an IP literal with a port, which needs no network (step 1).
CACHED_RESOLVE_NAME = "8.8.8.8:8448"


# --- the floor and mxresolve's fetch ---------------------------------------------------------


def bare_fetch(address: str, host: str, context: ssl.SSLContext) -> tuple[float, bytes]:
    """A plain ``ssl`` client: connect, handshake, one GET, read to EOF. Returns (s, status)."""
    t0 = time.perf_counter()
    with socket.create_connection((address, 443), timeout=REQUEST_TIMEOUT) as raw:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with context.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(
                f"GET {WK_PATH} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            data = b""
            for _ in range(64):  # bounded: a well-known is small
                chunk = tls.recv(65536)
                if not chunk:
                    break
                data += chunk
    return time.perf_counter() - t0, data[9:12]


class _MemoryDns:
    """A DNS transport answering A from a table: the fetch is timed without DNS."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table

    def query(self, query: DnsQuery, timeout: float) -> DnsResult:
        address = self.table.get(query.qname.rstrip("."))
        if query.rdtype.value == "A" and address is not None:
            return DnsResult(status=DnsStatus.NOERROR, records=(address,), ttl=300)
        return DnsResult(status=DnsStatus.NODATA)


def mx_fetch(address: str, host: str, context: ssl.SSLContext) -> tuple[float, int | None]:
    transport = H11HttpsTransport(
        _MemoryDns({host: address}),
        ssl_context=context,
        ip_policy=IpPolicy.from_cidrs(["127.0.0.0/8"]),
    )
    request = HttpsGet(
        url=f"https://{host}{WK_PATH}",
        host=host,
        port=443,
        target=WK_PATH,
        host_header=host,
        max_body_bytes=51200,
    )
    t0 = time.perf_counter()
    outcome = transport.fetch(request, timeout=REQUEST_TIMEOUT)
    elapsed = time.perf_counter() - t0
    return elapsed, outcome.status if isinstance(outcome, HttpsResponse) else None


@contextlib.contextmanager
def nagle_on() -> Iterator[None]:
    """Every TCP socket mxresolve makes keeps Nagle's algorithm on (as before 6aa23ad)."""
    real = net.tcp_socket

    def with_nagle(address: str) -> socket.socket:
        sock = real(address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
        return sock

    net.tcp_socket = with_nagle  # type: ignore[assignment]
    try:
        yield
    finally:
        net.tcp_socket = real  # type: ignore[assignment]


# --- per name ----------------------------------------------------------------------------------


def _kwargs(world: WorldConfig, context: ssl.SSLContext) -> dict[str, Any]:
    kwargs = world.resolver_kwargs()
    del kwargs["cafile"]
    return {**kwargs, "ssl_context": context}


def _mx_sync(world: WorldConfig, context: ssl.SSLContext, name: str) -> float:
    resolver = Resolver(**_kwargs(world, context))
    t0 = time.perf_counter()
    resolver.resolve_result(name)
    return time.perf_counter() - t0


def _mx_async(world: WorldConfig, context: ssl.SSLContext, name: str) -> float:
    async def run() -> float:
        resolver = AsyncResolver(**_kwargs(world, context))
        t0 = time.perf_counter()
        await resolver.resolve_result(name)
        return time.perf_counter() - t0

    return asyncio.run(run())


def per_name(
    world: WorldConfig,
    w: Any,
    groups: Sequence[tuple[str, str, str]],
    peer_list: Sequence[Any],
    rounds: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    context = client_ssl_context(world.cafile)
    rows: list[dict[str, Any]] = []
    for label, nginx_scenario, caddy_scenario in groups:
        for server, scen in (("nginx", nginx_scenario), ("caddy", caddy_scenario)):
            s = w.scenario(scen)
            site = w.site(s.server_name)
            rows.append(
                {
                    "group": label,
                    "server": server,
                    "scenario": scen,
                    "name": s.server_name,
                    "address": site.addresses[0],
                    "samples": {},
                }
            )
    contenders: dict[str, Callable[[dict[str, Any]], float]] = {
        "floor_fetch": lambda r: bare_fetch(r["address"], r["name"], context)[0],
        "mx_fetch": lambda r: mx_fetch(r["address"], r["name"], context)[0],
        "mx_async": lambda r: _mx_async(world, context, r["name"]),
        "mx_sync": lambda r: _mx_sync(world, context, r["name"]),
    }

    def nagle_sync(r: dict[str, Any]) -> float:
        with nagle_on():
            return _mx_sync(world, context, r["name"])

    contenders["mx_sync_nagle_on"] = nagle_sync
    for row in rows:  # untimed warm-up of every path
        for run in contenders.values():
            run(row)
    for _ in range(rounds):
        for row in rows:
            for key, run in contenders.items():
                row["samples"].setdefault(key, []).append(run(row))
    log("per-name: mxresolve and the floor done")
    names = [r["name"] for r in rows]
    peer_errors: dict[str, str] = {}
    for peer in peer_list:
        started = time.monotonic()
        payload = {
            "nameserver": world.nameserver,
            "cafile": world.cafile,
            "names": names,
            "mode": "cold_each",
            "rounds": rounds,
        }
        out = peer.run(payload, 600.0)
        log(f"per-name: {peer.key} ({time.monotonic() - started:.1f} s)")
        if "error" in out:
            peer_errors[peer.key] = str(out["error"])[:200]
        for row in rows:
            per = out.get("per_name_seconds", {}).get(row["name"])
            if per:
                row["samples"][peer.key] = per
    for row in rows:
        row["median_s"] = {k: statistics.median(v) for k, v in row["samples"].items()}
    fetch_ratio = {}
    for server in ("nginx", "caddy"):
        mine = [r for r in rows if r["server"] == server]
        fetch_ratio[server] = statistics.median(
            r["median_s"]["mx_fetch"] / r["median_s"]["floor_fetch"] for r in mine
        )
    return {"rounds": rounds, "rows": rows, "fetch_ratio": fetch_ratio, "peer_errors": peer_errors}


# --- start-up -----------------------------------------------------------------------------------

_SECOND_RESOLVER = """
import time, mxresolve
mxresolve.Resolver()
t = time.perf_counter()
for _ in range(200):
    mxresolve.Resolver()
print((time.perf_counter() - t) / 200)
"""


def compile_package(directory: Path) -> None:
    """Write the bytecode an installed wheel would have (PYTHONDONTWRITEBYTECODE may be set,
    and a stale cache would make every timed start compile the changed modules again)."""
    compileall.compile_dir(str(directory), quiet=1)


def timed_run(argv: Sequence[str], env: dict[str, str] | None = None, limit: float = 60.0) -> float:
    """Wall time of one child process from spawn to exit, in seconds; raises if it fails.

    ``subprocess.run(..., timeout=...)`` would poll the child with sleeps that double from
    0.5 ms to 50 ms, rounding every sample up to the next poll (15.5, 31.5, 63.5 ms ...).
    Here the wait blocks in ``waitpid`` and a watchdog thread kills a child still running
    after ``limit`` seconds, so the loop stays bounded without quantising what it measures.
    """
    child: list[subprocess.Popen[bytes]] = []
    expired = threading.Event()

    def kill() -> None:
        expired.set()
        for process in child:
            process.kill()

    watchdog = threading.Timer(limit, kill)
    watchdog.start()  # before the clock starts: its thread's start-up is not the child's
    try:
        t0 = time.perf_counter()
        with subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL) as process:
            child.append(process)
            if expired.is_set():  # the watchdog fired before it could see the child
                process.kill()
            returncode = process.wait()
            elapsed = time.perf_counter() - t0
    finally:
        watchdog.cancel()
    if expired.is_set():
        raise subprocess.TimeoutExpired(list(argv), limit)
    if returncode != 0:
        raise subprocess.CalledProcessError(returncode, list(argv))
    return elapsed


def startup(turns: int) -> dict[str, Any]:
    import mxresolve

    compile_package(Path(mxresolve.__file__).parent)
    py = sys.executable
    commands = {
        "python -c pass": [py, "-c", "pass"],
        "import mxresolve": [py, "-c", "import mxresolve"],
        "mxresolve --help": [py, "-m", "mxresolve", "--help"],
        f"mxresolve resolve {CACHED_RESOLVE_NAME}": [
            py,
            "-m",
            "mxresolve",
            "resolve",
            CACHED_RESOLVE_NAME,
        ],
        "first Resolver() (certifi CAs)": [
            py,
            "-c",
            "import mxresolve; r = mxresolve.Resolver(); r._ssl_context",
        ],
    }
    samples: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(turns):
        for key, argv in commands.items():
            samples[key].append(timed_run(argv))
    second = subprocess.run(
        [py, "-c", _SECOND_RESOLVER], capture_output=True, text=True, check=True, timeout=60
    )
    base = statistics.median(samples["python -c pass"])
    rows = {
        k: {
            "median_s": statistics.median(v),
            "added_s": statistics.median(v) - base,
            "ratio": statistics.median(v) / base,
        }
        for k, v in samples.items()
    }
    return {
        "turns": turns,
        "rows": rows,
        "second_resolver_s": float(second.stdout.strip()),
        "samples": samples,
        "cached_resolve_name": CACHED_RESOLVE_NAME,
    }
