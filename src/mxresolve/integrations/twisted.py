"""``matrix-federation://`` URLs for Twisted: ``pip install 'mxresolve[twisted]'``.

:class:`MatrixFederationAgent` is an ``IAgent``: a Twisted homeserver can put it
where Synapse puts its ``MatrixFederationAgent``, and wrap it like any agent
(``treq``, ``readBody``, ``RedirectAgent``)::

    agent = MatrixFederationAgent(reactor)
    response = await agent.request(b"GET", b"matrix-federation://example.org/_matrix/key/v2/server")
    body = await readBody(response)

The server name is resolved with a shared, thread-safe :class:`~mxresolve.Resolver`
(in the reactor's thread pool; a name answered from its memo needs no thread).
Each target is tried in order: its addresses raced by ``HostnameEndpoint``
(Happy Eyeballs, fed our addresses rather than a DNS lookup), Nagle off, SNI
``target.sni``, the certificate verified for ``target.tls_server_name`` with
the resolver's own CAs, and ``Host: target.host_header``. The connection counts
as made only once the TLS handshake has completed, so a wrong certificate moves
on to the next target like a refused connection does.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, cast
from urllib.parse import urlsplit

try:
    from OpenSSL import SSL
    from service_identity import CertificateError, VerificationError
    from twisted.internet import defer, error
    from twisted.internet.address import IPv4Address, IPv6Address
    from twisted.internet.endpoints import HostnameEndpoint
    from twisted.internet.interfaces import (
        IHandshakeListener,
        IHostnameResolver,
        IHostResolution,
        IOpenSSLClientConnectionCreator,
        IProtocol,
        IProtocolFactory,
        IReactorPluggableNameResolver,
        IStreamClientEndpoint,
    )
    from twisted.internet.ssl import (
        Certificate,
        TLSVersion,
        optionsForClientTLS,
        trustRootFromCertificates,
    )
    from twisted.internet.threads import deferToThreadPool
    from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
    from twisted.protocols.tls import TLSMemoryBIOFactory
    from twisted.python.failure import Failure
    from twisted.web._newclient import (
        Request,
        RequestNotSent,
        RequestTransmissionFailed,
        ResponseFailed,
        ResponseNeverReceived,
    )
    from twisted.web.client import HTTPConnectionPool
    from twisted.web.error import SchemeNotSupported
    from twisted.web.http_headers import Headers
    from twisted.web.iweb import IAgent, IBodyProducer, IResponse
    from zope.interface import implementer
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "mxresolve.integrations.twisted needs Twisted: pip install 'mxresolve[twisted]'"
    ) from exc

from .._core.errors import ResolutionError
from .._core.events import Resolution, ResolutionFailure, Target
from .._io.net import interleave
from .._io.resolver import DEFAULT_CONNECT_TIMEOUT, Resolver
from ._federation import SCHEME, Attempt, Attempts, PoolKey, server_name_from_url

__all__ = [
    "FederationConnectError",
    "FederationResolutionError",
    "MatrixFederationAgent",
]

DEFAULT_TOTAL_TIMEOUT = 60.0
_SCHEME_BYTES = SCHEME.encode("ascii")


class FederationResolutionError(error.UnknownHostError):
    """The server name did not resolve: Twisted's own ``UnknownHostError`` (a ConnectError).

    ``failure`` is the :class:`~mxresolve.ResolutionFailure` (kind, step, trace).
    """

    def __init__(self, failure: ResolutionFailure) -> None:
        step = "" if failure.step is None else f" (step {failure.step.value})"
        super().__init__(
            string=f"{failure.server_name}: cannot resolve{step}: "
            f"{failure.kind.value}: {failure.message}"
        )
        self.failure: ResolutionFailure | None = failure
        self.attempts: tuple[Attempt, ...] = ()


class FederationConnectError(error.ConnectError):
    """No target took the connection: Twisted's own ConnectError, every attempt in ``attempts``."""

    def __init__(self, attempts: Attempts) -> None:
        found = attempts.error()
        super().__init__(string=str(found))
        self.failure: ResolutionFailure | None = None
        self.attempts: tuple[Attempt, ...] = found.attempts


# --- connecting to one target ---------------------------------------------------------------


@implementer(IHostResolution)
class _Resolution:
    def __init__(self, name: str) -> None:
        self.name = name

    def cancel(self) -> None:
        pass  # answered at once: nothing to cancel


@implementer(IHostnameResolver)
class _TargetAddresses:
    """Answers HostnameEndpoint's lookup with the target's addresses: no second DNS lookup."""

    def __init__(self, target: Target) -> None:
        self._target = target

    def resolveHostName(  # noqa: N802 - Twisted's interface
        self,
        resolutionReceiver: Any,  # noqa: N803 - an IResolutionReceiver
        hostName: str,  # noqa: N803
        portNumber: int = 0,  # noqa: N803
        addressTypes: Any = None,  # noqa: N803
        transportSemantics: str = "TCP",  # noqa: N803
    ) -> Any:
        resolution = _Resolution(hostName)
        resolutionReceiver.resolutionBegan(resolution)
        for address in interleave(self._target.addresses):  # RFC 8305 order
            kind = IPv6Address if ":" in address else IPv4Address
            resolutionReceiver.addressResolved(kind("TCP", address, self._target.port))
        resolutionReceiver.resolutionComplete()
        return resolution


