#!/usr/bin/env python3
"""Black-box driver for resolvematrix 1.0.0 (PyPI), a synchronous Python resolver.

Runs inside a separate virtualenv that has ``resolvematrix==1.0.0`` installed (see
``requirements-resolvematrix.txt``). Same stdin/stdout contract as ``synapse_peer.py``::

    {"nameserver": "127.0.0.1:5353", "cafile": "/path/ca.pem", "names": ["a.mxtest", ...],
     "rounds": 5, "mode": "resolve" | "cold" | "cached",
     "iterations": 100000, "max_seconds_per_name": 2.0}      # last two: cached mode, optional

How it is pointed at the loopback world (this process only):

* ``ServerResolver(dns_resolver=...)`` gets a dnspython Resolver that asks only the given
  nameserver (it is also installed as ``dns.resolver.default_resolver``);
* ``ServerResolver(client=...)`` gets an httpx.Client that trusts only the given CA
  (``trust_env=False``: no proxies from the environment), otherwise like resolvematrix's
  default client (same User-Agent);
* ``socket.getaddrinfo`` is wrapped: IP literals must be loopback, every other name is looked
  up (AAAA, then A) at the given nameserver with dnspython, and non-loopback answers are
  dropped, so httpx can only ever reach 127.0.0.0/8 and ::1;
* ``socket.create_connection`` is wrapped to log every (ip, port) dialled.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Iterator
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (
    InputError,
    Request,
    describe_exception,
    is_loopback,
    median,
    read_request,
    write_result,
)

PEER = "resolvematrix"
HTTP_TIMEOUT_S = 5.0
DNS_TIMEOUT_S = 2.0


class NameTimeout(Exception):
    """Raised by SIGALRM when one name exceeds its time budget."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Bound blocking work in the main thread (socket calls are interrupted by SIGALRM)."""

    def _raise(_sig: int, _frm: Any) -> None:
        raise NameTimeout(f"timeout after {seconds:g} s")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class Net:
    """Process-wide hooks: loopback-only getaddrinfo via the nameserver, and a dial log."""

    def __init__(self, nameserver: tuple[str, int]) -> None:
        import dns.resolver

        self.resolver = dns.resolver.Resolver(configure=False)
        self.resolver.nameservers = [nameserver[0]]
        self.resolver.port = nameserver[1]
        self.resolver.timeout = DNS_TIMEOUT_S
        self.resolver.lifetime = DNS_TIMEOUT_S
        self.resolver.cache = None
        dns.resolver.default_resolver = self.resolver
        self.dialled: list[tuple[str, int, str]] = []
        self.queries: list[tuple[str, str]] = []  # resolvematrix's own and getaddrinfo's
        self.refused: list[str] = []
        self.phase = "well-known"
        self._real_gai = socket.getaddrinfo
        self._real_cc = socket.create_connection

    def install(self) -> None:
        socket.getaddrinfo = self.getaddrinfo  # type: ignore[assignment]
        socket.create_connection = self.create_connection  # type: ignore[assignment]

    def getaddrinfo(
        self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[Any]:
        import dns.exception
        import dns.resolver

        if host is None:
            raise socket.gaierror(socket.EAI_NONAME, "peer driver: no host")
        name = host.decode("idna") if isinstance(host, bytes) else str(host)
        name = name.strip("[]")
        try:
            ipaddress.ip_address(name.split("%", 1)[0])
        except ValueError:
            pass
        else:
            if not is_loopback(name):
                self.refused.append(name)
                raise socket.gaierror(socket.EAI_NONAME, f"peer driver: {name} not loopback")
            return self._real_gai(name, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        ips: list[str] = []
        for rdtype in ("AAAA", "A"):
            if family == socket.AF_INET and rdtype == "AAAA":
                continue
            if family == socket.AF_INET6 and rdtype == "A":
                continue
            self.queries.append((name, rdtype))
            try:
                ans = self.resolver.resolve(name, rdtype, search=False)
            except dns.exception.DNSException:
                continue
            for rr in ans:
                ip = rr.to_text()
                if is_loopback(ip):
                    ips.append(ip)
                else:
                    self.refused.append(ip)
        if not ips:
            raise socket.gaierror(socket.EAI_NONAME, f"peer driver: no loopback address for {name}")
        out: list[Any] = []
        for ip in ips:
            out.extend(self._real_gai(ip, port, family, type, proto, flags | socket.AI_NUMERICHOST))
        return out

    def create_connection(
        self, address: tuple[Any, Any], timeout: Any = None, source_address: Any = None, **kw: Any
    ) -> socket.socket:
        host, port = address[0], address[1]
        infos = self.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        first: BaseException | None = None
        for _fam, _t, _p, _c, sockaddr in infos:
            ip, p = sockaddr[0], sockaddr[1]
            self.dialled.append((ip, int(p), self.phase))
            try:
                if timeout is None:
                    return self._real_cc((ip, p), source_address=source_address)
                return self._real_cc((ip, p), timeout, source_address)
            except OSError as e:
                first = first or e
        raise first or OSError(f"peer driver: nothing to dial for {host}")


class RecordingSSLContext(ssl.SSLContext):
    """Client context trusting only the test CA; logs the server_hostname of each handshake."""

    server_names: list[str | None]

    def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.server_names.append(kwargs.get("server_hostname"))
        return super().wrap_socket(sock, *args, **kwargs)


def _ssl_context(cafile: str) -> RecordingSSLContext:
    ctx = RecordingSSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname + CERT_REQUIRED
    ctx.load_verify_locations(cafile=cafile)
    ctx.server_names = []
    return ctx


class Counters:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None, str | None]] = []  # (url, Host, sni ext)
        self.dns_queries = 0
        self.last_read: Any = None


