"""The resolver cache: bounded tables, the back-off schedule and the lifetimes (I-12, I-15)."""

from __future__ import annotations

import pytest

from mxresolve import (
    DnsResult,
    DnsStatus,
    InvalidSettings,
    RecordType,
    ResolverCache,
    Settings,
    parse_server_name,
)
from mxresolve._core.cache import dns_lifetime, failure_lifetime, well_known_lifetime

DEFAULTS = Settings()
DELEGATE = parse_server_name("matrix.example.org:443")
ANSWER = DnsResult(status=DnsStatus.NOERROR, records=("192.0.2.1",), ttl=60)


# --- bounds -----------------------------------------------------------------------------


def test_the_well_known_table_keeps_at_most_its_capacity() -> None:
    cache = ResolverCache(max_well_known_entries=3)
    for i in range(10):
        cache.store_delegation(f"h{i}.example", DELEGATE, 100.0, now=0.0)
        assert cache.well_known_entries == min(i + 1, 3)
    # The three most recent are the ones left.
    assert [cache.well_known(f"h{i}.example") is not None for i in range(10)] == [False] * 7 + [
        True
    ] * 3


def test_the_least_recently_used_well_known_entry_is_evicted() -> None:
    cache = ResolverCache(max_well_known_entries=2)
    cache.store_delegation("a", DELEGATE, 100.0, now=0.0)
    cache.store_delegation("b", DELEGATE, 100.0, now=0.0)
    assert cache.well_known("a") is not None  # reading "a" makes "b" the oldest
    cache.store_delegation("c", DELEGATE, 100.0, now=0.0)
    assert cache.well_known("b") is None
    assert cache.well_known_entries == 2
    assert cache.well_known("a") is not None
    assert cache.well_known("c") is not None


def test_overwriting_an_entry_refreshes_it_without_growing() -> None:
    cache = ResolverCache(max_well_known_entries=2)
    cache.store_delegation("a", DELEGATE, 100.0, now=0.0)
    cache.store_delegation("b", DELEGATE, 100.0, now=0.0)
    cache.store_failure("a", "down", unavailable=True, now=1.0, settings=DEFAULTS)
    assert cache.well_known_entries == 2
    cache.store_delegation("c", DELEGATE, 100.0, now=2.0)
    assert cache.well_known("b") is None
    entry = cache.well_known("a")
    assert entry is not None
    assert entry.failures == 1


def test_the_dns_table_keeps_at_most_its_capacity_and_evicts_the_lru() -> None:
    # Never read: the first stored is the first to go.
    unread = ResolverCache(max_dns_entries=2)
    for qname in ("a.", "b.", "c."):
        unread.store_dns(qname, RecordType.A, ANSWER, now=0.0, settings=DEFAULTS)
    assert unread.dns_entries == 2
    assert unread.dns("a.", RecordType.A, now=1.0) is None
    assert unread.dns("c.", RecordType.A, now=1.0) is not None
    # Read: a lookup makes an entry the most recent.
    cache = ResolverCache(max_dns_entries=2)
    cache.store_dns("a.", RecordType.A, ANSWER, now=0.0, settings=DEFAULTS)
    cache.store_dns("a.", RecordType.AAAA, ANSWER, now=0.0, settings=DEFAULTS)
    assert cache.dns("a.", RecordType.A, now=1.0) is not None  # now AAAA is the oldest
    cache.store_dns("b.", RecordType.A, ANSWER, now=0.0, settings=DEFAULTS)
    assert cache.dns_entries == 2
    assert cache.dns("a.", RecordType.AAAA, now=1.0) is None
    assert cache.dns("a.", RecordType.A, now=1.0) is not None
    assert cache.dns("b.", RecordType.A, now=1.0) is not None


def test_the_tables_are_bounded_separately() -> None:
    cache = ResolverCache(max_well_known_entries=1, max_dns_entries=1)
    cache.store_delegation("a", DELEGATE, 100.0, now=0.0)
    cache.store_dns("a.", RecordType.A, ANSWER, now=0.0, settings=DEFAULTS)
    assert (cache.well_known_entries, cache.dns_entries, len(cache)) == (1, 1, 2)
    cache.clear()
    assert len(cache) == 0
    assert cache.well_known("a") is None


@pytest.mark.parametrize("stored_at", [0.0, 100.0])
def test_a_dns_answer_is_fresh_until_its_expiry_and_then_dropped(stored_at: float) -> None:
    cache = ResolverCache()
    expiry = cache.store_dns("a.", RecordType.A, ANSWER, now=stored_at, settings=DEFAULTS)
    assert expiry == stored_at + 60.0
    assert cache.dns("a.", RecordType.A, now=stored_at + 59.0) == (ANSWER, expiry)
    assert cache.dns("a.", RecordType.A, now=stored_at + 59.9) == (ANSWER, expiry)
    assert cache.dns("a.", RecordType.A, now=stored_at + 60.0) is None
    assert cache.dns_entries == 0  # the stale entry is removed, not kept around


