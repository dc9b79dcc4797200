#!/usr/bin/env python3
"""Black-box driver for Synapse's federation server-name resolution (matrix-synapse 1.163.2).

Runs inside a separate virtualenv that has ``matrix-synapse==1.163.2`` installed (see
``requirements-synapse.txt``). Synapse (AGPL) is only imported and driven at run time; none of
its code is copied here.

Reads one JSON object on stdin::

    {"nameserver": "127.0.0.1:5353", "cafile": "/path/ca.pem", "names": ["a.mxtest", ...],
     "rounds": 5, "mode": "resolve" | "cold" | "cached",
     "iterations": 100000, "max_seconds_per_name": 2.0}      # last two: cached mode, optional

and writes one JSON object on stdout. See README.md in this directory for what each mode
measures. All sockets go to loopback only: the nameserver must be loopback and the reactor
proxy refuses to dial anything outside 127.0.0.0/8 and ::1.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import sys
import time
import urllib.parse
import warnings
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import contextlib

from _common import (
    InputError,
    Request,
    describe_exception,
    is_loopback,
    median,
    read_request,
    write_result,
)

PEER = "synapse"
USER_AGENT = b"Synapse/1.163.2 (mxresolve peer driver)"
ROUND_TIMEOUT_S = 30.0
CLOSE_TIMEOUT_S = 2.0
# twisted.names per-attempt timeouts for the A/AAAA lookups made by the driver's hostname
# resolver (Synapse's own SRV lookups keep twisted.names' default timeouts; the per-name /
# per-round bounds cancel them).
ADDRESS_DNS_TIMEOUT = (1, 2)


def _import_synapse() -> dict[str, Any]:
    """Import Synapse lazily so that bad input is reported before the heavy import."""
    import synapse  # noqa: F401  (loads the Rust extension; fails loudly if missing)
    from netaddr import IPSet
    from OpenSSL import crypto  # noqa: F401
    from synapse.crypto.context_factory import FederationPolicyForHTTPS
    from synapse.http.client import BlocklistingReactorWrapper
    from synapse.http.federation.matrix_federation_agent import (
        MatrixFederationAgent,
        MatrixHostnameEndpoint,
        _is_ip_literal,
    )
    from synapse.http.federation.srv_resolver import SrvResolver
    from synapse.util.clock import Clock

    return {
        "IPSet": IPSet,
        "FederationPolicyForHTTPS": FederationPolicyForHTTPS,
        "BlocklistingReactorWrapper": BlocklistingReactorWrapper,
        "MatrixFederationAgent": MatrixFederationAgent,
        "MatrixHostnameEndpoint": MatrixHostnameEndpoint,
        "is_ip_literal": _is_ip_literal,
        "SrvResolver": SrvResolver,
        "Clock": Clock,
        "version": __import__("importlib.metadata").metadata.version("matrix-synapse"),
    }


def _build(syn: dict[str, Any]) -> dict[str, Any]:
    """Twisted-dependent helper classes (defined after the imports succeed)."""
    from twisted.internet import defer
    from twisted.internet.address import IPv4Address, IPv6Address
    from twisted.internet.error import ConnectError
    from twisted.internet.interfaces import (
        IHostnameResolver,
        IHostResolution,
        IOpenSSLClientConnectionCreator,
        IReactorCore,
        IReactorPluggableNameResolver,
        IReactorSSL,
        IReactorTCP,
        IReactorTime,
    )
    from twisted.names import client as names_client
    from twisted.names import dns
    from twisted.web.iweb import IPolicyForHTTPS
    from zope.interface import implementer

    @implementer(IHostResolution)
    class _Resolution:
        def __init__(self, name: str) -> None:
            self.name = name

        def cancel(self) -> None:  # best effort; lookups are bounded by their own timeouts
            return None

    class QueryLog:
        def __init__(self) -> None:
            self.queries: list[tuple[str, str]] = []
            self.srv_count = 0

    class LoggingDnsClient:
        """Wraps the twisted.names client given to Synapse's SrvResolver; logs SRV queries."""

        def __init__(self, inner: Any, log: QueryLog) -> None:
            self._inner = inner
            self._log = log

        def lookupService(self, name: Any, timeout: Any = None) -> defer.Deferred:  # noqa: N802
            text = name.decode("ascii", "replace") if isinstance(name, bytes) else str(name)
            self._log.queries.append((text, "SRV"))
            self._log.srv_count += 1
            if timeout is None:
                return self._inner.lookupService(name)
            return self._inner.lookupService(name, timeout)

    @implementer(IHostnameResolver)
    class DnsHostnameResolver:
        """IHostnameResolver answering from the given nameserver (AAAA first, then A).

        Stands in for Synapse's getaddrinfo-based GAIResolver so that one loopback
        nameserver answers every lookup. Non-loopback answers are dropped.
        """

        def __init__(self, client: Any, log: QueryLog) -> None:
            self._client = client
            self._log = log
            self.refused: list[str] = []

        def resolveHostName(  # noqa: N802 - Twisted interface
            self,
            resolutionReceiver: Any,  # noqa: N803
            hostName: str,  # noqa: N803
            portNumber: int = 0,  # noqa: N803
            addressTypes: Any = None,  # noqa: N803
            transportSemantics: str = "TCP",  # noqa: N803
        ) -> Any:
            resolution = _Resolution(hostName)
            resolutionReceiver.resolutionBegan(resolution)
            d = defer.ensureDeferred(self._lookup(hostName, portNumber))

            def _done(addresses: list[Any]) -> None:
                for a in addresses:
                    resolutionReceiver.addressResolved(a)
                resolutionReceiver.resolutionComplete()

            def _failed(_f: Any) -> None:
                resolutionReceiver.resolutionComplete()

            d.addCallbacks(_done, _failed)
            return resolution

        def _addr(self, ip: str, port: int) -> Any:
            if not is_loopback(ip):
                self.refused.append(ip)
                return None
            if ":" in ip:
                return IPv6Address("TCP", ip, port)
            return IPv4Address("TCP", ip, port)

        async def _lookup(self, host: str, port: int) -> list[Any]:
            host = host.decode("ascii") if isinstance(host, bytes) else host
            try:
                ipaddress.ip_address(host)
            except ValueError:
                pass
            else:
                a = self._addr(host, port)
                return [a] if a is not None else []
            self._log.queries.append((host, "AAAA"))
            self._log.queries.append((host, "A"))
            results = await defer.DeferredList(
                [
                    self._client.lookupIPV6Address(host, ADDRESS_DNS_TIMEOUT),
                    self._client.lookupAddress(host, ADDRESS_DNS_TIMEOUT),
                ],
                consumeErrors=True,
            )
            out: list[Any] = []
            for ok, value in results:
                if not ok:
                    continue
                answers = value[0]
                for rr in answers:
                    if rr.type == dns.AAAA:
                        ip = str(ipaddress.IPv6Address(rr.payload.address))
                    elif rr.type == dns.A:
                        ip = rr.payload.dottedQuad()
                    else:
                        continue
                    a = self._addr(ip, port)
                    if a is not None:
                        out.append(a)
            return out

    @implementer(
        IReactorCore, IReactorTime, IReactorTCP, IReactorSSL, IReactorPluggableNameResolver
    )
    class LoopbackReactor:
        """Reactor proxy: own nameResolver, logs every dial, refuses non-loopback dials."""

        def __init__(self, reactor: Any, resolver: Any) -> None:
            self._reactor = reactor
            self.nameResolver = resolver
            self.connections: list[tuple[str, int, str]] = []
            self.phase = "well-known"

        def installNameResolver(self, resolver: Any) -> Any:  # noqa: N802
            old, self.nameResolver = self.nameResolver, resolver
            return old

        def _check(self, host: str, port: int) -> None:
            self.connections.append((host, port, self.phase))
            if not is_loopback(host):
                raise ConnectError(host, "non-loopback address refused by the peer driver")

        def connectTCP(self, host: str, port: int, factory: Any, *a: Any, **kw: Any) -> Any:  # noqa: N802
            self._check(host, port)
            return self._reactor.connectTCP(host, port, factory, *a, **kw)

        def connectSSL(  # noqa: N802
            self, host: str, port: int, factory: Any, ctx: Any, *a: Any, **kw: Any
        ) -> Any:
            self._check(host, port)
            return self._reactor.connectSSL(host, port, factory, ctx, *a, **kw)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._reactor, name)

    @implementer(IOpenSSLClientConnectionCreator)
    class RecordingCreator:
        def __init__(self, inner: Any, purpose: str, host: bytes, sink: list[Any]) -> None:
            self._inner = inner
            self._purpose = purpose
            self._host = host
            self._sink = sink

        def clientConnectionForTLS(self, tls_protocol: Any) -> Any:  # noqa: N802
            conn = self._inner.clientConnectionForTLS(tls_protocol)
            self._sink.append((self._purpose, self._host, conn))
            return conn

    @implementer(IPolicyForHTTPS)
    class RecordingPolicy:
        """Delegates to FederationPolicyForHTTPS; remembers names and TLS connections."""

        def __init__(self, inner: Any) -> None:
            self._inner = inner
            self.federation_names: list[bytes] = []
            self.tls_connections: list[tuple[str, bytes, Any]] = []

        def get_options(self, host: bytes) -> Any:
            self.federation_names.append(host)
            return RecordingCreator(
                self._inner.get_options(host), "federation", host, self.tls_connections
            )

        def creatorForNetloc(self, hostname: bytes, port: int) -> Any:  # noqa: N802
            return RecordingCreator(
                self._inner.creatorForNetloc(hostname, port),
                "well-known",
                hostname,
                self.tls_connections,
            )

    class RecordingAgent:
        """Wraps the agent's inner Twisted Agent to see the Host header Synapse sends."""

        def __init__(self, inner: Any, session: Any) -> None:
            self._inner = inner
            self._session = session
            self.host_headers: list[bytes] = []
            self.uris: list[bytes] = []

        def request(
            self,
            method: bytes,
            uri: bytes,
            headers: Any = None,
            bodyProducer: Any = None,  # noqa: N803
        ) -> Any:
            if headers is not None:
                self.host_headers.extend(headers.getRawHeaders(b"host") or [])
            self.uris.append(uri)
            self._session.proxy.phase = "federation"
            return self._inner.request(method, uri, headers, bodyProducer)

    return {
        "QueryLog": QueryLog,
        "LoggingDnsClient": LoggingDnsClient,
        "DnsHostnameResolver": DnsHostnameResolver,
        "LoopbackReactor": LoopbackReactor,
        "RecordingPolicy": RecordingPolicy,
        "RecordingAgent": RecordingAgent,
        "names_client": names_client,
    }


