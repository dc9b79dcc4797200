"""The drivers: :class:`Resolver` (blocking) here, and :class:`AsyncResolver` (asyncio)
in :mod:`.aio_resolver`, apart so that blocking programs never import asyncio.

Both are thin loops around :class:`~mxresolve.ResolutionMachine`: take its
requests, hand them to the transports, feed the outcomes back with the time.
What they add is only what needs a process: the transports, a clock, a random
source, one shared cache, single-flight (concurrent resolutions of one name
share one lookup) and a memo of finished resolutions, valid until the earliest
expiry of anything they were built from.
"""

from __future__ import annotations

import dataclasses
import random as _random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import TYPE_CHECKING

from .._core.cache import ResolverCache
from .._core.errors import ConnectError, InvalidSettings, LocalProtocolError, ResolutionError
from .._core.events import (
    NEED_RESULTS,
    DnsQuery,
    DnsResult,
    DnsStatus,
    HttpsFailure,
    HttpsFailureKind,
    HttpsGet,
    Outcome,
    Request,
    Resolution,
    ResolutionFailure,
    Target,
)
from .._core.grammar import ServerName, parse_server_name
from .._core.machine import ResolutionMachine
from .._core.settings import IpPolicy, Settings
from .dns_transport import (
    DnspythonTransport,
    DnsTransport,
)
from .https_transport import (
    H11HttpsTransport,
    HttpsTransport,
)
from .net import (
    ConnectFailed,
    classify_error,
    connect_tcp,
    default_ssl_context,
    own_ssl_context,
)

if TYPE_CHECKING:
    import ssl  # at run time with the first TLS context (net.py): an IP literal never needs it

    # at run time imported only by a resolver given a store
    from .._core.store import CacheStore
    from .sharing import Sharing

__all__ = ["Resolver", "connect_target"]

DEFAULT_REQUEST_TIMEOUT = 10.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0  # connect(): a stream that falls silent this long raises


class _Base:
    """Configuration and the cached path, shared by both drivers."""

    def __init__(
        self,
        *,
        nameservers: Sequence[str] | None,
        cafile: str | None,
        ssl_context: ssl.SSLContext | None,
        allow_ips: Sequence[str] | None,
        deny_ips: Sequence[str] | None,
        settings: Settings | None,
        cache: ResolverCache | None,
        request_timeout: float,
        clock: Callable[[], float],
        random: Callable[[], float] | None,
        max_memo: int,
    ) -> None:
        settings = settings if settings is not None else Settings()
        if allow_ips is not None or deny_ips is not None:
            policy = IpPolicy.from_cidrs(
                allow_ips or (), deny_ips or (), refuse_special=settings.ip_policy.refuse_special
            )
            settings = dataclasses.replace(settings, ip_policy=policy)
        if not isinstance(request_timeout, (int, float)) or not request_timeout > 0:
            raise InvalidSettings(f"request_timeout must be > 0, not {request_timeout!r}")
        if not isinstance(max_memo, int) or max_memo < 0:
            raise InvalidSettings(f"max_memo must be an integer >= 0, not {max_memo!r}")
        self.settings = settings
        self.cache = cache if cache is not None else ResolverCache()
        self._nameservers = nameservers
        # None: the process's shared default context, built on first use (net.py).
        self._own_ssl_context = own_ssl_context(cafile, ssl_context)
        self._request_timeout = float(request_timeout)
        self._clock = clock
        self._random = random if random is not None else _random.Random().random
        self._memo: dict[str, Resolution] = {}
        self._max_memo = max_memo

    @property
    def _ssl_context(self) -> ssl.SSLContext:
        own = self._own_ssl_context
        return own if own is not None else default_ssl_context()

    def _cached(self, server_name: str) -> Resolution | None:
        try:
            hit = self._memo.get(server_name)
        except TypeError:  # unhashable: let the slow path reject it properly
            return None
        if hit is not None and hit.expires_at > self._clock():
            return hit
        return None

    def _remember(self, result: Resolution | ResolutionFailure) -> None:
        # Only successes: a failure's back-off lives in the cache, so a retry is cheap anyway.
        if isinstance(result, Resolution) and self._max_memo and result.expires_at > self._clock():
            if len(self._memo) >= self._max_memo:
                self._memo.pop(next(iter(self._memo)))  # oldest first: dicts keep order
            self._memo[result.server_name] = result

    def _machine(self, server_name: str | ServerName) -> ResolutionMachine:
        return ResolutionMachine(
            server_name,
            now=self._clock(),
            random=self._random,
            cache=self.cache,
            settings=self.settings,
        )

    def _timeout(self, deadline: float) -> float:
        return max(min(self._request_timeout, deadline - time.monotonic()), 0.001)

    def forget(self) -> None:
        """Drop every cached answer (well-known, DNS and finished resolutions)."""
        self.cache.clear()
        self._memo.clear()


