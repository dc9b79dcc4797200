"""Keeping a resolver's in-process cache in step with a shared store, around the machine.

The machine reads and writes only the in-process :class:`ResolverCache`. With a
shared store, the driver adds two things, without the machine knowing:

* the well-known entry, read-through and write-behind: before a resolution
  whose step 3 reads a host's well-known, the newer of the local and the shared
  entry is installed locally (:func:`~mxresolve._core.store.reconcile`); after
  it, what the machine wrote is published, a failure counted atomically in the
  store and the store's count installed back;
* DNS answers, through a transport wrapper: a question the machine hands out
  (its local cache had no fresh answer) is asked of the store first, and a
  fresh answer from the network is published.

A resolution that ends in a :class:`Resolution` is valid for at most the store's
``local_max_age`` in the memo, so a worker's view never lags the deployment's
by more than that. The decisions are pure (``mxresolve._core.store``); the
blocking and asyncio shells below only add the calls.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Generator
from functools import partial
from typing import Any, TypeVar

from .._core.cache import ResolverCache, WellKnownEntry
from .._core.errors import InvalidSettings
from .._core.events import (
    DnsQuery,
    DnsResult,
    Resolution,
    ResolutionFailure,
    TraceEvent,
    TraceKind,
)
from .._core.settings import Settings
from .._core.store import (
    AsyncCacheStore,
    CacheStore,
    needs_read,
    reconcile,
    shared_dns_expiry,
    well_known_host,
)
from .dns_transport import (
    AsyncDnsTransport,
    DnsTransport,
    PendingQuery,
    TwoPhaseDnsTransport,
    two_phase,
)

__all__ = ["AsyncSharing", "Sharing"]

_Result = Resolution | ResolutionFailure
T = TypeVar("T")
# A step that yields store calls (no arguments left to give), gets each one's answer
# back, and returns T.
_Steps = Generator[Callable[[], Any], Any, T]


@dataclasses.dataclass(frozen=True, slots=True)
class _Before:
    """What a resolution of one server name started from."""

    host: str
    entry: WellKnownEntry | None
    note: str | None = None  # what the store contributed, for the trace


class _SharingBase:
    _asyncio = False
    _wrong_kind = ""

    def __init__(
        self,
        store: Any,
        cache: ResolverCache,
        settings: Settings,
        clock: Callable[[], float],
        lock: threading.Lock | None,
    ) -> None:
        if not isinstance(store, (CacheStore, AsyncCacheStore)):
            raise InvalidSettings(f"store: {type(store).__name__} is not a cache store")
        if inspect.iscoroutinefunction(store.get_well_known) != self._asyncio:
            raise InvalidSettings(self._wrong_kind)
        self.store = store
        self.cache = cache
        self.settings = settings
        self.clock = clock
        self._lock: contextlib.AbstractContextManager[Any] = (
            lock if lock is not None else contextlib.nullcontext()
        )
        self._checked: OrderedDict[str, float] = OrderedDict()  # host -> last compared
        self._max_checked = cache.well_known_capacity

    def _local(self, host: str) -> WellKnownEntry | None:
        with self._lock:
            return self.cache.well_known(host)

    def _plan(self, server_name: str) -> tuple[str, WellKnownEntry | None, bool] | None:
        """(host, local entry, whether to read the store), or None: no step 3 ahead."""
        host = well_known_host(server_name)
        if host is None:
            return None
        local = self._local(host)
        now = self.clock()
        return (
            host,
            local,
            needs_read(local, self._checked.get(host), now, self.store.local_max_age),
        )

    def _merge(
        self, host: str, local: WellKnownEntry | None, shared: WellKnownEntry | None
    ) -> tuple[_Before, WellKnownEntry | None]:
        install, publish = reconcile(local, shared)
        note = None
        if install is not None:
            what = (
                f"m.server {install.delegation.text!r}"
                if install.delegation is not None
                else f"a failure (consecutive failures: {install.failures})"
            )
            note = (
                f"the well-known entry for {host} came from the shared store: {what}, "
                f"stored {max(self.clock() - install.stored_at, 0):.0f} s ago"
            )
        elif publish is not None:
            note = f"this worker's well-known entry for {host} is newer than the shared one: shared"
        with self._lock:
            if install is not None:
                self.cache.put_well_known(host, install)
            before = self.cache.well_known(host)
            self._checked[host] = self.clock()
            self._checked.move_to_end(host)
            while len(self._checked) > self._max_checked:
                self._checked.popitem(last=False)
        return _Before(host, before, note), publish

    def _written(self, before: _Before | None) -> WellKnownEntry | None:
        """The entry the machine stored during the resolution, if it stored one."""
        if before is None:
            return None
        after = self._local(before.host)
        return after if after is not None and after is not before.entry else None

    def _install(self, host: str, entry: WellKnownEntry | None) -> None:
        if entry is not None:
            with self._lock:
                self.cache.put_well_known(host, entry)

    def _finish(
        self, before: _Before | None, result: _Result, counted: WellKnownEntry | None = None
    ) -> _Result:
        """The result with what the store did in its trace, and kept in the memo no longer
        than a worker may lag the store."""
        first: tuple[str, ...] = () if before is None or before.note is None else (before.note,)
        last: tuple[str, ...] = ()
        if counted is not None:
            last = (
                f"failure counted in the shared store (consecutive failures: {counted.failures})",
            )
        if first or last:
            step = result.step
            result = dataclasses.replace(
                result,
                trace=(
                    *(TraceEvent(step=None, kind=TraceKind.CACHE, message=m) for m in first),
                    *result.trace,
                    *(TraceEvent(step=step, kind=TraceKind.CACHE, message=m) for m in last),
                ),
            )
        limit = self.clock() + self.store.local_max_age
        if isinstance(result, Resolution) and result.expires_at > limit:
            return dataclasses.replace(result, expires_at=limit)
        return result

    # The two steps, written once: each yields the store calls it needs, in order, and
    # gets their answers back; the blocking shell calls them, the asyncio shell awaits them.

    def _before(self, server_name: str) -> _Steps[_Before | None]:
        plan = self._plan(server_name)
        if plan is None:
            return None
        host, local, read = plan
        if not read:
            return _Before(host, local)
        shared = yield partial(self.store.get_well_known, host, self.clock(), self.settings)
        before, publish = self._merge(host, local, shared)
        if publish is not None:
            yield partial(self.store.put_well_known, host, publish, self.clock(), self.settings)
        return before

    def _after(self, before: _Before | None, result: _Result) -> _Steps[_Result]:
        written = self._written(before)
        counted = None
        if written is not None:
            assert before is not None
            if written.delegation is not None:
                yield partial(
                    self.store.put_well_known, before.host, written, self.clock(), self.settings
                )
            else:
                assert written.error is not None
                counted = yield partial(
                    self.store.add_failure,
                    before.host,
                    written.error,
                    unavailable=written.unavailable,
                    now=written.stored_at,
                    settings=self.settings,
                )
                self._install(before.host, counted)
        return self._finish(before, result, counted)

    def _dns_hit(self, query: DnsQuery) -> _Steps[DnsResult | None]:
        """The store's answer to a question the machine hands out, if it has one."""
        hit = yield partial(
            self.store.get_dns, query.qname, query.rdtype, self.clock(), self.settings
        )
        return hit[0] if hit is not None else None

    def _dns_tell(self, query: DnsQuery, result: DnsResult) -> _Steps[DnsResult]:
        """Publish an answer from the network while it is fresh enough to share."""
        now = self.clock()
        expires_at = shared_dns_expiry(result, now, self.settings)
        if expires_at is not None:
            yield partial(self.store.put_dns, query.qname, query.rdtype, result, expires_at, now)
        return result