def test_a_dns_answer_with_no_lifetime_is_not_stored() -> None:
    cache = ResolverCache()
    settings = Settings(dns_failure_ttl=0)
    expiry = cache.store_dns(
        "a.", RecordType.A, DnsResult(status=DnsStatus.SERVFAIL), now=5.0, settings=settings
    )
    assert expiry == 5.0
    assert cache.dns_entries == 0


def test_dns_entries_are_keyed_by_name_and_type() -> None:
    cache = ResolverCache()
    cache.store_dns("a.", RecordType.A, ANSWER, now=0.0, settings=DEFAULTS)
    assert cache.dns("a.", RecordType.AAAA, now=0.0) is None
    assert cache.dns("b.", RecordType.A, now=0.0) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_well_known_entries": 0},
        {"max_well_known_entries": -1},
        {"max_dns_entries": 0},
        {"max_dns_entries": 1.5},
        {"max_dns_entries": "10"},
        {"max_well_known_entries": None},
    ],
)
def test_resolver_cache_rejects_invalid_bounds(kwargs: dict[str, object]) -> None:
    name = next(iter(kwargs))
    with pytest.raises(InvalidSettings, match=f"{name} must be a positive integer"):
        ResolverCache(**kwargs)  # type: ignore[arg-type]


# --- the back-off schedule ----------------------------------------------------------------


def test_the_default_failure_schedule_doubles_from_a_minute_to_an_hour() -> None:
    schedule = [failure_lifetime(n, DEFAULTS) for n in range(1, 11)]
    assert schedule == [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600, 3600]


def test_the_failure_schedule_stays_capped_for_a_very_long_outage() -> None:
    assert failure_lifetime(10_000, DEFAULTS) == 3600.0


def test_the_failure_schedule_follows_its_settings() -> None:
    settings = Settings(failure_initial_ttl=10, failure_backoff_factor=3, failure_max_ttl=100)
    assert [failure_lifetime(n, settings) for n in range(1, 5)] == [10, 30, 90, 100]
    flat = Settings(failure_backoff_factor=1)
    assert {failure_lifetime(n, flat) for n in range(1, 20)} == {60.0}


@pytest.mark.parametrize("factor", [1e200, 100_000, 10**6, 1e6])
def test_a_large_valid_factor_reaches_the_cap_instead_of_overflowing(factor: float) -> None:
    # Settings accepts any factor >= 1; a long outage with a steep one must still
    # give the cap, not an OverflowError out of store_failure mid-resolution.
    settings = Settings(failure_backoff_factor=factor)
    assert [failure_lifetime(n, settings) for n in (1, 2, 3, 100, 500)] == [
        60,
        3600,
        3600,
        3600,
        3600,
    ]


def test_a_failure_count_below_one_gets_the_first_period() -> None:
    assert failure_lifetime(0, DEFAULTS) == 60.0
    assert failure_lifetime(-3, DEFAULTS) == 60.0


@pytest.mark.parametrize("unavailable", [False, True])
def test_store_failure_counts_consecutive_failures(unavailable: bool) -> None:
    cache = ResolverCache()
    for n, now in enumerate([0.0, 60.0, 180.0, 420.0], start=1):
        entry = cache.store_failure(
            "h", f"down {n}", unavailable=unavailable, now=now, settings=DEFAULTS
        )
        assert entry.failures == n
        assert entry.unavailable is unavailable
        assert entry.stored_at == now
        assert entry.expires_at == now + failure_lifetime(n, DEFAULTS) == now + 60 * 2 ** (n - 1)
        assert entry.error == f"down {n}"
        assert entry.delegation is None
        assert cache.well_known("h") == entry


def test_failures_are_counted_per_host() -> None:
    cache = ResolverCache()
    cache.store_failure("a", "down", unavailable=True, now=0.0, settings=DEFAULTS)
    cache.store_failure("a", "down", unavailable=True, now=0.0, settings=DEFAULTS)
    assert (
        cache.store_failure("b", "down", unavailable=True, now=0.0, settings=DEFAULTS).failures == 1
    )


