"""``matrix-federation://`` URLs for httpx: ``pip install 'mxresolve[httpx]'``.

::

    client = httpx.Client(transport=MatrixFederationTransport())
    client.get("matrix-federation://example.org/_matrix/key/v2/server")

The transports resolve the server name with a shared :class:`~mxresolve.Resolver`
(or :class:`~mxresolve.AsyncResolver`), then send the request to the first target
that takes it: addresses raced (Happy Eyeballs), Nagle off, SNI
``target.sni``, the certificate verified for ``target.tls_server_name``,
``Host: target.host_header``. None of these is ever taken from the URL.

HTTP/1.1 itself (framing, keep-alive, streaming) is httpcore's, as in httpx's own
transport: one httpcore pool per :class:`~mxresolve.integrations._federation.PoolKey`,
whose network backend makes the verified connection for that key only.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import ssl
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, NoReturn, TypeVar

try:
    import httpcore
    import httpx
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "mxresolve.integrations.httpx needs httpx: pip install 'mxresolve[httpx]'"
    ) from exc

from .._core.errors import ResolutionError
from .._core.events import HttpsFailureKind, Resolution, ResolutionFailure, Target
from .._io.aio_resolver import AsyncResolver, async_connect_target
from .._io.net import ConnectFailed
from .._io.resolver import DEFAULT_CONNECT_TIMEOUT, Resolver, connect_target
from ._federation import (
    SCHEME,
    Attempt,
    Attempts,
    Deadline,
    KeyedPools,
    PoolKey,
    server_name_from_url,
)

__all__ = [
    "AsyncMatrixFederationTransport",
    "FederationConnectError",
    "MatrixFederationTransport",
]

DEFAULT_TOTAL_TIMEOUT = 60.0


class FederationConnectError(httpx.ConnectError):
    """No connection for a ``matrix-federation://`` request: httpx's own ConnectError.

    Attributes:
        failure: the :class:`~mxresolve.ResolutionFailure` (kind, step, trace)
            when the server name did not resolve, else ``None``.
        attempts: every target tried, in order, with why it failed.
    """

    def __init__(
        self,
        message: str,
        *,
        request: httpx.Request,
        failure: ResolutionFailure | None = None,
        attempts: tuple[Attempt, ...] = (),
    ) -> None:
        super().__init__(message, request=request)
        self.failure = failure
        self.attempts = attempts


# --- httpcore exceptions, mapped once, at the edge -------------------------------------

_EXCEPTIONS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


def _httpx_type(exc: Exception) -> type[httpx.TransportError]:
    for core, mapped in _EXCEPTIONS:
        if isinstance(exc, core):
            return mapped
    return httpx.TransportError


@contextlib.contextmanager
def _mapped(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except httpcore.UnsupportedProtocol as exc:
        raise httpx.UnsupportedProtocol(str(exc), request=request) from exc
    except tuple(core for core, _ in _EXCEPTIONS) as exc:
        raise _httpx_type(exc)(str(exc), request=request) from exc


# --- failover: one decision for both transports ------------------------------------------

_TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    httpcore.UnsupportedProtocol,
    *(core for core, _ in _EXCEPTIONS),
)


def _attempt_failed(
    attempts: Attempts, target: Target, request: httpx.Request, exc: Exception
) -> None:
    """Record a failed attempt; return to try the next target, or raise the client's error.

    A connection that could not be made moves on. Once the request may have left, only an
    idempotent method the caller allows to be retried moves on (``Attempts.may_continue``).
    """
    if isinstance(exc, (httpcore.ConnectError, httpcore.ConnectTimeout)):
        attempts.failed(target, str(exc), request_sent=False)
        return
    if isinstance(exc, (httpcore.PoolTimeout, httpcore.UnsupportedProtocol)):
        with _mapped(request):
            raise exc
    attempts.failed(target, f"{type(exc).__name__}: {exc}", request_sent=True)
    if attempts.may_continue():
        return
    raise _httpx_type(exc)(str(attempts.error()), request=request) from exc


def _no_target_answered(attempts: Attempts, request: httpx.Request, deadline: Deadline) -> NoReturn:
    if deadline.expired() and not attempts.tried:
        raise httpx.ConnectTimeout("the total timeout ran out before a connection", request=request)
    error = attempts.error()
    raise FederationConnectError(str(error), request=request, attempts=error.attempts)


def _response(
    response: httpcore.Response,
    stream: httpx.SyncByteStream | httpx.AsyncByteStream,
    target: Target,
) -> httpx.Response:
    return httpx.Response(
        status_code=response.status,
        headers=response.headers,
        stream=stream,
        extensions={**response.extensions, "mxresolve.target": target},
    )


# --- the request, as the target needs it ------------------------------------------------


def _server_name(request: httpx.Request) -> str:
    url = str(request.url)
    authority = request.url.netloc.decode("ascii")
    return server_name_from_url(url, authority).text


def _core_request(
    request: httpx.Request, target: Target, deadline: Deadline
) -> tuple[httpcore.Request, dict[str, float | None]]:
    """The httpcore request for one target: its Host header, the timeouts cut to the deadline.

    The URL only names the pool's origin (the pool has one): the connection is the
    backend's, made for the target's addresses and certificate name.
    """
    headers = [(b"Host", target.host_header.encode("ascii"))]
    headers += [(k, v) for k, v in request.headers.raw if k.lower() != b"host"]
    asked = dict(request.extensions.get("timeout", {}))
    timeouts = {k: deadline.clamp(asked.get(k)) for k in ("connect", "read", "write", "pool")}
    extensions = {k: v for k, v in request.extensions.items() if k != "timeout"}
    extensions["timeout"] = timeouts  # httpcore reads it before every read and write
    core = httpcore.Request(
        method=request.method,
        url=httpcore.URL(
            scheme=b"http",  # TLS is already up: the backend made it for this target
            host=target.host.encode("ascii"),
            port=target.port,
            target=request.url.raw_path,
        ),
        headers=headers,
        content=request.stream,
        extensions=extensions,
    )
    return core, timeouts


def _refresh(timeouts: dict[str, float | None], asked: dict[str, Any], deadline: Deadline) -> None:
    """Cut the read timeout of a streaming body to what is left of the total deadline."""
    if deadline.expired():
        raise httpcore.ReadTimeout("the total timeout of the request ran out")
    timeouts["read"] = deadline.clamp(asked.get("read"))


def _total(request: httpx.Request, default: float | None) -> Deadline:
    total = request.extensions.get("total_timeout", default)
    return Deadline(total)


def _failure_message(failure: ResolutionFailure) -> str:
    step = "" if failure.step is None else f" (step {failure.step.value})"
    return f"{failure.server_name}: cannot resolve{step}: {failure.kind.value}: {failure.message}"


def _connect_failed(exc: ConnectFailed) -> Exception:
    text = f"{exc.kind.value}: {exc.message}"
    if exc.kind is HttpsFailureKind.CONNECT_TIMEOUT:
        return httpcore.ConnectTimeout(text)
    return httpcore.ConnectError(text)


def _unsupported(transport: str, request: httpx.Request) -> str:
    if not request.url.scheme:  # httpx reads "matrix-federation:///path" as a relative URL
        return f"{request.url!s} has no scheme or server name: use {SCHEME}://SERVER_NAME/path"
    return (
        f"{transport} handles {SCHEME}:// URLs only, not {request.url.scheme}:// "
        "(give it a fallback= transport, or mount it)"
    )


def _replayable(request: httpx.Request) -> bool:
    return isinstance(request.stream, httpx.ByteStream)


# --- what both transports share: their settings and every decision ----------------------


def _unresolved(exc: ResolutionError, request: httpx.Request) -> FederationConnectError:
    return FederationConnectError(
        _failure_message(exc.failure), request=request, failure=exc.failure
    )


def _tries(
    attempts: Attempts, request: httpx.Request, deadline: Deadline
) -> Iterator[tuple[Target, httpcore.Request, dict[str, float | None]]]:
    """The targets to try in order, each with its httpcore request, while time is left."""
    for target in attempts.targets():
        if deadline.expired():
            return
        yield (target, *_core_request(request, target, deadline))


S = TypeVar("S", Iterable[bytes], AsyncIterable[bytes])


class _StreamState(Generic[S]):
    """A response body from httpcore, its timeouts refreshed from the deadline before each read."""

    def __init__(
        self,
        request: httpx.Request,
        stream: S,
        timeouts: dict[str, float | None],
        deadline: Deadline,
    ) -> None:
        self._request = request
        self._stream: S = stream
        self._timeouts = timeouts
        self._asked = dict(request.extensions.get("timeout", {}))
        self._deadline = deadline


R = TypeVar("R", bound="Resolver | AsyncResolver")
F = TypeVar("F", bound="httpx.BaseTransport | httpx.AsyncBaseTransport")
P = TypeVar("P", bound="httpcore.ConnectionPool | httpcore.AsyncConnectionPool")


@dataclass(frozen=True, slots=True)
class _Options:
    """A transport's settings for each request and each pool, as its constructor took them."""

    total_timeout: float | None
    retry_after_send: bool
    max_connections: int
    keepalive_expiry: float


