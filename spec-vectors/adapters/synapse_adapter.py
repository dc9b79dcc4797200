#!/usr/bin/env python3
"""Harness adapter (docs/harness.md) for Synapse's federation resolver (matrix-synapse 1.163).

Run it with a Python that has matrix-synapse installed::

    mxresolve vectors run --harness /path/to/synapse-venv/bin/python \
        spec-vectors/adapters/synapse_adapter.py

It drives Synapse's own parts, unmodified: ``WellKnownResolver`` (fetch, parse, cache,
back-off; it wraps the agent it is given in Twisted's ``RedirectAgent``, so every
redirect hop is one ask) and ``MatrixHostnameEndpoint._resolve_server`` with
``SrvResolver`` (``_matrix-fed._tcp``, then ``_matrix._tcp``, then 8448). The glue in
between mirrors ``MatrixFederationAgent.request``: IP literals and names with a port
skip the well-known, and a delegation rewrites the URI (Host header = its netloc, certificate
name and SNI = its host). The agent and the DNS client given to Synapse ask the runner;
the clock is a ``MemoryReactorClock`` set to the runner's ``now``.

Synapse resolves target addresses only when it connects (getaddrinfo), so it returns
no addresses and declares neither ``address-level`` nor ``address-lookup``; its
constants are not settings, so vectors with settings are skipped. It does not say
which step decided. Its well-known retries (when a domain recently had a valid
well-known) sleep 0.5 s on the clock: those sleeps move the vector's clock.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import random
import sys
import urllib.parse
from typing import Any, ClassVar

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

logging.basicConfig(level=logging.CRITICAL)  # Synapse logs go nowhere; stdout is the protocol

import synapse  # noqa: E402,F401  (loads the Rust extension)
from _protocol import Adapter, target  # noqa: E402
from synapse.http.federation.matrix_federation_agent import (  # noqa: E402
    MatrixHostnameEndpoint,
    _is_ip_literal,
)
from synapse.http.federation.srv_resolver import SrvResolver  # noqa: E402
from synapse.http.federation.well_known_resolver import (  # noqa: E402
    WELL_KNOWN_GRACE_PERIOD_FACTOR,
    WellKnownResolver,
)
from synapse.util.caches.ttlcache import TTLCache  # noqa: E402
from synapse.util.clock import Clock  # noqa: E402
from synapse.util.stringutils import parse_and_validate_server_name  # noqa: E402
from twisted.internet import defer  # noqa: E402
from twisted.internet import error as net_error  # noqa: E402
from twisted.internet.testing import MemoryReactorClock  # noqa: E402
from twisted.names import dns  # noqa: E402
from twisted.names import error as dns_error  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402
from twisted.web.client import URI, ResponseDone  # noqa: E402
from twisted.web.http_headers import Headers  # noqa: E402
from twisted.web.iweb import IAgent, IResponse  # noqa: E402
from zope.interface import implementer  # noqa: E402

MAX_PUMPS = 600  # 0.1 s reactor steps to let Synapse's retry sleeps finish


class _Transport:
    def abortConnection(self) -> None:  # noqa: N802 - Twisted interface
        return None

    def loseConnection(self) -> None:  # noqa: N802
        return None

    def stopProducing(self) -> None:  # noqa: N802
        return None


@implementer(IResponse)
class _Response:
    def __init__(self, uri: bytes, status: int, headers: list[list[str]], body: bytes) -> None:
        self.version = (b"HTTP", 1, 1)
        self.code = status
        self.phrase = b"-"
        self.headers = Headers()
        for name, value in headers:
            self.headers.addRawHeader(name.encode("latin-1"), value.encode("latin-1"))
        self.length = len(body)
        self.request = None
        self.previousResponse = None
        self._body = body
        self.absoluteURI = uri

    def deliverBody(self, protocol: Any) -> None:  # noqa: N802
        protocol.makeConnection(_Transport())
        protocol.dataReceived(self._body)
        protocol.connectionLost(Failure(ResponseDone()))

    def setPreviousResponse(self, response: Any) -> None:  # noqa: N802
        self.previousResponse = response


def _https_failure(kind: str, message: str) -> Exception:
    if kind == "connection_refused":
        return net_error.ConnectionRefusedError(message)
    if kind == "connect_timeout":
        return net_error.TimeoutError(message)
    if kind == "no_address":
        return net_error.DNSLookupError(message)
    return net_error.ConnectError(f"{kind}: {message}")


def _srv_target(name: str) -> bytes:
    return b"." if name == "." else name.rstrip(".").encode("ascii")


class SynapseAdapter(Adapter):
    implementation: ClassVar[dict[str, Any]] = {
        "name": "synapse",
        "version": importlib.metadata.version("matrix-synapse"),
        "language": "python",
        "adapter": "spec-vectors/adapters/synapse_adapter.py",
    }
    features: ClassVar[list[str]] = [
        "well-known-cache",
        "dns-cache",
        "deprecated-matrix-srv",
        "observable-redirects",
        "ipv6",
    ]
    settings: ClassVar[list[str] | None] = []
    serial = 0

    def start(self, vector: str, epoch: float, settings: dict[str, Any], seed: int) -> str | None:
        adapter = self
        SynapseAdapter.serial += 1
        random.seed(seed)  # Synapse's jitter and SRV shuffles use the module random
        self.reactor = MemoryReactorClock()
        self.reactor.advance(epoch)
        name = f"adapter{SynapseAdapter.serial}.invalid"  # only labels Synapse's metrics
        clock = Clock(self.reactor, name)

        @implementer(IAgent)
        class AskingAgent:
            def request(
                self,
                method: bytes,
                uri: bytes,
                headers: Any = None,
                bodyProducer: Any = None,  # noqa: N803 - IAgent names it so
            ) -> defer.Deferred:
                answer = adapter.ask_https(uri.decode("ascii"))
                if "failure" in answer:
                    return defer.fail(_https_failure(answer["failure"], answer.get("message", "")))
                return defer.succeed(
                    _Response(uri, answer["status"], answer.get("headers", []), answer["body"])
                )

        class AskingDns:
            def lookupService(self, name: Any, timeout: Any = None) -> defer.Deferred:  # noqa: N802
                qname = name.decode("ascii") if isinstance(name, bytes) else str(name)
                answer = adapter.ask_dns(qname, "SRV")
                status = answer["status"]
                if status == "NXDOMAIN":
                    return defer.fail(dns_error.DNSNameError(qname))
                if status == "SERVFAIL":
                    return defer.fail(dns_error.DNSServerError(qname))
                if status == "REFUSED":
                    return defer.fail(dns_error.DNSQueryRefusedError(qname))
                if status == "TIMEOUT":
                    return defer.fail(dns_error.DNSQueryTimeoutError(qname))
                records = answer.get("records", []) if status == "NOERROR" else []
                answers = [
                    dns.RRHeader(
                        name=qname,
                        type=dns.SRV,
                        ttl=answer.get("ttl", 300),
                        payload=dns.Record_SRV(
                            priority=r["priority"],
                            weight=r["weight"],
                            port=r["port"],
                            # Twisted's names are bytes; the root is b"." (as Synapse checks).
                            target=_srv_target(r["target"]),
                            ttl=answer.get("ttl", 300),
                        ),
                    )
                    for r in records
                ]
                return defer.succeed((answers, [], []))

        self.srv = SrvResolver(dns_client=AskingDns(), cache={}, get_time=self.reactor.seconds)
        self.wk = WellKnownResolver(
            server_name=name,
            reactor=self.reactor,
            clock=clock,
            agent=AskingAgent(),
            user_agent=b"spec-vectors-adapter",
            well_known_cache=TTLCache(
                cache_name="wk", server_name=name, timer=self.reactor.seconds
            ),
            had_well_known_cache=TTLCache(
                cache_name="hv", server_name=name, timer=self.reactor.seconds
            ),
        )
        self.well_known_hosts: list[bytes] = []
        return None

    def resolve(self, server_name: str) -> dict[str, Any]:
        if self.now > self.reactor.seconds():
            self.reactor.advance(self.now - self.reactor.seconds())
        try:
            parse_and_validate_server_name(server_name)
            uri = b"matrix-federation://" + server_name.encode("ascii") + b"/"
            parsed = urllib.parse.urlparse(uri)
            parsed.port  # noqa: B018 - raises ValueError above 65535, as in Synapse
        except (ValueError, UnicodeError) as exc:
            return {"result": {"error": "invalid_server_name", "message": str(exc)}}
        done: list[Any] = []
        d = defer.ensureDeferred(self._stages(uri))
        d.addBoth(done.append)
        for _ in range(MAX_PUMPS):
            if done:
                break
            self.reactor.advance(0.1)
        if not done:
            return {"result": {"error": "deadline_exceeded", "message": "no answer"}}
        outcome = done[0]
        reply: dict[str, Any] = {"cache": self._cache()}
        if isinstance(outcome, Failure):
            exc = outcome.value
            if isinstance(exc, net_error.ConnectError) and "unavailable" in str(exc):
                kind = "service_unavailable"
            elif isinstance(exc, (dns_error.DomainError, dns_error.DNSQueryTimeoutError)):
                kind = "dns_failure"
            else:
                kind = "adapter_error"
            reply["result"] = {"error": kind, "message": repr(exc)}
            return reply
        servers, netloc = outcome
        host = urllib.parse.urlparse(b"x://" + netloc).hostname.decode("ascii")
        reply["result"] = {
            "targets": [
                target(s.host.decode("ascii"), s.port, netloc.decode("ascii"), host)
                for s in servers
            ]
        }
        return reply

    async def _stages(self, uri: bytes) -> tuple[list[Any], bytes]:
        parsed = urllib.parse.urlparse(uri)
        if not _is_ip_literal(parsed.hostname) and not parsed.port:
            self.well_known_hosts.append(parsed.hostname)
            result = await self.wk.get_well_known(parsed.hostname)
            if result.delegated_server:
                uri = urllib.parse.urlunparse(parsed._replace(netloc=result.delegated_server))
                parsed = urllib.parse.urlparse(uri)
        endpoint = MatrixHostnameEndpoint(
            reactor=self.reactor,
            proxy_reactor=self.reactor,
            tls_client_options_factory=None,
            srv_resolver=self.srv,
            proxy_config=None,
            parsed_uri=URI.fromBytes(uri),
        )
        return await endpoint._resolve_server(), parsed.netloc

    def _cache(self) -> list[dict[str, Any]]:
        entries = []
        for host in dict.fromkeys(self.well_known_hosts):
            try:
                value, expiry, ttl = self.wk._well_known_cache.get_with_expiry(host)
            except KeyError:
                continue
            entries.append(
                {
                    "kind": "well-known",
                    "name": host.decode("ascii"),
                    # Synapse refetches once 80 % of the period has passed.
                    "expires_at": expiry - WELL_KNOWN_GRACE_PERIOD_FACTOR * ttl,
                    "delegation": None if value is None else value.decode("ascii"),
                }
            )
        return entries


if __name__ == "__main__":
    sys.exit(SynapseAdapter().serve())
