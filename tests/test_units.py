"""Unit tests, module by module: what the vectors and properties do not pin exactly."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from mxresolve import (
    NEED_RESULTS,
    DnsQuery,
    DnsResult,
    DnsStatus,
    FakeWorld,
    HostKind,
    HttpsFailure,
    HttpsFailureKind,
    HttpsGet,
    HttpsResponse,
    InvalidServerName,
    InvalidSettings,
    IpPolicy,
    LocalProtocolError,
    RecordType,
    ResolutionMachine,
    ResolverCache,
    Settings,
    SrvRecord,
    WorldError,
    order_srv_records,
    parse_server_name,
    server_name_advisories,
)
from mxresolve._cache import dns_lifetime, failure_lifetime
from mxresolve._cachecontrol import freshness_lifetime, parse_cache_control
from mxresolve._cli import main

# --- grammar ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason", "offset"),
    [
        ("", "it is empty", None),
        ("example.org:", "the port after ':' is empty", 12),
        ("example.org:123456", "the port has 6 digits", 12),
        ("example.org:0", "out of range 1-65535", 12),
        ("example.org:65536", "out of range 1-65535", 12),
        ("example.org:8a", "'a' is not allowed in the port", 13),
        ("1234:5678::abcd", "must be in brackets", 0),
        ("::1", "must be in brackets", 0),
        (":8448", "the hostname is empty", 0),
        ("[1234:5678::abcd", "missing its closing ']'", 16),
        ("[fe80::1%eth0]", "zone index", 8),
        ("[::1]x", "expected ':' and a port", 5),
        ("my_server.example.org", "'_' is not allowed", 2),
        ("bücher.de", "IDNA A-label", 1),
        ("256.1.1.1", "octet 256 is out of range", 0),
        ("1.2.3", "four decimal octets", 0),
        ("01.2.3.4", "leading zero", 0),
        ("a..b", "empty label", 2),
        (".example.org", "empty label", 0),
        ("a" * 64 + ".org", "64 characters; max 63", 0),
        ("https://matrix.example.org", "'/' is not allowed", 6),
    ],
)
def test_invalid_names_say_what_and_where(text: str, reason: str, offset: int | None) -> None:
    with pytest.raises(InvalidServerName) as caught:
        parse_server_name(text)
    assert reason in caught.value.reason
    assert caught.value.offset == offset
    assert repr(text) in str(caught.value)


def test_names_at_the_dns_length_limits() -> None:
    label = "a" * 63
    name_253 = ".".join([label, label, label, "a" * 61])
    assert len(name_253) == 253
    assert parse_server_name(name_253).kind is HostKind.DNS
    assert parse_server_name(name_253 + ".").host == name_253
    with pytest.raises(InvalidServerName, match="254 characters"):
        parse_server_name(name_253 + "a")


def test_parsed_forms() -> None:
    v6 = parse_server_name("[2001:DB8:0::7]:8443")
    assert (v6.kind, v6.hostname, v6.host, v6.port) == (
        HostKind.IPV6,
        "[2001:DB8:0::7]",
        "2001:db8::7",
        8443,
    )
    assert parse_server_name("[::ffff:192.0.2.1]").host == "::ffff:192.0.2.1"
    dns = parse_server_name("Example.ORG.")
    assert (dns.host, dns.fqdn, dns.hostname) == ("example.org", "example.org.", "Example.ORG.")
    assert parse_server_name("example.org:08448").port == 8448
    with pytest.raises(ValueError, match="IP literal"):
        _ = parse_server_name("192.0.2.1").fqdn


def test_identity_is_case_sensitive() -> None:
    assert parse_server_name("example.org") != parse_server_name("EXAMPLE.org")
    assert parse_server_name("example.org") == parse_server_name("example.org")


def test_advisories() -> None:
    notes = server_name_advisories(parse_server_name("Example.org."))
    assert any("upper-case" in n for n in notes)
    assert any("trailing dot" in n for n in notes)
    assert server_name_advisories(parse_server_name("example.org")) == ()
    long_name = ".".join(["a" * 60] * 4)
    assert any("230" in n for n in server_name_advisories(parse_server_name(long_name)))


# --- cache headers and the cache ---------------------------------------------------------


def test_parse_cache_control_is_tolerant() -> None:
    assert parse_cache_control('max-age="60", No-Store, bad directive, =x, private') == {
        "max-age": "60",
        "no-store": None,
        "private": None,
    }


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ((("Cache-Control", "max-age=3600"),), 3600.0),
        ((("Cache-Control", "max-age=3600"), ("Age", "600")), 3000.0),
        ((("Cache-Control", "no-store, max-age=3600"),), 0.0),
        ((("Cache-Control", "no-cache"),), 0.0),
        ((("Cache-Control", "s-maxage=9"),), None),
        ((("Cache-Control", "max-age=-1"),), None),
        (
            (
                ("Expires", "Thu, 01 Jan 2026 02:00:00 GMT"),
                ("Date", "Thu, 01 Jan 2026 00:00:00 GMT"),
            ),
            7200.0,
        ),
        ((("Expires", "not a date"),), 0.0),
        ((("Expires", "Thu, 01 Jan 2026 01:00:00 GMT"),), 3600.0),  # against now
        ((), None),
    ],
)
def test_freshness_lifetime(headers: tuple[tuple[str, str], ...], seconds: float | None) -> None:
    now = 1767225600.0  # 2026-01-01T00:00:00Z
    assert freshness_lifetime(HttpsResponse(status=200, headers=headers), now).seconds == seconds


def test_the_lru_forgets_the_least_recently_used() -> None:
    cache = ResolverCache(max_well_known_entries=2, max_dns_entries=2)
    settings = Settings()
    name = parse_server_name("x.example")
    cache.store_delegation("a", name, 100, now=0)
    cache.store_delegation("b", name, 100, now=0)
    assert cache.well_known("a") is not None  # a is now the most recent
    cache.store_delegation("c", name, 100, now=0)
    assert cache.well_known("b") is None
    assert cache.well_known_entries == 2
    answer = DnsResult(status=DnsStatus.NOERROR, records=("192.0.2.1",), ttl=60)
    for qname in ("a.", "b.", "c."):
        cache.store_dns(qname, RecordType.A, answer, now=0, settings=settings)
    assert cache.dns_entries == 2
    assert cache.dns("a.", RecordType.A, now=0) is None
    assert cache.dns("c.", RecordType.A, now=59) is not None
    assert cache.dns("c.", RecordType.A, now=60) is None  # expired entries are dropped


def test_failures_count_up_and_a_success_resets_them() -> None:
    cache, settings = ResolverCache(), Settings()
    for n in range(1, 4):
        entry = cache.store_failure("h", "down", unavailable=True, now=0, settings=settings)
        assert entry.failures == n
        assert entry.expires_at == failure_lifetime(n, settings) == 60 * 2 ** (n - 1)
    good = cache.store_delegation("h", parse_server_name("m.example"), 100, now=0)
    assert good.failures == 0
    again = cache.store_failure("h", "down", unavailable=True, now=200, settings=settings)
    assert (again.failures, again.last_good) == (1, good.delegation)


def test_dns_lifetimes() -> None:
    settings = Settings(dns_min_ttl=10, dns_max_ttl=100, dns_negative_ttl=50, dns_failure_ttl=5)
    assert (
        dns_lifetime(DnsResult(status=DnsStatus.NOERROR, records=("::1",), ttl=1), settings) == 10
    )
    assert (
        dns_lifetime(DnsResult(status=DnsStatus.NOERROR, records=("::1",), ttl=999), settings)
        == 100
    )
    assert dns_lifetime(DnsResult(status=DnsStatus.NXDOMAIN), settings) == 50
    assert dns_lifetime(DnsResult(status=DnsStatus.NODATA, ttl=20), settings) == 20
    assert dns_lifetime(DnsResult(status=DnsStatus.SERVFAIL), settings) == 5


def test_cache_bounds_must_be_positive() -> None:
    with pytest.raises(InvalidSettings):
        ResolverCache(max_well_known_entries=0)


# --- SRV ----------------------------------------------------------------------------------


def _srv(priority: int, weight: int, target: str) -> SrvRecord:
    return SrvRecord(priority=priority, weight=weight, port=8448, target=target)


def test_srv_priority_always_comes_first() -> None:
    records = [_srv(20, 100, "c."), _srv(10, 0, "a."), _srv(10, 1, "b."), _srv(30, 0, "d.")]
    rng = random.Random(7)
    for _ in range(200):
        ordered = order_srv_records(records, rng.random)
        assert [r.priority for r in ordered] == [10, 10, 20, 30]


def test_srv_weights_share_first_place_in_proportion() -> None:
    records = [_srv(0, 75, "heavy."), _srv(0, 25, "light.")]
    rng = random.Random(1)
    first = Counter(order_srv_records(records, rng.random)[0].target for _ in range(4000))
    assert 0.70 < first["heavy."] / 4000 < 0.80


def test_srv_all_zero_weights_are_picked_uniformly() -> None:
    records = [_srv(0, 0, f"{i}.") for i in range(4)]
    rng = random.Random(2)
    first = Counter(order_srv_records(records, rng.random)[0].target for _ in range(4000))
    assert all(800 < count < 1200 for count in first.values())


def test_srv_edge_values_of_the_random_source() -> None:
    records = [_srv(0, 1, "a."), _srv(0, 1, "b.")]
    for value in (0.0, 0.9999999):
        ordered = order_srv_records(records, lambda v=value: v)
        assert sorted(r.target for r in ordered) == ["a.", "b."]
    assert order_srv_records([], random.random) == []


def test_srv_records_validate_themselves() -> None:
    with pytest.raises(ValueError, match="port"):
        SrvRecord(priority=0, weight=0, port=70000, target="x.")
    with pytest.raises(ValueError, match="target"):
        SrvRecord(priority=0, weight=0, port=1, target="")


# --- the machine's protocol ---------------------------------------------------------------


def _machine(name: str = "example.org") -> ResolutionMachine:
    return ResolutionMachine(name, now=0.0, random=random.Random(0).random)


def test_requests_are_handed_out_then_the_machine_waits() -> None:
    machine = _machine("example.org:8448")
    first, second = machine.next_event(), machine.next_event()
    assert {first, second} == {
        DnsQuery(qname="example.org.", rdtype=RecordType.AAAA),
        DnsQuery(qname="example.org.", rdtype=RecordType.A),
    }
    assert machine.next_event() is NEED_RESULTS
    assert set(machine.pending) == {first, second}


def test_outcomes_may_arrive_in_any_order() -> None:
    machine = _machine("example.org:8448")
    aaaa, a = machine.next_event(), machine.next_event()
    machine.receive(a, DnsResult(status=DnsStatus.NOERROR, records=("8.8.8.8",)), now=0)  # type: ignore[arg-type]
    assert machine.next_event() is NEED_RESULTS
    machine.receive(aaaa, DnsResult(status=DnsStatus.NODATA), now=0)  # type: ignore[arg-type]
    result = machine.next_event()
    assert result is machine.next_event()  # the end is stable
    assert getattr(result, "targets", None)


@pytest.mark.parametrize(
    ("outcome", "message"),
    [
        (HttpsResponse(status=200), "needs a DnsResult"),
        (DnsResult(status=DnsStatus.NOERROR, records=("2001:db8::1",)), "not an IPv4 address"),
        (DnsResult(status=DnsStatus.NOERROR, records=("not-an-ip",)), "not an IP address"),
    ],
)
def test_wrong_outcomes_are_refused_clearly(outcome: object, message: str) -> None:
    machine = _machine("example.org:8448")
    machine.next_event()
    a = machine.next_event()
    assert isinstance(a, DnsQuery)
    assert a.rdtype is RecordType.A
    with pytest.raises(LocalProtocolError, match=message):
        machine.receive(a, outcome, now=0)  # type: ignore[arg-type]


def test_unknown_and_duplicate_outcomes_are_refused() -> None:
    machine = _machine("example.org:8448")
    aaaa = machine.next_event()
    stranger = DnsQuery(qname="other.example.", rdtype=RecordType.A)
    with pytest.raises(LocalProtocolError, match="not waiting"):
        machine.receive(stranger, DnsResult(status=DnsStatus.NXDOMAIN), now=0)
    machine.receive(aaaa, DnsResult(status=DnsStatus.NXDOMAIN), now=0)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="already received"):
        machine.receive(aaaa, DnsResult(status=DnsStatus.NXDOMAIN), now=0)  # type: ignore[arg-type]


def test_an_outcome_before_its_request_is_handed_out_is_refused() -> None:
    machine = _machine("example.org:8448")
    machine.next_event()
    not_yet = DnsQuery(qname="example.org.", rdtype=RecordType.A)
    with pytest.raises(LocalProtocolError, match="not been handed out"):
        machine.receive(not_yet, DnsResult(status=DnsStatus.NXDOMAIN), now=0)


def test_an_https_failure_is_an_acceptable_outcome_for_a_get() -> None:
    machine = _machine()
    get = machine.next_event()
    assert isinstance(get, HttpsGet)
    machine.receive(get, HttpsFailure(kind=HttpsFailureKind.CONNECTION_REFUSED), now=0)
    assert isinstance(machine.next_event(), DnsQuery)  # on to step 4


def test_a_clock_going_backwards_is_held() -> None:
    machine = _machine()
    get = machine.next_event()
    assert isinstance(get, HttpsGet)
    machine.receive(get, HttpsResponse(status=404), now=-100.0)
    entry = machine.cache.well_known("example.org")
    assert entry is not None
    assert entry.stored_at == 0.0


def test_bad_constructor_arguments() -> None:
    with pytest.raises(InvalidServerName):
        _machine("bad name")
    with pytest.raises(ValueError, match="now"):
        ResolutionMachine("example.org", now=float("nan"), random=random.random)


# --- settings and policy -----------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"well_known_min_ttl": -1},
        {"well_known_min_ttl": 100, "well_known_default_ttl": 50},
        {"failure_backoff_factor": 0.5},
        {"failure_initial_ttl": 0},
        {"dns_min_ttl": 10, "dns_max_ttl": 5},
        {"max_redirects": -1},
        {"max_srv_records": 0},
        {"deadline": 0},
        {"stale_if_error": float("inf")},
    ],
)
def test_settings_refuse_inconsistent_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidSettings):
        Settings(**kwargs)  # type: ignore[arg-type]


def test_ip_policy() -> None:
    default = IpPolicy()
    assert default.refusal("8.8.8.8") is None
    for special in ("127.0.0.1", "10.1.2.3", "169.254.0.1", "224.0.0.1", "::1", "fe80::1", "::"):
        assert default.refusal(special) is not None, special
    assert default.refusal("::ffff:127.0.0.1") is not None
    allowing = IpPolicy.from_cidrs(["127.0.0.0/8"])
    assert allowing.refusal("127.0.0.1") is None
    assert allowing.refusal("10.0.0.1") is not None
    denying = IpPolicy.from_cidrs(deny=["8.8.8.0/24"])
    assert denying.refusal("8.8.8.8") is not None
    assert default.refusal("not an ip") is not None
    with pytest.raises(InvalidSettings, match="CIDR"):
        IpPolicy.from_cidrs(["nonsense"])
    with pytest.raises(InvalidSettings, match="list"):
        IpPolicy.from_cidrs("127.0.0.0/8")


# --- FakeWorld ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("world", "message"),
    [
        ({"dns": {"example.org": {}}}, "end with '.'"),
        ({"dns": {"example.org.": {"MX": {"records": []}}}}, "unknown record type"),
        ({"dns": {"example.org.": {"A": {"error": "BOGUS"}}}}, "unknown error"),
        ({"dns": {"example.org.": {"A": {}}}}, "'records' list"),
        ({"https": {"https://x/": {"failure": "exploded"}}}, "unknown failure"),
        ({"ftp": {}}, "unknown world keys"),
    ],
)
def test_fake_world_rejects_malformed_worlds(world: dict[str, object], message: str) -> None:
    with pytest.raises(WorldError, match=message):
        FakeWorld(world)


def test_fake_world_follows_cname_chains_with_a_bound() -> None:
    chain = {f"n{i}.example.": {"CNAME": {"records": [f"n{i + 1}.example."]}} for i in range(12)}
    world = FakeWorld({"dns": chain})
    assert world.dns("n0.example.", RecordType.A).status is DnsStatus.SERVFAIL
    short = FakeWorld({"dns": {**chain, "n3.example.": {"A": {"records": ["192.0.2.1"]}}}})
    answer = short.dns("n0.example.", RecordType.A)
    assert answer.records == ("192.0.2.1",)
    assert answer.aliases == ("n1.example.", "n2.example.", "n3.example.")


# --- the vectors command -----------------------------------------------------------------


def test_vectors_run_prints_a_line_per_vector_and_a_total(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["vectors", "run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].endswith(" passed, 0 failed")
    assert all(line.startswith("PASS  ") for line in lines[:-1])


def test_vectors_run_json_and_explain(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vectors", "run", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["failed"] == 0
    assert document["passed"] == len(document["results"])
    assert main(["vectors", "run", "--explain", "example::step-3.3"]) == 0
    out = capsys.readouterr().out
    assert "Step 3.3:" in out
    assert "_matrix-fed._tcp.matrix.example.net." in out
    assert "Result: as expected" in out


def test_vectors_run_fails_on_a_failing_vector(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    broken = {
        "format_version": 1,
        "vectors": [
            {
                "id": "local::wrong-expectation",
                "description": "A vector whose expectation is wrong on purpose.",
                "spec": {
                    "since": None,
                    "until": None,
                    "cited_version": "v1.19",
                    "citations": [{"section": "x", "step": "1", "quote": "q"}],
                },
                "requirement": "MUST",
                "features": [],
                "world": {},
                "steps": [{"resolve": "192.0.2.1", "expect": {"step": "2", "error": "no_address"}}],
            }
        ],
    }
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    assert main(["vectors", "run", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "0 passed, 1 failed"
    assert "FAIL  local::wrong-expectation" in out
    assert main(["vectors", "run", str(tmp_path / "missing.json")]) == 2
    assert main(["vectors", "run", "--explain", "no::such-id"]) == 2


# --- the drivers' input checks -------------------------------------------------------------


@pytest.mark.parametrize("bad", [["example.org"], None, 42, b"example.org", "bad name", ""])
def test_resolvers_reject_bad_names_with_a_typed_error(bad: object) -> None:
    import asyncio

    from mxresolve import AsyncResolver, Resolver

    resolver = Resolver(nameservers=["127.0.0.1:9"])
    with pytest.raises(InvalidServerName):
        resolver.resolve(bad)  # type: ignore[arg-type]

    async def run() -> None:
        await AsyncResolver(nameservers=["127.0.0.1:9"]).resolve(bad)  # type: ignore[arg-type]

    with pytest.raises(InvalidServerName):
        asyncio.run(run())


def test_a_huge_back_off_factor_reaches_the_cap_without_overflowing() -> None:
    settings = Settings(failure_backoff_factor=1e6)
    assert failure_lifetime(500, settings) == settings.failure_max_ttl


@pytest.mark.parametrize("factor", ["2", None, True, float("nan")])
def test_a_back_off_factor_of_the_wrong_type_is_invalid_settings(factor: object) -> None:
    with pytest.raises(InvalidSettings):
        Settings(failure_backoff_factor=factor)  # type: ignore[arg-type]


def test_nothing_is_pending_after_the_deadline_ends_a_resolution() -> None:
    machine = ResolutionMachine(
        "example.org:8448", now=0.0, random=random.random, settings=Settings(deadline=1.0)
    )
    aaaa = machine.next_event()
    assert isinstance(aaaa, DnsQuery)
    machine.receive(aaaa, DnsResult(status=DnsStatus.TIMEOUT), now=2.0)
    assert machine.pending == ()
