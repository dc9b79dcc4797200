"""Properties that hold for every input, checked with hypothesis.

1. The grammar round-trips.
2. The parsers raise nothing but our own error types, whatever they are given.
3. Cache periods stay within their bounds; back-off never shrinks.
4. In random worlds the machine ends, within a bounded number of requests.
5. Every result obeys the spec's rules for its deciding step.
"""

from __future__ import annotations

import ipaddress
import json
import string
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

from hypothesis import example, given
from hypothesis import strategies as st

from mxresolve import (
    DnsQuery,
    FakeWorld,
    HttpsGet,
    HttpsResponse,
    InvalidServerName,
    IpPolicy,
    RecordType,
    Resolution,
    ResolutionFailure,
    ResolverCache,
    ServerName,
    Settings,
    Step,
    parse_server_name,
)
from mxresolve._core.cache import failure_lifetime, well_known_lifetime
from mxresolve._core.cachecontrol import freshness_lifetime
from mxresolve._core.wellknown import (
    InvalidWellKnown,
    RedirectRefused,
    parse_well_known_body,
    redirect_request,
    well_known_request,
)
from one_by_one import ONE_BY_ONE

# --- strategies -----------------------------------------------------------------------

LABEL_CHARS = string.ascii_letters + string.digits + "-"
labels = st.text(LABEL_CHARS, min_size=1, max_size=20).filter(lambda s: not s.isdigit())
dns_names = st.lists(labels, min_size=1, max_size=5).map(".".join).filter(lambda s: len(s) <= 253)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(lambda ip: f"[{ip}]")
ports = st.integers(min_value=1, max_value=65535)
hostnames = st.one_of(dns_names, ipv4, ipv6)
server_names = st.tuples(hostnames, st.none() | ports).map(
    lambda hp: hp[0] if hp[1] is None else f"{hp[0]}:{hp[1]}"
)


def _attempt(
    function: Callable[[Any], Any], argument: Any, allowed: type[Exception]
) -> tuple[Any, Exception | None]:
    """Call ``function``; only ``allowed`` may escape it (anything else fails the test)."""
    try:
        return function(argument), None
    except allowed as exc:
        return None, exc


# --- 1. the grammar round-trips --------------------------------------------------------


@given(server_names)
def test_the_grammar_round_trips(text: str) -> None:
    parsed = parse_server_name(text)
    assert parsed.text == text
    again = parse_server_name(str(parsed))
    assert again == parsed
    assert (again.host, again.port, again.kind) == (parsed.host, parsed.port, parsed.kind)
    if parsed.is_ip_literal:
        assert ipaddress.ip_address(parsed.host)


# --- 2. the parsers raise only our own errors -------------------------------------------


@given(st.one_of(st.text(), st.binary(), st.integers(), st.none(), st.lists(st.text())))
def test_parse_server_name_raises_only_invalid_server_name(value: object) -> None:
    parsed, error = _attempt(parse_server_name, value, InvalidServerName)
    if isinstance(error, InvalidServerName):
        assert error.reason
        assert error.offset is None or 0 <= error.offset <= len(str(error.text))
    else:
        assert isinstance(parsed, ServerName)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.one_of(st.binary(), json_values.map(lambda v: json.dumps(v).encode())))
def test_parse_well_known_body_raises_only_invalid_well_known(body: bytes) -> None:
    delegated, error = _attempt(parse_well_known_body, body, InvalidWellKnown)
    assert str(error) if error else isinstance(delegated, ServerName)


@given(
    st.one_of(
        server_names.map(lambda s: json.dumps({"m.server": s}).encode()),
        st.text().map(lambda s: json.dumps({"m.server": s}).encode()),
    )
)
def test_a_valid_m_server_is_exactly_a_valid_server_name(body: bytes) -> None:
    value = json.loads(body)["m.server"]
    try:
        expected: ServerName | None = parse_server_name(value)
    except InvalidServerName:
        expected = None
    try:
        got: ServerName | None = parse_well_known_body(body)
    except InvalidWellKnown:
        got = None
    assert got == expected


header_names = st.sampled_from(["Cache-Control", "Expires", "Date", "Age", "cache-control", "X"])
headers = st.lists(st.tuples(header_names, st.text(max_size=60)), max_size=6).map(tuple)


@given(headers, st.floats(min_value=0, max_value=4e9))
def test_cache_headers_never_raise_and_give_a_sane_lifetime(
    header_list: tuple[tuple[str, str], ...], now: float
) -> None:
    freshness = freshness_lifetime(HttpsResponse(status=200, headers=header_list), now)
    assert freshness.seconds is None or freshness.seconds >= 0


