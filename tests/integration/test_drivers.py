"""The drivers against real servers: Knot DNS and nginx on loopback.

Every scenario of the catalogue (tests/integration/world.py) runs through the
sync driver, the asyncio driver and the CLI, and each must reach the expected
step and targets. Then connect(), deadlines, single-flight and cache soundness.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from mxresolve import (
    AsyncResolver,
    ConnectError,
    InvalidServerName,
    Resolution,
    ResolutionError,
    ResolutionFailure,
    Resolver,
    Settings,
)

from .world import SCENARIOS, LoopbackWorld, Scenario, compare_targets

pytestmark = pytest.mark.integration

# Small enough that the slow, hanging and black-hole scenarios finish quickly,
# and below the world's wk_timeout_max of 5 s.
REQUEST_TIMEOUT = 1.5
SETTINGS = Settings(deadline=8.0)


def _config(world: LoopbackWorld, scenario: Scenario | None = None) -> dict[str, Any]:
    config = world.resolver_config(scenario)
    return {**config, "request_timeout": REQUEST_TIMEOUT, "settings": SETTINGS}


def _check(scenario: Scenario, result: Resolution | ResolutionFailure | dict[str, Any]) -> None:
    """Compare a result (object or the CLI's JSON) with the scenario's expectation."""
    if isinstance(result, dict):
        step = result.get("step")
        error = result.get("error")
        targets = result.get("targets", [])
        kind = error["kind"] if error else None
        message = error["message"] if error else ""
    else:
        step = None if result.step is None else result.step.value
        kind = result.kind.value if isinstance(result, ResolutionFailure) else None
        message = result.message if isinstance(result, ResolutionFailure) else ""
        targets = list(result.targets) if isinstance(result, Resolution) else []
    if scenario.ok:
        assert kind is None, f"{scenario.name}: expected targets, got {kind}: {message}"
        problems = compare_targets(scenario.targets, targets)
        assert not problems, f"{scenario.name}: {problems}"
    else:
        allowed = (scenario.error, *scenario.error_alternatives)
        assert kind in allowed, f"{scenario.name}: expected {allowed}, got {kind}: {message}"
    assert step == scenario.step, f"{scenario.name}: decided by {step}, expected {scenario.step}"


def test_sync_driver(loopback_world: LoopbackWorld, loopback_scenario: Scenario) -> None:
    resolver = Resolver(**_config(loopback_world, loopback_scenario))
    started = time.monotonic()
    result = resolver.resolve_result(loopback_scenario.server_name)
    assert time.monotonic() - started < SETTINGS.deadline + 1
    _check(loopback_scenario, result)
    if loopback_scenario.expects_warning:
        assert any(e.kind.value == "warning" for e in result.trace)


def test_async_driver(loopback_world: LoopbackWorld, loopback_scenario: Scenario) -> None:
    async def run() -> Resolution | ResolutionFailure:
        resolver = AsyncResolver(**_config(loopback_world, loopback_scenario))
        return await resolver.resolve_result(loopback_scenario.server_name)

    started = time.monotonic()
    result = asyncio.run(run())
    assert time.monotonic() - started < SETTINGS.deadline + 1
    _check(loopback_scenario, result)


def _cli(world: LoopbackWorld, scenario: Scenario | None, *args: str) -> tuple[int, str]:
    config = world.resolver_config(scenario)
    argv = [sys.executable, "-m", "mxresolve", "resolve", *args, "--json"]
    argv += ["--timeout", str(REQUEST_TIMEOUT), "--cafile", str(config["cafile"])]
    for nameserver in config["nameservers"]:
        argv += ["--nameserver", nameserver]
    for cidr in config["allow_ips"]:
        argv += ["--allow-ip", cidr]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, done.stdout


def test_cli(loopback_world: LoopbackWorld, loopback_scenario: Scenario) -> None:
    code, stdout = _cli(loopback_world, loopback_scenario, loopback_scenario.server_name)
    document = json.loads(stdout)  # exactly one JSON object, or this raises
    assert code == (0 if loopback_scenario.ok else 1), stdout
    assert document["server_name"] == loopback_scenario.server_name
    assert isinstance(document["trace"], list)
    assert document["trace"]
    if loopback_scenario.ok:
        for target in document["targets"]:
            assert set(target) >= {"host", "port", "addresses", "host_header", "tls_server_name"}
    else:
        assert set(document["error"]) == {"kind", "message"}
    _check(loopback_scenario, document)


def test_cli_invalid_server_name_exits_2(loopback_world: LoopbackWorld) -> None:
    code, stdout = _cli(loopback_world, None, "bad_name.mxtest")
    assert code == 2
    document = json.loads(stdout)
    assert document["error"]["kind"] == "invalid_server_name"
    assert "'_'" in document["error"]["message"]


def test_cli_human_output_explains_the_steps(loopback_world: LoopbackWorld) -> None:
    config = loopback_world.resolver_config()
    argv = [sys.executable, "-m", "mxresolve", "resolve", "wk-srv.mxtest"]
    argv += ["--cafile", str(config["cafile"]), "--nameserver", config["nameservers"][0]]
    for cidr in config["allow_ips"]:
        argv += ["--allow-ip", cidr]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    assert "Step 3:" in done.stdout
    assert "Step 3.3:" in done.stdout
    assert "Decided by step 3.3" in done.stdout
    assert "t-srv.mxtest:8443" in done.stdout


# --- connect() --------------------------------------------------------------------------

CONNECTABLE = [
    s
    for s in SCENARIOS
    if s.ok and s.target_tls_ok and s.nameserver == "knot" and s.wk_timeout_max is None
]


def _version_request(host_header: str) -> bytes:
    return (
        f"GET /_matrix/federation/v1/version HTTP/1.1\r\nHost: {host_header}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()


def _body(response: bytes) -> dict[str, Any]:
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:100]
    parsed: dict[str, Any] = json.loads(body)
    return parsed


@pytest.mark.parametrize("scenario", CONNECTABLE, ids=[s.name for s in CONNECTABLE])
def test_sync_connect_verifies_and_sends_the_right_names(
    loopback_world: LoopbackWorld, scenario: Scenario
) -> None:
    resolver = Resolver(**_config(loopback_world, scenario))
    stream, target = resolver.connect(scenario.server_name, timeout=5)
    with stream:
        stream.sendall(_version_request(target.host_header))
        chunks = []
        while chunk := stream.recv(65536):
            chunks.append(chunk)
    served = _body(b"".join(chunks))
    assert served["host"] == target.host_header
    assert served["sni"] == (target.sni or "")


@pytest.mark.parametrize("scenario", CONNECTABLE[:12], ids=[s.name for s in CONNECTABLE[:12]])
def test_async_connect_verifies_and_sends_the_right_names(
    loopback_world: LoopbackWorld, scenario: Scenario
) -> None:
    async def run() -> tuple[bytes, str, str | None]:
        resolver = AsyncResolver(**_config(loopback_world, scenario))
        reader, writer, target = await resolver.connect(scenario.server_name, timeout=5)
        writer.write(_version_request(target.host_header))
        data = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        return data, target.host_header, target.sni

    data, host_header, sni = asyncio.run(run())
    served = _body(data)
    assert served["host"] == host_header
    assert served["sni"] == (sni or "")


def test_connect_refuses_a_target_with_the_wrong_certificate(
    loopback_world: LoopbackWorld,
) -> None:
    scenario = loopback_world.scenario("target-badcert")
    resolver = Resolver(**_config(loopback_world, scenario))
    with pytest.raises(ConnectError) as caught:
        resolver.connect(scenario.server_name, timeout=5)
    assert "certificate_invalid" in str(caught.value)


# --- deadlines, single-flight, caching ---------------------------------------------------


def test_nothing_hangs_past_the_deadline(loopback_world: LoopbackWorld) -> None:
    scenario = loopback_world.scenario("dns-timeout")
    settings = Settings(deadline=2.0)
    config = {**loopback_world.resolver_config(scenario), "request_timeout": 30.0}
    started = time.monotonic()
    result = Resolver(**config, settings=settings).resolve_result(scenario.server_name)
    elapsed = time.monotonic() - started
    assert isinstance(result, ResolutionFailure)
    assert result.kind.value in ("deadline_exceeded", "dns_failure")
    assert elapsed < settings.deadline + 1.0

    async def run() -> Resolution | ResolutionFailure:
        return await AsyncResolver(**config, settings=settings).resolve_result(scenario.server_name)

    started = time.monotonic()
    result = asyncio.run(run())
    assert isinstance(result, ResolutionFailure)
    assert time.monotonic() - started < settings.deadline + 1.5


def test_a_drip_fed_well_known_is_cut_off_by_the_request_timeout(
    loopback_world: LoopbackWorld,
) -> None:
    scenario = loopback_world.scenario("wk-slow")
    resolver = Resolver(**{**_config(loopback_world, scenario), "request_timeout": 1.0})
    started = time.monotonic()
    result = resolver.resolve_result(scenario.server_name)
    assert time.monotonic() - started < 3.0
    assert any("read_timeout" in e.message for e in result.trace)
    _check(scenario, result)


def test_concurrent_resolutions_of_one_name_share_one_lookup(
    loopback_world: LoopbackWorld,
) -> None:
    async def run() -> int:
        resolver = AsyncResolver(**_config(loopback_world))
        results = await asyncio.gather(*(resolver.resolve("wk-srv.mxtest") for _ in range(200)))
        assert len({id(r) for r in results}) == 1  # one resolution, shared
        return sum(1 for e in results[0].trace if e.kind.value == "request")

    # One resolution's requests, not 200: AAAA and A of wk-srv.mxtest, its two SRV
    # lookups (asked alongside the well-known), the well-known (a delegation without a
    # port), then the delegated name's _matrix-fed._tcp with its _matrix._tcp, AAAA
    # and A asked alongside, and AAAA and A of the SRV target.
    assert asyncio.run(run()) == 11


def test_one_blocking_resolver_shared_by_threads(loopback_world: LoopbackWorld) -> None:
    # Each resolution overlaps its own queries in its caller's thread; eight threads on
    # one Resolver (one cache, one transport, single-flight) all get the expected results.
    scenarios = [
        s
        for s in SCENARIOS
        if s.nameserver == "knot" and s.wk_timeout_max is None and s.wk_size_limit_max is None
    ]
    resolver = Resolver(**_config(loopback_world))
    results: dict[int, list[tuple[Scenario, Resolution | ResolutionFailure]]] = {}

    def work(turn: int) -> None:
        order = scenarios[turn:] + scenarios[:turn]  # each thread starts elsewhere
        results[turn] = [(s, resolver.resolve_result(s.server_name)) for s in order]

    threads = [threading.Thread(target=work, args=(turn,)) for turn in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(scenarios) > 20
    assert sorted(results) == list(range(8))  # every thread finished
    for got in results.values():
        for scenario, result in got:
            _check(scenario, result)


def test_the_cache_answers_the_second_time(loopback_world: LoopbackWorld) -> None:
    resolver = Resolver(**_config(loopback_world))
    first = resolver.resolve("wk-srv.mxtest")
    assert resolver.resolve("wk-srv.mxtest") is first
    resolver._memo.clear()  # force the machine to run again, on the warm cache
    again = resolver.resolve("wk-srv.mxtest")
    assert again.targets == first.targets
    assert not [e for e in again.trace if e.kind.value == "request"]


def test_bad_input_leaves_the_cache_sound(loopback_world: LoopbackWorld) -> None:
    resolver = Resolver(**_config(loopback_world))
    good = resolver.resolve("wk-port.mxtest")
    for bad in ("", "bad_name", "[::1", "a..b", "x:99999", "bücher.de"):
        with pytest.raises(InvalidServerName):
            resolver.resolve(bad)
    for broken in ("wk-html.mxtest", "wk-oversized.mxtest", "wk-redir-loop.mxtest", "nx.mxtest"):
        with contextlib.suppress(ResolutionError):  # some fall back to step 6, some fail
            resolver.resolve(broken)
    assert resolver.resolve("wk-port.mxtest").targets == good.targets
    entry = resolver.cache.well_known("wk-html.mxtest")
    assert entry is not None
    assert entry.delegation is None
    assert 0 < entry.expires_at - time.time() <= 3600
