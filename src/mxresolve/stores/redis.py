"""A cache store in Redis (or Valkey), shared by every worker of a deployment.

``pip install mxresolve[redis]``, then::

    from mxresolve import Resolver
    from mxresolve.stores.redis import RedisStore

    store = RedisStore("redis://cache.internal:6379/3", secrets=[os.environ["MXR_SECRET"]])
    resolver = Resolver(store=store)

:class:`AsyncRedisStore` is the same for :class:`~mxresolve.AsyncResolver` (one per
event loop). Keys, values, checks and MACs are ``mxresolve._core.store``'s;
docs/shared-cache.md explains the design and how to deploy it.

Redis is a helper here, never a dependency of a resolution: every call has a
short timeout, and after a failure the store stops calling Redis for a while
(:class:`~mxresolve._core.store.Breaker`), answering "nothing known" at once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.retry
from redis.backoff import NoBackoff
from redis.retry import Retry

from .._core.cache import WellKnownEntry, next_failure
from .._core.errors import InvalidSettings
from .._core.events import DnsResult, RecordType
from .._core.settings import Settings
from .._core.store import Breaker, Decoded, StoreCodec, retain_until

__all__ = ["AsyncRedisStore", "RedisStore", "StoreStats"]

log = logging.getLogger("mxresolve.stores.redis")

DEFAULT_URL = "redis://127.0.0.1:6379/0"
_MAX_ATTEMPTS = 64  # optimistic transactions under contention: each round one writer wins;
# the real bound is time (5 x the call timeout), this only caps a pathological spin
_ERRORS = (redis.RedisError, OSError, asyncio.TimeoutError)


@dataclass
class StoreStats:
    """Counters, for metrics and tests. ``ignored`` entries were refused by the checks."""

    reads: int = 0
    hits: int = 0
    ignored: int = 0
    writes: int = 0
    errors: int = 0
    skipped: int = 0  # calls not made because the breaker was open
    last_problem: str = ""


class _Miss:
    """The answer of a call that did not reach Redis."""


_UNREACHED = _Miss()


class _RedisStoreBase:
    def __init__(
        self,
        *,
        prefix: str,
        secrets: Any,
        timeout: float,
        local_max_age: float,
        breaker_initial: float,
        breaker_max: float,
        max_clock_skew: float,
    ) -> None:
        if not isinstance(timeout, (int, float)) or not 0 < timeout <= 10:
            raise InvalidSettings(f"timeout must be in (0, 10] seconds, not {timeout!r}")
        if not isinstance(local_max_age, (int, float)) or not local_max_age >= 0:
            raise InvalidSettings(f"local_max_age must be >= 0 (or inf), not {local_max_age!r}")
        self.codec = StoreCodec(prefix=prefix, secrets=secrets, max_clock_skew=max_clock_skew)
        self.timeout = float(timeout)
        self.local_max_age = float(local_max_age)
        self.breaker = Breaker(initial=breaker_initial, maximum=breaker_max)
        self.stats = StoreStats()

    def _allowed(self) -> bool:
        if self.breaker.allows(time.monotonic()):
            return True
        self.stats.skipped += 1
        return False

    def _failed(self, exc: BaseException) -> _Miss:
        self.stats.errors += 1
        was_open = self.breaker.is_open
        self.breaker.failed(time.monotonic())
        if not was_open:
            log.warning("shared store unreachable, using the local cache only: %r", exc)
        return _UNREACHED

    def _reached(self) -> None:
        if self.breaker.is_open:
            log.warning("shared store reachable again")
        self.breaker.succeeded()

    def _accept(self, decoded: Decoded, key: str) -> Any:
        self.stats.reads += 1
        if decoded.problem is not None:
            self.stats.ignored += 1
            self.stats.last_problem = f"{key}: {decoded.problem}"
            log.info("ignoring the shared entry %s: %s", key, decoded.problem)
            return None
        if decoded.value is not None:
            self.stats.hits += 1
        return decoded.value

    @staticmethod
    def _px(until: float, now: float) -> int | None:
        """Milliseconds Redis keeps a key (relative: the Redis host's clock may differ)."""
        if not math.isfinite(until):
            return None
        ms = int((until - now) * 1000)
        return ms if ms > 0 else None

    # What a CacheStore call decides around its one Redis call, for both shells: the key
    # to read and what the answer means, or the key, value and lifetime to write (None:
    # the entry is already past keeping, so nothing is written).

    def _well_known_read(
        self, hostname: str, raw: object, now: float, settings: Settings
    ) -> WellKnownEntry | None:
        if raw is _UNREACHED:
            return None
        value: WellKnownEntry | None = self._accept(
            self.codec.decode_well_known(hostname, raw, now, settings),
            self.codec.well_known_key(hostname),
        )
        return value

    def _well_known_write(
        self, hostname: str, entry: WellKnownEntry, now: float, settings: Settings
    ) -> tuple[str, bytes, int] | None:
        px = self._px(retain_until(entry, settings), now)
        if px is None:
            return None
        return (
            self.codec.well_known_key(hostname),
            self.codec.encode_well_known(hostname, entry),
            px,
        )

    def _dns_read(
        self, qname: str, rdtype: RecordType, raw: object, now: float, settings: Settings
    ) -> tuple[DnsResult, float] | None:
        if raw is _UNREACHED:
            return None
        value: tuple[DnsResult, float] | None = self._accept(
            self.codec.decode_dns(qname, rdtype, raw, now, settings),
            self.codec.dns_key(qname, rdtype),
        )
        return value

    def _dns_write(
        self, qname: str, rdtype: RecordType, result: DnsResult, expires_at: float, now: float
    ) -> tuple[str, bytes, int] | None:
        px = self._px(expires_at, now)
        if px is None:
            return None
        return (
            self.codec.dns_key(qname, rdtype),
            self.codec.encode_dns(qname, rdtype, result, expires_at),
            px,
        )

    def _failure_write(
        self,
        hostname: str,
        raw: object,
        error: str,
        unavailable: bool,
        now: float,
        settings: Settings,
    ) -> tuple[WellKnownEntry, bytes, int | None]:
        previous = self._well_known_read(hostname, raw, now, settings)
        entry = next_failure(previous, error, unavailable=unavailable, now=now, settings=settings)
        value = self.codec.encode_well_known(hostname, entry)
        return entry, value, self._px(retain_until(entry, settings), now)

    def _counted(self, hostname: str, entry: WellKnownEntry | None) -> WellKnownEntry | None:
        """The end of an add_failure that reached Redis: None when it gave up on the race."""
        self._reached()
        if entry is None:
            log.warning("gave up counting a failure of %s: the key kept changing", hostname)
        else:
            self.stats.writes += 1
        return entry


def _client_options(timeout: float) -> dict[str, Any]:
    # No retries, no health-check pings: one bounded attempt, then the breaker decides.
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": 0,
    }