@given(st.text(max_size=200))
@example("http://evil.example/.well-known/matrix/server")
@example("HTTP://EVIL.EXAMPLE/")
@example("//other.example/path")
@example("ftp://x.example/")
@example("https://user:pw@x.example/")
@example("https://[::1]:0/")
@example("/relative?q=1#frag")
def test_redirects_are_followed_only_to_https(location: str) -> None:
    current = well_known_request("example.org", 51200)
    hop, error = _attempt(lambda loc: redirect_request(current, loc), location, RedirectRefused)
    try:
        scheme = urlsplit(urljoin(current.url, location.strip())).scheme.lower()
    except ValueError:
        scheme = ""
    if scheme != "https":
        assert error is not None, f"followed a redirect to a {scheme or 'non'}-https URL"
    if error is None:
        assert isinstance(hop, HttpsGet)
        assert hop.url.startswith("https://")
        assert 1 <= hop.port <= 65535
    else:
        assert str(error)


# --- 3. cache periods -------------------------------------------------------------------

settings_strategy = st.builds(
    lambda floor, default, cap, initial, factor, fmax: Settings(
        well_known_min_ttl=floor,
        well_known_default_ttl=max(default, floor),
        well_known_max_ttl=max(cap, default, floor),
        failure_initial_ttl=initial,
        failure_backoff_factor=factor,
        failure_max_ttl=max(fmax, initial),
    ),
    st.floats(0, 3600),
    st.floats(0, 200000),
    st.floats(0, 200000),
    st.floats(0.001, 3600),
    st.floats(1, 10),
    st.floats(0.001, 3600),
)


@given(settings_strategy, st.none() | st.floats(-1e12, 1e12))
def test_valid_responses_are_cached_within_the_floor_and_the_cap(
    settings: Settings, seconds: float | None
) -> None:
    lifetime = well_known_lifetime(seconds, settings)
    assert settings.well_known_min_ttl <= lifetime <= settings.well_known_max_ttl


@given(st.integers(1, 10_000))
def test_default_failure_periods_are_within_an_hour_and_never_shrink(failures: int) -> None:
    settings = Settings()
    now, later = failure_lifetime(failures, settings), failure_lifetime(failures + 1, settings)
    assert 0 < now <= later <= 3600


@given(settings_strategy, st.integers(1, 200))
def test_back_off_never_shrinks_for_any_settings(settings: Settings, failures: int) -> None:
    now, later = failure_lifetime(failures, settings), failure_lifetime(failures + 1, settings)
    assert 0 < now <= later <= settings.failure_max_ttl


def test_back_off_grows_while_the_well_known_keeps_failing() -> None:
    world = FakeWorld(
        {
            "dns": {"example.org.": {"A": {"records": ["198.51.100.1"]}}},
            "https": {
                "https://example.org/.well-known/matrix/server": {"failure": "connection_refused"}
            },
        },
        now=1_000_000.0,
    )
    cache, settings = ResolverCache(), Settings(ip_policy=IpPolicy.allow_all())
    periods = []
    for _ in range(10):
        world.resolve("example.org", cache=cache, settings=settings)
        entry = cache.well_known("example.org")
        assert entry is not None
        periods.append(entry.expires_at - world.now)
        world.now = entry.expires_at  # retry exactly when allowed
    assert periods == sorted(periods)
    assert periods[0] == settings.failure_initial_ttl
    assert periods[-1] == settings.failure_max_ttl


# --- 4 and 5. random worlds -------------------------------------------------------------

NAMES = ["example.org.", "a.example.org.", "b.example.net.", "c.example.com."]
ADDRESSES = ["198.51.100.1", "203.0.113.2", "2001:db8::3"]
DNS_ERRORS = st.sampled_from(["SERVFAIL", "TIMEOUT", "NXDOMAIN", "REFUSED"])
srv_records = st.lists(
    st.fixed_dictionaries(
        {
            "priority": st.integers(0, 3),
            "weight": st.integers(0, 3),
            "port": st.integers(0, 9000),
            "target": st.sampled_from([*NAMES, "."]),
        }
    ),
    min_size=1,
    max_size=4,
)


def rrset(records: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.fixed_dictionaries({"ttl": st.integers(0, 600), "records": records}),
        DNS_ERRORS.map(lambda e: {"error": e}),
    )