def _make_policy(syn: dict[str, Any], cafile: str) -> Any:
    """FederationPolicyForHTTPS with a duck-typed config trusting only ``cafile``."""
    from types import SimpleNamespace

    from twisted.internet._sslverify import Certificate, trustRootFromCertificates

    with open(cafile, "rb") as f:
        pem = f.read()
    certs = []
    marker = b"-----END CERTIFICATE-----"
    for chunk in pem.split(marker):
        if b"-----BEGIN CERTIFICATE-----" in chunk:
            certs.append(Certificate.loadPEM(chunk + marker + b"\n"))
    if not certs:
        raise InputError(f"no certificate in {cafile}")
    cfg = SimpleNamespace(
        tls=SimpleNamespace(
            federation_ca_trust_root=trustRootFromCertificates(certs),
            federation_client_minimum_tls_version="1.2",
            federation_verify_certificates=True,
            federation_certificate_verification_whitelist=[],
        )
    )
    return syn["FederationPolicyForHTTPS"](cfg)


class Session:
    """One set of fresh caches: agent, connection pool, well-known caches, SRV cache."""

    serial = 0

    def __init__(
        self, reactor: Any, req: Request, syn: dict[str, Any], h: dict[str, Any], policy: Any
    ) -> None:
        Session.serial += 1
        self.reactor = reactor
        self.log = h["QueryLog"]()
        client = h["names_client"].Resolver(servers=[req.nameserver], reactor=reactor)
        self.dns_client = h["LoggingDnsClient"](client, self.log)
        self.resolver = h["DnsHostnameResolver"](client, self.log)
        self.proxy = h["LoopbackReactor"](reactor, self.resolver)
        self.policy = h["RecordingPolicy"](policy)
        self.srv = syn["SrvResolver"](dns_client=self.dns_client, cache={})
        # A distinct (fake) homeserver name per session only keeps Synapse's metric names
        # from colliding; it does not influence resolution.
        server_name = f"peer{Session.serial}.bench.invalid"
        self.agent = syn["MatrixFederationAgent"](
            server_name=server_name,
            reactor=self.proxy,
            clock=syn["Clock"](reactor, server_name),
            tls_client_options_factory=self.policy,
            user_agent=USER_AGENT,
            ip_allowlist=None,
            ip_blocklist=syn["IPSet"](),
            proxy_config=None,
            _srv_resolver=self.srv,
            _well_known_resolver=None,  # the agent builds WellKnownResolver as in production
        )
        self.wk = self.agent._well_known_resolver
        self.addr_reactor = syn["BlocklistingReactorWrapper"](self.proxy, None, syn["IPSet"]())

    async def close(self) -> None:
        from twisted.internet import defer

        d = self.agent._pool.closeCachedConnections()
        d.addTimeout(CLOSE_TIMEOUT_S, self.reactor)
        with contextlib.suppress(defer.TimeoutError, defer.CancelledError):
            await d