def _call(steps: _Steps[T]) -> T:
    """Run ``steps``, making each store call it yields."""
    try:
        call = next(steps)
        while True:
            call = steps.send(call())
    except StopIteration as done:
        result: T = done.value
        return result


async def _await(steps: _Steps[T]) -> T:
    """Run ``steps``, awaiting each store call it yields."""
    try:
        call = next(steps)
        while True:
            call = steps.send(await call())
    except StopIteration as done:
        result: T = done.value
        return result


class Sharing(_SharingBase):
    """The blocking shell: :class:`~mxresolve.Resolver` calls it around each resolution."""

    store: CacheStore
    _wrong_kind = "Resolver needs a CacheStore (an AsyncCacheStore is for AsyncResolver)"

    def before(self, server_name: str) -> _Before | None:
        return _call(self._before(server_name))

    def after(self, before: _Before | None, result: _Result) -> _Result:
        return _call(self._after(before, result))

    def dns(self, inner: DnsTransport) -> DnsTransport:
        two = two_phase(inner)
        return _SharedDns(inner, self) if two is None else _TwoPhaseSharedDns(two, self)


class AsyncSharing(_SharingBase):
    """The asyncio shell, for :class:`~mxresolve.AsyncResolver`."""

    store: AsyncCacheStore
    _asyncio = True
    _wrong_kind = "AsyncResolver needs an AsyncCacheStore, such as AsyncRedisStore"

    async def before(self, server_name: str) -> _Before | None:
        return await _await(self._before(server_name))

    async def after(self, before: _Before | None, result: _Result) -> _Result:
        return await _await(self._after(before, result))

    def dns(self, inner: AsyncDnsTransport) -> AsyncDnsTransport:
        return _AsyncSharedDns(inner, self)


