"""The HTTP-client adapters against real servers: ``matrix-federation://`` in one line.

Every adapter (``clients.DRIVERS``) fetches ``/_matrix/federation/v1/version`` from
every scenario of the world that resolves, nginx- and Caddy-served; the target's
server echoes the Host header and the SNI it saw, and both must be the resolved
target's, never the URL's.
Then failover (a refusing first target, a first target with a wrong certificate),
the pool key (two names on one address with different certificate names), bodies,
streaming, timeouts and bad input.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mxresolve import AsyncResolver, Resolver, Settings
from mxresolve.integrations._federation import InvalidFederationURL

from .clients import DRIVERS, Driver, make_driver
from .world import SCENARIOS, VERSION_PATH, LoopbackWorld, Scenario

pytestmark = pytest.mark.integration

REQUEST_TIMEOUT = 1.5
SETTINGS = Settings(deadline=8.0)
CLIENT_NAMES = tuple(DRIVERS)
RESOLVABLE = [s for s in SCENARIOS if s.ok]


def _served_by(scenario: Scenario) -> str:
    """Which server echoes for this scenario's targets: nginx unless the catalogue says.

    A world that adds Caddy-served scenarios (a ``server`` field) gets them driven
    through every adapter here with no change: the pairs below pick them up.
    """
    return str(getattr(scenario, "server", "nginx"))


SERVED = [(_served_by(s), s) for s in RESOLVABLE]


def _config(world: LoopbackWorld, scenario: Scenario | None = None) -> dict[str, Any]:
    return {
        **world.resolver_config(scenario),
        "request_timeout": REQUEST_TIMEOUT,
        "settings": SETTINGS,
    }


@pytest.fixture(scope="module", params=CLIENT_NAMES)
def client(request: pytest.FixtureRequest, loopback_world: LoopbackWorld) -> Iterator[Driver]:
    """One driver per adapter, shared by the module: its resolver and pools stay warm."""
    driver = make_driver(request.param, _config(loopback_world))
    try:
        yield driver
    finally:
        driver.close()


@pytest.fixture
def fresh(request: pytest.FixtureRequest, loopback_world: LoopbackWorld) -> Iterator[Any]:
    """A factory of new drivers (fresh resolver and pools), closed after the test."""
    made: list[Driver] = []

    def make(name: str, scenario: Scenario | None = None, **options: Any) -> Driver:
        made.append(make_driver(name, _config(loopback_world, scenario), **options))
        return made[-1]

    yield make
    for driver in made:
        driver.close()


def _expected_sni(tls_server_name: str) -> str:
    try:
        ipaddress.ip_address(tls_server_name)
    except ValueError:
        return tls_server_name
    return ""  # no SNI for an IP certificate (spec v1.19, TLS)


def _url(server_name: str, path: str = VERSION_PATH) -> str:
    return f"matrix-federation://{server_name}{path}"


# --- every resolvable scenario, through every adapter -------------------------------------


@pytest.mark.parametrize(
    ("server", "scenario"), SERVED, ids=[f"{server}-{s.name}" for server, s in SERVED]
)
@pytest.mark.parametrize("name", CLIENT_NAMES)
def test_request_reaches_the_target_with_its_host_and_sni(
    fresh: Any, name: str, scenario: Scenario, server: str
) -> None:
    driver: Driver = fresh(name, scenario)
    url = _url(scenario.server_name)
    if not scenario.target_tls_ok:
        with pytest.raises(driver.connect_error) as info:
            driver.get(url)
        assert "certificate" in str(info.value).lower(), info.value
        return
    reply = driver.get(url)
    assert reply.status == 200
    echo = reply.json()
    first = scenario.targets[0]
    # Host and SNI are the target's (equal for every target of a scenario), never the URL's.
    assert echo["host"] == first.host_header
    assert echo["sni"] == _expected_sni(first.tls_server_name)
    if reply.target is not None:
        assert reply.target.host_header == first.host_header
        assert reply.target.tls_server_name == first.tls_server_name
        # The target's site answered. (Caddy's echo names a site by its Host-matched
        # block, which for a name with SRV is the server name itself.)
        tls = reply.target.tls_server_name
        assert echo["site"] in (f"target {tls}", tls)


# --- failover ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CLIENT_NAMES)
@pytest.mark.parametrize(
    ("server_name", "first_failure"),
    [("fo-refused.mxtest", "refused"), ("fo-badcert.mxtest", "certificate")],
)
def test_failover_to_the_next_target(
    fresh: Any, name: str, server_name: str, first_failure: str
) -> None:
    driver: Driver = fresh(name)
    reply = driver.get(_url(server_name))
    assert reply.status == 200
    echo = reply.json()
    assert echo["host"] == server_name
    assert echo["sni"] == server_name
    assert echo["site"] == f"target {server_name}"  # the second target: t-fed answered


@pytest.mark.parametrize("name", CLIENT_NAMES)
def test_every_attempt_is_in_the_error(fresh: Any, name: str) -> None:
    # target-badcert's only target presents a wrong-name certificate: the error is the
    # client's own connect error, and names the target tried and why it failed.
    driver: Driver = fresh(name)
    with pytest.raises(driver.connect_error) as info:
        driver.get(_url("target-badcert.mxtest"))
    text = str(info.value)
    assert "target-badcert.mxtest:8448" in text
    assert "certificate" in text.lower()


@pytest.mark.parametrize("name", CLIENT_NAMES)
def test_one_address_two_certificate_names_never_share_a_connection(fresh: Any, name: str) -> None:
    # srv-fed.mxtest and wk-404.mxtest both resolve to t-fed (127.0.3.30:8448), whose
    # nginx presents a certificate per SNI. A pool keyed by address and port would send
    # the second request on the connection verified for the first: the echoed SNI
    # would then be the first name's.
    driver: Driver = fresh(name)
    connections: dict[str, set[str]] = {}
    for server_name in ("srv-fed.mxtest", "wk-404.mxtest", "srv-fed.mxtest", "wk-404.mxtest"):
        echo = driver.get(_url(server_name)).json()
        assert echo["sni"] == server_name
        assert echo["host"] == server_name
        connections.setdefault(server_name, set()).add(echo["connection"])
    # Each name kept its own connection, and reused it.
    assert [len(c) for c in connections.values()] == [1, 1]
    assert not connections["srv-fed.mxtest"] & connections["wk-404.mxtest"]
    count = driver.pool_count()
    if count is not None:
        assert count == 2


@pytest.mark.parametrize("name", CLIENT_NAMES)
def test_connections_are_reused(fresh: Any, name: str) -> None:
    driver: Driver = fresh(name)
    connections = {driver.get(_url("srv-fed.mxtest")).json()["connection"] for _ in range(5)}
    assert len(connections) == 1  # nginx's connection serial number: one connection


# --- resolution failures --------------------------------------------------------------------


@pytest.mark.parametrize("name", CLIENT_NAMES)
def test_a_failed_resolution_is_the_clients_connect_error_with_the_failure(
    fresh: Any, name: str
) -> None:
    driver: Driver = fresh(name)
    with pytest.raises(driver.connect_error) as info:
        driver.get(_url("nx.mxtest"))
    failure = info.value.failure  # type: ignore[attr-defined]
    assert failure is not None
    assert failure.kind.value == "no_address"
    assert failure.trace  # the whole story comes along


# --- bodies, streaming, timeouts ---------------------------------------------------------------


@pytest.mark.parametrize("name", CLIENT_NAMES)
def test_request_bodies_and_keepalive_after_them(fresh: Any, name: str) -> None:
    driver: Driver = fresh(name)
    url = _url("srv-fed.mxtest")
    body = b'{"pdus": [], "edus": []}'
    assert (
        driver.request("PUT", url, body=body, headers={"Content-Type": "application/json"}).status
        == 200
    )
    assert driver.request("PUT", url, chunks=[b'{"pdus": ', b"[]", b"}"]).status == 200
    assert driver.get(url).json()["sni"] == "srv-fed.mxtest"


@pytest.mark.parametrize("name", CLIENT_NAMES)
def test_streaming_response(fresh: Any, name: str) -> None:
    driver: Driver = fresh(name)
    chunks = driver.stream(_url("srv-fed.mxtest"))
    assert b"".join(chunks).startswith(b'{"server"')


def _times_out(driver: Driver, *, timeout: float, within: float) -> None:
    """A GET of the black hole's silent 127.0.1.62:443 (the client's own ``timeout``) fails
    as a timeout in less than ``within`` seconds."""
    started = time.monotonic()
    with pytest.raises(Exception) as info:  # noqa: PT011 - each client has its own type
        driver.get(_url("127.0.1.62:443"), timeout=timeout)
    assert time.monotonic() - started < within
    assert isinstance(info.value, driver.timeout_errors) or "timed out" in str(info.value).lower()


@pytest.mark.parametrize("name", CLIENT_NAMES)
def test_a_silent_server_times_out(fresh: Any, name: str) -> None:
    # wk-hang's :443 (the black hole) accepts TCP and never speaks: as a target it hangs
    # the TLS handshake. Reach it by IP literal and port so nothing else is in the way.
    _times_out(fresh(name), timeout=1.0, within=5)


@pytest.mark.parametrize("name", CLIENT_NAMES)
def test_every_kept_connection_has_nagle_off(fresh: Any, name: str) -> None:
    driver: Driver = fresh(name)
    for server_name in ("srv-fed.mxtest", "wk-404.mxtest", "wk-port.mxtest"):
        assert driver.get(_url(server_name)).status == 200
    flags = driver.nodelay()
    assert len(flags) == 3
    assert all(flags), flags


@pytest.mark.parametrize("name", ["httpx", "httpx-async", "twisted"])
def test_the_total_timeout_bounds_a_request(fresh: Any, name: str) -> None:
    # The client's own per-step timeouts are long; the adapter's total is not.
    _times_out(fresh(name, total_timeout=0.5), timeout=10, within=3)


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CLIENT_NAMES)
@pytest.mark.parametrize(
    "url",
    [
        "matrix-federation://exa_mple.org/_matrix/federation/v1/version",
        "matrix-federation://a..b/_matrix/federation/v1/version",
    ],
)
def test_a_server_name_outside_the_grammar_is_a_typed_error(
    fresh: Any, name: str, url: str
) -> None:
    driver: Driver = fresh(name)
    with pytest.raises(InvalidFederationURL) as info:
        driver.get(url)
    assert url in str(info.value)


@pytest.mark.parametrize("name", CLIENT_NAMES)
@pytest.mark.parametrize(
    "url",
    [
        "matrix-federation:///_matrix/federation/v1/version",
        "ftp://srv-fed.mxtest/x",
        "srv-fed.mxtest",
    ],
)
def test_malformed_urls_and_other_schemes_are_the_clients_own_errors(
    fresh: Any, name: str, url: str
) -> None:
    driver: Driver = fresh(name)
    with pytest.raises(driver.bad_url_errors):
        driver.get(url)


# --- connect() ------------------------------------------------------------------------------


def test_sync_connect_has_a_read_timeout(loopback_world: LoopbackWorld) -> None:
    resolver = Resolver(**_config(loopback_world))
    stream, _ = resolver.connect("srv-fed.mxtest", read_timeout=0.3)
    with stream:
        assert stream.gettimeout() == 0.3
        started = time.monotonic()
        with pytest.raises(socket.timeout):
            stream.recv(1)  # nginx waits for a request: nothing comes
        assert time.monotonic() - started < 2


def test_async_connect_has_a_read_timeout(loopback_world: LoopbackWorld) -> None:
    async def run() -> float:
        resolver = AsyncResolver(**_config(loopback_world))
        reader, writer, _ = await resolver.connect("srv-fed.mxtest", read_timeout=0.3)
        started = time.monotonic()
        try:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(reader.read(1), 10)
        finally:
            writer.close()
            await writer.wait_closed()
        return time.monotonic() - started

    assert asyncio.run(run()) < 2


def test_the_readme_raw_stream_example_reads_a_whole_response(
    loopback_world: LoopbackWorld,
) -> None:
    """The README's connect() example, run as written on a real connection."""
    import json
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text("utf-8")
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "h11.Connection" in b]
    assert len(blocks) == 1
    resolver = Resolver(**_config(loopback_world))
    stream, target = resolver.connect("srv-fed.mxtest", read_timeout=5)
    scope: dict[str, Any] = {"stream": stream, "target": target}
    exec(blocks[0], scope)
    assert json.loads(scope["body"])["host"] == "srv-fed.mxtest"
    assert stream.fileno() == -1  # closed by the example


def test_one_httpx_client_shared_by_threads(fresh: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    driver: Driver = fresh("httpx")
    names = ["srv-fed.mxtest", "wk-404.mxtest"] * 20
    with ThreadPoolExecutor(8) as pool:
        echoes = list(pool.map(lambda n: driver.get(_url(n)).json(), names))
    assert [e["sni"] for e in echoes] == names
    assert driver.pool_count() == 2