async def _resolve_addresses(sess: Session, host: bytes, port: int) -> list[list[Any]]:
    """Synapse's address stage: reactor.nameResolver behind _IPBlockingResolver."""
    from twisted.internet import defer
    from twisted.internet.interfaces import IResolutionReceiver
    from zope.interface import implementer

    done: defer.Deferred = defer.Deferred()
    found: list[list[Any]] = []

    @implementer(IResolutionReceiver)
    class Receiver:
        def resolutionBegan(self, resolution: Any) -> None:  # noqa: N802
            return None

        def addressResolved(self, address: Any) -> None:  # noqa: N802
            found.append([address.host, address.port])

        def resolutionComplete(self) -> None:  # noqa: N802
            done.callback(found)

    sess.addr_reactor.nameResolver.resolveHostName(
        Receiver(), host.decode("ascii"), portNumber=port
    )
    return await done


def _uri_for(name: str) -> bytes:
    return b"matrix-federation://" + name.encode("ascii") + b"/"


async def _stages(sess: Session, syn: dict[str, Any], name_uri: bytes) -> list[Any]:
    """What MatrixFederationAgent does before dialling: well-known, then SRV/fallback.

    Mirrors MatrixFederationAgent.request (IP-literal/port check, get_well_known, URI
    rewrite) and then calls Synapse's own MatrixHostnameEndpoint._resolve_server(), which
    does the _matrix-fed / _matrix SRV lookups and the :8448 fallback.
    """
    from twisted.web.client import URI

    parsed = urllib.parse.urlparse(name_uri)
    uri = name_uri
    if not syn["is_ip_literal"](parsed.hostname) and not parsed.port:
        result = await sess.wk.get_well_known(parsed.hostname)
        if result.delegated_server:
            uri = urllib.parse.urlunparse(
                (
                    parsed.scheme,
                    result.delegated_server,
                    parsed.path,
                    parsed.params,
                    parsed.query,
                    parsed.fragment,
                )
            )
    endpoint = syn["MatrixHostnameEndpoint"](
        reactor=sess.addr_reactor,
        proxy_reactor=sess.proxy,
        tls_client_options_factory=None,  # TLS options are not part of resolution
        srv_resolver=sess.srv,
        proxy_config=None,
        parsed_uri=URI.fromBytes(uri),
    )
    return await endpoint._resolve_server()