def _success(result: Resolution | ResolutionFailure) -> Resolution:
    if isinstance(result, ResolutionFailure):
        raise ResolutionError(result)
    return result


def _transport_failure(request: Request, exc: Exception) -> Outcome:
    # A transport that raises is a bug in it; the resolution still ends cleanly.
    message = f"the transport raised {type(exc).__name__}: {exc}"[:300]
    if isinstance(request, DnsQuery):
        return DnsResult(status=DnsStatus.SERVFAIL, message=message)
    return HttpsFailure(kind=HttpsFailureKind.PROTOCOL_ERROR, message=message)


class Resolver(_Base):
    """Resolves Matrix server names, blocking. Safe to share between threads.

    A resolution's requests (AAAA and A, what the machine asks early) run at once
    on a few threads of its own, up to ``settings.max_concurrent_requests``.

    Args:
        nameservers: ``["IP[:PORT]", ...]`` for every DNS query (SRV, AAAA, A,
            and the well-known host's); default: the system's.
        cafile: PEM file of CAs for every TLS connection; default: certifi's.
        ssl_context: a ready ``SSLContext`` instead of ``cafile``.
        allow_ips / deny_ips: CIDR lists for the IP policy (loopback, private
            and other special addresses are refused unless allowed).
        settings: cache periods, limits and interpretations.
        cache: a :class:`ResolverCache` to share; a new one by default.
        request_timeout: the limit for each DNS query and HTTPS request (s).
        dns, https: transports replacing the dnspython and h11 defaults.
        clock: POSIX time source (``time.time``); random: floats in [0, 1).
        max_memo: finished resolutions kept for the cached path.
        store: a ``mxresolve.stores.CacheStore`` shared with other workers (such as
            ``mxresolve.stores.redis.RedisStore``); the resolver's own cache reads
            through it and writes behind to it (docs/shared-cache.md).
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
        dns: DnsTransport | None = None,
        https: HttpsTransport | None = None,
        clock: Callable[[], float] = time.time,
        random: Callable[[], float] | None = None,
        max_memo: int = 100_000,
        store: CacheStore | None = None,
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
        self._dns: DnsTransport = dns if dns is not None else DnspythonTransport(nameservers)
        self._https: HttpsTransport = (
            https
            if https is not None
            else H11HttpsTransport(
                self._dns, ssl_context=self._own_ssl_context, ip_policy=self.settings.ip_policy
            )
        )
        self._lock = threading.Lock()
        self._inflight: dict[str, Future[Resolution | ResolutionFailure]] = {}
        self._sharing: Sharing | None = None
        if store is not None:
            from .sharing import Sharing  # with the store code: most resolvers have none

            self._sharing = Sharing(store, self.cache, self.settings, self._clock, self._lock)
            self._dns = self._sharing.dns(self._dns)

    def resolve(self, server_name: str) -> Resolution:
        """Resolve ``server_name``; raise :class:`ResolutionError` if it cannot be.

        Raises :class:`InvalidServerName` for a name that does not parse.
        """
        hit = self._cached(server_name)  # the cached path, inlined: it is the hot one
        if hit is not None:
            return hit
        return _success(self.resolve_result(server_name))

    def resolve_result(self, server_name: str) -> Resolution | ResolutionFailure:
        """Like :meth:`resolve`, but a failure is returned as a value (with its trace)."""
        hit = self._cached(server_name)
        if hit is not None:
            return hit
        if not isinstance(server_name, str):
            parse_server_name(server_name)  # raises InvalidServerName, saying what it got
        with self._lock:
            future = self._inflight.get(server_name)
            leader = future is None
            if future is None:
                future = self._inflight[server_name] = Future()
        if not leader:
            return future.result()
        try:
            before = self._sharing.before(server_name) if self._sharing else None
            result = self._run(server_name)
            if self._sharing is not None:
                result = self._sharing.after(before, result)
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            with self._lock:  # eviction iterates the memo: not while another thread adds to it
                self._remember(result)
            future.set_result(result)
            return result
        finally:
            with self._lock:
                self._inflight.pop(server_name, None)

    def _run(self, server_name: str) -> Resolution | ResolutionFailure:
        """The machine's requests, up to ``max_concurrent_requests`` at once.

        A request that is alone (nothing else running, nothing else to start) runs
        in the calling thread; otherwise each runs on a thread of its own, so that
        AAAA and A (and what the machine asks early) cost one round trip, not
        several. With a limit of 1 each runs in the calling thread, in turn.
        """
        deadline = time.monotonic() + self.settings.deadline
        limit = self.settings.max_concurrent_requests
        with self._lock:
            machine = self._machine(server_name)
        running: dict[Future[Outcome], Request] = {}
        while True:
            with self._lock:
                event = machine.next_event() if len(running) < limit else NEED_RESULTS
                ready: list[Request] = []
                while isinstance(event, (DnsQuery, HttpsGet)):
                    ready.append(event)
                    if len(running) + len(ready) >= limit:
                        break
                    event = machine.next_event()
            if isinstance(event, (Resolution, ResolutionFailure)):
                return event  # requests still running are abandoned: they time out alone
            if len(ready) == 1 and not running:
                outcome = self._perform(ready[0], deadline)
                with self._lock:
                    machine.receive(ready[0], outcome, now=self._clock())
                continue
            if ready:
                for request in ready:
                    running[self._start(request, deadline)] = request
                continue
            if not running:
                raise LocalProtocolError("the machine waits, but no request is running")
            done, _ = wait(
                running,
                timeout=max(deadline - time.monotonic(), 0) + 1.0,  # transports time out
                return_when=FIRST_COMPLETED,
            )
            if not done:  # a backstop, as in the asyncio driver
                done = set(running)
            for future in done:
                request = running.pop(future)
                outcome = future.result() if future.done() else _timed_out(request)
                with self._lock:
                    machine.receive(request, outcome, now=self._clock())

    def _start(self, request: Request, deadline: float) -> Future[Outcome]:
        """Perform ``request`` on a thread of its own.

        A daemon thread: a request the resolution no longer waits for (it ended
        first) ends by its own timeout without holding up the interpreter's exit.
        """
        future: Future[Outcome] = Future()
        future.set_running_or_notify_cancel()
        threading.Thread(
            target=lambda: future.set_result(self._perform(request, deadline)),
            name="mxresolve-request",
            daemon=True,
        ).start()
        return future

    def _perform(self, request: Request, deadline: float) -> Outcome:
        try:
            if isinstance(request, DnsQuery):
                return self._dns.query(request, self._timeout(deadline))
            return self._https.fetch(request, self._timeout(deadline))
        except Exception as exc:
            return _transport_failure(request, exc)

    def connect(
        self,
        target: str | Resolution,
        *,
        timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float | None = DEFAULT_READ_TIMEOUT,
    ) -> tuple[ssl.SSLSocket, Target]:
        """Open a verified TLS connection to the first target that accepts one.

        Targets are tried in order; each one's addresses are raced (Happy
        Eyeballs). The certificate is verified for ``tls_server_name`` and SNI
        is sent unless that is an IP address. ``timeout`` bounds each target's
        connection and handshake; the socket returned has ``read_timeout`` as its
        timeout (``None``: block forever). Raises :class:`ConnectError`.
        """
        resolution = target if isinstance(target, Resolution) else self.resolve(target)
        attempts: list[tuple[Target, str]] = []
        for candidate in resolution.targets:
            try:
                tls = connect_target(candidate, self._ssl_context, time.monotonic() + timeout)
            except ConnectFailed as exc:
                attempts.append((candidate, f"{exc.kind.value}: {exc.message}"))
                continue
            tls.settimeout(read_timeout)
            return tls, candidate
        raise ConnectError(resolution, attempts)


def connect_target(target: Target, context: ssl.SSLContext, deadline: float) -> ssl.SSLSocket:
    """TCP to one of ``target``'s addresses (raced), then TLS for its ``tls_server_name``.

    The one place a federation connection is made, shared by ``connect()`` and the
    HTTP-client adapters. Raises :class:`ConnectFailed`; the socket returned blocks.
    """
    raw = connect_tcp(target.addresses, target.port, deadline)
    try:
        raw.settimeout(max(deadline - time.monotonic(), 0.001))
        # server_hostname is the TLS name: ssl sends no SNI for an IP address and then
        # checks the certificate's IP entries, as the spec asks (target.sni is None).
        return context.wrap_socket(raw, server_hostname=target.tls_server_name)
    except OSError as exc:  # ssl.SSLError is an OSError too
        raw.close()
        raise ConnectFailed(classify_error(exc, connecting=True), str(exc)) from exc


def _timed_out(request: Request) -> Outcome:
    if isinstance(request, DnsQuery):
        return DnsResult(status=DnsStatus.TIMEOUT, message="no answer before the deadline")
    return HttpsFailure(kind=HttpsFailureKind.READ_TIMEOUT, message="no answer before the deadline")
