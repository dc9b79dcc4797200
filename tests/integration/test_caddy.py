"""Caddy (Go's crypto/tls) in the loopback world, next to nginx (OpenSSL).

Go's TLS server sends its session tickets before it reads the client's Finished, OpenSSL's
after: a client that leaves Nagle on stalls on one and not the other. So the catalogue keeps
scenarios of every kind on each server, and every scenario test (test_drivers.py) runs over
both. These tests pin that split and the Host/SNI echo both servers offer.
"""

from __future__ import annotations

import json
import socket
import ssl

import pytest

from .world import (
    SCENARIOS,
    SERVER_KINDS,
    SITES,
    VERSION_PATH,
    WK_PATH,
    LoopbackWorld,
    Scenario,
    iter_target_endpoints,
    scenario,
    site,
)

pytestmark = pytest.mark.integration


def _get(
    world: LoopbackWorld, addr: str, port: int, host: str, path: str, sni: str | None = None
) -> tuple[bytes, bytes]:
    """(head, body) of one GET; Nagle off, as mxresolve's own sockets have it."""
    with socket.create_connection((addr, port), timeout=3.0) as raw:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with world.ssl_context().wrap_socket(raw, server_hostname=sni or host) as tls:
            tls.sendall(
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
            )
            data = b""
            for _ in range(100):  # bounded: the responses are a few hundred bytes
                chunk = tls.recv(65536)
                if not chunk:
                    break
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def _by_server(server: str) -> list[Scenario]:
    return [s for s in SCENARIOS if s.server == server]


def test_each_server_serves_the_main_kinds_of_scenario() -> None:
    for server in SERVER_KINDS:
        steps = {s.step for s in _by_server(server) if s.ok}
        # A well-known delegation with a port, one to an SRV, a redirect, a 404 then SRV.
        assert {"3.2", "3.3", "4"} <= steps, (server, steps)
        sites = [ws for ws in SITES if ws.server == server]
        assert {200, 301, 404} <= {ws.status for ws in sites}, server


def test_a_scenario_and_its_well_known_share_a_server() -> None:
    assert site("cy-wk-redir.mxtest").server == "caddy"
    assert scenario("cy-wk-redir").server == "caddy"
    assert site("wk-port.mxtest").server == scenario("wk-port").server == "nginx"


def test_caddy_answers_from_go_tls(loopback_world: LoopbackWorld) -> None:
    ws = site("cy-wk-port.mxtest")
    head, body = _get(loopback_world, ws.addresses[0], 443, ws.host, WK_PATH)
    assert b"\r\nserver: caddy" in head.lower()
    assert json.loads(body) == json.loads(ws.body)
    nginx_site = site("wk-port.mxtest")
    head, _ = _get(loopback_world, nginx_site.addresses[0], 443, nginx_site.host, WK_PATH)
    assert b"\r\nserver: nginx" in head.lower()


@pytest.mark.parametrize("server", SERVER_KINDS)
def test_echo_reports_host_and_sni(loopback_world: LoopbackWorld, server: str) -> None:
    chosen = next(s for s in _by_server(server) if s.step == "3.2" and s.ok)
    target, addr = next(iter_target_endpoints(chosen))
    # A Host header that differs from the SNI, so that each is reported from its own source.
    host = f"echo-check.invalid:{target.port}"
    _, body = _get(
        loopback_world, addr, target.port, host, VERSION_PATH, sni=target.tls_server_name
    )
    doc = json.loads(body)
    assert doc["server"]["name"] == f"{server}-test"
    assert doc["host"] == host
    assert doc["sni"] == target.tls_server_name


def test_caddy_refuses_an_unknown_sni(loopback_world: LoopbackWorld) -> None:
    ws = site("cy-wk-port.mxtest")
    with pytest.raises(ssl.SSLError):
        _get(loopback_world, ws.addresses[0], 443, "nobody.mxtest", WK_PATH)