class _SharedDns:
    """A DNS transport that asks the shared store before the network, and tells it after."""

    def __init__(self, inner: DnsTransport, sharing: Sharing) -> None:
        self.inner = inner
        self.sharing = sharing

    def query(self, query: DnsQuery, timeout: float) -> DnsResult:
        hit = self._shared(query)
        return hit if hit is not None else self._tell(query, self.inner.query(query, timeout))

    def _shared(self, query: DnsQuery) -> DnsResult | None:
        return _call(self.sharing._dns_hit(query))

    def _tell(self, query: DnsQuery, result: DnsResult) -> DnsResult:
        return _call(self.sharing._dns_tell(query, result))


class _FromStore(PendingQuery):
    """A started query the shared store already answered: nothing was sent."""

    __slots__ = ()


class _TwoPhaseSharedDns(_SharedDns):
    """The same around a transport with the two-phase form, which it keeps."""

    inner: TwoPhaseDnsTransport

    def start_query(self, query: DnsQuery, timeout: float) -> PendingQuery:
        hit = self._shared(query)
        if hit is None:
            return self.inner.start_query(query, timeout)
        pending = _FromStore(query, time.monotonic() + timeout)
        pending.fast = hit
        return pending

    def poll_query(self, pending: PendingQuery) -> DnsResult | None:
        if isinstance(pending, _FromStore):
            return self.finish_query(pending)
        result = self.inner.poll_query(pending)
        return self._tell(pending.query, result) if result is not None else None

    def finish_query(self, pending: PendingQuery) -> DnsResult:
        if isinstance(pending, _FromStore):
            assert isinstance(pending.fast, DnsResult)
            return pending.fast
        return self._tell(pending.query, self.inner.finish_query(pending))


class _AsyncSharedDns:
    """The same for an asyncio DNS transport."""

    def __init__(self, inner: AsyncDnsTransport, sharing: AsyncSharing) -> None:
        self.inner = inner
        self.sharing = sharing

    async def query(self, query: DnsQuery, timeout: float) -> DnsResult:
        hit = await _await(self.sharing._dns_hit(query))
        if hit is not None:
            return hit
        return await _await(self.sharing._dns_tell(query, await self.inner.query(query, timeout)))