dns_node = st.fixed_dictionaries(
    {},
    optional={
        "A": rrset(st.lists(st.sampled_from(ADDRESSES[:2]), min_size=1, max_size=2)),
        "AAAA": rrset(st.lists(st.just(ADDRESSES[2]), min_size=1, max_size=1)),
        "CNAME": st.sampled_from(NAMES).map(lambda n: {"records": [n]}),
    },
)
bodies = st.one_of(
    st.sampled_from([*NAMES, "198.51.100.9", "[2001:db8::9]:8443", "b.example.net:8443"]).map(
        lambda s: json.dumps({"m.server": s.rstrip(".")})
    ),
    st.sampled_from(["{}", "[]", "<html>", '{"m.server": 1}', ""]),
)
https_response = st.one_of(
    st.fixed_dictionaries({"status": st.sampled_from([200, 404, 500]), "body": bodies}),
    st.fixed_dictionaries(
        {
            "status": st.sampled_from([301, 302, 307, 308]),
            "headers": st.sampled_from(NAMES).map(
                lambda n: [["Location", f"https://{n.rstrip('.')}/.well-known/matrix/server"]]
            ),
        }
    ),
    st.sampled_from(["connection_refused", "certificate_invalid", "read_timeout"]).map(
        lambda f: {"failure": f}
    ),
)


@st.composite
def worlds(draw: st.DrawFn) -> dict[str, Any]:
    dns: dict[str, Any] = {}
    for name in NAMES:
        node = draw(dns_node)
        if node:
            dns[name] = node
        for service in ("_matrix-fed._tcp.", "_matrix._tcp."):
            if draw(st.booleans()):
                dns[service + name] = {"SRV": draw(rrset(srv_records))}
    https = {
        f"https://{n.rstrip('.')}/.well-known/matrix/server": draw(https_response)
        for n in NAMES
        if draw(st.booleans())
    }
    return {"dns": dns, "https": https}


resolvable = st.sampled_from(
    ["example.org", "a.example.org", "example.org:8448", "198.51.100.7", "[2001:db8::7]:443"]
)


@given(worlds(), resolvable)
def test_the_machine_ends_and_obeys_the_spec_in_any_world(
    world_map: dict[str, Any], server_name: str
) -> None:
    world = FakeWorld(world_map)
    settings = Settings(ip_policy=IpPolicy.allow_all(), **ONE_BY_ONE)  # exact requests
    result = world.resolve(server_name, settings=settings)
    assert isinstance(result, (Resolution, ResolutionFailure))

    # 4. Bounded: redirects, two SRV lookups, one address pair per SRV target and name.
    bound = (settings.max_redirects + 1) + 2 + 2 * (settings.max_srv_records + 1)
    assert len(world.requests) <= bound

    name = parse_server_name(server_name)
    queries = [r for r in world.requests if isinstance(r, DnsQuery)]
    fetches = [r for r in world.requests if isinstance(r, HttpsGet)]
    srv_queries = [q for q in queries if q.rdtype is RecordType.SRV]
    if name.is_ip_literal or name.port is not None:
        # Steps 1 and 2: no well-known, no SRV.
        assert not fetches
        assert not srv_queries
    if name.is_ip_literal:
        assert not queries
    # No _matrix lookup for a name whose _matrix-fed lookup found records.
    for query in srv_queries:
        if query.qname.startswith("_matrix-fed._tcp."):
            base = query.qname.removeprefix("_matrix-fed._tcp.")
            answer = world.dns(query.qname, RecordType.SRV)
            if answer.records:
                assert DnsQuery(qname="_matrix._tcp." + base, rdtype=RecordType.SRV) not in queries

    if isinstance(result, Resolution):
        _check_targets(result, name)


def _check_targets(result: Resolution, name: ServerName) -> None:
    step = result.step
    for target in result.targets:
        assert 1 <= target.port <= 65535
        for address in target.addresses:
            assert ipaddress.ip_address(address)
        if step in (Step.IP_LITERAL, Step.DELEGATED_IP_LITERAL):
            assert target.sni is None
            assert ipaddress.ip_address(target.tls_server_name)
        else:
            assert target.sni == target.tls_server_name
        if step is Step.EXPLICIT_PORT:
            assert target.host_header == name.text
            assert target.tls_server_name == name.host
        if step in (Step.SRV, Step.LEGACY_SRV, Step.ADDRESS):
            # Host and certificate name are the original hostname, whatever the target.
            assert target.host_header == name.hostname
            assert target.tls_server_name == name.host
        if step in (
            Step.DELEGATED_SRV,
            Step.DELEGATED_LEGACY_SRV,
            Step.DELEGATED_ADDRESS,
            Step.SRV,
            Step.LEGACY_SRV,
            Step.ADDRESS,
        ):
            assert ":" not in target.host_header  # no port in Host after SRV or fallback
        if step is Step.DELEGATED_EXPLICIT_PORT:
            assert target.host_header.endswith(f":{target.port}")
