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
    PendingQuery,
    two_phase,
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
    import selectors  # at run time with the first query sent (_Requests.add)
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


class _Flight:
    """A resolution under way, which other threads resolving the same name wait for."""

    __slots__ = ("_done", "error", "result")

    def __init__(self) -> None:
        self._done = threading.Event()
        self.result: Resolution | ResolutionFailure | None = None
        self.error: BaseException | None = None

    def settle(
        self, result: Resolution | ResolutionFailure | None, error: BaseException | None = None
    ) -> None:
        self.result, self.error = result, error
        self._done.set()

    def wait(self) -> Resolution | ResolutionFailure:
        self._done.wait()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class Resolver(_Base):
    """Resolves Matrix server names, blocking. Safe to share between threads.

    A resolution's requests (AAAA and A, what the machine asks early) overlap, up to
    ``settings.max_concurrent_requests`` at once, in the calling thread: the built-in
    DNS transport's queries are sent together and their replies collected as they
    come; HTTPS fetches and a custom DNS transport's queries run in turn meanwhile.

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
        self._inflight: dict[str, _Flight] = {}
        self._sharing: Sharing | None = None
        if store is not None:
            from .sharing import Sharing  # with the store code: most resolvers have none

            self._sharing = Sharing(store, self.cache, self.settings, self._clock, self._lock)
            self._dns = self._sharing.dns(self._dns)
        self._two_phase = two_phase(self._dns)

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
            flight = self._inflight.get(server_name)
            leader = flight is None
            if flight is None:
                flight = self._inflight[server_name] = _Flight()
        if not leader:
            return flight.wait()
        try:
            before = self._sharing.before(server_name) if self._sharing else None
            result = self._run(server_name)
            if self._sharing is not None:
                result = self._sharing.after(before, result)
        except BaseException as exc:
            flight.settle(None, exc)
            raise
        else:
            with self._lock:  # eviction iterates the memo: not while another thread adds to it
                self._remember(result)
            flight.settle(result)
            return result
        finally:
            with self._lock:
                self._inflight.pop(server_name, None)

    def _run(self, server_name: str) -> Resolution | ResolutionFailure:
        """The machine's requests, up to ``max_concurrent_requests`` at once, in this thread.

        DNS queries the transport can start (the built-in one's fast path) are all sent
        at once and their replies collected as they come in; a request that can only
        block (an HTTPS fetch, a query on a custom transport) runs in turn meanwhile.
        The machine is asked for new requests after every outcome.
        """
        deadline = time.monotonic() + self.settings.deadline
        limit = self.settings.max_concurrent_requests
        with self._lock:
            machine = self._machine(server_name)
        requests = _Requests(self, deadline)
        try:
            while True:
                with self._lock:
                    event = machine.next_event() if len(requests) < limit else NEED_RESULTS
                    ready: list[Request] = []
                    while isinstance(event, (DnsQuery, HttpsGet)):
                        ready.append(event)
                        if len(requests) + len(ready) >= limit:
                            break
                        event = machine.next_event()
                if isinstance(event, (Resolution, ResolutionFailure)):
                    return event  # what is still out or not yet performed is dropped
                for request in ready:
                    requests.add(request)
                request, outcome = requests.next_outcome()
                with self._lock:
                    machine.receive(request, outcome, now=self._clock())
        finally:
            requests.close()

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


class _Requests:
    """One resolution's requests between being handed out and their outcome.

    Queries the DNS transport can start are sent at once and wait in their sockets,
    watched by one selector; the rest wait here to be performed one at a time.
    """

    def __init__(self, resolver: Resolver, deadline: float) -> None:
        self._resolver = resolver
        self._deadline = deadline
        self._dns = resolver._two_phase
        self._selector: selectors.BaseSelector | None = None
        self._started: dict[int, PendingQuery] = {}  # by the file descriptor it waits on
        self._waiting: list[tuple[Request, PendingQuery | None]] = []

    def __len__(self) -> int:
        return len(self._started) + len(self._waiting)

    def add(self, request: Request) -> None:
        pending: PendingQuery | None = None
        if self._dns is not None and isinstance(request, DnsQuery):
            try:
                pending = self._dns.start_query(request, self._resolver._timeout(self._deadline))
            except Exception:
                pending = None  # performed in turn, where its failure is reported
            if pending is not None and pending.sock is not None:
                import selectors  # here: a resolution that sends no query needs none (net.py)

                if self._selector is None:
                    # poll(2) where there is one: for a few sockets, nothing to set up
                    kind = getattr(selectors, "PollSelector", selectors.SelectSelector)
                    self._selector = kind()
                fd = pending.sock.fileno()
                self._selector.register(fd, selectors.EVENT_READ)
                self._started[fd] = pending
                return
        self._waiting.append((request, pending))

    def next_outcome(self) -> tuple[Request, Outcome]:
        """The next outcome: a reply already in, else a waiting request performed, else
        the first reply to come in (or the first started query whose wait ran out)."""
        if self._waiting:
            got = self._reply(0.0) if self._started else None
            if got is not None:
                return got
            return self._perform_next()
        while self._started:  # bounded: a query's outcome is due when its wait is over
            wait = min(p.wait_until for p in self._started.values()) - time.monotonic()
            got = self._reply(max(wait, 0.0))
            if got is not None:
                return got
        raise LocalProtocolError("the machine waits, but no request is out")

    def _reply(self, timeout: float) -> tuple[Request, Outcome] | None:
        assert self._selector is not None
        assert self._dns is not None
        ready = [key.fd for key, _ in self._selector.select(timeout)]
        now = time.monotonic()
        ready += [fd for fd, p in self._started.items() if p.wait_until <= now and fd not in ready]
        for fd in ready:
            pending = self._started[fd]
            outcome: Outcome | None
            try:
                outcome = self._dns.poll_query(pending)
            except Exception as exc:
                outcome = _transport_failure(pending.query, exc)
            if outcome is not None:
                del self._started[fd]
                self._selector.unregister(fd)
                pending.close()
                return pending.query, outcome
        return None

    def _perform_next(self) -> tuple[Request, Outcome]:
        # An HTTPS fetch first: DNS replies wait in their sockets meanwhile. Then the
        # newest request: the machine hands out what a step waits for after what it
        # asks early for later steps, so an early question runs only when nothing the
        # resolution waits for is left, and is never run if the resolution ends first.
        fetches = [i for i, (r, _) in enumerate(self._waiting) if isinstance(r, HttpsGet)]
        request, pending = self._waiting.pop(fetches[0] if fetches else -1)
        if pending is None:
            return request, self._resolver._perform(request, self._deadline)
        try:
            assert self._dns is not None
            return request, self._dns.finish_query(pending)
        except Exception as exc:
            return request, _transport_failure(request, exc)

    def close(self) -> None:
        """Close what is still out: its replies are no longer wanted."""
        if self._selector is not None:
            self._selector.close()
        for pending in self._started.values():
            pending.close()
        self._started.clear()
        for _, declined in self._waiting:
            if declined is not None:
                declined.close()
        self._waiting.clear()


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