async def _cold_one(sess: Session, syn: dict[str, Any], name: str) -> dict[str, Any]:
    servers = await _stages(sess, syn, _uri_for(name))
    addrs = await _resolve_addresses(sess, servers[0].host, servers[0].port) if servers else []
    return {
        "servers": [[s.host.decode("ascii", "replace"), s.port] for s in servers],
        "addresses": addrs,
    }


# ---------------------------------------------------------------------------------- resolve


async def _resolve_name(
    reactor: Any, req: Request, syn: dict[str, Any], h: dict[str, Any], policy: Any, name: str
) -> dict[str, Any]:
    from twisted.internet import defer
    from twisted.web.client import readBody

    out: dict[str, Any] = {
        "name": name,
        "dialled": [],
        "host_header": None,
        "tls_name": None,
        "sni": None,
        "well_known": None,
        "error": None,
    }
    try:
        sess = Session(reactor, req, syn, h, policy)
    except Exception as e:
        out["error"] = describe_exception(e)
        return out
    recorder = h["RecordingAgent"](sess.agent._agent, sess)
    sess.agent._agent = recorder
    wk_info: dict[str, Any] = {"called": False}
    inner_get = sess.wk.get_well_known

    async def recording_get_well_known(server_name: bytes) -> Any:
        wk_info["called"] = True
        res = await inner_get(server_name)
        wk_info["delegated"] = res.delegated_server
        return res

    sess.wk.get_well_known = recording_get_well_known

    async def run() -> None:
        resp = await sess.agent.request(
            b"GET", _uri_for(name).rstrip(b"/") + b"/_matrix/federation/v1/version"
        )
        body = await readBody(resp)
        out["response"] = {"status": resp.code, "body": body[:300].decode("utf-8", "replace")}

    d = defer.ensureDeferred(run())
    d.addTimeout(req.timeout_s, reactor)
    try:
        await d
    except (defer.TimeoutError, defer.CancelledError):
        out["error"] = f"timeout after {req.timeout_s:g} s"
    except Exception as e:
        out["error"] = describe_exception(e)

    out["dialled"] = [[ip, port] for ip, port, ph in sess.proxy.connections if ph == "federation"]
    out["well_known_dialled"] = [
        [ip, port] for ip, port, ph in sess.proxy.connections if ph == "well-known"
    ]
    if recorder.host_headers:
        out["host_header"] = recorder.host_headers[-1].decode("ascii", "replace")
    if sess.policy.federation_names:
        out["tls_name"] = sess.policy.federation_names[-1].decode("ascii", "replace")
    fed_tls = [c for purpose, _h, c in sess.policy.tls_connections if purpose == "federation"]
    if fed_tls:
        sni = fed_tls[-1].get_servername()
        out["sni"] = sni.decode("ascii", "replace") if sni else None
    out["well_known_fetched"] = wk_info["called"]
    delegated = wk_info.get("delegated")
    out["well_known"] = delegated.decode("ascii", "replace") if delegated else None
    out["dns_queries"] = [list(q) for q in sess.log.queries]
    if sess.resolver.refused:
        out["refused_non_loopback"] = sess.resolver.refused
    await sess.close()
    return out