class _TransportBase(Generic[R, F, P]):
    """The options and decisions both transports share; each adds only its calls."""

    _name: str
    _make_pool: Callable[..., P]
    _make_backend: Callable[
        [Target, ssl.SSLContext], httpcore.NetworkBackend | httpcore.AsyncNetworkBackend
    ]

    def __init__(self, resolver: R, fallback: F | None, options: _Options, max_pools: int) -> None:
        self.resolver = resolver
        self._fallback = fallback
        self._options = options
        self._pools: KeyedPools[P] = KeyedPools(max_pools)

    def _fallback_for(self, request: httpx.Request) -> F:
        """The transport for a URL of another scheme, or the client's error without one."""
        if self._fallback is None:
            raise httpx.UnsupportedProtocol(_unsupported(self._name, request), request=request)
        return self._fallback

    def _begin(self, request: httpx.Request) -> tuple[str, Deadline]:
        """The server name the request is for, and its total deadline (from now)."""
        return _server_name(request), _total(request, self._options.total_timeout)

    def _attempts(self, request: httpx.Request, resolution: Resolution) -> Attempts:
        return Attempts(
            resolution, request.method, self._options.retry_after_send, _replayable(request)
        )

    def _get_pool(self, target: Target) -> tuple[P, list[P]]:
        """The target's pool (made on first use) and the pools evicted for it, to close."""
        return self._pools.get(
            PoolKey.for_target(target),
            lambda: self._make_pool(
                max_connections=self._options.max_connections,
                keepalive_expiry=self._options.keepalive_expiry,
                network_backend=self._make_backend(target, self.resolver._ssl_context),
            ),
        )


