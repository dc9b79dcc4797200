"""``matrix-federation://`` URLs for aiohttp: ``pip install 'mxresolve[aiohttp]'``.

::

    async with aiohttp.ClientSession(connector=MatrixFederationConnector()) as session:
        async with session.get("matrix-federation://example.org/_matrix/key/v2/server") as r:
            keys = await r.json()

The adapter is a connector: the one extension point of aiohttp that both admits a
new URL scheme (``allowed_protocol_schema_set``) and makes the connection. It
resolves the server name with a shared :class:`~mxresolve.AsyncResolver`, tries
the targets in order (addresses raced, Nagle off, SNI ``target.sni``, the
certificate verified for ``target.tls_server_name``), and sets
``Host: target.host_header`` on every request it hands a connection to, new or
pooled. docs/requests.md says why this form and what aiohttp decides itself.
"""

from __future__ import annotations

import errno
import time
from typing import TYPE_CHECKING, Any

try:
    import aiohttp
    from aiohttp import hdrs
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "mxresolve.integrations.aiohttp needs aiohttp: pip install 'mxresolve[aiohttp]'"
    ) from exc

from .._core.errors import ResolutionError
from .._core.events import ResolutionFailure, Target
from .._io.aio_resolver import AsyncResolver, async_open_target
from .._io.net import ConnectFailed
from .._io.resolver import DEFAULT_CONNECT_TIMEOUT
from ._federation import SCHEME, Attempt, Attempts, server_name_from_url

if TYPE_CHECKING:
    from aiohttp.client_proto import ResponseHandler
    from aiohttp.client_reqrep import ConnectionKey
    from aiohttp.connector import Connection
    from aiohttp.tracing import Trace

__all__ = [
    "FederationConnectError",
    "FederationResolutionError",
    "MatrixFederationConnector",
    "federation_session",
]


class FederationResolutionError(aiohttp.ClientConnectorDNSError):
    """The server name did not resolve: aiohttp's own DNS-failure error.

    ``failure`` is the :class:`~mxresolve.ResolutionFailure` (kind, step, trace).
    """

    def __init__(self, key: ConnectionKey, failure: ResolutionFailure) -> None:
        step = "" if failure.step is None else f" (step {failure.step.value})"
        message = f"cannot resolve{step}: {failure.kind.value}: {failure.message}"
        super().__init__(key, OSError(errno.EHOSTUNREACH, message))
        self.failure: ResolutionFailure | None = failure
        self.attempts: tuple[Attempt, ...] = ()


class FederationConnectError(aiohttp.ClientConnectorError):
    """No target took the connection: aiohttp's own connector error.

    ``attempts`` lists every target tried, in order, with why it failed.
    """

    def __init__(self, key: ConnectionKey, attempts: Attempts) -> None:
        error = attempts.error()
        super().__init__(key, OSError(errno.ECONNREFUSED, str(error)))
        self.failure: ResolutionFailure | None = None
        self.attempts: tuple[Attempt, ...] = error.attempts


def _server_name(url: Any) -> str:
    host = url.raw_host or ""
    authority = f"[{host}]" if ":" in host else host
    if url.explicit_port is not None:
        authority += f":{url.explicit_port}"
    if url.raw_user is not None or url.raw_password is not None:
        authority = "@" + authority  # refused below, with the reason
    return server_name_from_url(str(url), authority).text


class MatrixFederationConnector(aiohttp.BaseConnector):
    """An aiohttp connector for ``matrix-federation://SERVER_NAME/path`` URLs only.

    Args:
        resolver: the :class:`~mxresolve.AsyncResolver` to share; a default one when
            ``None``.
        **kwargs: aiohttp's own connector options (``limit``, ``limit_per_host``,
            ``keepalive_timeout``, ``force_close``, ...).

    Pooling is aiohttp's, keyed by the URL's host and port, that is by server name:
    a connection made for one server name never carries a request for another
    (stricter than keying by address and certificate name; names that share a
    target do not share connections). The session's ``ClientTimeout`` bounds it
    all: ``connect`` covers resolution and every target tried, ``sock_connect``
    each target, ``total`` and ``sock_read`` the rest.
    """

    allowed_protocol_schema_set = frozenset({SCHEME})

    def __init__(self, resolver: AsyncResolver | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.resolver = resolver if resolver is not None else AsyncResolver()
        # Which target each live connection was made for: its Host header.
        self._targets: dict[ResponseHandler, Target] = {}

    async def connect(
        self, req: aiohttp.ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> Connection:
        # The Host header is set here, on the way to a connection new or pooled: the
        # one place aiohttp passes both the request and the connection.
        conn = await super().connect(req, traces, timeout)
        target = self._targets.get(conn.protocol) if conn.protocol is not None else None
        if target is None:  # pragma: no cover - every connection is made below
            conn.close()
            raise aiohttp.ClientConnectionError("a connection without a federation target")
        req.headers[hdrs.HOST] = target.host_header
        return conn

    async def _create_connection(
        self, req: aiohttp.ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> ResponseHandler:
        server_name = _server_name(req.url)
        try:
            resolution = await self.resolver.resolve(server_name)
        except ResolutionError as exc:
            raise FederationResolutionError(req.connection_key, exc.failure) from exc
        attempts = Attempts(resolution, req.method)
        per_target = timeout.sock_connect or timeout.connect or DEFAULT_CONNECT_TIMEOUT
        for target in attempts.targets():
            try:
                _, protocol = await async_open_target(
                    target,
                    self.resolver._ssl_context,
                    time.monotonic() + per_target,
                    self._factory,
                )
            except ConnectFailed as exc:
                attempts.failed(target, f"{exc.kind.value}: {exc.message}", request_sent=False)
                continue
            self._forget_closed()
            self._targets[protocol] = target
            return protocol
        raise FederationConnectError(req.connection_key, attempts)

    def _forget_closed(self) -> None:
        for protocol in [p for p in self._targets if not p.is_connected()]:
            del self._targets[protocol]


def federation_session(
    resolver: AsyncResolver | None = None, **session_kwargs: Any
) -> aiohttp.ClientSession:
    """An ``aiohttp.ClientSession`` on a :class:`MatrixFederationConnector` (call it in a loop)."""
    return aiohttp.ClientSession(connector=MatrixFederationConnector(resolver), **session_kwargs)