# ------------------------------------------------------------------------------------- cold


async def _cold(
    reactor: Any, req: Request, syn: dict[str, Any], h: dict[str, Any], policy: Any
) -> dict[str, Any]:
    from twisted.internet import defer

    times: list[float] = []
    errors: dict[str, str] = {}
    first_results: dict[str, Any] = {}
    for rnd in range(req.rounds):
        sess = Session(reactor, req, syn, h, policy)
        round_errors: dict[str, str] = {}

        async def one(name: str, sess: Session = sess, errs: dict = round_errors) -> Any:
            try:
                return await _cold_one(sess, syn, name)
            except Exception as e:
                errs[name] = describe_exception(e)
                return None

        t0 = time.perf_counter()
        d = defer.gatherResults([defer.ensureDeferred(one(n)) for n in req.names])
        d.addTimeout(ROUND_TIMEOUT_S, reactor)
        try:
            results = await d
        except (defer.TimeoutError, defer.CancelledError):
            results = None
            round_errors["*"] = f"round timeout after {ROUND_TIMEOUT_S:g} s"
        elapsed = time.perf_counter() - t0
        await sess.close()
        if results is not None:
            times.append(elapsed)
        for k, v in round_errors.items():
            errors.setdefault(k, f"round {rnd}: {v}")
        if rnd == 0 and results is not None:
            first_results = dict(zip(req.names, results, strict=True))
    return {
        "round_seconds": times,
        "median_s": median(times),
        "rounds_failed": req.rounds - len(times),
        "names_failed": sorted(n for n in errors if n != "*"),
        "errors": errors,
        "first_round_results": first_results,
        "includes": (
            "per round, fresh agent/pool/caches built before the timer; timed: all names "
            "concurrently through URI parse + WellKnownResolver.get_well_known (A/AAAA of the "
            "well-known host, TCP+TLS to :443, GET, parse) + "
            "MatrixHostnameEndpoint._resolve_server (SRV _matrix-fed, then _matrix) + "
            "A/AAAA lookup of the first target; excludes federation connect/TLS. A name that "
            "fails still counts (its failure time is part of the round); see names_failed. "
            "A round is dropped only if it hits the round timeout"
        ),
    }


