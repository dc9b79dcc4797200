"""One small driver per HTTP-client adapter, so every test runs through each of them.

A driver makes ``matrix-federation://`` requests through its client's ordinary API
(``httpx.Client.request``, ``aiohttp.ClientSession.request``, Twisted's
``IAgent.request``) and hands back a :class:`Reply`. Async clients run on a loop
of their own; Twisted's reactor runs in a thread for the whole test session.

The echo the world's target sites serve (``/_matrix/federation/v1/version``:
the Host and SNI nginx or Caddy saw) is what the tests check.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from mxresolve import AsyncResolver, Resolver, Target


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]
    target: Target | None = None  # the target that answered, where the client tells

    def json(self) -> Any:
        return json.loads(self.body)


class Driver:
    name: str
    # What the client raises when no connection could be made (its own type), and for a
    # URL it cannot parse or whose scheme the adapter does not serve.
    connect_error: type[BaseException]
    bad_url_errors: tuple[type[BaseException], ...]
    # What the client's own timeout raises (the adapters' connect timeouts say "timed out").
    timeout_errors: tuple[type[BaseException], ...] = ()

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        chunks: list[bytes] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> Reply:
        raise NotImplementedError

    def get(self, url: str, **kwargs: Any) -> Reply:
        return self.request("GET", url, **kwargs)

    def stream(self, url: str) -> list[bytes]:
        """GET through the client's streaming API; the body's chunks."""
        raise NotImplementedError

    def pool_count(self) -> int | None:
        """Distinct pools or connections the adapter holds, where it can tell."""
        return None

    def nodelay(self) -> list[int]:
        """TCP_NODELAY of every connection the adapter keeps (test-only peeking)."""
        raise NotImplementedError

    def resolver(self) -> Resolver | AsyncResolver:
        raise NotImplementedError

    def close(self) -> None:
        pass


# --- httpx ------------------------------------------------------------------------------


class _HttpxShared:
    """What both httpx drivers share: httpx's errors, and the pools their transports keep."""

    transport: Any

    def _httpx_errors(self) -> None:
        import httpx

        from mxresolve.integrations.httpx import FederationConnectError

        self.connect_error = FederationConnectError
        self.bad_url_errors = (httpx.UnsupportedProtocol,)
        self.timeout_errors = (httpx.TimeoutException,)

    def pool_count(self) -> int:
        return len(self.transport._pools)

    def nodelay(self) -> list[int]:
        return [
            c._connection._network_stream.get_extra_info("socket").getsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY
            )
            for pool in self.transport._pools._pools.values()
            for c in pool.connections
        ]


class HttpxDriver(_HttpxShared, Driver):
    name = "httpx"

    def __init__(self, config: dict[str, Any], **options: Any) -> None:
        import httpx

        from mxresolve.integrations.httpx import MatrixFederationTransport

        self._httpx_errors()
        self.transport = MatrixFederationTransport(Resolver(**config), **options)
        self.client = httpx.Client(transport=self.transport)

    def request(self, method: str, url: str, **kw: Any) -> Reply:
        content: Any = kw.get("body")
        if kw.get("chunks") is not None:
            content = iter(kw["chunks"])
        r = self.client.request(
            method, url, content=content, headers=kw.get("headers"), timeout=kw.get("timeout", 10)
        )
        return Reply(r.status_code, r.content, dict(r.headers), r.extensions["mxresolve.target"])

    def stream(self, url: str) -> list[bytes]:
        with self.client.stream("GET", url) as r:
            return list(r.iter_raw())

    def resolver(self) -> Resolver:
        return self.transport.resolver

    def close(self) -> None:
        self.client.close()


class _LoopDriver(Driver):
    """Runs an async client on a private event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.run(self.aclose())
        self.loop.close()

    async def aclose(self) -> None:
        pass


def _async_body(kw: dict[str, Any]) -> Any:
    """A request's body for an async client: ``body``, or ``chunks`` as an async iterator."""
    chunks = kw.get("chunks")
    if chunks is None:
        return kw.get("body")

    async def gen() -> Any:
        for c in chunks:
            yield c

    return gen()


