"""The cache: pure data, bounded, and told the time by its caller.

Two tables, each a bounded LRU map:

* well-known results by hostname, including failures with their back-off
  state and the last good delegation (for ``stale_if_error``);
* DNS answers by (name, type), positive and negative alike.

Nothing here reads a clock: every method that needs the time takes ``now``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import InvalidSettings
from .events import DnsResult, DnsStatus, RecordType
from .grammar import ServerName
from .settings import Settings

__all__ = ["ResolverCache", "WellKnownEntry", "next_failure"]

K = TypeVar("K")
V = TypeVar("V")


class _Lru(Generic[K, V]):
    """A dict that forgets its least recently used entry beyond ``capacity``."""

    __slots__ = ("_data", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.capacity:
            self._data.popitem(last=False)

    def pop(self, key: K) -> None:
        self._data.pop(key, None)

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        self._data.clear()


@dataclass(frozen=True, kw_only=True, slots=True)
class WellKnownEntry:
    """What we know about one hostname's ``/.well-known/matrix/server``.

    Attributes:
        delegation: the valid ``m.server``, or ``None`` if the last fetch failed.
        error: why the last fetch failed (``None`` after a success).
        expires_at: until when this entry is fresh.
        failures: consecutive failed fetches (0 after a success).
        last_good: the last valid delegation, kept across failures.
        last_good_expired_at: when ``last_good`` stopped being fresh.
        unavailable: the last failure was the server being unreachable or
            erroring (5xx, network, TLS), not a definite answer (404, bad body).
    """

    delegation: ServerName | None
    error: str | None
    stored_at: float
    expires_at: float
    failures: int = 0
    last_good: ServerName | None = None
    last_good_expired_at: float = 0.0
    unavailable: bool = False


_DnsEntry = tuple[DnsResult, float]  # the answer, and when it expires


class ResolverCache:
    """The caches one resolver keeps across resolutions.

    Args:
        max_well_known_entries: bound on hostnames remembered.
        max_dns_entries: bound on (name, type) answers remembered.
    """

    def __init__(self, *, max_well_known_entries: int = 100_000, max_dns_entries: int = 200_000):
        for name, value in (
            ("max_well_known_entries", max_well_known_entries),
            ("max_dns_entries", max_dns_entries),
        ):
            if not isinstance(value, int) or value < 1:
                raise InvalidSettings(f"{name} must be a positive integer, not {value!r}")
        self._well_known: _Lru[str, WellKnownEntry] = _Lru(max_well_known_entries)
        self._dns: _Lru[tuple[str, RecordType], _DnsEntry] = _Lru(max_dns_entries)

    # --- well-known -------------------------------------------------------------------

    def well_known(self, hostname: str) -> WellKnownEntry | None:
        """The entry for ``hostname`` (fresh or not; compare ``expires_at`` with now)."""
        return self._well_known.get(hostname)

    def store_delegation(
        self, hostname: str, delegation: ServerName, lifetime: float, now: float
    ) -> WellKnownEntry:
        entry = WellKnownEntry(
            delegation=delegation,
            error=None,
            stored_at=now,
            expires_at=now + lifetime,
            last_good=delegation,
            last_good_expired_at=now + lifetime,
        )
        self._well_known.put(hostname, entry)
        return entry

    def store_failure(
        self, hostname: str, error: str, *, unavailable: bool, now: float, settings: Settings
    ) -> WellKnownEntry:
        """Record a failed fetch, backing off exponentially while failures continue."""
        entry = next_failure(
            self._well_known.get(hostname),
            error,
            unavailable=unavailable,
            now=now,
            settings=settings,
        )
        self._well_known.put(hostname, entry)
        return entry

    def put_well_known(
        self,
        hostname: str,
        entry: WellKnownEntry,
        now: float = 0.0,
        settings: Settings | None = None,
    ) -> None:
        """Install an entry as it is (one read from a shared store)."""
        self._well_known.put(hostname, entry)

    # --- DNS ------------------------------------------------------------------------

    def dns(self, qname: str, rdtype: RecordType, now: float) -> _DnsEntry | None:
        """A fresh cached answer, or ``None``."""
        key = (qname, rdtype)
        entry = self._dns.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            self._dns.pop(key)
            return None
        return entry

    def store_dns(
        self, qname: str, rdtype: RecordType, result: DnsResult, now: float, settings: Settings
    ) -> float:
        """Remember ``result``; returns its expiry (``now`` if it is not kept)."""
        lifetime = dns_lifetime(result, settings)
        if lifetime > 0:
            self._dns.put((qname, rdtype), (result, now + lifetime))
        return now + lifetime

    def put_dns(
        self, qname: str, rdtype: RecordType, result: DnsResult, expires_at: float, now: float = 0.0
    ) -> None:
        """Install an answer with its expiry as it is (one read from a shared store)."""
        self._dns.put((qname, rdtype), (result, expires_at))

    # --- the store interface (mxresolve._core.store.CacheStore) ----------------------
    # The in-process cache is the default store: it never fails, so "unreachable" never
    # happens and entries are never stale relative to themselves.

    local_max_age = math.inf

    def get_well_known(
        self, hostname: str, now: float, settings: Settings
    ) -> WellKnownEntry | None:
        return self.well_known(hostname)

    def add_failure(
        self, hostname: str, error: str, *, unavailable: bool, now: float, settings: Settings
    ) -> WellKnownEntry | None:
        return self.store_failure(
            hostname, error, unavailable=unavailable, now=now, settings=settings
        )

    def get_dns(
        self, qname: str, rdtype: RecordType, now: float, settings: Settings
    ) -> _DnsEntry | None:
        return self.dns(qname, rdtype, now)

    # --- housekeeping ---------------------------------------------------------------

    def clear(self) -> None:
        self._well_known.clear()
        self._dns.clear()

    def __len__(self) -> int:
        return len(self._well_known) + len(self._dns)

    @property
    def well_known_entries(self) -> int:
        return len(self._well_known)

    @property
    def well_known_capacity(self) -> int:
        return self._well_known.capacity

    @property
    def dns_entries(self) -> int:
        return len(self._dns)


def next_failure(
    previous: WellKnownEntry | None,
    error: str,
    *,
    unavailable: bool,
    now: float,
    settings: Settings,
) -> WellKnownEntry:
    """The entry after one more failed fetch: the count grows.

    The last good delegation is kept only across "unavailable" failures (I-17). A definite
    answer (a 404, an invalid body) ends it: a later outage must not bring it back.
    """
    failures = (previous.failures if previous is not None else 0) + 1
    kept = previous if unavailable else None
    return WellKnownEntry(
        delegation=None,
        error=error,
        stored_at=now,
        expires_at=now + failure_lifetime(failures, settings),
        failures=failures,
        last_good=kept.last_good if kept is not None else None,
        last_good_expired_at=kept.last_good_expired_at if kept is not None else 0.0,
        unavailable=unavailable,
    )


def failure_lifetime(failures: int, settings: Settings) -> float:
    """Back-off for the ``failures``-th consecutive failure: initial * factor^(n-1), capped."""
    exponent = min(max(failures - 1, 0), 1024)
    try:
        grown = settings.failure_initial_ttl * settings.failure_backoff_factor**exponent
    except OverflowError:  # a large factor: far past any cap
        grown = math.inf
    return float(min(grown, settings.failure_max_ttl))


def well_known_lifetime(seconds: float | None, settings: Settings) -> float:
    """A valid response's lifetime: its own (or the default), within [floor, cap]."""
    if seconds is None:
        seconds = settings.well_known_default_ttl
    return float(min(max(seconds, settings.well_known_min_ttl), settings.well_known_max_ttl))


def dns_lifetime(result: DnsResult, settings: Settings) -> float:
    if result.status is DnsStatus.NOERROR:
        ttl = float(result.ttl) if result.ttl is not None else settings.dns_min_ttl
        return min(max(ttl, settings.dns_min_ttl), settings.dns_max_ttl)
    if result.status.is_negative:
        ttl = float(result.ttl) if result.ttl is not None else settings.dns_negative_ttl
        return min(max(ttl, settings.dns_min_ttl), settings.dns_max_ttl)
    return float(settings.dns_failure_ttl)