async def _cold_each(
    reactor: Any, req: Request, syn: dict[str, Any], h: dict[str, Any], policy: Any
) -> dict[str, Any]:
    """Per name and round: a fresh session (built before the timer), then that one name."""
    from twisted.internet import defer

    per_name: dict[str, list[float]] = {n: [] for n in req.names}
    errors: dict[str, str] = {}
    for rnd in range(req.rounds):
        for name in req.names:
            sess = Session(reactor, req, syn, h, policy)
            t0 = time.perf_counter()
            d = defer.ensureDeferred(_cold_one(sess, syn, name))
            d.addTimeout(req.timeout_s, reactor)
            try:
                await d
            except Exception as e:  # a failure's time still counts, as in cold mode
                errors.setdefault(name, f"round {rnd}: {describe_exception(e)}")
            per_name[name].append(time.perf_counter() - t0)
            await sess.close()
    return {
        "per_name_seconds": per_name,
        "names_failed": sorted(errors),
        "errors": errors,
        "includes": "as cold mode, but one name at a time, each on a fresh session",
    }


# ----------------------------------------------------------------------------------- cached


async def _plan(sess: Session, syn: dict[str, Any], name: str) -> tuple[bytes | None, list[bytes]]:
    """For the "core" measurement: which well-known name and SRV names Synapse consults.

    Worked out from warm caches with the same rules as _stages (IP literal / explicit port:
    nothing; delegation to an IP literal or host:port: well-known only; otherwise the
    _matrix-fed and _matrix SRV names of the (delegated) host).
    """
    parsed = urllib.parse.urlparse(_uri_for(name))
    if syn["is_ip_literal"](parsed.hostname) or parsed.port:
        return None, []
    wk_host = parsed.hostname
    host = wk_host
    delegated = (await sess.wk.get_well_known(wk_host)).delegated_server
    if delegated:
        dp = urllib.parse.urlparse(b"matrix-federation://" + delegated + b"/")
        if dp.port or syn["is_ip_literal"](dp.hostname):
            return wk_host, []
        host = dp.hostname
    return wk_host, [b"_matrix-fed._tcp." + host, b"_matrix._tcp." + host]