class HttpxAsyncDriver(_HttpxShared, _LoopDriver):
    name = "httpx-async"

    def __init__(self, config: dict[str, Any], **options: Any) -> None:
        super().__init__()
        import httpx

        from mxresolve.integrations.httpx import AsyncMatrixFederationTransport

        self._httpx_errors()
        self.transport = AsyncMatrixFederationTransport(AsyncResolver(**config), **options)
        self.client = httpx.AsyncClient(transport=self.transport)

    def request(self, method: str, url: str, **kw: Any) -> Reply:
        async def go() -> Reply:
            r = await self.client.request(
                method,
                url,
                content=_async_body(kw),
                headers=kw.get("headers"),
                timeout=kw.get("timeout", 10),
            )
            return Reply(
                r.status_code, r.content, dict(r.headers), r.extensions["mxresolve.target"]
            )

        return self.run(go())

    def stream(self, url: str) -> list[bytes]:
        async def go() -> list[bytes]:
            async with self.client.stream("GET", url) as r:
                return [c async for c in r.aiter_raw()]

        return self.run(go())

    def resolver(self) -> AsyncResolver:
        return self.transport.resolver

    async def aclose(self) -> None:
        await self.client.aclose()


class AiohttpDriver(_LoopDriver):
    name = "aiohttp"

    def __init__(self, config: dict[str, Any], **options: Any) -> None:
        super().__init__()
        import aiohttp

        from mxresolve.integrations.aiohttp import MatrixFederationConnector

        self.connect_error = aiohttp.ClientConnectorError
        self.bad_url_errors = (aiohttp.NonHttpUrlClientError, aiohttp.InvalidUrlClientError)
        self.timeout_errors = (TimeoutError,)
        self._resolver = AsyncResolver(**config)

        async def make() -> aiohttp.ClientSession:
            self.connector = MatrixFederationConnector(self._resolver, **options)
            return aiohttp.ClientSession(connector=self.connector)

        self.session = self.run(make())

    def request(self, method: str, url: str, **kw: Any) -> Reply:
        import aiohttp

        async def go() -> Reply:
            async with self.session.request(
                method,
                url,
                data=_async_body(kw),
                headers=kw.get("headers"),
                timeout=aiohttp.ClientTimeout(total=kw.get("timeout", 10)),
            ) as r:
                body = await r.read()
                target = None
                if r.connection is not None and r.connection.protocol is not None:
                    target = self.connector._targets.get(r.connection.protocol)
                return Reply(r.status, body, dict(r.headers), target)

        return self.run(go())

    def stream(self, url: str) -> list[bytes]:
        async def go() -> list[bytes]:
            async with self.session.get(url) as r:
                return [c async for c in r.content.iter_any()]

        return self.run(go())

    def nodelay(self) -> list[int]:
        return [
            p.transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            for p in self.connector._targets
            if p.transport is not None
        ]

    def resolver(self) -> AsyncResolver:
        return self._resolver

    async def aclose(self) -> None:
        await self.session.close()


_REACTOR_LOCK = threading.Lock()
_reactor_thread: threading.Thread | None = None


def _running_reactor() -> Any:
    """Twisted's global reactor, running in a daemon thread from first use to the process's end."""
    global _reactor_thread
    from twisted.internet import reactor

    with _REACTOR_LOCK:
        if _reactor_thread is None:
            _reactor_thread = threading.Thread(
                target=reactor.run,  # type: ignore[attr-defined]
                kwargs={"installSignalHandlers": False},
                name="twisted-reactor",
                daemon=True,
            )
            _reactor_thread.start()
    return reactor