@implementer(IReactorPluggableNameResolver)
class _PinnedReactor:
    """The reactor, with a name resolver that knows one target's addresses."""

    def __init__(self, reactor: Any, target: Target) -> None:
        self._reactor = reactor
        self.nameResolver = _TargetAddresses(target)

    def installNameResolver(self, resolver: IHostnameResolver) -> IHostnameResolver:  # noqa: N802
        raise NotImplementedError("a pinned reactor's resolver is fixed")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)


@implementer(IHandshakeListener)
class _HandshakeWaiter(ProtocolWrapper):
    """Holds the connection back from its user until the TLS handshake has completed."""

    factory: _HandshakeFactory

    def makeConnection(self, transport: Any) -> None:  # noqa: N802
        # Nagle off from the handshake on (see mxresolve._io.net.tcp_socket); Twisted's
        # HTTP11ClientProtocol turns it off too, but only once the connection is handed over.
        tcp = getattr(transport, "transport", None)  # under the TLS layer
        if tcp is not None and hasattr(tcp, "setTcpNoDelay"):
            tcp.setTcpNoDelay(True)
        super().makeConnection(transport)

    def handshakeCompleted(self) -> None:  # noqa: N802
        if not self.factory.done.called:
            self.factory.done.callback(self.wrappedProtocol)

    def connectionLost(self, reason: Failure = error.ConnectionDone) -> None:  # type: ignore[assignment]  # noqa: N802
        if not self.factory.done.called:
            self.factory.done.errback(reason)
        super().connectionLost(reason)


class _HandshakeFactory(WrappingFactory):
    protocol = _HandshakeWaiter

    def __init__(self, wrapped: IProtocolFactory) -> None:
        super().__init__(wrapped)
        self.done: defer.Deferred[IProtocol] = defer.Deferred()


@implementer(IStreamClientEndpoint)
class _TargetEndpoint:
    """TCP to the target's addresses (raced), TLS, and the handshake awaited."""

    def __init__(
        self,
        reactor: Any,
        target: Target,
        creator: IOpenSSLClientConnectionCreator,
        timeout: float,
    ) -> None:
        self._reactor = reactor
        self._target = target
        self._creator = creator
        self._timeout = timeout

    def connect(self, protocolFactory: IProtocolFactory) -> defer.Deferred[IProtocol]:  # noqa: N803
        waiting = _HandshakeFactory(protocolFactory)
        tcp = HostnameEndpoint(
            _PinnedReactor(self._reactor, self._target),
            self._target.host,
            self._target.port,
            timeout=self._timeout,
        )
        # zope interfaces are beyond mypy without its plugin: the factories go as Any.
        tls_factory: Any = TLSMemoryBIOFactory(self._creator, True, cast(Any, waiting))
        connected = tcp.connect(tls_factory)

        def handshake(tls: Any) -> defer.Deferred[IProtocol]:
            timer = self._reactor.callLater(self._timeout, tls.transport.abortConnection)
            waiting.done.addBoth(_cancel_timer, timer)
            return waiting.done

        return connected.addCallback(handshake)


def _cancel_timer(result: Any, timer: Any) -> Any:
    if timer.active():
        timer.cancel()
    return result


def _describe(failure: Failure | BaseException) -> str:
    exc = failure.value if isinstance(failure, Failure) else failure
    if isinstance(exc, (ResponseFailed, ResponseNeverReceived, RequestTransmissionFailed)):
        reasons = getattr(exc, "reasons", [])
        inner = "; ".join(_describe(r) for r in reasons)
        return f"{type(exc).__name__}: {inner}" if inner else type(exc).__name__
    if isinstance(exc, (VerificationError, CertificateError)):
        return f"certificate_invalid: not valid for the TLS server name: {exc}"
    if isinstance(exc, SSL.Error):
        return f"tls_handshake_failed: certificate or handshake refused: {exc}"
    if isinstance(exc, error.ConnectionAborted):
        return "connect_timeout: the TLS handshake timed out"
    if isinstance(exc, error.TimeoutError):
        return f"connect_timeout: {exc}"
    if isinstance(exc, error.ConnectionRefusedError):
        return f"connection_refused: {exc}"
    return f"{type(exc).__name__}: {exc}"


# --- the agent -------------------------------------------------------------------------------


