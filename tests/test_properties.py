"""The properties mxresolve promises, checked with hypothesis.

1. The grammar round-trips.
2. The parsers raise nothing but our own error types, whatever they are given.
3. Cache periods stay within their bounds, and back-off never shrinks.
4. In random worlds every resolution ends, within a bounded number of requests.
5. Every result from those worlds obeys the spec's rules for its deciding step.
6. While a well-known keeps failing, the cached failure lives no shorter each time.

Every property is bounded: the strategies draw from small pools (a few hosts,
a few addresses), so a FakeWorld resolution takes well under a millisecond,
and the "ci" profile in conftest.py fixes the examples.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import itertools
import json
import math
import random
import string
import sys
import warnings
from collections.abc import Callable
from datetime import timezone
from email.utils import format_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from hypothesis import event, given
from hypothesis import strategies as st

from mxresolve import (
    DnsQuery,
    DnsStatus,
    FailureKind,
    FakeWorld,
    HostKind,
    HttpsFailureKind,
    HttpsGet,
    HttpsResponse,
    InvalidServerName,
    RecordType,
    Resolution,
    ResolutionFailure,
    ResolverCache,
    ServerName,
    Settings,
    SrvDotPolicy,
    SrvFailurePolicy,
    SrvRecord,
    SrvTargetAliasPolicy,
    Step,
    TraceKind,
    parse_server_name,
)
from mxresolve._core.cache import failure_lifetime, well_known_lifetime
from mxresolve._core.cachecontrol import Freshness, freshness_lifetime
from mxresolve._core.wellknown import (
    InvalidWellKnown,
    RedirectRefused,
    parse_well_known_body,
    redirect_request,
    well_known_request,
)
from one_by_one import ONE_BY_ONE

# When a property fails, hypothesis's pytest plugin imports libcst to suggest an
# @example patch, and in some environments that import warns (DeprecationWarning
# from mypy_extensions). With filterwarnings=error the warning would turn a test
# failure into an INTERNALERROR that ends the whole run, so import it once quietly.
with warnings.catch_warnings(), contextlib.suppress(ImportError):
    warnings.simplefilter("ignore", DeprecationWarning)
    import hypothesis.extra._patching  # noqa: F401

# --- 1. the grammar round-trips ---------------------------------------------------------

LABEL_CHARS = string.ascii_letters + string.digits + "-"
labels = st.text(LABEL_CHARS, min_size=1, max_size=63)


@st.composite
def dns_hostnames(draw: st.DrawFn) -> str:
    # At most 253 characters (I-07); cutting can leave a dot at the end, not inside.
    name = ".".join(draw(st.lists(labels, min_size=1, max_size=5)))[:253].rstrip(".")
    # An all-numeric dotted name is an IPv4 literal or nothing (I-03); give it a letter.
    if all(c in "0123456789." for c in name):
        name = "x" + name[1:]
    if draw(st.booleans()):
        name += "."  # the one optional trailing dot (I-05)
    return name


def ipv6_forms(ip: ipaddress.IPv6Address) -> st.SearchStrategy[str]:
    # Any RFC 4291 text form is valid inside the brackets (I-09).
    return st.sampled_from([str(ip), ip.exploded, str(ip).upper(), ip.exploded.upper()])


@st.composite
def server_names(draw: st.DrawFn) -> tuple[str, HostKind, int | None, str]:
    """A valid server name, with the kind, port and host it must parse to."""
    kind = draw(st.sampled_from(HostKind))
    if kind is HostKind.IPV4:
        ip4 = draw(st.ip_addresses(v=4))
        hostname, host = str(ip4), str(ip4)
    elif kind is HostKind.IPV6:
        ip6 = draw(st.ip_addresses(v=6))
        assert isinstance(ip6, ipaddress.IPv6Address)
        hostname = f"[{draw(ipv6_forms(ip6))}]"
        # RFC 5952, with IPv4-mapped addresses in dotted form on every Python.
        host = f"::ffff:{ip6.ipv4_mapped}" if ip6.ipv4_mapped else str(ip6)
    else:
        hostname = draw(dns_hostnames())
        host = hostname.rstrip(".").lower()
    port = draw(st.none() | st.integers(1, 65535))
    if port is None:
        return hostname, kind, None, host
    # Leading zeros are allowed as long as the port has at most 5 digits (I-02).
    width = draw(st.integers(len(str(port)), 5))
    return f"{hostname}:{port:0{width}d}", kind, port, host


@given(server_names())
def test_the_grammar_round_trips(case: tuple[str, HostKind, int | None, str]) -> None:
    text, kind, port, host = case
    parsed = parse_server_name(text)
    assert parsed.text == text
    assert (parsed.kind, parsed.port, parsed.host) == (kind, port, host)
    again = parse_server_name(str(parsed))
    assert again == parsed
    assert (again.host, again.port, again.kind, again.hostname) == (
        parsed.host,
        parsed.port,
        parsed.kind,
        parsed.hostname,
    )
    if kind is HostKind.DNS:
        assert parsed.fqdn == host + "."
    else:
        assert ipaddress.ip_address(parsed.host)


# --- 2. the parsers raise only our own errors -------------------------------------------

# Text close to the grammar reaches the deeper checks (ports, octets, brackets).
grammar_ish = st.text(alphabet="[]:.%0123456789abcdefABCDEF-_xyz/@ \u00fc", max_size=40)
ipv6_ish = st.text(alphabet="0123456789abcdefABCDEF:.x%", max_size=46)
near_names = st.one_of(
    grammar_ish,
    ipv6_ish,  # unbracketed: the bracket hint's IPv6 check sees all of it
    st.builds(
        lambda inner, rest: f"[{inner}]{rest}", ipv6_ish, st.text(":0123456789x]", max_size=7)
    ),
    st.builds(
        lambda host, port: f"{host}:{port}", grammar_ish, st.text("0123456789:x", max_size=7)
    ),
)
any_objects = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.complex_numbers(),
    st.binary(),
    st.lists(st.text(), max_size=3),
    st.tuples(st.text()),
    st.dictionaries(st.text(), st.text(), max_size=2),
    st.builds(object),
    st.just(ipaddress.ip_address("::1")),
)


def attempt(
    function: Callable[..., Any], *args: Any, allowed: type[Exception]
) -> tuple[Any, Exception | None]:
    """Call ``function``; only ``allowed`` may escape it (anything else fails the test)."""
    try:
        return function(*args), None
    except allowed as error:
        return None, error


def check_parse_server_name(value: object) -> None:
    parsed, error = attempt(parse_server_name, value, allowed=InvalidServerName)
    if isinstance(error, InvalidServerName):
        assert error.reason
        if isinstance(value, str):
            assert error.text == value
            assert error.offset is None or 0 <= error.offset <= len(value)
        else:
            assert error.offset is None
        return
    assert isinstance(parsed, ServerName)
    assert parsed.text == value
    # A parsed name always has a host to connect to.
    assert parsed.host
    if parsed.kind is HostKind.DNS:
        assert parsed.fqdn.endswith(".")
    else:
        assert ipaddress.ip_address(parsed.host)


@given(st.text() | near_names)
def test_parse_server_name_on_any_text_raises_only_invalid_server_name(text: str) -> None:
    check_parse_server_name(text)


@given(any_objects)
def test_parse_server_name_on_any_object_raises_only_invalid_server_name(value: object) -> None:
    check_parse_server_name(value)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
m_server_values = st.one_of(json_values, grammar_ish, server_names().map(lambda c: c[0]))
well_known_documents = st.one_of(
    json_values,
    st.dictionaries(st.just("m.server") | st.text(max_size=5), m_server_values, max_size=3),
)


def check_parse_well_known_body(body: bytes) -> None:
    delegated, error = attempt(parse_well_known_body, body, allowed=InvalidWellKnown)
    if error is not None:
        assert str(error)
        return
    assert isinstance(delegated, ServerName)
    # Valid only when it is exactly a JSON object whose m.server is a valid name.
    document = json.loads(body)
    assert delegated == parse_server_name(document["m.server"])


# Bytes that are JSON-shaped but break parsers: deep nesting (RecursionError),
# integers past Python's digit limit (ValueError), lone surrogates, a BOM.
hostile_bodies = st.one_of(
    st.integers(1, 50_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 50_000).map(lambda n: b'{"m.server":' * n),
    st.integers(4000, 6000).map(lambda n: b'{"m.server": ' + b"9" * n + b"}"),
    st.sampled_from(
        [b'{"m.server": "\\ud800"}', b'\xef\xbb\xbf{"m.server": "a.test"}', b"\x00" * 4, b"NaN"]
    ),
)


@given(st.binary() | hostile_bodies)
def test_parse_well_known_body_on_any_bytes(body: bytes) -> None:
    check_parse_well_known_body(body)


@given(well_known_documents)
def test_parse_well_known_body_on_any_json(document: Any) -> None:
    check_parse_well_known_body(json.dumps(document).encode())


@given(st.sampled_from(["utf-8", "utf-16", "utf-32", "utf-16-le"]), well_known_documents)
def test_parse_well_known_body_on_json_in_any_unicode_encoding(
    encoding: str, document: Any
) -> None:
    check_parse_well_known_body(json.dumps(document).encode(encoding, "surrogatepass"))


directives = st.sampled_from(
    ["max-age", "no-store", "no-cache", "s-maxage", "MAX-AGE", "private", "", "=", '"']
)
numbers = st.integers(-5, 2**40).map(str) | st.integers(-(2**70), 2**70).map(str)
cache_control_values = st.lists(
    st.tuples(directives, st.none() | st.text(max_size=6) | numbers),
    max_size=4,
).map(lambda ds: ", ".join(d if a is None else f"{d}={a}" for d, a in ds))
# Every representable date (years 1-9999), in GMT or with "-0000" (zone unknown).
dates = st.builds(
    format_datetime,
    st.datetimes(timezones=st.just(timezone.utc)),
    usegmt=st.booleans(),
)
# Each cache header with values of its own kind (so that max-age meets a larger
# Age, Expires meets Date), and anything at all under any name.
headers = st.one_of(
    st.tuples(st.sampled_from(["Cache-Control", "cache-control"]), cache_control_values),
    st.tuples(st.just("Age"), numbers | st.text(max_size=5)),
    st.tuples(st.sampled_from(["Expires", "EXPIRES", "Date"]), dates | st.text(max_size=30)),
    st.tuples(st.text(max_size=10), st.text(max_size=40)),
)
finite_times = st.floats(allow_nan=False, allow_infinity=False)


@given(st.lists(headers, max_size=6), finite_times)
def test_freshness_lifetime_never_raises_and_is_never_negative(
    header_list: list[tuple[str, str]], now: float
) -> None:
    result = freshness_lifetime(HttpsResponse(status=200, headers=tuple(header_list)), now)
    assert isinstance(result, Freshness)
    assert result.seconds is None or (math.isfinite(result.seconds) and result.seconds >= 0)
    assert result.source


url_schemes = st.sampled_from(["https://", "HTTPS://", "http://", "//", "", "https:", "ftp://"])
url_authorities = st.one_of(
    server_names().map(lambda c: c[0]),
    grammar_ish,
    st.sampled_from(["user@example.org", "user:pw@example.org", "", ":443", "[::1"]),
)
url_rests = st.text(alphabet="/?#.%=&ab09 \t\\", max_size=12)
locations = st.one_of(
    st.none(),
    st.text(),
    st.builds(lambda s, a, r: s + a + r, url_schemes, url_authorities, url_rests),
)
current_requests = st.sampled_from(
    [
        well_known_request("example.org", 51200),
        redirect_request(well_known_request("example.org", 10), "https://[2001:db8::1]:8443/a/b"),
    ]
)


@given(current_requests, locations)
def test_redirect_request_gives_an_https_request_or_refuses(
    current: HttpsGet, location: str | None
) -> None:
    hop, error = attempt(redirect_request, current, location, allowed=RedirectRefused)
    if error is not None:
        assert str(error)
        return
    assert isinstance(hop, HttpsGet)
    assert location is not None
    # Only an https: target is followed: never an http: one "upgraded" in place.
    wanted = urlsplit(urljoin(current.url, location.strip()))
    assert wanted.scheme.lower() == "https"
    parts = urlsplit(hop.url)
    assert parts.netloc == wanted.netloc
    assert hop.url.startswith("https://")
    assert parts.scheme == "https"
    assert "@" not in parts.netloc
    assert hop.url == f"https://{parts.netloc}{hop.target}"
    assert hop.target.startswith("/")
    authority = parse_server_name(parts.netloc)
    assert (hop.host, hop.port) == (authority.host, authority.port or 443)
    assert hop.max_body_bytes == current.max_body_bytes
    assert hop.url.isascii()
    assert not any(c.isspace() for c in hop.url)


# --- 3. cache periods -------------------------------------------------------------------

big_floats = st.floats(0, sys.float_info.max, allow_nan=False, allow_infinity=False)
positive_floats = st.floats(
    0, sys.float_info.max, allow_nan=False, allow_infinity=False, exclude_min=True
)


@st.composite
def any_valid_settings(
    draw: st.DrawFn, factors: st.SearchStrategy[float] | None = None
) -> Settings:
    """Any Settings the constructor accepts, for the cache periods."""
    low, middle, high = sorted(draw(st.lists(big_floats, min_size=3, max_size=3)))
    initial, cap = sorted(draw(st.lists(positive_floats, min_size=2, max_size=2)))
    if factors is None:
        # Settings accepts every factor >= 1: ints, floats, even infinity.
        factors = st.floats(min_value=1, allow_nan=False) | st.integers(1, 10**6)
    return Settings(
        well_known_min_ttl=low,
        well_known_default_ttl=middle,
        well_known_max_ttl=high,
        failure_initial_ttl=initial,
        failure_max_ttl=cap,
        failure_backoff_factor=draw(factors),
    )


lifetimes_in = st.one_of(
    st.none(),
    st.floats(allow_nan=False),  # includes 0, negatives, huge values and the infinities
    st.integers(-(10**400), 10**400),
)


@given(lifetimes_in, any_valid_settings())
def test_well_known_lifetime_is_within_floor_and_cap(
    seconds: float | None, settings: Settings
) -> None:
    # NaN is left out: its only source, freshness_lifetime, never gives it (see
    # test_freshness_lifetime_never_raises_and_is_never_negative).
    lifetime = well_known_lifetime(seconds, settings)
    assert settings.well_known_min_ttl <= lifetime <= settings.well_known_max_ttl


def check_failure_schedule(settings: Settings) -> None:
    # The exponent stops growing at 64, so 1-70 and a huge count cover the schedule.
    counts = [*range(-1, 70), 10**9]
    schedule = [failure_lifetime(n, settings) for n in counts]
    assert all(0 < p <= settings.failure_max_ttl for p in schedule)
    assert all(a <= b for a, b in itertools.pairwise(schedule))


@given(any_valid_settings())
def test_failure_lifetime_is_bounded_and_never_shrinks_for_any_valid_settings(
    settings: Settings,
) -> None:
    check_failure_schedule(settings)


@given(any_valid_settings(st.floats(1, 1000) | st.integers(1, 1000)))
def test_failure_lifetime_is_bounded_and_never_shrinks_for_moderate_factors(
    settings: Settings,
) -> None:
    # The same property over the factors people configure, so that it keeps
    # guarding the schedule while steep factors fail the test above.
    check_failure_schedule(settings)


# --- random worlds ----------------------------------------------------------------------

HOSTS = ("a.test", "b.test", "c.test")
V4_POOL = ("8.8.8.8", "1.1.1.1", "10.0.0.1", "127.0.0.1")  # public and refused alike
V6_POOL = ("2606:4700::1111", "2001:4860:4860::8888", "::1", "fe80::1")
SERVICES = ("_matrix-fed._tcp", "_matrix._tcp")
DNS_ERRORS = ("NXDOMAIN", "NODATA", "SERVFAIL", "REFUSED", "TIMEOUT")
SRV_TARGETS = (
    *(f"{h}." for h in HOSTS),
    *HOSTS,  # relative, as a sloppy zone file might give
    "B.TEST.",
    ".",
    "8.8.8.8.",
    "bad_name.test.",
    "missing.test.",
)
M_SERVERS = (
    *HOSTS,
    "b.test:8448",
    "c.test:443",
    "B.Test",
    "b.test.",
    "8.8.8.8",
    "8.8.8.8:8448",
    "[2606:4700::1111]",
    "[::1]:443",
    "10.0.0.1",
    "bad_name",
    "",
    "b.test:0",
)
URLS = (
    *(f"https://{h}/.well-known/matrix/server" for h in HOSTS),
    *(f"https://{h}/moved" for h in HOSTS),
    "https://c.test:8443/.well-known/matrix/server",
)
LOCATIONS = (
    *URLS,
    "/moved",
    "moved",
    "/.well-known/matrix/server",
    "http://b.test/.well-known/matrix/server",
    "https://user@b.test/x",
    "https://bad_host/x",
    "https://[::1]/x",
    "",
)
NAMES = (
    *HOSTS,
    "A.Test",
    "a.test.",
    "a.test:8448",
    "c.test:443",
    "8.8.8.8",
    "8.8.8.8:8448",
    "[2606:4700::1111]",
    "[::1]:8448",
    "10.0.0.1",
    "[::ffff:8.8.8.8]",
)


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """A choice between strategies with rough weights, so most worlds get somewhere.

    (st.one_of(a, a, b) would not do: it picks among distinct strategies evenly.)
    """
    indices = [i for i, (weight, _) in enumerate(choices) for _ in range(weight)]
    return st.sampled_from(indices).flatmap(lambda i: choices[i][1])


def sometimes(percent: int) -> st.SearchStrategy[bool]:
    return weighted((percent, st.just(True)), (100 - percent, st.just(False)))


def rrsets(records: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    answers = st.builds(
        lambda rs, ttl: {"records": rs, "ttl": ttl},
        st.lists(records, min_size=1, max_size=4),
        st.integers(0, 86400),
    )
    errors = st.sampled_from(DNS_ERRORS).map(lambda e: {"error": e})
    return weighted((8, answers), (1, st.just({"records": []})), (1, errors))


PUBLIC_V4, PUBLIC_V6 = V4_POOL[:2], V6_POOL[:2]
srv_records = st.fixed_dictionaries(
    {
        "priority": st.integers(0, 2),
        "weight": st.integers(0, 5),
        "port": weighted((4, st.sampled_from([443, 8448])), (1, st.sampled_from([0, 1, 65535]))),
        "target": weighted(
            (4, st.sampled_from([f"{h}." for h in HOSTS])), (2, st.sampled_from(SRV_TARGETS))
        ),
    }
)


@st.composite
def address_nodes(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        # A healthy host, so that enough worlds get as far as a target.
        healthy: dict[str, Any] = {"A": {"records": [draw(st.sampled_from(PUBLIC_V4))]}}
        if draw(st.booleans()):
            healthy["AAAA"] = {"records": [draw(st.sampled_from(PUBLIC_V6))]}
        return healthy
    node: dict[str, Any] = {}
    v4 = weighted((3, st.sampled_from(PUBLIC_V4)), (1, st.sampled_from(V4_POOL)))
    v6 = weighted((3, st.sampled_from(PUBLIC_V6)), (1, st.sampled_from(V6_POOL)))
    if draw(st.booleans()):
        node["A"] = draw(rrsets(v4))
    if draw(st.booleans()):
        node["AAAA"] = draw(rrsets(v6))
    if draw(st.booleans()):  # aliases, loops included (a name may alias itself)
        node["CNAME"] = {"records": [draw(st.sampled_from([f"{h}." for h in HOSTS]))]}
    if draw(sometimes(10)):
        node["*"] = {"error": draw(st.sampled_from(DNS_ERRORS))}
    return node


# One to three usable records with distinct targets: more than max_srv_records
# at times, so that the cut to max_srv_records is exercised.
healthy_srv = st.lists(
    st.fixed_dictionaries(
        {
            "priority": st.integers(0, 1),
            "weight": st.integers(0, 5),
            "port": st.sampled_from([443, 8448]),
            "target": st.sampled_from([f"{h}." for h in HOSTS]),
        }
    ),
    min_size=1,
    max_size=3,
    unique_by=lambda r: r["target"],
).map(lambda records: {"SRV": {"records": records}})
srv_nodes = weighted(
    (6, healthy_srv),
    (4, rrsets(srv_records).map(lambda rrset: {"SRV": rrset})),
    (1, st.sampled_from(DNS_ERRORS).map(lambda e: {"*": {"error": e}})),
)


@st.composite
def dns_maps(draw: st.DrawFn) -> dict[str, Any]:
    zones: dict[str, Any] = {}
    for host in HOSTS:
        if draw(sometimes(90)):
            zones[f"{host}."] = draw(address_nodes())
        for service in SERVICES:
            if draw(st.booleans()):
                zones[f"{service}.{host}."] = draw(srv_nodes)
    return zones


bodies = weighted(
    (4, st.sampled_from(M_SERVERS[:8]).map(lambda m: json.dumps({"m.server": m}))),
    (1, st.sampled_from(M_SERVERS).map(lambda m: json.dumps({"m.server": m}))),
    (1, st.sampled_from(["", "not json", "[]", '{"m.server": 5}', "{}", '{"m.server": null}'])),
)
cache_headers = st.lists(
    st.sampled_from(
        [
            ["Cache-Control", "max-age=60"],
            ["Cache-Control", "no-store"],
            ["Cache-Control", "max-age=999999"],
            ["Expires", "0"],
            ["Age", "5"],
        ]
    ),
    max_size=2,
)
https_responses = weighted(
    (6, st.builds(lambda b, h: {"status": 200, "body": b, "headers": h}, bodies, cache_headers)),
    (
        2,
        st.builds(
            lambda s, loc: (
                {"status": s} if loc is None else {"status": s, "headers": [["Location", loc]]}
            ),
            st.sampled_from([301, 302, 303, 307, 308]),
            weighted((6, st.sampled_from(LOCATIONS)), (1, st.none())),
        ),
    ),
    (1, st.sampled_from([300, 304, 404, 429, 500, 503]).map(lambda s: {"status": s})),
    (1, st.sampled_from([k.value for k in HttpsFailureKind]).map(lambda k: {"failure": k})),
)


@st.composite
def https_maps(draw: st.DrawFn) -> dict[str, Any]:
    urls: dict[str, Any] = {}
    for url in URLS:
        if url.endswith("/matrix/server") and draw(st.booleans()):
            # A working delegation, so that enough worlds reach steps 3.1-3.5.
            m_server = draw(st.sampled_from(M_SERVERS[:8]))
            urls[url] = {"status": 200, "body": json.dumps({"m.server": m_server})}
        elif draw(st.booleans()):
            urls[url] = draw(https_responses)
    return urls


world_settings = st.builds(
    Settings,
    max_redirects=st.integers(0, 3),
    max_srv_records=st.integers(1, 2),
    max_cname_chain=st.integers(0, 8),
    max_addresses_per_name=st.integers(1, 4),
    legacy_srv=weighted((3, st.just(True)), (1, st.just(False))),  # True is the default
    srv_failure=st.sampled_from(SrvFailurePolicy),
    srv_dot=st.sampled_from(SrvDotPolicy),
    srv_target_alias=st.sampled_from(SrvTargetAliasPolicy),
    # The request-level properties below are those of a machine asking one step at a
    # time; test_asking_early_changes_only_the_requests covers asking early.
    **{name: st.just(value) for name, value in ONE_BY_ONE.items()},
)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """A world, a name, settings, and a second look later, maybe after the world changed."""
    return {
        "dns": draw(dns_maps()),
        "https": draw(https_maps()),
        "later_https": draw(st.none() | https_maps()),
        "name": draw(weighted((3, st.sampled_from(HOSTS[:1])), (2, st.sampled_from(NAMES)))),
        "settings": draw(world_settings),
        "seed": draw(st.integers(0, 2**32 - 1)),
        "delay": draw(st.sampled_from([0.0, 59.0, 3600.0, 90000.0, 200000.0])),
    }


def request_bound(settings: Settings) -> int:
    """The most requests one resolution can make, read off _machine.py.

    Step 3: one GET per hop, at most max_redirects + 1. Then one branch only
    (3.1-3.5 or 4-6): two SRV lookups at most (_matrix-fed._tcp, then
    _matrix._tcp), and one AAAA+A pair per SRV target (at most max_srv_records,
    as the ordered list is cut there) or a single pair for the name itself.
    """
    return (settings.max_redirects + 1) + 2 + 2 * settings.max_srv_records


Run = tuple[FakeWorld, list[DnsQuery | HttpsGet], Resolution | ResolutionFailure]


def run_scenario(scenario: dict[str, Any]) -> tuple[list[Run], ResolverCache]:
    """Resolve twice with one cache: now, and after ``delay`` in the later world."""
    cache = ResolverCache()
    settings: Settings = scenario["settings"]
    rng = random.Random(scenario["seed"])
    runs: list[Run] = []
    world = FakeWorld({"dns": scenario["dns"], "https": scenario["https"]}, now=1_000_000.0)
    for later in (False, True):
        if later:
            https = scenario["later_https"]
            world = FakeWorld(
                {"dns": scenario["dns"], "https": scenario["https"] if https is None else https},
                now=world.now + scenario["delay"],
            )
        before = len(world.requests)
        result = world.resolve(scenario["name"], cache=cache, settings=settings, random=rng.random)
        runs.append((world, world.requests[before:], result))
    return runs, cache


@given(scenarios())
def test_asking_early_changes_only_the_requests(scenario: dict[str, Any]) -> None:
    early = dict(scenario, settings=dataclasses.replace(scenario["settings"], **ASKING_EARLY))
    runs, cache = run_scenario(scenario)
    early_runs, early_cache = run_scenario(early)
    for (_, _, result), (_, _, early_result) in zip(runs, early_runs, strict=True):
        assert _decided(early_result) == _decided(result)
    # Expired entries may differ: looking one up drops it, and an early ask looks.
    now = runs[-1][0].now
    assert _fresh(early_cache, now) == _fresh(cache, now)


def _fresh(cache: ResolverCache, now: float) -> list[Any]:
    return sorted(((k, v) for k, v in cache._dns._data.items() if v[1] > now), key=repr)


ASKING_EARLY = {name: True for name in ONE_BY_ONE if name != "resolve_well_known_host"}


def _decided(result: Resolution | ResolutionFailure) -> tuple[Any, ...]:
    decisions = [e.message for e in result.trace if e.kind in (TraceKind.STEP, TraceKind.DECISION)]
    if isinstance(result, Resolution):
        return result.step, result.targets, decisions, result.expires_at
    return result.step, result.kind, decisions


# --- 4. termination ---------------------------------------------------------------------


@given(scenarios())
def test_random_worlds_end_within_a_bounded_number_of_requests(scenario: dict[str, Any]) -> None:
    settings: Settings = scenario["settings"]
    runs, _ = run_scenario(scenario)
    for _, requests, result in runs:
        assert isinstance(result, (Resolution, ResolutionFailure))
        assert result.server_name == scenario["name"]
        assert len(requests) <= request_bound(settings)
        gets = [r for r in requests if isinstance(r, HttpsGet)]
        srv = [r for r in requests if isinstance(r, DnsQuery) and r.rdtype is RecordType.SRV]
        addresses = [
            r for r in requests if isinstance(r, DnsQuery) and r.rdtype is not RecordType.SRV
        ]
        assert len(gets) <= settings.max_redirects + 1
        assert len(srv) <= 2
        assert len(addresses) <= 2 * settings.max_srv_records
        # A request is never made twice within one resolution.
        assert len(set(requests)) == len(requests)


# --- 5. the spec's rules for every result ------------------------------------------------

IP_STEPS = {Step.IP_LITERAL, Step.DELEGATED_IP_LITERAL}
PORT_STEPS = {Step.EXPLICIT_PORT, Step.DELEGATED_EXPLICIT_PORT}
DELEGATED_STEPS = {
    Step.DELEGATED_IP_LITERAL,
    Step.DELEGATED_EXPLICIT_PORT,
    Step.DELEGATED_SRV,
    Step.DELEGATED_LEGACY_SRV,
    Step.DELEGATED_ADDRESS,
}
SRV_STEPS = {Step.DELEGATED_SRV, Step.DELEGATED_LEGACY_SRV, Step.SRV, Step.LEGACY_SRV}
DEFAULT_PORT_STEPS = {Step.DELEGATED_ADDRESS, Step.ADDRESS}


def delegated_name(
    result: Resolution | ResolutionFailure, cache: ResolverCache, name: ServerName
) -> ServerName:
    """The m.server a delegated step worked from.

    From the trace's final 200 when the well-known was fetched (independent of
    the machine's bookkeeping); from the cache when it was not (a cached or a
    stale delegation).
    """
    for line in reversed(result.trace):
        if isinstance(line.outcome, HttpsResponse) and line.outcome.status == 200:
            return parse_well_known_body(line.outcome.body)
    entry = cache.well_known(name.host)
    assert entry is not None
    delegated = entry.delegation or entry.last_good
    assert delegated is not None
    return delegated


def srv_targets(world: FakeWorld) -> set[str]:
    """Every SRV target in the world, as a host (lower case, no trailing dot)."""
    targets: set[str] = set()
    for service in SERVICES:
        for host in HOSTS:
            answer = world.dns(f"{service}.{host}.", RecordType.SRV)
            targets.update(
                str(r.target).lower().rstrip(".")
                for r in answer.records
                if isinstance(r, SrvRecord)
            )
    return targets


def check_targets(
    result: Resolution, name: ServerName, settings: Settings, world: FakeWorld, cache: ResolverCache
) -> None:
    assert result.targets
    expected = delegated_name(result, cache, name) if result.step in DELEGATED_STEPS else name
    for target in result.targets:
        assert 1 <= target.port <= 65535
        assert target.addresses
        for address in target.addresses:
            assert ipaddress.ip_address(address)
            assert settings.ip_policy.refusal(address) is None
        assert target.host == target.host.lower()
        assert not target.host.endswith(".")
        # The certificate is always for the name the delegation started from,
        # never an SRV target or CNAME target that merely shares an address.
        assert target.tls_server_name == expected.host

        if result.step in IP_STEPS:
            # Steps 1 and 3.1: no DNS, no SNI, certificate for the IP, Host as written.
            assert expected.is_ip_literal
            assert target.sni is None
            assert ipaddress.ip_address(target.tls_server_name)
            assert target.addresses == (expected.host,)
            assert target.host_header == expected.text
            assert target.port == (expected.port or 8448)
        else:
            assert expected.kind is HostKind.DNS
            assert target.sni == target.tls_server_name
            assert len(target.addresses) <= settings.max_addresses_per_name
        if result.step in PORT_STEPS:
            # Steps 2 and 3.2: Host is the name with its port.
            assert target.host_header == expected.text
            assert parse_server_name(target.host_header).port == target.port == expected.port
            assert target.host == expected.host
        if result.step in SRV_STEPS or result.step in DEFAULT_PORT_STEPS:
            # Steps 3.3-3.5 and 4-6: Host is the bare hostname, whatever the port.
            assert target.host_header == expected.hostname
            assert parse_server_name(target.host_header).port is None
        if result.step in DEFAULT_PORT_STEPS:
            assert (target.host, target.port) == (expected.host, 8448)
        if result.step in SRV_STEPS:
            assert target.host in srv_targets(world)


def check_requests(
    requests: list[DnsQuery | HttpsGet], name: ServerName, settings: Settings, world: FakeWorld
) -> None:
    srv_queries = [r for r in requests if isinstance(r, DnsQuery) and r.rdtype is RecordType.SRV]
    if name.is_ip_literal:
        assert requests == []  # step 1 needs nothing
    if name.is_ip_literal or name.port is not None:
        assert srv_queries == []
        assert not any(isinstance(r, HttpsGet) for r in requests)
    for query in srv_queries:
        if not query.qname.startswith("_matrix._tcp."):
            continue
        assert settings.legacy_srv
        base = query.qname.removeprefix("_matrix._tcp.")
        modern = world.dns(f"_matrix-fed._tcp.{base}", RecordType.SRV)
        if modern.status is DnsStatus.NOERROR:
            # Only an answer of nothing but "." may count as "not found", and only
            # when the srv_dot setting says so.
            assert settings.srv_dot is SrvDotPolicy.AS_ABSENT
            assert all(isinstance(r, SrvRecord) and r.target == "." for r in modern.records)


def srv_found(world: FakeWorld, qname: str, settings: Settings) -> bool:
    """Whether the world's answer for ``qname`` is an SRV record "found" in the spec's sense."""
    answer = world.dns(qname, RecordType.SRV)
    if answer.status is not DnsStatus.NOERROR:
        return False
    only_dots = all(isinstance(r, SrvRecord) and r.target == "." for r in answer.records)
    # Nothing but "." is "not found" only when srv_dot says to treat it so.
    return not (only_dots and settings.srv_dot is SrvDotPolicy.AS_ABSENT)


def check_srv_precedence(
    result: Resolution | ResolutionFailure,
    name: ServerName,
    settings: Settings,
    world: FakeWorld,
    cache: ResolverCache,
) -> None:
    # Steps 3.4/5 need "a _matrix-fed._tcp SRV record was not found"; steps 3.5/6
    # need "no SRV records were found". The answers may have come from the
    # cache, so they are read from the (unchanging) DNS of the world.
    if result.step in {Step.LEGACY_SRV, Step.ADDRESS}:
        base = name.fqdn
    elif result.step in {Step.DELEGATED_LEGACY_SRV, Step.DELEGATED_ADDRESS}:
        base = delegated_name(result, cache, name).fqdn
    else:
        return
    assert not srv_found(world, f"_matrix-fed._tcp.{base}", settings)
    if result.step in {Step.ADDRESS, Step.DELEGATED_ADDRESS} and settings.legacy_srv:
        assert not srv_found(world, f"_matrix._tcp.{base}", settings)


def check_trace(
    result: Resolution | ResolutionFailure, requests: list[DnsQuery | HttpsGet], name: ServerName
) -> None:
    kinds = [e.kind for e in result.trace]
    first = kinds.index(TraceKind.STEP)
    assert all(k is TraceKind.WARNING for k in kinds[:first])
    first_step = (
        Step.IP_LITERAL
        if name.is_ip_literal
        else Step.EXPLICIT_PORT
        if name.port is not None
        else Step.WELL_KNOWN
    )
    assert result.trace[first].step is first_step
    assert [e.request for e in result.trace if e.kind is TraceKind.REQUEST] == requests
    assert [e.request for e in result.trace if e.kind is TraceKind.OUTCOME] == requests


@given(scenarios())
def test_random_world_results_follow_the_spec(scenario: dict[str, Any]) -> None:
    settings: Settings = scenario["settings"]
    name = parse_server_name(scenario["name"])
    runs, cache = run_scenario(scenario)
    for world, requests, result in runs:
        # Shown by --hypothesis-show-statistics: which steps the worlds reach.
        event(f"{type(result).__name__} at step {result.step}")
        check_requests(requests, name, settings, world)
        check_trace(result, requests, name)
        check_srv_precedence(result, name, settings, world, cache)
        if name.is_ip_literal:
            assert result.step is Step.IP_LITERAL
        elif name.port is not None:
            assert result.step is Step.EXPLICIT_PORT
        else:
            assert result.step not in {Step.IP_LITERAL, Step.EXPLICIT_PORT}
        if isinstance(result, Resolution):
            check_targets(result, name, settings, world, cache)
            # The answer is good until its stalest input expires, never before now.
            assert result.expires_at >= world.now
        else:
            assert result.kind is not FailureKind.INVALID_SERVER_NAME
            assert result.kind is not FailureKind.DEADLINE_EXCEEDED  # the clock stood still
            assert result.message


# --- 6. back-off never shrinks ------------------------------------------------------------

failing_responses = st.one_of(
    st.sampled_from([404, 500, 503, 429, 300]).map(lambda s: {"status": s}),
    st.sampled_from([k.value for k in HttpsFailureKind]).map(lambda k: {"failure": k}),
    st.just({"status": 200, "body": "not json"}),
    st.just({"status": 200, "body": '{"m.server": "x:0"}'}),
    # A redirect to itself: a loop, which is an error.
    st.just({"status": 302, "headers": [["Location", "https://a.test/.well-known/matrix/server"]]}),
)


@given(
    failing_responses,
    st.integers(1, 12),
    st.sampled_from([0.0, 1_700_000_000.0]),
    st.sampled_from([1, 1.5, 2, 3]),
    st.integers(1, 600),
)
def test_backoff_never_shrinks_while_the_well_known_keeps_failing(
    response: dict[str, Any], rounds: int, start: float, factor: float, initial: int
) -> None:
    settings = Settings(failure_backoff_factor=factor, failure_initial_ttl=initial)
    world = FakeWorld(
        {
            "dns": {"a.test.": {"A": {"records": ["8.8.8.8"]}}},
            "https": {"https://a.test/.well-known/matrix/server": response},
        },
        now=start,
    )
    cache = ResolverCache()
    lifetimes: list[float] = []
    for n in range(1, rounds + 1):
        result = world.resolve("a.test", cache=cache, settings=settings)
        assert isinstance(result, Resolution)
        assert result.step is Step.ADDRESS
        entry = cache.well_known("a.test")
        assert entry is not None
        assert entry.failures == n
        lifetime = entry.expires_at - entry.stored_at
        assert 0 < lifetime <= settings.failure_max_ttl + 1e-6
        # Float sums of large times lose a little; a real shrink is far larger.
        assert not lifetimes or lifetime >= lifetimes[-1] - 1e-6
        lifetimes.append(lifetime)
        # Just before expiry the failure is still trusted: no new fetch.
        world.now = entry.expires_at - min(1.0, lifetime / 2)
        fetched = len(world.requests)
        world.resolve("a.test", cache=cache, settings=settings)
        assert not any(isinstance(r, HttpsGet) for r in world.requests[fetched:])
        world.now = entry.expires_at  # at expiry, the next round fetches again
    assert lifetimes[0] == initial
    assert lifetimes[-1] <= 3600
