"""What each HTTP-client adapter adds over a bare ``Resolver.connect()``, for one request.

On the loopback world (Knot + nginx), one ``GET /_matrix/federation/v1/version`` to a
server name that is delegated by ``.well-known`` (``wk-port.mxtest``):

* **cold**: a new resolver and a new client for each request (resolution, connection,
  TLS, request, response);
* **warm**: one resolver and one client for all requests (the resolution from the memo;
  the adapters reuse their pooled connection, ``connect()`` has no pool and makes a new
  one each time, which is what a caller of ``connect()`` gets).

The baseline is ``connect()`` plus the request written and the response read with h11
(the least a correct caller must do). Every row runs side by side in one process; the
figures are medians and 90th percentiles in milliseconds, and the ratio to the baseline.
The Twisted rows include one hop to the reactor thread and back per request. Rows are
interleaved (one request of each per round), so load from elsewhere falls on all alike.

    python benchmarks/adapters.py [--cold N] [--warm N]

Needs knotd, nginx and root (port 443): it enters a private network namespace first.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from netns import enter_private_network  # noqa: E402

NETWORK = enter_private_network()  # before any thread

import h11  # noqa: E402

from integration.clients import DRIVERS, make_driver  # noqa: E402
from integration.world import VERSION_PATH, LoopbackWorld  # noqa: E402
from mxresolve import Resolver, Settings  # noqa: E402

SERVER_NAME = "wk-port.mxtest"
URL = f"matrix-federation://{SERVER_NAME}{VERSION_PATH}"


def bare_request(resolver: Resolver) -> int:
    """connect(), then one GET written and read with h11: what a caller of connect() writes."""
    stream, target = resolver.connect(SERVER_NAME, timeout=5)
    with stream:
        conn = h11.Connection(h11.CLIENT)
        request = h11.Request(
            method="GET",
            target=VERSION_PATH,
            headers=[("Host", target.host_header), ("Connection", "close")],
        )
        stream.sendall(conn.send(request) + conn.send(h11.EndOfMessage()))
        status = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(stream.recv(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.EndOfMessage):
                return status


def measure(run: Callable[[], Any], n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return times


def summary(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.9) - 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", type=int, default=30, help="cold requests per row")
    parser.add_argument("--warm", type=int, default=300, help="warm requests per row")
    args = parser.parse_args(argv)

    with LoopbackWorld() as world:
        config = {
            **world.resolver_config(),
            "request_timeout": 2.0,
            "settings": Settings(deadline=10.0),
        }
        # Rows are interleaved, one request of each per round, so that the machine's
        # load (other work on it) falls on every row alike.
        cold_runs: dict[str, Callable[[], Any]] = {}
        warm_runs: dict[str, Callable[[], Any]] = {}

        def cold_bare() -> None:
            assert bare_request(Resolver(**config)) == 200

        cold_runs["connect() + h11"] = cold_bare
        warm_resolver = Resolver(**config)
        warm_runs["connect() + h11"] = lambda: bare_request(warm_resolver)
        drivers = []
        for name in DRIVERS:

            def cold(name: str = name) -> None:
                driver = make_driver(name, config)
                try:
                    assert driver.get(URL).status == 200
                finally:
                    driver.close()

            cold_runs[name] = cold
            driver = make_driver(name, config)
            drivers.append(driver)
            warm_runs[name] = lambda d=driver: d.get(URL)  # type: ignore[misc]
        try:
            for run in warm_runs.values():
                run()  # resolution cached, connection pooled
            times: dict[tuple[str, str], list[float]] = {}
            for mode, runs, n in (("cold", cold_runs, args.cold), ("warm", warm_runs, args.warm)):
                for _ in range(n):
                    for who, run in runs.items():
                        times.setdefault((who, mode), []).extend(measure(run, 1))
        finally:
            for driver in drivers:
                driver.close()
        rows = [(who, mode, t) for (who, mode), t in times.items()]

    base = {mode: summary(t)[0] for who, mode, t in rows if who == "connect() + h11"}
    print(f"# one GET {VERSION_PATH} to {SERVER_NAME} (network: {NETWORK})")
    print(f"# cold: {args.cold} requests per row; warm: {args.warm}")
    print()
    print("| client | mode | median ms | p90 ms | median / connect() |")
    print("| --- | --- | ---: | ---: | ---: |")
    for who, mode, times in rows:
        median, p90 = summary(times)
        print(f"| {who} | {mode} | {median:.2f} | {p90:.2f} | {median / base[mode]:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