@implementer(IAgent)
class MatrixFederationAgent:
    """An ``IAgent`` for ``matrix-federation://SERVER_NAME/path`` URLs.

    Args:
        reactor: the reactor (with a thread pool, as every reactor has).
        resolver: the :class:`~mxresolve.Resolver` to share (its cache, IP policy,
            CAs and settings); a default one when ``None``.
        pool: an ``HTTPConnectionPool`` to use; a persistent one by default. Its
            connections are keyed by (addresses, port, SNI, certificate name).
        connect_timeout: seconds for each target's connection and TLS handshake.
        total_timeout: seconds from the call to the response's headers,
            resolution included (``None``: no limit); the body is the caller's
            to bound (``readBody(...).addTimeout(...)``).
        retry_after_send: send an idempotent request without a body to the next
            target even when it failed after it was sent. Off by default.
    """

    def __init__(
        self,
        reactor: Any,
        resolver: Resolver | None = None,
        *,
        pool: HTTPConnectionPool | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        total_timeout: float | None = DEFAULT_TOTAL_TIMEOUT,
        retry_after_send: bool = False,
    ) -> None:
        self._reactor = reactor
        self.resolver = resolver if resolver is not None else Resolver()
        self.pool = pool if pool is not None else HTTPConnectionPool(reactor, persistent=True)
        self._connect_timeout = connect_timeout
        self._total_timeout = total_timeout
        self._retry_after_send = retry_after_send
        # The resolver's CAs, so that every adapter trusts exactly the same roots.
        context = self.resolver._ssl_context
        self._trust = trustRootFromCertificates(
            [Certificate.load(der) for der in context.get_ca_certs(binary_form=True)]
        )
        self._creators: OrderedDict[str, IOpenSSLClientConnectionCreator] = OrderedDict()

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: IBodyProducer | None = None,  # noqa: N803
    ) -> defer.Deferred[IResponse]:
        try:
            server_name, path = _split(uri)
        except Exception:
            return defer.fail()
        d = defer.Deferred.fromCoroutine(
            self._request(method, server_name, path, headers, bodyProducer)
        )
        if self._total_timeout is not None:
            d.addTimeout(self._total_timeout, self._reactor)
        return d

    async def _resolve(self, server_name: str) -> Resolution:
        hit = self.resolver._cached(server_name)  # the memo: no thread needed
        if hit is not None:
            return hit
        pool = self._reactor.getThreadPool()
        try:
            resolution: Resolution = await deferToThreadPool(
                self._reactor, pool, self.resolver.resolve, server_name
            )
        except ResolutionError as exc:
            raise FederationResolutionError(exc.failure) from exc
        return resolution

    def _creator(self, tls_server_name: str) -> IOpenSSLClientConnectionCreator:
        creator = self._creators.get(tls_server_name)
        if creator is None:
            # An IP address as the name: no SNI, and the certificate's IP entries are checked.
            creator = optionsForClientTLS(
                tls_server_name,
                trustRoot=self._trust,
                acceptableProtocols=[b"http/1.1"],
                extraCertificateOptions={"raiseMinimumTo": TLSVersion.TLSv1_2},
            )
            self._creators[tls_server_name] = creator
            if len(self._creators) > 1000:
                self._creators.popitem(last=False)
        return creator

    async def _request(
        self,
        method: bytes,
        server_name: str,
        path: bytes,
        headers: Headers | None,
        body: IBodyProducer | None,
    ) -> IResponse:
        resolution = await self._resolve(server_name)
        attempts = Attempts(
            resolution, method.decode("ascii", "replace"), self._retry_after_send, body is None
        )
        for target in attempts.targets():
            endpoint = _TargetEndpoint(
                self._reactor,
                target,
                self._creator(target.tls_server_name),
                self._connect_timeout,
            )
            key = (_SCHEME_BYTES, PoolKey.for_target(target))
            try:
                protocol = await self.pool.getConnection(key, cast(Any, endpoint))
            except defer.CancelledError:
                raise  # the caller gave up (or the total timeout ran out): no next target
            except Exception as exc:  # nothing of the request was sent: any failure moves on
                attempts.failed(target, _describe(exc), request_sent=False)
                continue
            sent = headers.copy() if headers is not None else Headers()
            sent.setRawHeaders(b"Host", [target.host_header.encode("ascii")])
            request = Request(method, path, sent, body, persistent=self.pool.persistent)
            try:
                response: IResponse = await protocol.request(request)
            except RequestNotSent as exc:
                attempts.failed(target, _describe(exc), request_sent=False)
                continue
            except (ResponseFailed, ResponseNeverReceived, RequestTransmissionFailed) as exc:
                attempts.failed(target, _describe(exc), request_sent=True)
                if attempts.may_continue():
                    continue
                raise
            return response
        raise FederationConnectError(attempts)


def _split(uri: bytes) -> tuple[str, bytes]:
    """(server name, request path) of a ``matrix-federation://`` URI."""
    text = uri.decode("ascii") if isinstance(uri, bytes) else str(uri)
    parts = urlsplit(text)
    if parts.scheme != SCHEME:
        raise SchemeNotSupported(f"unsupported scheme {parts.scheme!r} in {text!r}")
    server_name = server_name_from_url(text, parts.netloc).text
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return server_name, path.encode("ascii")
