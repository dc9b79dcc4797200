"""Smoke tests proving the loopback world is real and matches its catalogue.

They use only dnspython, ssl and http.client (no mxresolve): DNS answers from Knot, the
.well-known sites and target servers of nginx, and the black hole.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import time
from pathlib import Path
from urllib.parse import urlsplit

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import pytest

from .world import (
    ERROR_KINDS,
    HANG_ENDPOINTS,
    MOVED_PATH,
    OVERSIZED_BYTES,
    SCENARIOS,
    SITES,
    SLOW_BYTES,
    STEPS,
    VERSION_PATH,
    WK_PATH,
    BlackHole,
    KnotServer,
    LoopbackWorld,
    Scenario,
    Target,
    WellKnownSite,
    WorldError,
    _MachineLock,
    check_catalogue,
    compare_targets,
    iter_target_endpoints,
    scenario,
)

pytestmark = pytest.mark.integration

TIMEOUT = 3.0

# OpenSSL X509_V_ERR_* codes for the deliberately bad certificates.
VERIFY_CODES = {
    "wrong-name": 62,  # HOSTNAME_MISMATCH
    "expired": 10,  # CERT_HAS_EXPIRED
    "self-signed": 18,  # DEPTH_ZERO_SELF_SIGNED_CERT
    "untrusted-ca": 20,  # UNABLE_TO_GET_ISSUER_CERT_LOCALLY
}


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def query(
    world: LoopbackWorld,
    qname: str,
    rdtype: str,
    *,
    addr: str = "127.0.0.1",
    tcp: bool = False,
) -> dns.message.Message:
    q = dns.message.make_query(qname, rdtype)
    if tcp:
        return dns.query.tcp(q, addr, port=world.dns_port, timeout=TIMEOUT)
    return dns.query.udp(q, addr, port=world.dns_port, timeout=TIMEOUT)


def stub_resolver(world: LoopbackWorld) -> dns.resolver.Resolver:
    res = dns.resolver.Resolver(configure=False)
    res.nameservers = ["127.0.0.1"]
    res.port = world.dns_port
    res.lifetime = TIMEOUT
    return res


def addresses_of(world: LoopbackWorld, host: str) -> set[str]:
    """A and AAAA of ``host`` through Knot (CNAMEs followed by the stub resolver)."""
    res = stub_resolver(world)
    found: set[str] = set()
    for rdtype in ("A", "AAAA"):
        with contextlib.suppress(dns.resolver.NoAnswer):
            found.update(r.address for r in res.resolve(host, rdtype))
    return found


def http_get(
    addr: str,
    port: int,
    *,
    host_header: str,
    path: str,
    ctx: ssl.SSLContext | None,
    server_hostname: str | None = None,
    timeout: float = TIMEOUT,
) -> tuple[int, dict[str, str], bytes]:
    """One GET over a fresh connection to addr:port (TLS when ``ctx`` is given)."""
    with socket.create_connection((addr, port), timeout=timeout) as raw:
        conn: socket.socket = raw
        if ctx is not None:
            conn = ctx.wrap_socket(raw, server_hostname=server_hostname)
        try:
            req = f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n"
            conn.sendall(req.encode())
            resp = http.client.HTTPResponse(conn)  # type: ignore[arg-type]
            resp.begin()
            body = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
        finally:
            conn.close()


def get_wellknown(
    world: LoopbackWorld, ws: WellKnownSite, ctx: ssl.SSLContext | None = None
) -> tuple[int, dict[str, str], bytes]:
    if ws.tls and ctx is None:
        ctx = world.ssl_context()
    return http_get(
        ws.addresses[0],
        ws.port,
        host_header=ws.host,
        path=WK_PATH,
        ctx=ctx if ws.tls else None,
        server_hostname=ws.host,
    )


def unverified_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def follow(world: LoopbackWorld, url: str, max_hops: int = 10) -> tuple[list[str], int, bytes]:
    """Follow redirects like a client would (DNS via Knot, TLS via the test CA)."""
    seen: list[str] = []
    for _ in range(max_hops):
        if url in seen:
            return [*seen, url], -1, b""  # loop
        seen.append(url)
        parts = urlsplit(url)
        assert parts.scheme == "https", url
        assert parts.hostname is not None
        addr = sorted(addresses_of(world, parts.hostname))[0]
        status, headers, body = http_get(
            addr,
            443,
            host_header=parts.hostname,
            path=parts.path,
            ctx=world.ssl_context(),
            server_hostname=parts.hostname,
        )
        if status in (301, 302, 303, 307, 308):
            loc = headers["location"]
            url = loc if "://" in loc else f"https://{parts.hostname}{loc}"
            continue
        return seen, status, body
    raise AssertionError(f"more than {max_hops} redirects from {seen[0]}")


# ---------------------------------------------------------------------------------------------
# catalogue (no servers)
# ---------------------------------------------------------------------------------------------


def test_catalogue_is_consistent() -> None:
    assert check_catalogue() == []


def test_catalogue_covers_steps_errors_and_features() -> None:
    assert {s.step for s in SCENARIOS} == set(STEPS)
    assert {s.step for s in SCENARIOS if s.ok} == set(STEPS)
    assert (
        {s.error for s in SCENARIOS if s.error}
        == {
            "no_address",
            "service_unavailable",
            "dns_failure",
        }
        <= ERROR_KINDS
    )
    assert any(s.nameserver == "blackhole" and s.ok for s in SCENARIOS)
    assert any(s.nameserver == "blackhole" and not s.ok for s in SCENARIOS)
    assert any(s.expects_warning for s in SCENARIOS)
    assert any(s.wk_timeout_max for s in SCENARIOS)
    assert any(s.wk_size_limit_max for s in SCENARIOS)
    assert any(not s.target_tls_ok for s in SCENARIOS)
    assert any("::1" in t.addresses for s in SCENARIOS for t in s.targets)
    assert {ws.status for ws in SITES} >= {200, 301, 302, 307, 308, 404, 503}
    assert {ws.cert for ws in SITES} == {
        "valid",
        "wrong-name",
        "self-signed",
        "expired",
        "untrusted-ca",
    }


def test_scenario_lookup_and_expected_shape() -> None:
    s = scenario("wk-port")
    assert s.server_name == "wk-port.mxtest"
    assert s.expected() == {
        "step": "3.2",
        "error": None,
        "targets": [
            {
                "host": "deleg-port.mxtest",
                "port": 8443,
                "addresses": ["127.0.3.2"],
                "host_header": "deleg-port.mxtest:8443",
                "tls_server_name": "deleg-port.mxtest",
            }
        ],
    }
    with pytest.raises(KeyError, match="unknown scenario"):
        scenario("no-such-scenario")


def test_machine_lock_is_exclusive_and_bounded(tmp_path: Path) -> None:
    first, second = _MachineLock(tmp_path / "lock"), _MachineLock(tmp_path / "lock")
    first.acquire(timeout=1.0)
    try:
        start = time.monotonic()
        with pytest.raises(WorldError, match="another loopback world is running"):
            second.acquire(timeout=0.3)
        assert time.monotonic() - start < 2.0
    finally:
        first.release()
    second.acquire(timeout=1.0)  # free again once released
    second.release()


def test_compare_targets_respects_srv_priority_groups() -> None:
    s = scenario("wk-503")
    exp = [t.to_dict() for t in s.targets]
    assert compare_targets(s.targets, exp) == []
    assert compare_targets(s.targets, [exp[1], exp[0], exp[2]]) == []  # same priority 10
    assert compare_targets(s.targets, [exp[2], exp[0], exp[1]]) != []  # priority 20 first
    assert compare_targets(s.targets, exp[:2]) != []
    wrong = dict(exp[0], host_header="t-w1.mxtest")
    assert compare_targets(s.targets, [wrong, exp[1], exp[2]]) != []


# ---------------------------------------------------------------------------------------------
# Knot DNS
# ---------------------------------------------------------------------------------------------


def test_world_api(loopback_world: LoopbackWorld) -> None:
    w = loopback_world
    assert w.nameserver == f"127.0.0.1:{w.dns_port}"
    assert w.blackhole_nameserver.startswith("127.0.0.1:")
    assert w.blackhole_nameserver != w.nameserver
    assert Path(w.cafile).read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert w.scenario("plain") is scenario("plain")
    assert w.resolver_config(scenario("dns-timeout"))["nameservers"] == [w.blackhole_nameserver]
    assert w.resolver_config()["allow_ips"] == ["127.0.0.0/8", "::1/128"]


@pytest.mark.parametrize(
    ("addr", "tcp"), [("127.0.0.1", False), ("127.0.0.1", True), ("::1", False), ("::1", True)]
)
def test_dns_a_record_authoritative(loopback_world: LoopbackWorld, addr: str, tcp: bool) -> None:
    r = query(loopback_world, "plain.mxtest.", "A", addr=addr, tcp=tcp)
    assert r.rcode() == dns.rcode.NOERROR
    assert r.flags & dns.flags.AA
    assert [rr.address for rr in r.answer[0]] == ["127.0.3.40"]


def test_dns_aaaa_and_dual_stack(loopback_world: LoopbackWorld) -> None:
    r = query(loopback_world, "plain-v6.mxtest.", "AAAA")
    assert [rr.address for rr in r.answer[0]] == ["::1"]
    assert addresses_of(loopback_world, "dual-stack.mxtest") == {"127.0.3.44", "::1"}


def test_dns_cname_chain(loopback_world: LoopbackWorld) -> None:
    r = query(loopback_world, "cname-chain.mxtest.", "A")
    assert r.rcode() == dns.rcode.NOERROR
    chain = [(rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype)) for rrset in r.answer]
    assert chain == [
        ("cname-chain.mxtest.", "CNAME"),
        ("cname-hop1.mxtest.", "CNAME"),
        ("cname-hop2.mxtest.", "A"),
    ]
    assert [rr.address for rr in r.answer[-1]] == ["127.0.3.45"]


def test_dns_srv_records(loopback_world: LoopbackWorld) -> None:
    r = query(loopback_world, "_matrix-fed._tcp.wk-503.mxtest.", "SRV")
    got = {(x.priority, x.weight, x.port, x.target.to_text()) for x in r.answer[0]}
    assert got == {
        (10, 60, 8448, "t-w1.mxtest."),
        (10, 40, 8443, "t-w2.mxtest."),
        (20, 0, 8448, "t-fed.mxtest."),
    }
    legacy = query(loopback_world, "_matrix._tcp.srv-legacy.mxtest.", "SRV")
    assert [(x.port, x.target.to_text()) for x in legacy.answer[0]] == [(8443, "t-legacy.mxtest.")]


def test_dns_srv_dot_target(loopback_world: LoopbackWorld) -> None:
    r = query(loopback_world, "_matrix-fed._tcp.srv-dot.mxtest.", "SRV")
    assert [(x.port, x.target.to_text()) for x in r.answer[0]] == [(0, ".")]


def test_dns_srv_target_is_cname(loopback_world: LoopbackWorld) -> None:
    r = query(loopback_world, "_matrix-fed._tcp.srv-cname-target.mxtest.", "SRV")
    target = r.answer[0][0].target.to_text()
    assert target == "t-alias.mxtest."
    r2 = query(loopback_world, target, "A")
    assert dns.rdatatype.to_text(r2.answer[0].rdtype) == "CNAME"
    assert addresses_of(loopback_world, target) == {"127.0.3.33"}


def test_dns_srv_target_without_addresses(loopback_world: LoopbackWorld) -> None:
    r = query(loopback_world, "_matrix-fed._tcp.srv-no-address.mxtest.", "SRV")
    assert r.answer[0][0].target.to_text() == "t-noaddr.mxtest."
    for rdtype in ("A", "AAAA"):
        r2 = query(loopback_world, "t-noaddr.mxtest.", rdtype)
        assert r2.rcode() == dns.rcode.NOERROR
        assert not r2.answer  # NODATA


def test_dns_nxdomain_and_nodata(loopback_world: LoopbackWorld) -> None:
    nx = query(loopback_world, "nx.mxtest.", "A")
    assert nx.rcode() == dns.rcode.NXDOMAIN
    assert nx.flags & dns.flags.AA
    nodata = query(loopback_world, "nodata.mxtest.", "A")
    assert nodata.rcode() == dns.rcode.NOERROR
    assert not nodata.answer
    assert dns.rdatatype.to_text(nodata.authority[0].rdtype) == "SOA"
    res = stub_resolver(loopback_world)
    with pytest.raises(dns.resolver.NXDOMAIN):
        res.resolve("nx.mxtest", "A")
    with pytest.raises(dns.resolver.NoAnswer):
        res.resolve("nodata.mxtest", "AAAA")
    srv_nx = query(loopback_world, "_matrix-fed._tcp.plain.mxtest.", "SRV")
    assert srv_nx.rcode() == dns.rcode.NXDOMAIN


def test_dns_servfail(loopback_world: LoopbackWorld) -> None:
    for qname, rdtype in [
        ("_matrix-fed._tcp.srv-servfail.mxtest.", "SRV"),
        ("_matrix-fed._tcp.srv-servfail-legacy.mxtest.", "SRV"),
        ("host.servfail.mxtest.", "A"),
        ("host.servfail.mxtest.", "AAAA"),
    ]:
        assert query(loopback_world, qname, rdtype).rcode() == dns.rcode.SERVFAIL, qname
    # The parent zone is unaffected around the broken child zones.
    assert query(loopback_world, "srv-servfail.mxtest.", "A").rcode() == dns.rcode.NOERROR
    legacy = query(loopback_world, "_matrix._tcp.srv-servfail-legacy.mxtest.", "SRV")
    assert legacy.rcode() == dns.rcode.NOERROR
    assert legacy.answer
    with pytest.raises(dns.resolver.NoNameservers):
        stub_resolver(loopback_world).resolve("_matrix-fed._tcp.srv-servfail.mxtest", "SRV")


def test_dns_not_recursive(loopback_world: LoopbackWorld) -> None:
    # Names outside the test zones are refused: nothing ever leaves the machine.
    assert query(loopback_world, "example.org.", "A").rcode() == dns.rcode.REFUSED


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_blackhole_times_out(loopback_world: LoopbackWorld, tcp: bool) -> None:
    bh = loopback_world.blackhole
    assert bh is not None
    before = bh.queries_received
    q = dns.message.make_query("plain.mxtest.", "A")
    start = time.monotonic()
    send = dns.query.tcp if tcp else dns.query.udp
    with pytest.raises(dns.exception.Timeout):
        send(q, "127.0.0.1", port=bh.port, timeout=0.3)
    assert time.monotonic() - start < 2.0
    deadline = time.monotonic() + 2.0
    while bh.queries_received == before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert bh.queries_received > before


# ---------------------------------------------------------------------------------------------
# the catalogue against the live servers
# ---------------------------------------------------------------------------------------------

_DNS_TARGETS = [
    (s, t)
    for s in SCENARIOS
    if s.ok and s.nameserver == "knot"
    for t in s.targets
    if not t.host[0].isdigit() and ":" not in t.host
]


@pytest.mark.parametrize(
    ("s", "t"), _DNS_TARGETS, ids=[f"{s.name}-{t.host}" for s, t in _DNS_TARGETS]
)
def test_target_addresses_from_knot(loopback_world: LoopbackWorld, s: Scenario, t: Target) -> None:
    assert addresses_of(loopback_world, t.host) == set(t.addresses)


_TLS_ENDPOINTS = [(s, t, a) for s in SCENARIOS if s.ok for t, a in iter_target_endpoints(s)]


@pytest.mark.parametrize(
    ("s", "t", "addr"),
    _TLS_ENDPOINTS,
    ids=[f"{s.name}-{a}:{t.port}" for s, t, a in _TLS_ENDPOINTS],
)
def test_target_serves_verified_tls(
    loopback_world: LoopbackWorld, s: Scenario, t: Target, addr: str
) -> None:
    ctx = loopback_world.ssl_context()
    kwargs = {
        "host_header": t.host_header,
        "path": VERSION_PATH,
        "server_hostname": t.tls_server_name,
    }
    if not s.target_tls_ok:
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            http_get(addr, t.port, ctx=ctx, **kwargs)
        assert info.value.verify_code == VERIFY_CODES["wrong-name"]
        return
    status, _, body = http_get(addr, t.port, ctx=ctx, **kwargs)
    assert status == 200
    doc = json.loads(body)
    assert doc["server"]["name"] == f"{s.server}-test"
    assert doc["host"] == t.host_header
    is_ip = t.tls_server_name[0].isdigit() or ":" in t.tls_server_name
    # No SNI is sent for an IP certificate.
    assert doc["sni"] == ("" if is_ip else t.tls_server_name)


# ---------------------------------------------------------------------------------------------
# .well-known sites
# ---------------------------------------------------------------------------------------------

_FAST_SITES = [ws for ws in SITES if not ws.slow]


@pytest.mark.parametrize("ws", _FAST_SITES, ids=[ws.host for ws in _FAST_SITES])
def test_wellknown_site(loopback_world: LoopbackWorld, ws: WellKnownSite) -> None:
    if ws.cert != "valid":
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            get_wellknown(loopback_world, ws)
        assert info.value.verify_code == VERIFY_CODES[ws.cert]
        # The server itself works: only the certificate is wrong.
        status, _, body = get_wellknown(loopback_world, ws, unverified_context())
        assert (status, body) == (200, ws.body)
        return
    status, headers, body = get_wellknown(loopback_world, ws)
    assert status == ws.status
    assert headers.get("cache-control") == ws.cache_control
    if ws.location is not None:
        assert headers["location"] == ws.location
    elif ws.status == 200:
        assert body == ws.body
        assert headers["content-type"].split(";")[0] == ws.content_type
    elif ws.server == "nginx":
        assert b"<html>" in body  # nginx's own error page
    else:
        assert body == b""  # Caddy's static response


def test_wellknown_oversized_is_complete_valid_json(loopback_world: LoopbackWorld) -> None:
    ws = loopback_world.site("wk-oversized.mxtest")
    status, headers, body = get_wellknown(loopback_world, ws)
    assert status == 200
    assert len(body) == OVERSIZED_BYTES == int(headers["content-length"])
    assert json.loads(body)["m.server"] == "127.0.3.97:8448"


def test_wellknown_slow_drips(loopback_world: LoopbackWorld) -> None:
    ws = loopback_world.site("wk-slow.mxtest")
    ctx = loopback_world.ssl_context()
    with (
        socket.create_connection((ws.addresses[0], 443), timeout=TIMEOUT) as raw,
        ctx.wrap_socket(raw, server_hostname=ws.host) as tls,
    ):
        tls.sendall(f"GET {WK_PATH} HTTP/1.1\r\nHost: {ws.host}\r\n\r\n".encode())
        tls.settimeout(0.25)
        data = b""
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            try:
                chunk = tls.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert f"content-length: {SLOW_BYTES}".encode() in head.lower()
    # After ~2 s only a small part of the body has arrived.
    assert 0 < len(body) < 600


def test_wellknown_hang_never_completes_tls(loopback_world: LoopbackWorld) -> None:
    addr, port = HANG_ENDPOINTS[0]
    ctx = loopback_world.ssl_context()
    start = time.monotonic()
    with (
        socket.create_connection((addr, port), timeout=0.5) as raw,
        pytest.raises(TimeoutError),
    ):
        ctx.wrap_socket(raw, server_hostname="wk-hang.mxtest")
    assert time.monotonic() - start < 2.0


def test_wellknown_connection_refused_where_no_site(loopback_world: LoopbackWorld) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.3.40", 443), timeout=TIMEOUT).close()


def test_wellknown_over_ipv6_uses_sni(loopback_world: LoopbackWorld) -> None:
    status, _, body = get_wellknown(loopback_world, loopback_world.site("wk-v6.mxtest"))
    assert (status, json.loads(body)) == (200, {"m.server": "deleg-v6.mxtest:8443"})
    # A name without a site on [::1]:443 (plain-v6.mxtest) gets a certificate for no test name.
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        http_get(
            "::1",
            443,
            host_header="plain-v6.mxtest",
            path=WK_PATH,
            ctx=loopback_world.ssl_context(),
            server_hostname="plain-v6.mxtest",
        )
    assert info.value.verify_code == VERIFY_CODES["wrong-name"]


@pytest.mark.parametrize(
    ("start", "hops"),
    [
        ("wk-redir-301", 2),
        ("wk-redir-302", 2),
        ("wk-redir-307", 2),
        ("wk-redir-308", 2),
        ("wk-redir-chain", 3),
    ],
)
def test_redirects_reach_destination(loopback_world: LoopbackWorld, start: str, hops: int) -> None:
    seen, status, body = follow(loopback_world, f"https://{start}.mxtest{WK_PATH}")
    assert len(seen) == hops
    assert seen[-1] == f"https://wk-redir-dest.mxtest{WK_PATH}"
    assert (status, json.loads(body)) == (200, {"m.server": "deleg-redir.mxtest:8443"})


def test_relative_redirect(loopback_world: LoopbackWorld) -> None:
    seen, status, body = follow(loopback_world, f"https://wk-redir-relative.mxtest{WK_PATH}")
    assert seen[-1] == f"https://wk-redir-relative.mxtest{MOVED_PATH}"
    assert (status, json.loads(body)) == (200, {"m.server": "deleg-redir.mxtest:8443"})


@pytest.mark.parametrize(("start", "hops"), [("wk-redir-loop", 3), ("wk-redir-self", 2)])
def test_redirect_loops(loopback_world: LoopbackWorld, start: str, hops: int) -> None:
    seen, status, _ = follow(loopback_world, f"https://{start}.mxtest{WK_PATH}")
    assert status == -1  # loop detected
    assert len(seen) == hops
    assert seen[0] == seen[-1]


def test_redirect_to_plain_http_target_exists(loopback_world: LoopbackWorld) -> None:
    _, headers, _ = get_wellknown(loopback_world, loopback_world.site("wk-redir-http.mxtest"))
    url = urlsplit(headers["location"])
    assert url.scheme == "http"
    # The http: target really answers (a trap for a resolver that follows it).
    assert url.hostname is not None
    (addr,) = addresses_of(loopback_world, url.hostname)
    status, _, body = http_get(addr, 80, host_header=url.hostname, path=url.path, ctx=None)
    assert (status, json.loads(body)) == (200, {"m.server": "127.0.3.97:8448"})


# ---------------------------------------------------------------------------------------------
# lifecycle of the parts
# ---------------------------------------------------------------------------------------------


def test_knot_and_blackhole_start_and_stop_cleanly(
    loopback_world: LoopbackWorld, tmp_path: Path
) -> None:
    knot = KnotServer(tmp_path / "knot")
    knot.start()
    try:
        q = dns.message.make_query("plain.mxtest.", "A")
        r = dns.query.udp(q, "127.0.0.1", port=knot.port, timeout=TIMEOUT)
        assert r.rcode() == dns.rcode.NOERROR
    finally:
        knot.stop()
    assert knot.proc is not None
    assert knot.proc.returncode is not None
    with pytest.raises(dns.exception.Timeout):
        dns.query.udp(q, "127.0.0.1", port=knot.port, timeout=0.2)

    bh = BlackHole()
    bh.start()
    thread = bh._thread
    bh.stop()
    assert thread is not None
    assert not thread.is_alive()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", bh.port))  # the port was released