# --- sync -------------------------------------------------------------------------------


class _SocketStream(httpcore.NetworkStream):
    """A verified TLS socket, in httpcore's stream interface."""

    def __init__(self, sock: ssl.SSLSocket, target: Target) -> None:
        self._sock = sock
        self._target = target

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            self._sock.settimeout(timeout)
            return self._sock.recv(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(str(exc) or "read timed out") from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            self._sock.settimeout(timeout)
            self._sock.sendall(buffer)
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(str(exc) or "write timed out") from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc)) from exc

    def close(self) -> None:
        self._sock.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.UnsupportedProtocol("the federation connection is TLS already")

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._sock
        if info == "socket":
            return self._sock
        if info == "server_addr":
            return self._sock.getpeername()
        if info == "client_addr":
            return self._sock.getsockname()
        if info == "mxresolve.target":
            return self._target
        if info == "is_readable":  # data or EOF on an idle connection: not reusable
            if self._sock.pending():
                return True
            with selectors.DefaultSelector() as selector:
                selector.register(self._sock, selectors.EVENT_READ)
                return bool(selector.select(0))
        return None


class _Backend(httpcore.NetworkBackend):
    """Connects to one target only, whatever host httpcore asks for."""

    def __init__(self, target: Target, context: ssl.SSLContext) -> None:
        self._target = target
        self._context = context

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        limit = DEFAULT_CONNECT_TIMEOUT if timeout is None else timeout
        try:
            sock = connect_target(self._target, self._context, time.monotonic() + limit)
        except ConnectFailed as exc:
            raise _connect_failed(exc) from exc
        return _SocketStream(sock, self._target)