def test_a_success_resets_the_count_and_is_kept_as_last_good() -> None:
    cache = ResolverCache()
    for now in (0.0, 60.0, 180.0):
        cache.store_failure("h", "down", unavailable=True, now=now, settings=DEFAULTS)
    good = cache.store_delegation("h", DELEGATE, 3600.0, now=500.0)
    assert (good.failures, good.delegation, good.error) == (0, DELEGATE, None)
    assert (good.last_good, good.last_good_expired_at, good.expires_at) == (
        DELEGATE,
        4100.0,
        4100.0,
    )
    # The next failure starts the schedule again, and remembers the delegation.
    again = cache.store_failure("h", "timeout", unavailable=True, now=5000.0, settings=DEFAULTS)
    assert again.failures == 1
    assert again.expires_at == 5060.0
    assert (again.last_good, again.last_good_expired_at) == (DELEGATE, 4100.0)
    assert again.unavailable is True
    # A definite answer (a 404) ends the delegation; a later outage does not revive it (I-17).
    later = cache.store_failure("h", "404", unavailable=False, now=5060.0, settings=DEFAULTS)
    assert (later.failures, later.last_good, later.unavailable) == (2, None, False)
    outage = cache.store_failure("h", "down", unavailable=True, now=5200.0, settings=DEFAULTS)
    assert (outage.failures, outage.last_good, outage.unavailable) == (3, None, True)


def test_an_evicted_host_starts_the_schedule_again() -> None:
    # Forgetting is the price of the bound; it must not be worse than a first failure.
    cache = ResolverCache(max_well_known_entries=1)
    cache.store_failure("a", "down", unavailable=True, now=0.0, settings=DEFAULTS)
    cache.store_failure("b", "down", unavailable=True, now=0.0, settings=DEFAULTS)
    assert (
        cache.store_failure("a", "down", unavailable=True, now=0.0, settings=DEFAULTS).failures == 1
    )


# --- lifetimes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "lifetime"),
    [
        (None, 86400.0),  # no headers: the spec's 24 h default
        (0.0, 300.0),  # no-store / max-age=0: the 5 min floor
        (-10.0, 300.0),
        (299.0, 300.0),
        (300.0, 300.0),
        (3600.0, 3600.0),
        (172800.0, 172800.0),
        (172801.0, 172800.0),  # the spec's 48 h cap
        (1e18, 172800.0),
        (float("inf"), 172800.0),
    ],
)
def test_well_known_lifetime_is_clamped(seconds: float | None, lifetime: float) -> None:
    assert well_known_lifetime(seconds, DEFAULTS) == lifetime


def test_well_known_lifetime_with_a_zero_floor_honours_no_store() -> None:
    settings = Settings(well_known_min_ttl=0)
    assert well_known_lifetime(0.0, settings) == 0.0
    assert well_known_lifetime(None, settings) == 86400.0


def test_well_known_lifetime_follows_its_settings() -> None:
    settings = Settings(well_known_min_ttl=10, well_known_default_ttl=20, well_known_max_ttl=30)
    assert [well_known_lifetime(s, settings) for s in (None, 5.0, 25.0, 99.0)] == [
        20.0,
        10.0,
        25.0,
        30.0,
    ]


DNS_SETTINGS = Settings(dns_min_ttl=10, dns_max_ttl=1000, dns_negative_ttl=50, dns_failure_ttl=5)


@pytest.mark.parametrize(
    ("result", "lifetime"),
    [
        (DnsResult(status=DnsStatus.NOERROR, records=("::1",), ttl=100), 100.0),
        (DnsResult(status=DnsStatus.NOERROR, records=("::1",), ttl=1), 10.0),
        (DnsResult(status=DnsStatus.NOERROR, records=("::1",), ttl=99999), 1000.0),
        (DnsResult(status=DnsStatus.NOERROR, records=("::1",)), 10.0),  # unknown: the floor
        (DnsResult(status=DnsStatus.NXDOMAIN), 50.0),  # no SOA minimum: the negative default
        (DnsResult(status=DnsStatus.NXDOMAIN, ttl=200), 200.0),
        (DnsResult(status=DnsStatus.NODATA, ttl=2), 10.0),
        (DnsResult(status=DnsStatus.NODATA, ttl=20), 20.0),
        (DnsResult(status=DnsStatus.NODATA, ttl=5000), 1000.0),
        (DnsResult(status=DnsStatus.SERVFAIL, ttl=5000), 5.0),  # failures: their own period
        (DnsResult(status=DnsStatus.REFUSED), 5.0),
        (DnsResult(status=DnsStatus.TIMEOUT), 5.0),
    ],
)
def test_dns_lifetime_per_status(result: DnsResult, lifetime: float) -> None:
    assert dns_lifetime(result, DNS_SETTINGS) == lifetime


def test_dns_lifetime_defaults() -> None:
    no_ttl = DnsResult(status=DnsStatus.NOERROR, records=("192.0.2.1",))
    assert dns_lifetime(no_ttl, DEFAULTS) == 0.0  # dns_min_ttl 0: not cached
    assert dns_lifetime(DnsResult(status=DnsStatus.NODATA), DEFAULTS) == 300.0
    assert dns_lifetime(DnsResult(status=DnsStatus.SERVFAIL), DEFAULTS) == 30.0