class RedisStore(_RedisStoreBase):
    """A :class:`~mxresolve._core.store.CacheStore` in Redis, for :class:`~mxresolve.Resolver`.

    Args:
        url: ``redis://`` or ``rediss://`` (TLS) or ``unix://`` URL of the server.
        client: a ready ``redis.Redis`` instead of ``url`` (its own timeouts and
            retries then apply: keep them short, and turn retries off).
        prefix: the start of every key; give each deployment its own.
        secrets: HMAC keys (>= 16 bytes each). With any, entries are signed with
            the first and only entries signed with one of them are used.
        timeout: the limit on each Redis call, connect included (s).
        local_max_age: how long a resolver uses a well-known entry read from the
            store before it compares it with the store again (s).
        breaker_initial, breaker_max: how long to leave Redis alone after a
            failure (doubling per failure, capped).
        max_clock_skew: how far ahead of ours another host's clock may be (s).
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        client: redis.Redis | None = None,
        prefix: str = "mxresolve",
        secrets: Any = (),
        timeout: float = 0.1,
        local_max_age: float = 60.0,
        breaker_initial: float = 0.5,
        breaker_max: float = 15.0,
        max_clock_skew: float = 5.0,
    ) -> None:
        super().__init__(
            prefix=prefix,
            secrets=secrets,
            timeout=timeout,
            local_max_age=local_max_age,
            breaker_initial=breaker_initial,
            breaker_max=breaker_max,
            max_clock_skew=max_clock_skew,
        )
        self.client: redis.Redis = (
            client
            if client is not None
            else redis.Redis.from_url(
                url, retry=Retry(NoBackoff(), 0), **_client_options(self.timeout)
            )
        )

    def close(self) -> None:
        self.client.close()

    # --- the CacheStore interface ------------------------------------------------------

    def get_well_known(
        self, hostname: str, now: float, settings: Settings
    ) -> WellKnownEntry | None:
        raw = self._get(self.codec.well_known_key(hostname))
        return self._well_known_read(hostname, raw, now, settings)

    def put_well_known(
        self, hostname: str, entry: WellKnownEntry, now: float, settings: Settings
    ) -> None:
        write = self._well_known_write(hostname, entry, now, settings)
        if write is not None:
            self._set(*write)

    def add_failure(
        self, hostname: str, error: str, *, unavailable: bool, now: float, settings: Settings
    ) -> WellKnownEntry | None:
        """One more failure, counted atomically (WATCH/MULTI: a lost race is retried)."""
        if not self._allowed():
            return None
        key = self.codec.well_known_key(hostname)
        give_up = time.monotonic() + 5 * self.timeout
        try:
            with self.client.pipeline() as pipe:
                for _ in range(_MAX_ATTEMPTS):
                    try:
                        pipe.watch(key)  # type: ignore[no-untyped-call]
                        entry, value, px = self._failure_write(
                            hostname, pipe.get(key), error, unavailable, now, settings
                        )
                        pipe.multi()
                        pipe.set(key, value, px=px)
                        pipe.execute()
                    except redis.WatchError:
                        if time.monotonic() > give_up:
                            break
                        continue
                    return self._counted(hostname, entry)
        except _ERRORS as exc:
            self._failed(exc)
            return None
        return self._counted(hostname, None)

    def get_dns(
        self, qname: str, rdtype: RecordType, now: float, settings: Settings
    ) -> tuple[DnsResult, float] | None:
        raw = self._get(self.codec.dns_key(qname, rdtype))
        return self._dns_read(qname, rdtype, raw, now, settings)

    def put_dns(
        self, qname: str, rdtype: RecordType, result: DnsResult, expires_at: float, now: float
    ) -> None:
        write = self._dns_write(qname, rdtype, result, expires_at, now)
        if write is not None:
            self._set(*write)

    # --- calls -------------------------------------------------------------------------

    def _get(self, key: str) -> object:
        if not self._allowed():
            return _UNREACHED
        try:
            raw = self.client.get(key)
        except _ERRORS as exc:
            return self._failed(exc)
        self._reached()
        return raw

    def _set(self, key: str, value: bytes, px: int) -> None:
        if not self._allowed():
            return
        try:
            self.client.set(key, value, px=px)
        except _ERRORS as exc:
            self._failed(exc)
            return
        self._reached()
        self.stats.writes += 1


class AsyncRedisStore(_RedisStoreBase):
    """:class:`RedisStore` for :class:`~mxresolve.AsyncResolver` (``redis.asyncio``).

    Takes the same arguments (``client`` is a ``redis.asyncio.Redis``). Use one
    per event loop, as with any ``redis.asyncio`` client.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        client: redis.asyncio.Redis | None = None,
        prefix: str = "mxresolve",
        secrets: Any = (),
        timeout: float = 0.1,
        local_max_age: float = 60.0,
        breaker_initial: float = 0.5,
        breaker_max: float = 15.0,
        max_clock_skew: float = 5.0,
    ) -> None:
        super().__init__(
            prefix=prefix,
            secrets=secrets,
            timeout=timeout,
            local_max_age=local_max_age,
            breaker_initial=breaker_initial,
            breaker_max=breaker_max,
            max_clock_skew=max_clock_skew,
        )
        self.client: redis.asyncio.Redis = (
            client
            if client is not None
            else redis.asyncio.Redis.from_url(
                url,
                retry=redis.asyncio.retry.Retry(NoBackoff(), 0),
                **_client_options(self.timeout),
            )
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def get_well_known(
        self, hostname: str, now: float, settings: Settings
    ) -> WellKnownEntry | None:
        raw = await self._get(self.codec.well_known_key(hostname))
        return self._well_known_read(hostname, raw, now, settings)

    async def put_well_known(
        self, hostname: str, entry: WellKnownEntry, now: float, settings: Settings
    ) -> None:
        write = self._well_known_write(hostname, entry, now, settings)
        if write is not None:
            await self._set(*write)

    async def add_failure(
        self, hostname: str, error: str, *, unavailable: bool, now: float, settings: Settings
    ) -> WellKnownEntry | None:
        """One more failure, counted atomically (WATCH/MULTI: a lost race is retried)."""
        if not self._allowed():
            return None
        key = self.codec.well_known_key(hostname)

        async def count() -> WellKnownEntry | None:
            async with self.client.pipeline() as pipe:
                for _ in range(_MAX_ATTEMPTS):
                    try:
                        await pipe.watch(key)
                        entry, value, px = self._failure_write(
                            hostname, await pipe.get(key), error, unavailable, now, settings
                        )
                        pipe.multi()  # type: ignore[no-untyped-call]
                        pipe.set(key, value, px=px)
                        await pipe.execute()
                    except redis.WatchError:
                        continue
                    return entry
            return None

        try:
            entry = await asyncio.wait_for(count(), 5 * self.timeout)
        except _ERRORS as exc:
            self._failed(exc)
            return None
        return self._counted(hostname, entry)

    async def get_dns(
        self, qname: str, rdtype: RecordType, now: float, settings: Settings
    ) -> tuple[DnsResult, float] | None:
        raw = await self._get(self.codec.dns_key(qname, rdtype))
        return self._dns_read(qname, rdtype, raw, now, settings)

    async def put_dns(
        self, qname: str, rdtype: RecordType, result: DnsResult, expires_at: float, now: float
    ) -> None:
        write = self._dns_write(qname, rdtype, result, expires_at, now)
        if write is not None:
            await self._set(*write)

    async def _get(self, key: str) -> object:
        if not self._allowed():
            return _UNREACHED
        try:
            # The socket timeout bounds each read; wait_for also bounds connecting.
            raw = await asyncio.wait_for(self.client.get(key), self.timeout * 2)
        except _ERRORS as exc:
            return self._failed(exc)
        self._reached()
        return raw

    async def _set(self, key: str, value: bytes, px: int) -> None:
        if not self._allowed():
            return
        try:
            await asyncio.wait_for(self.client.set(key, value, px=px), self.timeout * 2)
        except _ERRORS as exc:
            self._failed(exc)
            return
        self._reached()
        self.stats.writes += 1
