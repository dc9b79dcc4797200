"""Black-box mode: a vector's world as real servers (Knot DNS, nginx, a throwaway CA)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl

import pytest

from mxresolve._tools.conformance.judge import judge_step
from mxresolve._tools.conformance.serve import (
    ServedWorld,
    ServeError,
    loopback_address,
    observations_to_result,
    serving,
)
from mxresolve._tools.vectors import load_vectors

BY_ID = {v.id: v for v in load_vectors()}


def test_documentation_addresses_are_served_on_loopback() -> None:
    assert loopback_address("198.51.100.40", None) == "127.51.100.40"
    assert loopback_address("192.0.2.7", None) == "127.0.2.7"
    assert loopback_address("203.0.113.9", None) == "127.0.113.9"
    assert loopback_address("2001:db8::1", "2001:db8::1") == "::1"
    with pytest.raises(ServeError, match="only one IPv6"):
        loopback_address("2001:db8::2", "2001:db8::1")
    with pytest.raises(ServeError, match="not a documentation"):
        loopback_address("8.8.8.8", None)


def test_multi_step_vectors_are_refused_with_the_reason() -> None:
    with pytest.raises(ServeError, match="cannot move a homeserver's clock"):
        ServedWorld(BY_ID["well-known-cache::cached-until-max-age"])


def test_the_zone_holds_the_world_on_loopback() -> None:
    world = ServedWorld(BY_ID["example::step-4"])
    try:
        assert "_matrix-fed._tcp.example.org. 3600 SRV 10 0 8448 a.example.org." in world.zone
        assert "a.example.org. 3600 A 127.51.100.41" in world.zone
        assert ("127.51.100.41", 8448) in world.listeners
    finally:
        world.cleanup()


def test_check_judges_only_what_a_black_box_sees() -> None:
    vector = BY_ID["endpoints::well-known-certificate-expired"]
    reached = {"address": "198.51.100.30", "port": 8448, "host_header": "example.org",
               "sni": "example.org"}  # fmt: skip
    # The GET failed its TLS handshake, so the server never saw it: not compared.
    step, observation = observations_to_result(vector, {"requests": [], "connections": [reached]})
    assert not judge_step(step, observation, vector.level, narrow=True).failures
    wrong = {**reached, "host_header": "matrix.example.org"}
    step, observation = observations_to_result(vector, {"requests": [], "connections": [wrong]})
    failures = judge_step(step, observation, vector.level, narrow=True).failures
    assert [f.level for f in failures] == ["MUST"]


needs_servers = pytest.mark.skipif(
    (shutil.which("knotd") is None and not os.path.exists("/usr/sbin/knotd"))
    or (shutil.which("nginx") is None and not os.path.exists("/usr/sbin/nginx"))
    or os.geteuid() != 0,
    reason="needs knotd, nginx and root (port 443)",
)


@pytest.mark.integration
@needs_servers
def test_a_served_world_answers_like_the_vector_and_records_what_reached_it() -> None:
    import dns.message
    import dns.query

    vector = BY_ID["example::step-3.2"]
    with serving(vector) as world:
        described = world.description()
        host, port = described["nameserver"].split(":")
        answer = dns.query.udp(
            dns.message.make_query("matrix.example.net.", "A"), host, port=int(port), timeout=2
        )
        assert [r.to_text() for r in answer.answer[0]] == ["127.0.113.9"]
        context = ssl.create_default_context(cafile=described["cafile"])

        def get(address: str, name: str, path: str, host_header: str) -> bytes:
            request = f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n"
            with (
                socket.create_connection((address, 443), timeout=5) as raw,
                context.wrap_socket(raw, server_hostname=name) as tls,
            ):
                tls.sendall(request.encode())
                return b"".join(iter(lambda: tls.recv(4096), b""))

        reply = get("127.51.100.40", "example.org", "/.well-known/matrix/server", "example.org")
        assert reply.startswith(b"HTTP/1.1 200")
        assert json.loads(reply.split(b"\r\n\r\n", 1)[1]) == {"m.server": "matrix.example.net:443"}
        # What a homeserver following the delegation does next.
        get("127.0.113.9", "matrix.example.net", "/_matrix/federation/v1/version",
            "matrix.example.net:443")  # fmt: skip
        record = world.observations()
    assert record["requests"] == [
        {"op": "https_get", "url": "https://example.org/.well-known/matrix/server"}
    ]
    step, observation = observations_to_result(vector, record)
    assert not judge_step(step, observation, vector.level, narrow=True).failures
    # The same record with the wrong Host header fails at MUST.
    record["connections"][0]["host_header"] = "matrix.example.net"
    step, observation = observations_to_result(vector, record)
    assert judge_step(step, observation, vector.level, narrow=True).failures
