"""The asyncio driver, :class:`AsyncResolver`, and asyncio connections to a target.

The asyncio half of :mod:`.resolver`, apart so that blocking programs never
import asyncio. The configuration, the cached path and the transport-failure
mapping are :class:`~.resolver._Base`'s, shared with :class:`~.resolver.Resolver`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .._core.cache import ResolverCache
from .._core.errors import ConnectError
from .._core.events import (
    NEED_RESULTS,
    DnsQuery,
    HttpsGet,
    Outcome,
    Request,
    Resolution,
    ResolutionFailure,
    Target,
)
from .._core.grammar import parse_server_name
from .._core.machine import ResolutionMachine
from .._core.settings import Settings
from .aio_dns_transport import AsyncDnspythonTransport
from .aio_https_transport import AsyncH11HttpsTransport
from .aio_net import async_connect_tcp, settle
from .dns_transport import AsyncDnsTransport
from .https_transport import AsyncHttpsTransport
from .net import ConnectFailed, classify_error
from .resolver import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT,
    _Base,
    _success,
    _timed_out,
    _transport_failure,
)

if TYPE_CHECKING:  # at run time imported only by a resolver given a store
    from .._core.store import AsyncCacheStore
    from .sharing import AsyncSharing

__all__ = ["AsyncResolver", "TimeoutStreamReader", "async_connect_target", "async_open_target"]

_P = TypeVar("_P", bound=asyncio.BaseProtocol)

_STREAM_LIMIT = 2**16  # asyncio.open_connection's default buffer limit


class AsyncResolver(_Base):
    """Resolves Matrix server names on asyncio. Use from one event loop.

    Takes the same arguments as :class:`Resolver` (with asyncio transports and an
    :class:`AsyncCacheStore`). The requests the machine hands out (AAAA and A,
    several SRV targets, what it asks early) run concurrently, up to
    ``settings.max_concurrent_requests``.
    """

    def __init__(
        self,
        *,
        nameservers: Sequence[str] | None = None,
        cafile: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        allow_ips: Sequence[str] | None = None,
        deny_ips: Sequence[str] | None = None,
        settings: Settings | None = None,
        cache: ResolverCache | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        dns: AsyncDnsTransport | None = None,
        https: AsyncHttpsTransport | None = None,
        clock: Callable[[], float] = time.time,
        random: Callable[[], float] | None = None,
        max_memo: int = 100_000,
        store: AsyncCacheStore | None = None,
    ) -> None:
        super().__init__(
            nameservers=nameservers,
            cafile=cafile,
            ssl_context=ssl_context,
            allow_ips=allow_ips,
            deny_ips=deny_ips,
            settings=settings,
            cache=cache,
            request_timeout=request_timeout,
            clock=clock,
            random=random,
            max_memo=max_memo,
        )
        self._dns: AsyncDnsTransport = (
            dns if dns is not None else AsyncDnspythonTransport(nameservers)
        )
        self._https: AsyncHttpsTransport = (
            https
            if https is not None
            else AsyncH11HttpsTransport(
                self._dns, ssl_context=self._own_ssl_context, ip_policy=self.settings.ip_policy
            )
        )
        self._inflight: dict[str, asyncio.Future[Resolution | ResolutionFailure]] = {}
        self._sharing: AsyncSharing | None = None
        if store is not None:
            from .sharing import AsyncSharing  # with the store code: most resolvers have none

            self._sharing = AsyncSharing(store, self.cache, self.settings, self._clock, None)
            self._dns = self._sharing.dns(self._dns)

    async def resolve(self, server_name: str) -> Resolution:
        """Resolve ``server_name``; raise :class:`ResolutionError` if it cannot be."""
        hit = self._cached(server_name)  # the cached path, inlined: it is the hot one
        if hit is not None:
            return hit
        return _success(await self.resolve_result(server_name))

    async def resolve_result(self, server_name: str) -> Resolution | ResolutionFailure:
        """Like :meth:`resolve`, but a failure is returned as a value (with its trace)."""
        hit = self._cached(server_name)
        if hit is not None:
            return hit
        if not isinstance(server_name, str):
            parse_server_name(server_name)  # raises InvalidServerName, saying what it got
        future = self._inflight.get(server_name)
        if future is not None:
            return await asyncio.shield(future)
        machine = self._machine(server_name)  # raises InvalidServerName before any I/O
        future = asyncio.get_running_loop().create_future()
        self._inflight[server_name] = future
        try:
            before = await self._sharing.before(server_name) if self._sharing else None
            if before is not None:  # the machine read the cache as it started: start it again
                machine = self._machine(server_name)
            result = await self._run(machine)
            if self._sharing is not None:
                result = await self._sharing.after(before, result)
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: no "never retrieved" warning if unshared
            raise
        else:
            self._remember(result)
            future.set_result(result)
            return result
        finally:
            self._inflight.pop(server_name, None)

    async def _run(self, machine: ResolutionMachine) -> Resolution | ResolutionFailure:
        deadline = time.monotonic() + self.settings.deadline
        limit = self.settings.max_concurrent_requests
        loop = asyncio.get_running_loop()
        running: dict[asyncio.Task[Outcome], Request] = {}
        # Finished tasks queue here and wake the loop below through one future: cheaper
        # than asyncio.wait(), which hooks and unhooks every running task on each pass.
        finished: list[asyncio.Task[Outcome]] = []
        wake: asyncio.Future[None] | None = None

        def on_done(task: asyncio.Task[Outcome]) -> None:
            finished.append(task)
            if wake is not None:
                settle(wake, None)

        try:
            while True:
                event = machine.next_event() if len(running) < limit else NEED_RESULTS
                if isinstance(event, (DnsQuery, HttpsGet)):
                    task = loop.create_task(self._perform(event, deadline))
                    task.add_done_callback(on_done)
                    running[task] = event
                    continue
                if isinstance(event, (Resolution, ResolutionFailure)):
                    return event
                if not finished:
                    # NEED_RESULTS: transports honour their own timeouts; +1 s is a backstop.
                    wake = loop.create_future()
                    backstop = loop.call_later(
                        max(deadline - time.monotonic(), 0) + 1.0, settle, wake, None
                    )
                    try:
                        await wake
                    finally:
                        backstop.cancel()
                        wake = None
                    if not finished:  # the backstop fired
                        for task, request in list(running.items()):
                            task.cancel()
                            del running[task]
                            machine.receive(request, _timed_out(request), now=self._clock())
                        continue
                done, finished[:] = finished[:], []
                for task in done:
                    if task in running:  # not one the backstop already gave up on
                        machine.receive(running.pop(task), task.result(), now=self._clock())
        finally:
            for task in running:
                task.remove_done_callback(on_done)
                task.cancel()

    async def _perform(self, request: Request, deadline: float) -> Outcome:
        try:
            if isinstance(request, DnsQuery):
                return await self._dns.query(request, self._timeout(deadline))
            return await self._https.fetch(request, self._timeout(deadline))
        except Exception as exc:
            return _transport_failure(request, exc)

    async def connect(
        self,
        target: str | Resolution,
        *,
        timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float | None = DEFAULT_READ_TIMEOUT,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Target]:
        """The asyncio form of :meth:`Resolver.connect`: (reader, writer, target).

        Every read on the reader raises :class:`TimeoutError` when no data comes
        for ``read_timeout`` seconds (``None``: wait forever).
        """
        resolution = target if isinstance(target, Resolution) else await self.resolve(target)
        attempts: list[tuple[Target, str]] = []
        for candidate in resolution.targets:
            try:
                reader, writer = await async_connect_target(
                    candidate,
                    self._ssl_context,
                    time.monotonic() + timeout,
                    read_timeout=read_timeout,
                )
            except ConnectFailed as exc:
                attempts.append((candidate, f"{exc.kind.value}: {exc.message}"))
                continue
            return reader, writer, candidate
        raise ConnectError(resolution, attempts)


class TimeoutStreamReader(asyncio.StreamReader):
    """A StreamReader whose every read gives up after ``read_timeout`` seconds of silence."""

    def __init__(self, read_timeout: float | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.read_timeout = read_timeout

    async def read(self, n: int = -1) -> bytes:
        return await asyncio.wait_for(super().read(n), self.read_timeout)

    async def readline(self) -> bytes:
        return await asyncio.wait_for(super().readline(), self.read_timeout)

    async def readexactly(self, n: int) -> bytes:
        return await asyncio.wait_for(super().readexactly(n), self.read_timeout)

    async def readuntil(self, separator: Any = b"\n") -> bytes:  # bytes, or a tuple (3.13+)
        return await asyncio.wait_for(super().readuntil(separator), self.read_timeout)


async def async_open_target(
    target: Target,
    context: ssl.SSLContext,
    deadline: float,
    protocol_factory: Callable[[], _P],
) -> tuple[asyncio.Transport, _P]:
    """The asyncio form of :func:`connect_target`, for any protocol: (transport, protocol)."""
    raw = await async_connect_tcp(target.addresses, target.port, deadline)
    loop = asyncio.get_running_loop()
    left = max(deadline - time.monotonic(), 0.001)
    try:
        # Our own limit, so that a silent peer is a timeout (asyncio's own handshake
        # timeout, a second later as a backstop, reports an aborted connection).
        transport, protocol = await asyncio.wait_for(
            loop.create_connection(
                protocol_factory,
                sock=raw,
                ssl=context,
                server_hostname=target.tls_server_name,
                ssl_handshake_timeout=left + 1.0,
            ),
            left,
        )
    except (OSError, ssl.SSLError, asyncio.TimeoutError) as exc:
        with contextlib.suppress(OSError):
            raw.close()
        why = "the TLS handshake timed out" if isinstance(exc, asyncio.TimeoutError) else str(exc)
        raise ConnectFailed(classify_error(exc, connecting=True), why) from exc
    assert isinstance(transport, asyncio.Transport)
    return transport, protocol


async def async_connect_target(
    target: Target,
    context: ssl.SSLContext,
    deadline: float,
    *,
    read_timeout: float | None = DEFAULT_READ_TIMEOUT,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """:func:`async_open_target` as asyncio streams: (reader, writer) over verified TLS."""
    loop = asyncio.get_running_loop()
    reader = TimeoutStreamReader(read_timeout, limit=_STREAM_LIMIT, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await async_open_target(target, context, deadline, lambda: protocol)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)