async def _core(sess: Session, wk_host: bytes | None, srv_names: list[bytes]) -> None:
    """Only Synapse's two resolver objects, no URI/endpoint machinery."""
    if wk_host is not None:
        await sess.wk.get_well_known(wk_host)
    for srv_name in srv_names:
        if await sess.srv.resolve_service(srv_name):
            break


async def _cached(
    reactor: Any, req: Request, syn: dict[str, Any], h: dict[str, Any], policy: Any
) -> dict[str, Any]:
    from twisted.internet import defer
    from twisted.python.failure import Failure

    sess = Session(reactor, req, syn, h, policy)
    warm_errors: dict[str, str] = {}
    plans: dict[str, tuple[bytes | None, list[bytes]]] = {}
    for name in req.names:
        d = defer.ensureDeferred(_cold_one(sess, syn, name))
        d.addTimeout(req.timeout_s, reactor)
        try:
            await d
            plans[name] = await _plan(sess, syn, name)
        except Exception as e:
            warm_errors[name] = describe_exception(e)

    per_name_iters = max(1, -(-req.iterations // len(req.names)))
    budget_ns = int(req.max_seconds_per_name * 1e9)
    uris = {n: _uri_for(n) for n in req.names}

    def flow(name: str) -> Any:
        return _stages(sess, syn, uris[name])

    def core(name: str) -> Any:
        return _core(sess, *plans[name])

    async def bench(make: Any, name: str) -> tuple[float, int, float]:
        q0 = sess.log.srv_count
        done = 0
        start = time.perf_counter_ns()
        deadline = start + budget_ns
        while done < per_name_iters:
            d = defer.Deferred.fromCoroutine(make(name))
            if not d.called:
                await d  # a DNS query went out: Synapse didn't cache that answer
            elif isinstance(d.result, Failure):
                f = d.result
                d.addErrback(lambda _f: None)
                f.raiseException()
            done += 1
            if not done & 63 and time.perf_counter_ns() > deadline:
                break
        elapsed = time.perf_counter_ns() - start
        return elapsed / done, done, (sess.log.srv_count - q0) / done

    errors: dict[str, str] = {}
    names = [n for n in req.names if n not in warm_errors]
    for name in names:  # short untimed warm-up of the hit paths
        try:
            for _ in range(200):
                await flow(name)
                await core(name)
        except Exception as e:
            errors[name] = describe_exception(e)
    names = [n for n in names if n not in errors]

    results: dict[str, Any] = {}
    for label, make in (("flow", flow), ("core", core)):
        per_name: dict[str, dict[str, list[float]]] = {
            n: {"ns": [], "iterations": [], "q": []} for n in names
        }
        rounds_mean: list[float] = []
        rounds_hits: list[float] = []
        for _rnd in range(req.rounds):
            means: list[float] = []
            hits: list[float] = []
            for name in names:
                if name in errors:
                    continue
                try:
                    ns, n, q = await bench(make, name)
                except Exception as e:
                    errors[name] = describe_exception(e)
                    continue
                per_name[name]["ns"].append(ns)
                per_name[name]["iterations"].append(n)
                per_name[name]["q"].append(q)
                means.append(ns)
                if q == 0:
                    hits.append(ns)
            if means:
                rounds_mean.append(sum(means) / len(means))
            if hits:
                rounds_hits.append(sum(hits) / len(hits))
        results[label] = {
            "ns_per_resolution_median": median(rounds_mean),
            "ns_per_resolution_median_cache_hits_only": median(rounds_hits),
            "per_name": {
                n: {
                    "ns_per_resolution_median": median(v["ns"]),
                    "iterations": [int(i) for i in v["iterations"]],
                    "srv_queries_per_resolution": median(v["q"]),
                }
                for n, v in per_name.items()
            },
        }

    # Harness overhead: the same loop around an empty coroutine.
    async def _noop() -> None:
        return None

    overhead = (
        [(await bench(lambda _n: _noop(), names[0]))[0] for _ in range(req.rounds)] if names else []
    )
    await sess.close()
    core_res = results["core"]
    hit_names = sorted(
        n for n, v in core_res["per_name"].items() if v["srv_queries_per_resolution"] == 0
    )
    return {
        "ns_per_resolution_median": core_res["ns_per_resolution_median"],
        "ns_per_resolution_median_cache_hits_only": core_res[
            "ns_per_resolution_median_cache_hits_only"
        ],
        "flow_ns_per_resolution_median": results["flow"]["ns_per_resolution_median"],
        "flow_ns_per_resolution_median_cache_hits_only": results["flow"][
            "ns_per_resolution_median_cache_hits_only"
        ],
        "harness_overhead_ns": median(overhead),
        "cache_hit_names": hit_names,
        "core": core_res,
        "flow": results["flow"],
        "iterations_per_name_target": per_name_iters,
        "max_seconds_per_name": req.max_seconds_per_name,
        "errors": {**warm_errors, **errors},
        "includes": (
            "one Session; caches warmed once with the full cold path per name. 'core' (the "
            "headline ns_per_resolution_median): per call, WellKnownResolver.get_well_known "
            "(TTLCache hit) + SrvResolver.resolve_service (cache hit incl. _sort_server_list) "
            "on the names Synapse would consult (_matrix-fed, then _matrix if empty). 'flow' "
            "(flow_*): Synapse's whole pre-dial path: URI parse + IP-literal/port check + "
            "get_well_known + URI rewrite + MatrixHostnameEndpoint construction (no TLS "
            "options) + _resolve_server. Neither includes the address (A/AAAA) lookup. Each "
            "call is wrapped in Deferred.fromCoroutine (harness_overhead_ns measures that "
            "wrapper around an empty coroutine; it is not subtracted). Synapse does not cache "
            "NXDOMAIN/empty SRV answers, so names without SRV records send SRV queries on "
            "every call (srv_queries_per_resolution > 0); *_cache_hits_only leaves those names "
            "out. Per round: mean over names (equal weight); reported: median over rounds"
        ),
    }


# ------------------------------------------------------------------------------------- main


async def _amain(reactor: Any, req: Request) -> dict[str, Any]:
    syn = _import_synapse()
    h = _build(syn)
    policy = _make_policy(syn, req.cafile)
    base: dict[str, Any] = {"peer": PEER, "version": syn["version"], "mode": req.mode}
    if req.mode == "resolve":
        results = []
        for name in req.names:
            results.append(await _resolve_name(reactor, req, syn, h, policy, name))
        return {**base, "results": results}
    if req.mode == "cold_each":
        return {**base, "rounds": req.rounds, **await _cold_each(reactor, req, syn, h, policy)}
    if req.mode == "cold":
        return {
            **base,
            "names": len(req.names),
            "rounds": req.rounds,
            **await _cold(reactor, req, syn, h, policy),
        }
    return {
        **base,
        "names": len(req.names),
        "rounds": req.rounds,
        **await _cached(reactor, req, syn, h, policy),
    }


def main() -> int:
    # Twisted warns that the TLS transport under readBody() has no abortConnection().
    warnings.filterwarnings(
        "ignore", message="Using readBody with a transport", category=DeprecationWarning
    )
    logging.basicConfig(
        level=logging.ERROR, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        req = read_request()
    except (InputError, ValueError, json.JSONDecodeError) as e:
        write_result({"peer": PEER, "error": f"bad input: {e}"})
        return 2

    from twisted.internet import defer, task

    holder: dict[str, Any] = {}

    def _run(reactor: Any) -> Any:
        async def go() -> None:
            try:
                holder["out"] = await _amain(reactor, req)
            except Exception as e:
                holder["out"] = {"peer": PEER, "mode": req.mode, "error": describe_exception(e)}

        return defer.ensureDeferred(go())

    with contextlib.suppress(SystemExit):
        task.react(_run)
    write_result(holder.get("out", {"peer": PEER, "error": "driver produced no result"}))
    return 0 if "error" not in holder.get("out", {"error": 1}) else 1


if __name__ == "__main__":
    sys.exit(main())
