"""Every adapter against a real Synapse: ``matrix-federation://hs.mxtest`` in one line.

Synapse (tests/integration/synapse.py) is reached through a ``.well-known`` delegation
and through SRV; each adapter fetches its version and its signing keys, whose
``server_name`` and key must be Synapse's own. A JSON ``PUT /send`` without an
``X-Matrix`` signature must come back as Synapse's 401: the body went through, and
signing is the caller's (docs/requests.md shows the hook). Synapse answers with
``Transfer-Encoding: chunked``, so these also check each client's chunked framing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mxresolve import Settings

from .clients import DRIVERS, Driver, make_driver
from .synapse import SynapseServer
from .world import ALLOW_IPS

pytestmark = [pytest.mark.integration, pytest.mark.synapse]

ROUTES = {"well-known": "wk_nameserver", "srv": "srv_nameserver"}
EXPECTED_STEP = {"well-known": "3.2", "srv": "4"}


@pytest.fixture(params=list(ROUTES))
def route(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=list(DRIVERS))
def driver(
    request: pytest.FixtureRequest, synapse_server: SynapseServer, route: str
) -> Iterator[Driver]:
    config: dict[str, Any] = {
        "nameservers": [getattr(synapse_server, ROUTES[route])],
        "cafile": synapse_server.cafile,
        "allow_ips": list(ALLOW_IPS),
        "request_timeout": 2.0,
        "settings": Settings(deadline=10.0),
    }
    made = make_driver(request.param, config)
    try:
        yield made
    finally:
        made.close()


def _url(server: SynapseServer, path: str) -> str:
    return f"matrix-federation://{server.server_name}{path}"


def test_version(driver: Driver, synapse_server: SynapseServer, route: str) -> None:
    reply = driver.get(_url(synapse_server, "/_matrix/federation/v1/version"))
    assert reply.status == 200
    assert reply.json()["server"]["name"] == "Synapse"
    # The route taken is the one this nameserver gives (not a lucky fallback).
    resolution = driver.resolver()._cached(synapse_server.server_name)
    assert resolution is not None
    assert resolution.step.value == EXPECTED_STEP[route]


def test_server_keys(driver: Driver, synapse_server: SynapseServer) -> None:
    reply = driver.get(_url(synapse_server, "/_matrix/key/v2/server"))
    assert reply.status == 200
    keys = reply.json()
    assert keys["server_name"] == synapse_server.server_name
    assert keys["verify_keys"][synapse_server.verify_key_id]["key"] == synapse_server.verify_key


def test_unsigned_put_reaches_synapse(driver: Driver, synapse_server: SynapseServer) -> None:
    reply = driver.request(
        "PUT",
        _url(synapse_server, "/_matrix/federation/v1/send/mxresolve-test-1"),
        body=b'{"origin": "client.mxtest", "pdus": [], "edus": []}',
        headers={"Content-Type": "application/json"},
    )
    assert reply.status == 401
    assert reply.json()["errcode"] == "M_UNAUTHORIZED"


def test_the_readme_raw_stream_example_reads_synapses_chunked_response(
    synapse_server: SynapseServer,
) -> None:
    """Synapse answers with Transfer-Encoding: chunked, which broke the README's old example."""
    import json
    import re
    from pathlib import Path

    from mxresolve import Resolver

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text("utf-8")
    (block,) = [
        b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "h11.Connection" in b
    ]
    resolver = Resolver(
        nameservers=[synapse_server.srv_nameserver],
        cafile=synapse_server.cafile,
        allow_ips=list(ALLOW_IPS),
    )
    stream, target = resolver.connect(synapse_server.server_name, read_timeout=5)
    stream.sendall(b"GET /_matrix/federation/v1/version HTTP/1.1\r\nHost: x\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 65536:
        head += stream.recv(4096)
    assert b"transfer-encoding: chunked" in head.lower()  # so the test below means something
    stream.close()
    stream, target = resolver.connect(synapse_server.server_name, read_timeout=5)
    scope: dict[str, Any] = {"stream": stream, "target": target}
    exec(block, scope)
    assert json.loads(scope["body"])["server"]["name"] == "Synapse"