class _ResponseStream(_StreamState[Iterable[bytes]], httpx.SyncByteStream):
    def __iter__(self) -> Iterator[bytes]:
        with _mapped(self._request):
            iterator = iter(self._stream)
            while True:
                _refresh(self._timeouts, self._asked, self._deadline)
                try:
                    chunk = next(iterator)
                except StopIteration:
                    return
                yield chunk

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            with _mapped(self._request):
                close()


class MatrixFederationTransport(
    _TransportBase[Resolver, httpx.BaseTransport, httpcore.ConnectionPool], httpx.BaseTransport
):
    """An httpx transport for ``matrix-federation://SERVER_NAME/path`` URLs.

    Args:
        resolver: the :class:`~mxresolve.Resolver` to share (its cache, IP policy,
            CAs and settings); a default one when ``None``.
        fallback: the transport for any other scheme (e.g. ``httpx.HTTPTransport()``);
            without one, other schemes raise ``httpx.UnsupportedProtocol``. Mounting
            (``mounts={"matrix-federation://": ...}``) is the other way to mix them.
        total_timeout: seconds from the start of a request to the last byte of its
            response, resolution included (``None``: no total limit); a request's
            ``extensions={"total_timeout": ...}`` overrides it. httpx's own
            ``timeout=`` still bounds each connect, read, write and pool wait.
        retry_after_send: send an idempotent request (GET, PUT, ...) with a
            replayable body to the next target even when it failed after some of it
            was sent. Off by default: the server may have acted on it.
        max_connections: per pool key (address, port, SNI, certificate name).
        keepalive_expiry: seconds an idle connection is kept.
        max_pools: pool keys kept; the least recently used pool is closed past it.
    """

    _name = "MatrixFederationTransport"
    _make_pool = httpcore.ConnectionPool
    _make_backend = _Backend

    def __init__(
        self,
        resolver: Resolver | None = None,
        *,
        fallback: httpx.BaseTransport | None = None,
        total_timeout: float | None = DEFAULT_TOTAL_TIMEOUT,
        retry_after_send: bool = False,
        max_connections: int = 10,
        keepalive_expiry: float = 5.0,
        max_pools: int = 1000,
    ) -> None:
        options = _Options(total_timeout, retry_after_send, max_connections, keepalive_expiry)
        super().__init__(
            resolver if resolver is not None else Resolver(), fallback, options, max_pools
        )
        self._lock = threading.Lock()  # an httpx.Client may be shared between threads

    def _pool(self, target: Target) -> httpcore.ConnectionPool:
        with self._lock:
            pool, evicted = self._get_pool(target)
        for old in evicted:
            old.close()
        return pool

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme != SCHEME:
            return self._fallback_for(request).handle_request(request)
        server_name, deadline = self._begin(request)
        try:
            resolution = self.resolver.resolve(server_name)
        except ResolutionError as exc:
            raise _unresolved(exc, request) from exc
        attempts = self._attempts(request, resolution)
        for target, core, timeouts in _tries(attempts, request, deadline):
            try:
                response = self._pool(target).handle_request(core)
            except _TRANSPORT_ERRORS as exc:
                _attempt_failed(attempts, target, request, exc)
                continue
            assert isinstance(response.stream, Iterable)
            stream = _ResponseStream(request, response.stream, timeouts, deadline)
            return _response(response, stream, target)
        _no_target_answered(attempts, request, deadline)

    def close(self) -> None:
        with self._lock:
            pools = self._pools.drain()
        for pool in pools:
            pool.close()
        if self._fallback is not None:
            self._fallback.close()


# --- asyncio ----------------------------------------------------------------------------


