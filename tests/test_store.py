"""The pure parts of a shared cache store (mxresolve._core.store), and the drivers' sharing layer.

No Redis here: the format, the checks an entry read back must pass, the MAC and its rotation,
which entry wins, the circuit breaker; then two resolvers over FakeWorld sharing one
in-process ResolverCache as their store, as two workers share a Redis.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxresolve import (
    AsyncResolver,
    DnsResult,
    DnsStatus,
    FakeWorld,
    InvalidSettings,
    RecordType,
    Resolution,
    Resolver,
    ResolverCache,
    Settings,
    SrvRecord,
    WellKnownEntry,
    parse_server_name,
)
from mxresolve._core.cache import next_failure
from mxresolve._core.store import (
    AsyncCacheStore,
    Breaker,
    CacheStore,
    StoreCodec,
    needs_read,
    reconcile,
    retain_until,
    shared_dns_expiry,
    well_known_host,
)

NOW = 1_700_000_000.0
SETTINGS = Settings()
SECRET = b"0123456789abcdef-deployment"
OLD_SECRET = b"fedcba9876543210-retired"


def delegation(text: str = "fed.example.org:8448", *, at: float = NOW, life: float = 3600.0):
    name = parse_server_name(text)
    return WellKnownEntry(
        delegation=name,
        error=None,
        stored_at=at,
        expires_at=at + life,
        last_good=name,
        last_good_expired_at=at + life,
    )


def failure(previous: WellKnownEntry | None = None, *, at: float = NOW) -> WellKnownEntry:
    return next_failure(previous, "HTTP 503", unavailable=True, now=at, settings=SETTINGS)


# --- the format --------------------------------------------------------------------------


@pytest.mark.parametrize("secrets", [(), (SECRET,)])
def test_well_known_entries_round_trip(secrets: tuple[bytes, ...]) -> None:
    codec = StoreCodec(prefix="t", secrets=secrets)
    for entry in (delegation(), failure(failure(delegation(at=NOW - 10)))):
        raw = codec.encode_well_known("example.org", entry)
        decoded = codec.decode_well_known("example.org", raw, NOW, SETTINGS)
        assert decoded.problem is None
        assert decoded.value == entry


def test_dns_answers_round_trip_with_what_is_left_of_their_lifetime() -> None:
    codec = StoreCodec()
    cases = [
        (RecordType.A, DnsResult(status=DnsStatus.NOERROR, records=("198.51.100.7",), ttl=300)),
        (RecordType.AAAA, DnsResult(status=DnsStatus.NOERROR, records=("2001:db8::7",), ttl=9)),
        (
            RecordType.SRV,
            DnsResult(
                status=DnsStatus.NOERROR,
                records=(SrvRecord(priority=1, weight=5, port=8448, target="fed.example.org."),),
                ttl=60,
            ),
        ),
        (RecordType.A, DnsResult(status=DnsStatus.NXDOMAIN, ttl=30, aliases=("x.example.",))),
    ]
    for rdtype, result in cases:
        raw = codec.encode_dns("name.example.", rdtype, result, NOW + 100)
        decoded = codec.decode_dns("name.example.", rdtype, raw, NOW + 40, SETTINGS)
        assert decoded.problem is None
        got, expires_at = decoded.value
        assert (got.status, got.records, got.aliases) == (
            result.status,
            result.records,
            result.aliases,
        )
        assert got.ttl == 60
        assert expires_at == NOW + 100
        # Expired (or nearly): absent, not a problem.
        assert codec.decode_dns("name.example.", rdtype, raw, NOW + 99.5, SETTINGS).value is None


def test_keys_carry_the_prefix_and_the_format_version() -> None:
    codec = StoreCodec(prefix="hs1")
    assert codec.well_known_key("example.org") == "hs1:v1:wk:example.org"
    assert codec.dns_key("example.org.", RecordType.SRV) == "hs1:v1:dns:SRV:example.org."


def _wk_payload(**changes: object) -> dict[str, object]:
    payload: dict[str, object] = {
        "d": "fed.example.org:8448",
        "e": None,
        "s": NOW,
        "x": NOW + 60,
        "f": 0,
        "g": "fed.example.org:8448",
        "gx": NOW + 60,
        "u": False,
    }
    payload.update(changes)
    return payload


def _raw(payload: object, *, magic: bytes = b"mxr1") -> bytes:
    return magic + b" - " + json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"garbage", "no version"),
        (b"\xff\xfe\x00 - {}", "format"),
        (_raw(_wk_payload(), magic=b"mxr0"), "format 'mxr0'"),
        (_raw(_wk_payload(), magic=b"mxr2"), "format 'mxr2'"),
        (b"mxr1 - {not json", "not JSON"),
        (b"mxr1 - [1, 2]", "not a JSON object"),
        (b"mxr1 - " + b"[" * 5000 + b"]" * 5000, "limit"),
        (_raw({"d": "x"}), "fields"),
        (_raw(_wk_payload(d="evil host!", g="evil host!")), "m.server"),
        (_raw(_wk_payload(d="a" * 300, g="a" * 300)), "server name"),
        (_raw(_wk_payload(d=None, e=None)), "either a delegation or an error"),
        (_raw(_wk_payload(e="also an error")), "either a delegation or an error"),
        (_raw(_wk_payload(s="yesterday")), "stored_at is not a time"),
        (_raw(_wk_payload(x=math.inf)), "expires_at is not a time"),  # JSON's Infinity
        (_raw(_wk_payload(s=NOW + 3600, x=NOW + 7200, gx=NOW + 7200)), "future"),
        (_raw(_wk_payload(x=NOW - 1)), "expires before"),
        (_raw(_wk_payload(f=2)), "a delegation has no failures"),
        (_raw(_wk_payload(f=True)), "failures must be an integer"),
        (_raw(_wk_payload(u="yes")), "unavailable"),
        (_raw(_wk_payload(g="other.example.org")), "its own last good"),
        (_raw(_wk_payload(d=None, e="HTTP 500", f=0, g=None)), "at least one"),
        (_raw(_wk_payload(d=None, e="x" * 3000, f=1, g=None)), "error must be"),
    ],
)
def test_a_bad_well_known_value_is_ignored_and_says_why(raw: bytes, problem: str) -> None:
    decoded = StoreCodec().decode_well_known("example.org", raw, NOW, SETTINGS)
    assert decoded.value is None
    assert decoded.problem is not None
    assert problem in decoded.problem


def test_json_infinity_is_not_accepted_as_a_time() -> None:
    raw = b"mxr1 - " + json.dumps(_wk_payload(x=1e300)).encode()
    assert "not a time" in str(StoreCodec().decode_well_known("h", raw, NOW, SETTINGS).problem)


def test_a_stored_lifetime_is_capped_as_a_fresh_one_would_be() -> None:
    settings = Settings(well_known_max_ttl=7200, well_known_default_ttl=3600)
    raw = _raw(_wk_payload(x=NOW + 10 * 86400, gx=NOW + 10 * 86400))
    entry = StoreCodec().decode_well_known("example.org", raw, NOW, settings).value
    assert entry.expires_at == NOW + 7200
    assert entry.last_good_expired_at == NOW + 7200
    # A failure is capped at the back-off its count earns, not at what the writer claims.
    raw = _raw(_wk_payload(d=None, e="HTTP 500", f=1, g=None, x=NOW + 3600, gx=0))
    entry = StoreCodec().decode_well_known("example.org", raw, NOW, SETTINGS).value
    assert entry.expires_at == NOW + SETTINGS.failure_initial_ttl


@pytest.mark.parametrize(
    ("rdtype", "payload", "problem"),
    [
        (RecordType.A, {"st": "NOERROR", "r": ["2001:db8::1"], "a": [], "x": NOW + 60}, "an A"),
        (RecordType.AAAA, {"st": "NOERROR", "r": ["10.0.0.1"], "a": [], "x": NOW + 60}, "AAAA"),
        (RecordType.A, {"st": "NOERROR", "r": ["not-an-ip"], "a": [], "x": NOW + 60}, "not an IP"),
        (RecordType.A, {"st": "NOERROR", "r": [], "a": [], "x": NOW + 60}, "NOERROR comes"),
        (RecordType.A, {"st": "NXDOMAIN", "r": ["1.2.3.4"], "a": [], "x": NOW + 60}, "NOERROR"),
        (RecordType.A, {"st": "SERVFAIL", "r": [], "a": [], "x": NOW + 60}, "not shared"),
        (RecordType.A, {"st": "MAYBE", "r": [], "a": [], "x": NOW + 60}, "unknown DNS status"),
        (RecordType.A, {"st": "NODATA", "r": [], "a": ["bad name!"], "x": NOW + 60}, "alias"),
        (RecordType.A, {"st": "NODATA", "r": [], "a": ["x."] * 40, "x": NOW + 60}, "at most"),
        (RecordType.A, {"st": "NOERROR", "r": ["1.2.3.4"] * 300, "a": [], "x": 1}, "at most"),
        (RecordType.SRV, {"st": "NOERROR", "r": [[1, 2, 70000, "t."]], "a": [], "x": 1}, "port"),
        (RecordType.SRV, {"st": "NOERROR", "r": [[1, 2, 3]], "a": [], "x": NOW + 60}, "SRV"),
        (RecordType.SRV, {"st": "NOERROR", "r": [[1, 2, 3, "t:99."]], "a": [], "x": 1}, "target"),
        (RecordType.A, {"st": "NOERROR", "r": ["1.2.3.4"], "a": [], "x": "soon"}, "not a time"),
        (RecordType.A, {"st": "NOERROR", "r": ["1.2.3.4"], "a": []}, "fields"),
    ],
)
def test_a_bad_dns_value_is_ignored_and_says_why(
    rdtype: RecordType, payload: dict[str, object], problem: str
) -> None:
    decoded = StoreCodec().decode_dns("n.example.", rdtype, _raw(payload), NOW, SETTINGS)
    assert decoded.value is None
    assert decoded.problem is not None
    assert problem in decoded.problem


def test_a_stored_dns_lifetime_is_capped_by_dns_max_ttl() -> None:
    settings = Settings(dns_max_ttl=120)
    raw = _raw({"st": "NOERROR", "r": ["198.51.100.7"], "a": [], "x": NOW + 86400})
    result, expires_at = StoreCodec().decode_dns("n.", RecordType.A, raw, NOW, settings).value
    assert (result.ttl, expires_at) == (120, NOW + 120)


# --- the MAC -------------------------------------------------------------------------------


def test_with_secrets_only_signed_entries_are_used_and_rotation_works() -> None:
    entry = delegation()
    unsigned = StoreCodec().encode_well_known("example.org", entry)
    signed_old = StoreCodec(secrets=[OLD_SECRET]).encode_well_known("example.org", entry)
    signed_other = StoreCodec(secrets=[b"x" * 32]).encode_well_known("example.org", entry)
    rotated = StoreCodec(secrets=[SECRET, OLD_SECRET])

    assert rotated.decode_well_known("example.org", signed_old, NOW, SETTINGS).value == entry
    for raw in (unsigned, signed_other):
        decoded = rotated.decode_well_known("example.org", raw, NOW, SETTINGS)
        assert decoded.value is None
        assert "MAC" in str(decoded.problem)
    # New entries are signed with the first secret: readers that dropped the old one accept them.
    fresh = rotated.encode_well_known("example.org", entry)
    assert StoreCodec(secrets=[SECRET]).decode_well_known("example.org", fresh, NOW, SETTINGS).value


def test_a_signed_entry_cannot_be_moved_to_another_key() -> None:
    codec = StoreCodec(secrets=[SECRET])
    raw = codec.encode_well_known("attacker.example", delegation("evil.example"))
    assert codec.decode_well_known("victim.example", raw, NOW, SETTINGS).value is None
    raw = codec.encode_dns("a.example.", RecordType.A, _a("198.51.100.1"), NOW + 60)
    assert codec.decode_dns("b.example.", RecordType.A, raw, NOW, SETTINGS).value is None
    assert codec.decode_dns("a.example.", RecordType.AAAA, raw, NOW, SETTINGS).value is None


def test_a_signed_payload_cannot_be_edited() -> None:
    codec = StoreCodec(secrets=[SECRET])
    raw = codec.encode_well_known("example.org", delegation("fed.example.org"))
    edited = raw.replace(b"fed.example.org", b"evil.example.org")
    assert codec.decode_well_known("example.org", edited, NOW, SETTINGS).problem is not None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"secrets": [b"short"]}, "16 bytes"),
        ({"secrets": SECRET}, "list of secrets"),
        ({"prefix": ""}, "prefix"),
        ({"prefix": "a b"}, "prefix"),
        ({"max_clock_skew": -1}, "max_clock_skew"),
    ],
)
def test_codec_settings_are_checked(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidSettings, match=message):
        StoreCodec(**kwargs)  # type: ignore[arg-type]


# --- the sharing rules -----------------------------------------------------------------------


def test_well_known_host_is_only_for_names_that_reach_step_3() -> None:
    assert well_known_host("Example.ORG") == "example.org"
    for name in ("example.org:8448", "198.51.100.1", "[2001:db8::1]", "bad name", 7):
        assert well_known_host(name) is None  # type: ignore[arg-type]


def test_needs_read_bounds_how_long_a_local_entry_goes_unchecked() -> None:
    entry = delegation(life=3600)
    assert needs_read(None, None, NOW, 60)
    assert needs_read(entry, None, NOW, 60)
    assert not needs_read(entry, NOW, NOW + 59, 60)
    assert needs_read(entry, NOW, NOW + 60, 60)
    assert needs_read(entry, NOW, NOW + 3600, math.inf)  # expired: read, whatever the bound


def test_reconcile_takes_the_newer_entry_and_publishes_a_newer_local_one() -> None:
    old, new = delegation(at=NOW - 100), failure(at=NOW)
    assert reconcile(None, None) == (None, None)
    assert reconcile(None, new) == (new, None)
    assert reconcile(old, new) == (new, None)
    assert reconcile(new, old) == (None, new)
    assert reconcile(new, None) == (None, new)
    assert reconcile(new, new) == (None, None)


def test_retain_until_keeps_what_back_off_and_stale_if_error_still_need() -> None:
    good = delegation(life=600)
    assert retain_until(good, SETTINGS) == good.expires_at + SETTINGS.stale_if_error
    bad = failure(good)  # expires at +60; its last good delegation counts until +600 +3600
    assert retain_until(bad, SETTINGS) == NOW + 600 + 3600
    lone = failure()
    assert retain_until(lone, Settings(stale_if_error=0)) == lone.expires_at + 3600


def test_only_definite_dns_answers_are_shared() -> None:
    assert shared_dns_expiry(_a("198.51.100.1", ttl=300), NOW, SETTINGS) == NOW + 300
    assert shared_dns_expiry(DnsResult(status=DnsStatus.NXDOMAIN, ttl=60), NOW, SETTINGS)
    for status in (DnsStatus.SERVFAIL, DnsStatus.TIMEOUT, DnsStatus.REFUSED):
        assert shared_dns_expiry(DnsResult(status=status), NOW, SETTINGS) is None
    assert shared_dns_expiry(_a("198.51.100.1", ttl=0), NOW, SETTINGS) is None


def test_breaker_opens_doubles_and_closes_on_success() -> None:
    breaker = Breaker(initial=0.5, maximum=2.0)
    assert breaker.allows(0.0)
    breaker.failed(10.0)
    assert not breaker.allows(10.4)
    assert breaker.allows(10.5)
    breaker.failed(10.5)
    assert not breaker.allows(11.4)
    assert breaker.allows(11.5)
    for _ in range(10):
        breaker.failed(20.0)
    assert not breaker.allows(21.9)
    assert breaker.allows(22.0)  # capped at maximum
    breaker.succeeded()
    assert breaker.allows(20.0)
    assert not breaker.is_open
    with pytest.raises(InvalidSettings):
        Breaker(initial=2.0, maximum=1.0)


def test_the_in_process_cache_is_a_store() -> None:
    cache = ResolverCache()
    assert isinstance(cache, CacheStore)
    first = cache.add_failure("h", "x", unavailable=True, now=NOW, settings=SETTINGS)
    second = cache.add_failure("h", "x", unavailable=True, now=NOW, settings=SETTINGS)
    assert (first and first.failures, second and second.failures) == (1, 2)


def test_a_store_of_the_wrong_kind_is_refused_up_front() -> None:
    with pytest.raises(InvalidSettings, match="AsyncResolver needs an AsyncCacheStore"):
        AsyncResolver(store=ResolverCache())  # type: ignore[arg-type]
    with pytest.raises(InvalidSettings, match="Resolver needs a CacheStore"):
        Resolver(store=_AsyncAdapter(ResolverCache()))  # type: ignore[arg-type]
    with pytest.raises(InvalidSettings, match="not a cache store"):
        Resolver(store=object())  # type: ignore[arg-type]


def _a(address: str, ttl: int = 300) -> DnsResult:
    return DnsResult(status=DnsStatus.NOERROR, records=(address,), ttl=ttl)


# --- two resolvers, one store ------------------------------------------------------------

WORLD = {
    "dns": {
        "deleg.example.": {"A": {"records": ["198.51.100.1"], "ttl": 300}},
        "target.example.": {"A": {"records": ["198.51.100.2"], "ttl": 300}},
        "down.example.": {"A": {"records": ["198.51.100.3"], "ttl": 300}},
    },
    "https": {
        "https://deleg.example/.well-known/matrix/server": {
            "status": 200,
            "body": '{"m.server": "target.example:8448"}',
        },
        "https://down.example/.well-known/matrix/server": {"failure": "connection_refused"},
    },
}
ALLOW = ["198.51.100.0/24"]


class _AsyncAdapter:
    """An in-process cache behind the asyncio store interface."""

    def __init__(self, cache: ResolverCache) -> None:
        self.cache = cache
        self.local_max_age = 30.0

    async def get_well_known(self, hostname: str, now: float, settings: Settings):  # type: ignore[no-untyped-def]
        return self.cache.get_well_known(hostname, now, settings)

    async def put_well_known(self, hostname, entry, now, settings) -> None:  # type: ignore[no-untyped-def]
        self.cache.put_well_known(hostname, entry)

    async def add_failure(self, hostname, error, *, unavailable, now, settings):  # type: ignore[no-untyped-def]
        return self.cache.add_failure(
            hostname, error, unavailable=unavailable, now=now, settings=settings
        )

    async def get_dns(self, qname, rdtype, now, settings):  # type: ignore[no-untyped-def]
        return self.cache.get_dns(qname, rdtype, now, settings)

    async def put_dns(self, qname, rdtype, result, expires_at, now) -> None:  # type: ignore[no-untyped-def]
        self.cache.put_dns(qname, rdtype, result, expires_at)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _workers(kind: str, shared: ResolverCache, loop: asyncio.AbstractEventLoop, count: int = 2):  # type: ignore[no-untyped-def]
    worlds = [FakeWorld(WORLD, now=NOW) for _ in range(count)]
    if kind == "sync":
        resolvers = [
            Resolver(
                dns=w.transports()[0],
                https=w.transports()[1],
                clock=w.clock,
                store=shared,
                allow_ips=ALLOW,
            )
            for w in worlds
        ]
        return worlds, [r.resolve_result for r in resolvers]
    store = _AsyncAdapter(shared)
    assert isinstance(store, AsyncCacheStore)
    aresolvers = [
        AsyncResolver(
            dns=w.async_transports()[0],
            https=w.async_transports()[1],
            clock=w.clock,
            store=store,
            allow_ips=ALLOW,
        )
        for w in worlds
    ]
    return worlds, [
        (lambda name, r=r: loop.run_until_complete(r.resolve_result(name))) for r in aresolvers
    ]


@pytest.mark.parametrize("kind", ["sync", "asyncio"])
def test_a_delegation_learned_by_one_worker_is_used_by_the_other(
    kind: str, loop: asyncio.AbstractEventLoop
) -> None:
    shared = ResolverCache()
    (w1, w2), (resolve1, resolve2) = _workers(kind, shared, loop)
    first, second = resolve1("deleg.example"), resolve2("deleg.example")
    assert isinstance(first, Resolution)
    assert isinstance(second, Resolution)
    assert second.targets == first.targets
    assert str(first.step) == str(second.step)
    assert len([r for r in w1.requests if "GET" in str(r)]) == 1
    assert w2.requests == []  # the well-known and every DNS answer came from the store


@pytest.mark.parametrize("kind", ["sync", "asyncio"])
def test_a_failure_and_its_back_off_are_shared(kind: str, loop: asyncio.AbstractEventLoop) -> None:
    shared = ResolverCache()
    worlds, resolvers = _workers(kind, shared, loop)
    resolvers[0]("down.example")
    assert shared.well_known("down.example").failures == 1  # type: ignore[union-attr]
    trace = resolvers[1]("down.example").trace
    assert any("consecutive failures: 1" in t.message for t in trace)
    assert trace[0].message.startswith(
        "the well-known entry for down.example came from the shared store: a failure"
    )
    assert worlds[1].requests == []
    # Once the back-off ends, the next worker to fetch counts on from the shared count.
    for w in worlds:
        w.advance(61)
    trace = resolvers[1]("down.example").trace
    assert shared.well_known("down.example").failures == 2  # type: ignore[union-attr]
    assert trace[-1].message == "failure counted in the shared store (consecutive failures: 2)"
    assert len([r for r in worlds[1].requests if "GET" in str(r)]) == 1


def test_a_memoised_resolution_is_kept_no_longer_than_local_max_age(
    loop: asyncio.AbstractEventLoop,
) -> None:
    shared = _AsyncAdapter(ResolverCache())
    world = FakeWorld(WORLD, now=NOW)
    dns, https = world.async_transports()
    resolver = AsyncResolver(dns=dns, https=https, clock=world.clock, store=shared, allow_ips=ALLOW)
    result = loop.run_until_complete(resolver.resolve("deleg.example"))
    assert result.expires_at == NOW + 30  # local_max_age, not the well-known's 24 h


def test_without_a_store_a_resolution_keeps_its_own_expiry() -> None:
    world = FakeWorld(WORLD, now=NOW)
    dns, https = world.transports()
    result = Resolver(dns=dns, https=https, clock=world.clock, allow_ips=ALLOW).resolve(
        "deleg.example"
    )
    assert result.expires_at == NOW + 300  # the DNS TTL


# --- whatever is in the store, reading it never raises ----------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=20,
)
_fields = st.fixed_dictionaries(
    {},
    optional={k: _json for k in ("d", "e", "s", "x", "f", "g", "gx", "u", "st", "r", "a")},
)


@given(raw=st.binary(max_size=300) | _fields.map(lambda p: _raw(p)) | _json.map(_raw))
def test_no_stored_value_makes_reading_raise(raw: bytes) -> None:
    codec = StoreCodec()
    decoded = codec.decode_well_known("example.org", raw, NOW, SETTINGS)
    assert (decoded.value is None) or isinstance(decoded.value, WellKnownEntry)
    for rdtype in RecordType:
        got = codec.decode_dns("n.example.", rdtype, raw, NOW, SETTINGS)
        if got.value is not None:
            assert isinstance(got.value[0], DnsResult)