def _make_resolver(net: Net, ctx: RecordingSSLContext, counters: Counters) -> Any:
    import dns.resolver
    import httpx
    import resolvematrix
    from resolvematrix import server as rm_server

    class CountingResolver(dns.resolver.Resolver):
        def resolve(self, qname: Any, rdtype: Any = "A", *a: Any, **kw: Any) -> Any:  # type: ignore[override]
            counters.dns_queries += 1
            net.queries.append((str(qname), str(rdtype)))
            return super().resolve(qname, rdtype, *a, **kw)

    dres = CountingResolver(configure=False)
    dres.nameservers = list(net.resolver.nameservers)
    dres.port = net.resolver.port
    dres.timeout = net.resolver.timeout
    dres.lifetime = net.resolver.lifetime
    dres.cache = None

    def on_request(request: Any) -> None:
        counters.requests.append(
            (
                str(request.url),
                request.headers.get("host"),
                request.extensions.get("sni_hostname"),
            )
        )

    client = httpx.Client(
        headers={"User-Agent": f"resolvematrix/{resolvematrix.__version__}"},
        timeout=HTTP_TIMEOUT_S,
        trust_env=False,
        verify=ctx,
        event_hooks={"request": [on_request]},
    )
    res = rm_server.ServerResolver(client=client, dns_resolver=dres)
    return res


def _install_well_known_probe() -> None:
    """Remember the JSON that resolvematrix's limited_read() parsed last.

    resolve_well_known() calls limited_read() exactly once, on the final response of the
    well-known GET (after redirects); the driver reads the m.server value from it when
    resolve_well_known() returns normally.
    """
    from resolvematrix import server as rm_server

    real = rm_server.limited_read
    if getattr(real, "_peer_probe", False):
        return

    def probe(response: Any, limit: int, chunk: int) -> Any:
        data = real(response, limit, chunk)
        counters_ref[0].last_read = data
        return data

    probe._peer_probe = True  # type: ignore[attr-defined]
    rm_server.limited_read = probe


counters_ref: list[Counters] = [Counters()]


def _split_hostport(dest: str) -> tuple[str, int | None]:
    host, sep, port = dest.rpartition(":")
    if not sep:
        return dest, None
    try:
        return host, int(port)
    except ValueError:
        return dest, None


# ---------------------------------------------------------------------------------- resolve