class TwistedDriver(Driver):
    name = "twisted"

    def __init__(self, config: dict[str, Any], **options: Any) -> None:
        from twisted.internet import error

        from mxresolve.integrations.twisted import MatrixFederationAgent

        self.reactor = _running_reactor()
        self.connect_error = error.ConnectError
        from twisted.internet import defer
        from twisted.web.error import SchemeNotSupported

        from mxresolve.integrations._federation import InvalidFederationURL

        # Twisted has no URL type: the agent parses the URL itself, and says what is wrong.
        self.bad_url_errors = (SchemeNotSupported, InvalidFederationURL)
        self.timeout_errors = (defer.TimeoutError, error.TimeoutError)
        self.agent = self._call(
            lambda: MatrixFederationAgent(self.reactor, Resolver(**config), **options)
        )

    def _call(self, f: Callable[[], Any]) -> Any:
        from twisted.internet.threads import blockingCallFromThread

        return blockingCallFromThread(self.reactor, f)

    def request(self, method: str, url: str, **kw: Any) -> Reply:
        from twisted.internet import defer
        from twisted.web.client import FileBodyProducer
        from twisted.web.http_headers import Headers

        headers = Headers({k: [v] for k, v in (kw.get("headers") or {}).items()})
        producer: Any = None
        if kw.get("body") is not None:
            import io

            producer = FileBodyProducer(io.BytesIO(kw["body"]))
        elif kw.get("chunks") is not None:
            producer = _ChunksProducer(kw["chunks"])

        async def go() -> Reply:
            d = self.agent.request(method.encode(), url.encode(), headers, producer)
            response = await d
            chunks = _chunks(response).addTimeout(kw.get("timeout", 10), self.reactor)
            body = b"".join(await chunks)
            flat = {k.decode(): v[-1].decode() for k, v in response.headers.getAllRawHeaders()}
            return Reply(response.code, body, flat)

        def start() -> Any:
            return defer.Deferred.fromCoroutine(go()).addTimeout(
                kw.get("timeout", 10), self.reactor
            )

        return self._call(start)

    def stream(self, url: str) -> list[bytes]:
        from twisted.internet import defer

        async def go() -> list[bytes]:
            response = await self.agent.request(b"GET", url.encode())
            return await _chunks(response)

        return self._call(lambda: defer.Deferred.fromCoroutine(go()))

    def nodelay(self) -> list[int]:
        def peek() -> list[int]:
            flags = []
            for protocols in self.agent.pool._connections.values():
                for protocol in protocols:
                    tcp = protocol.transport.transport.transport  # waiter, TLS, TCP
                    flags.append(tcp.getHandle().getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            return flags

        return self._call(peek)  # type: ignore[no-any-return]

    def resolver(self) -> Resolver:
        return self.agent.resolver

    def close(self) -> None:
        self._call(self.agent.pool.closeCachedConnections)


def _chunks(response: Any) -> Any:
    """The body through Twisted's streaming API (``deliverBody``): a Deferred of its chunks."""
    from twisted.internet import defer, protocol

    done: defer.Deferred[list[bytes]] = defer.Deferred()
    chunks: list[bytes] = []

    class Collect(protocol.Protocol):
        def dataReceived(self, data: bytes) -> None:
            chunks.append(data)

        def connectionLost(self, reason: Any = None) -> None:
            done.callback(chunks)

    response.deliverBody(Collect())
    return done


class _ChunksProducer:
    """An IBodyProducer of unknown length: Twisted sends it chunked."""

    def __init__(self, chunks: list[bytes]) -> None:
        from twisted.web.iweb import UNKNOWN_LENGTH

        self.length = UNKNOWN_LENGTH
        self._chunks = chunks

    def startProducing(self, consumer: Any) -> Any:
        from twisted.internet import defer

        for c in self._chunks:
            consumer.write(c)
        return defer.succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


DRIVERS: dict[str, Callable[..., Driver]] = {
    "httpx": HttpxDriver,
    "httpx-async": HttpxAsyncDriver,
    "aiohttp": AiohttpDriver,
    "twisted": TwistedDriver,
}


def make_driver(name: str, config: dict[str, Any], **options: Any) -> Driver:
    return DRIVERS[name](config, **options)


def drivers(config: dict[str, Any]) -> Iterator[Driver]:
    for name in DRIVERS:
        yield make_driver(name, config)