class _AsyncStream(httpcore.AsyncNetworkStream):
    """A verified TLS stream on asyncio, in httpcore's stream interface."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: Target
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._target = target

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return await asyncio.wait_for(self._reader.read(max_bytes), timeout)
        except asyncio.TimeoutError as exc:
            raise httpcore.ReadTimeout("read timed out") from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            self._writer.write(buffer)
            await asyncio.wait_for(self._writer.drain(), timeout)
        except asyncio.TimeoutError as exc:
            raise httpcore.WriteTimeout("write timed out") from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc)) from exc

    async def aclose(self) -> None:
        self._writer.close()
        # A peer that never answers the TLS close must not hold us up, nor keep the socket.
        try:
            await asyncio.wait_for(self._writer.wait_closed(), 0.5)
        except Exception:
            self._writer.transport.abort()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.UnsupportedProtocol("the federation connection is TLS already")

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._writer.get_extra_info("ssl_object")
        if info == "socket":
            return self._writer.get_extra_info("socket")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "mxresolve.target":
            return self._target
        if info == "is_readable":  # the loop reads for us: EOF or a closing transport
            return self._reader.at_eof() or self._writer.is_closing()
        return None


class _AsyncBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, target: Target, context: ssl.SSLContext) -> None:
        self._target = target
        self._context = context

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        limit = DEFAULT_CONNECT_TIMEOUT if timeout is None else timeout
        try:
            reader, writer = await async_connect_target(
                self._target, self._context, time.monotonic() + limit, read_timeout=None
            )
        except ConnectFailed as exc:
            raise _connect_failed(exc) from exc
        return _AsyncStream(reader, writer, self._target)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _AsyncResponseStream(_StreamState[AsyncIterable[bytes]], httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped(self._request):
            iterator = self._stream.__aiter__()
            while True:
                _refresh(self._timeouts, self._asked, self._deadline)
                try:
                    chunk = await iterator.__anext__()
                except StopAsyncIteration:
                    return
                yield chunk

    async def aclose(self) -> None:
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            with _mapped(self._request):
                await aclose()


class AsyncMatrixFederationTransport(
    _TransportBase[AsyncResolver, httpx.AsyncBaseTransport, httpcore.AsyncConnectionPool],
    httpx.AsyncBaseTransport,
):
    """The asyncio form of :class:`MatrixFederationTransport` (same arguments), for
    ``httpx.AsyncClient``; it shares an :class:`~mxresolve.AsyncResolver`. asyncio only."""

    _name = "AsyncMatrixFederationTransport"
    _make_pool = httpcore.AsyncConnectionPool
    _make_backend = _AsyncBackend

    def __init__(
        self,
        resolver: AsyncResolver | None = None,
        *,
        fallback: httpx.AsyncBaseTransport | None = None,
        total_timeout: float | None = DEFAULT_TOTAL_TIMEOUT,
        retry_after_send: bool = False,
        max_connections: int = 10,
        keepalive_expiry: float = 5.0,
        max_pools: int = 1000,
    ) -> None:
        options = _Options(total_timeout, retry_after_send, max_connections, keepalive_expiry)
        super().__init__(
            resolver if resolver is not None else AsyncResolver(), fallback, options, max_pools
        )

    async def _pool(self, target: Target) -> httpcore.AsyncConnectionPool:
        pool, evicted = self._get_pool(target)
        for old in evicted:
            await old.aclose()
        return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme != SCHEME:
            return await self._fallback_for(request).handle_async_request(request)
        server_name, deadline = self._begin(request)
        try:
            resolution = await asyncio.wait_for(self.resolver.resolve(server_name), deadline.left())
        except ResolutionError as exc:
            raise _unresolved(exc, request) from exc
        except asyncio.TimeoutError as exc:
            raise httpx.ConnectTimeout(
                f"{server_name}: the total timeout ran out while resolving", request=request
            ) from exc
        attempts = self._attempts(request, resolution)
        for target, core, timeouts in _tries(attempts, request, deadline):
            try:
                response = await (await self._pool(target)).handle_async_request(core)
            except _TRANSPORT_ERRORS as exc:
                _attempt_failed(attempts, target, request, exc)
                continue
            assert isinstance(response.stream, AsyncIterable)
            stream = _AsyncResponseStream(request, response.stream, timeouts, deadline)
            return _response(response, stream, target)
        _no_target_answered(attempts, request, deadline)

    async def aclose(self) -> None:
        for pool in self._pools.drain():
            await pool.aclose()
        if self._fallback is not None:
            await self._fallback.aclose()