def _resolve_name(net: Net, req: Request, name: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": name,
        "dialled": [],
        "destination": None,
        "host_header": None,
        "tls_name": None,
        "sni": None,
        "well_known": None,
        "error": None,
    }
    counters = Counters()
    counters_ref[0] = counters
    ctx = _ssl_context(req.cafile)
    net.dialled.clear()
    net.queries.clear()
    net.phase = "well-known"
    resolver = None
    try:
        with time_limit(req.timeout_s):
            resolver = _make_resolver(net, ctx, counters)
            wk_used: dict[str, Any] = {}
            inner_wk = resolver.resolve_well_known

            def recording_wk(destination: Any) -> Any:
                wk_used["called"] = True
                counters.last_read = None
                r = inner_wk(destination)
                if isinstance(counters.last_read, dict):
                    wk_used["m.server"] = counters.last_read.get("m.server")
                return r

            resolver.resolve_well_known = recording_wk
            dest = resolver.resolve(name)
            out["destination"] = dest.hostname
            out["host_header"] = dest.host_header
            out["tls_name"] = dest.sni
            out["base_url"] = dest.base_url
            out["well_known_fetched"] = bool(wk_used.get("called"))
            out["well_known"] = wk_used.get("m.server")
            net.phase = "federation"
            n_tls = len(ctx.server_names)
            n_req = len(counters.requests)
            try:
                software, version = resolver.get_server_version(dest)
                out["response"] = {"server": software, "version": version}
            except Exception as e:
                out["error"] = describe_exception(e)
            fed_names = ctx.server_names[n_tls:]
            if fed_names:
                sni = fed_names[-1]
                out["tls_name"] = sni
                out["sni"] = None if sni is None or _is_ip(sni) else sni
            fed_reqs = counters.requests[n_req:]
            if fed_reqs:
                out["host_header"] = fed_reqs[-1][1]
    except NameTimeout as e:
        out["error"] = str(e)
    except Exception as e:
        out["error"] = describe_exception(e)
    finally:
        if resolver is not None:
            with contextlib.suppress(Exception):
                resolver.client.close()
    out["dialled"] = [[ip, p] for ip, p, ph in net.dialled if ph == "federation"]
    out["well_known_dialled"] = [[ip, p] for ip, p, ph in net.dialled if ph == "well-known"]
    out["http_requests"] = [list(r) for r in counters.requests]
    out["dns_queries"] = [list(q) for q in net.queries]
    if net.refused:
        out["refused_non_loopback"] = list(net.refused)
        net.refused.clear()
    return out


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------------------- cold


def _cold(net: Net, req: Request) -> dict[str, Any]:
    times: list[float] = []
    errors: dict[str, str] = {}
    first: dict[str, Any] = {}
    for rnd in range(req.rounds):
        counters = Counters()
        counters_ref[0] = counters
        resolver = _make_resolver(net, _ssl_context(req.cafile), counters)
        round_errors: dict[str, str] = {}
        results: dict[str, Any] = {}
        net.dialled.clear()
        net.queries.clear()
        t0 = time.perf_counter()
        for name in req.names:
            try:
                with time_limit(req.timeout_s):
                    d = resolver.resolve(name)
                results[name] = {
                    "destination": d.hostname,
                    "host_header": d.host_header,
                    "sni": d.sni,
                }
            except Exception as e:
                round_errors[name] = describe_exception(e)
        elapsed = time.perf_counter() - t0
        with contextlib.suppress(Exception):
            resolver.client.close()
        times.append(elapsed)
        for k, v in round_errors.items():
            errors.setdefault(k, f"round {rnd}: {v}")
        if rnd == 0:
            first = results
    return {
        "round_seconds": times,
        "median_s": median(times),
        "names_failed": sorted(errors),
        "errors": errors,
        "first_round_results": first,
        "includes": (
            "per round, a fresh ServerResolver (new httpx.Client, so no pooled connections; "
            "new cache) built before the timer; timed: every name one after another (the API "
            "is synchronous) through ServerResolver.resolve(): well-known GET (getaddrinfo "
            "via the driver's dnspython hook, TCP+TLS to :443), SRV lookups and the A/AAAA "
            "existence checks resolvematrix makes; excludes the federation request. A name "
            "that fails still counts (its failure time is part of the round); see names_failed"
        ),
    }


def _cold_each(net: Net, req: Request) -> dict[str, Any]:
    """Per name and round: a fresh ServerResolver (built before the timer), then that name."""
    per_name: dict[str, list[float]] = {n: [] for n in req.names}
    errors: dict[str, str] = {}
    context = _ssl_context(req.cafile)
    for rnd in range(req.rounds):
        for name in req.names:
            counters = Counters()
            counters_ref[0] = counters
            resolver = _make_resolver(net, context, counters)
            t0 = time.perf_counter()
            try:
                with time_limit(req.timeout_s):
                    resolver.resolve(name)
            except Exception as e:  # a failure's time still counts, as in cold mode
                errors.setdefault(name, f"round {rnd}: {describe_exception(e)}")
            per_name[name].append(time.perf_counter() - t0)
            with contextlib.suppress(Exception):
                resolver.client.close()
    return {
        "per_name_seconds": per_name,
        "names_failed": sorted(errors),
        "errors": errors,
        "includes": "as cold mode, but one name at a time, each on a fresh ServerResolver",
    }


# ----------------------------------------------------------------------------------- cached


def _cached(net: Net, req: Request) -> dict[str, Any]:
    counters = Counters()
    counters_ref[0] = counters
    ctx = _ssl_context(req.cafile)
    resolver = _make_resolver(net, ctx, counters)
    warm_errors: dict[str, str] = {}
    for name in req.names:
        try:
            with time_limit(req.timeout_s):
                resolver.resolve(name)
        except Exception as e:
            warm_errors[name] = describe_exception(e)
    names = [n for n in req.names if n not in warm_errors]
    per_name_iters = max(1, -(-req.iterations // len(req.names)))
    budget_ns = int(req.max_seconds_per_name * 1e9)
    per: dict[str, dict[str, list[float]]] = {
        n: {"ns": [], "iterations": [], "dns": [], "http": [], "tls": [], "cache_get_ns": []}
        for n in names
    }
    errors: dict[str, str] = {}
    rounds_mean: list[float] = []
    rounds_get: list[float] = []
    for _rnd in range(req.rounds):
        means: list[float] = []
        gets: list[float] = []
        for name in names:
            if name in errors:
                continue
            net.dialled.clear()
            net.queries.clear()
            counters.requests.clear()
            ctx.server_names.clear()
            q0, h0 = counters.dns_queries, 0
            done = 0
            start = time.perf_counter_ns()
            deadline = start + budget_ns
            try:
                with time_limit(req.max_seconds_per_name + req.timeout_s):
                    while done < per_name_iters:
                        resolver.resolve(name)
                        done += 1
                        if time.perf_counter_ns() > deadline:
                            break
            except Exception as e:
                errors[name] = describe_exception(e)
                continue
            ns = (time.perf_counter_ns() - start) / done
            per[name]["ns"].append(ns)
            per[name]["iterations"].append(done)
            per[name]["dns"].append((counters.dns_queries - q0) / done)
            per[name]["http"].append((len(counters.requests) - h0) / done)
            per[name]["tls"].append(len(ctx.server_names) / done)
            means.append(ns)
            # What a caller that consults resolvematrix's cache first would pay.
            cache = resolver.cache
            g_iters = 10_000
            t0 = time.perf_counter_ns()
            for _ in range(g_iters):
                cache.get(name)
            g = (time.perf_counter_ns() - t0) / g_iters
            per[name]["cache_get_ns"].append(g)
            gets.append(g)
        if means:
            rounds_mean.append(sum(means) / len(means))
        if gets:
            rounds_get.append(sum(gets) / len(gets))
    with contextlib.suppress(Exception):
        resolver.client.close()
    return {
        "ns_per_resolution_median": median(rounds_mean),
        "cache_get_ns_median": median(rounds_get),
        "per_name": {
            n: {
                "ns_per_resolution_median": median(v["ns"]),
                "iterations": [int(i) for i in v["iterations"]],
                "dns_queries_per_resolution": median(v["dns"]),
                "http_requests_per_resolution": median(v["http"]),
                "tls_handshakes_per_resolution": median(v["tls"]),
                "cache_get_ns_median": median(v["cache_get_ns"]),
            }
            for n, v in per.items()
        },
        "iterations_per_name_target": per_name_iters,
        "max_seconds_per_name": req.max_seconds_per_name,
        "errors": {**warm_errors, **errors},
        "includes": (
            "one ServerResolver warmed with one resolve() per name; timed per name: repeated "
            "ServerResolver.resolve(name) calls. resolve() never reads its own cache, so every "
            "call repeats the well-known GET (over the httpx keep-alive connection when the "
            "server keeps it open), the SRV and the A/AAAA lookups: see "
            "dns_queries_per_resolution / http_requests_per_resolution / "
            "tls_handshakes_per_resolution (the getaddrinfo lookups httpx makes for a new "
            "connection are not in dns_queries_per_resolution). The loop stops at "
            "iterations_per_name_target or max_seconds_per_name. cache_get_ns_median: "
            "resolver.cache.get(name), which a caller would have to do itself. Per round: mean "
            "over names (equal weight); reported: median over rounds"
        ),
    }


# ------------------------------------------------------------------------------------- main


def main() -> int:
    try:
        req = read_request()
    except (InputError, ValueError, json.JSONDecodeError) as e:
        write_result({"peer": PEER, "error": f"bad input: {e}"})
        return 2
    try:
        import importlib.metadata

        version = importlib.metadata.version("resolvematrix")
        net = Net(req.nameserver)
        net.install()
        _install_well_known_probe()
        base: dict[str, Any] = {"peer": PEER, "version": version, "mode": req.mode}
        if req.mode == "resolve":
            out = {**base, "results": [_resolve_name(net, req, n) for n in req.names]}
        elif req.mode == "cold_each":
            out = {**base, "rounds": req.rounds, **_cold_each(net, req)}
        elif req.mode == "cold":
            out = {**base, "names": len(req.names), "rounds": req.rounds, **_cold(net, req)}
        else:
            out = {**base, "names": len(req.names), "rounds": req.rounds, **_cached(net, req)}
    except Exception as e:
        write_result({"peer": PEER, "mode": req.mode, "error": describe_exception(e)})
        return 1
    write_result(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
