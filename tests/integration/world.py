"""A loopback test world made of real servers, for mxresolve integration tests.

The world is:

* Knot DNS, authoritative for the test zone ``mxtest.`` (plus deliberately unloadable zones,
  which Knot answers with SERVFAIL), listening on 127.0.0.1 and ::1 at a free high port;
* nginx (OpenSSL) serving ``/.well-known/matrix/server`` on 127.0.1.N:443 and [::1]:443 (good,
  bad, redirecting, slow, oversized, wrong certificates) and the "target" homeservers on the
  addresses and ports the scenarios expect, each presenting a certificate from a throwaway
  ``trustme`` CA for the name a resolver must verify;
* Caddy (Go's crypto/tls) serving the ``cy-*`` scenarios the same way: well-known sites on
  127.0.4.N:443, targets on 127.0.5.N. Each site and scenario says which server serves it
  (``server``). Every target, and every site, answers ``/_matrix/federation/v1/version`` with
  the Host header and the SNI the server saw (an echo for tests of Host and SNI);
* a black hole: UDP+TCP sockets that accept queries/connections and never answer.

Traffic stays on 127.0.0.0/8 and ::1. ``SCENARIOS`` is the catalogue: server name plus the
resolution the resolver is expected to return, as plain frozen data. ``check_catalogue()``
verifies zone, sites and expectations against each other without starting anything.

The addresses are fixed (the spec fixes ports 443 and 8448, and ::1 is the only IPv6 loopback
address), so one world runs per machine: ``LoopbackWorld.start`` waits for a flock on
``LOCK_PATH`` (``MXRESOLVE_WORLD_WAIT`` seconds, default 120). Servers get SIGTERM if the
process that started them dies; temp dirs of killed runs are removed by the next start.
``MXRESOLVE_KEEP_WORLD=1`` keeps the temp dir (configs, logs, certificates) for debugging.

Run ``python tests/integration/world.py --seconds 600`` to keep a world up for manual poking.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import fcntl
import grp
import ipaddress
import json
import os
import pwd
import selectors
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.zone

ZONE = "mxtest"
DEFAULT_PORT = 8448
# Knobs a resolver under test must be configured with (loopback is refused by default).
ALLOW_IPS: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
STEPS: tuple[str, ...] = ("1", "2", "3.1", "3.2", "3.3", "3.4", "3.5", "4", "5", "6")
ERROR_KINDS: frozenset[str] = frozenset(
    {
        "invalid_server_name",
        "service_unavailable",
        "no_address",
        "dns_failure",
        "refused_address",
        "deadline_exceeded",
    }
)
READY_TIMEOUT = 10.0  # seconds to wait for a server to become ready
STOP_TIMEOUT = 5.0  # seconds to wait for a server to exit after SIGTERM


# The world owns fixed sockets (127.0.1.x:443, [::1]:443, ...), so only one can run per
# machine: later ones wait for this lock (flock is released even if its holder is killed).
# Per network namespace: runs in private namespaces (tests/netns.py) never wait on each other.
def _lock_path() -> Path:
    try:
        namespace = str(os.stat("/proc/self/ns/net").st_ino)
    except OSError:
        namespace = "host"
    return Path(tempfile.gettempdir()) / f"mxresolve-loopback-world-{namespace}.lock"


LOCK_PATH = _lock_path()
LOCK_WAIT_ENV = "MXRESOLVE_WORLD_WAIT"  # seconds to wait for the lock (default 120)
DIR_PREFIX = "mxworld-"

# =============================================================================================
# Expectation types
# =============================================================================================


@dataclass(frozen=True)
class Target:
    """One expected connection target, in connection order.

    ``srv_priority`` is set for targets that came from SRV records: targets with equal priority
    may come in any order (RFC 2782 weighting is random), groups must be in priority order.
    """

    host: str
    port: int
    addresses: frozenset[str]
    host_header: str
    tls_server_name: str
    srv_priority: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "addresses": sorted(self.addresses),
            "host_header": self.host_header,
            "tls_server_name": self.tls_server_name,
        }


@dataclass(frozen=True)
class Scenario:
    """A server name in the test world and the resolution expected for it.

    Exactly one of ``targets`` (success) and ``error`` (failure) is set. ``step`` is the spec
    step that decided, also for failures.

    ``nameserver`` says which DNS server the resolver must use: ``"knot"`` (the real zone) or
    ``"blackhole"`` (never answers). ``wk_timeout_max`` / ``wk_size_limit_max``: the expectation
    holds only if the resolver's total ``.well-known`` deadline (seconds) / body size limit
    (bytes) is at most this. ``expects_warning``: the resolver should trace a warning (SRV target
    that is a CNAME). ``target_tls_ok``: whether a verified TLS connection to the targets (with
    ``tls_server_name``) succeeds; False when the world deliberately serves a wrong certificate.
    ``server``: the TLS server ("nginx" or "caddy") serving the name's well-known (if any) and
    its targets, for tests and reports that group by server.
    """

    name: str
    server_name: str
    step: str
    description: str
    targets: tuple[Target, ...] = ()
    error: str | None = None
    error_alternatives: tuple[str, ...] = ()
    nameserver: Literal["knot", "blackhole"] = "knot"
    expects_warning: bool = False
    wk_timeout_max: float | None = None
    wk_size_limit_max: int | None = None
    target_tls_ok: bool = True
    spec_refs: tuple[str, ...] = ()
    server: ServerKind = "nginx"

    @property
    def ok(self) -> bool:
        return self.error is None

    def expected(self) -> dict[str, Any]:
        """The expectation as JSON-able plain data."""
        return {
            "step": self.step,
            "targets": [t.to_dict() for t in self.targets],
            "error": self.error,
        }


def compare_targets(expected: Sequence[Target], actual: Sequence[Any]) -> list[str]:
    """Problems found comparing a resolver's targets with the expected ones ([] if they match).

    ``actual`` items may be mappings or objects with attributes ``host``, ``port``,
    ``addresses`` (any iterable), ``host_header`` and ``tls_server_name``.
    """

    def get(item: Any, key: str) -> Any:
        return item[key] if isinstance(item, Mapping) else getattr(item, key)

    def norm(item: Any) -> tuple[str, int, frozenset[str], str, str]:
        return (
            str(get(item, "host")),
            int(get(item, "port")),
            frozenset(str(a) for a in get(item, "addresses")),
            str(get(item, "host_header")),
            str(get(item, "tls_server_name")),
        )

    problems: list[str] = []
    if len(expected) != len(actual):
        problems.append(f"expected {len(expected)} targets, got {len(actual)}")
        return problems
    want = [norm(t.to_dict()) for t in expected]
    got = [norm(a) for a in actual]
    i = 0
    while i < len(expected):
        # Consecutive targets with the same SRV priority form an unordered group.
        j = i + 1
        prio = expected[i].srv_priority
        while prio is not None and j < len(expected) and expected[j].srv_priority == prio:
            j += 1
        if sorted(want[i:j], key=repr) != sorted(got[i:j], key=repr):
            problems.append(f"targets[{i}:{j}]: expected {want[i:j]!r}, got {got[i:j]!r}")
        i = j
    return problems


def _t(
    host: str,
    port: int,
    addresses: Iterable[str],
    host_header: str,
    tls_server_name: str | None = None,
    prio: int | None = None,
) -> Target:
    return Target(
        host=host,
        port=port,
        addresses=frozenset(addresses),
        host_header=host_header,
        tls_server_name=tls_server_name if tls_server_name is not None else host_header,
        srv_priority=prio,
    )


def _n(label: str) -> str:
    """Fully spelled test-zone name, without trailing dot."""
    return f"{label}.{ZONE}"


# =============================================================================================
# World data: DNS zone, well-known sites
# =============================================================================================

# Addresses: 127.0.0.1 = Knot and the black hole (high ports); 127.0.1.N = hosts serving a
# .well-known on :443; 127.0.3.N = target homeservers; ::1 = IPv6 everything (SNI picks the
# site). Names with "trap" point at 127.0.3.9x where nothing listens: a resolver reaching them
# took a wrong turn.
ZONE_TEXT = """\
$ORIGIN mxtest.
$TTL 300
@                   SOA   ns.mxtest. hostmaster.mxtest. 2024010101 3600 600 86400 60
@                   NS    ns
ns                  A     127.0.0.1

; ---- traps: never part of an expected result
t-trap              A     127.0.3.99
deleg-srv           A     127.0.3.98

; ---- step 2 (explicit port)
port                A     127.0.3.21
_matrix-fed._tcp.port SRV 0 0 8448 t-trap
port-cname          CNAME alias-hop1
alias-hop1          CNAME v6host
v6host              AAAA  ::1

; ---- hosts serving /.well-known/matrix/server (nginx on :443)
wk-ip               A     127.0.1.1
wk-ip-port          A     127.0.1.2
wk-ipv6             A     127.0.1.3
wk-ipv6-port        A     127.0.1.4
wk-port             A     127.0.1.5
wk-port-cname       A     127.0.1.6
wk-port-443         A     127.0.1.7
wk-text-plain       A     127.0.1.8
wk-gone             A     127.0.1.9
_matrix-fed._tcp.wk-gone SRV 0 0 8448 t-fed
wk-self-port        A     127.0.1.10
wk-srv              A     127.0.1.11
wk-srv-multi        A     127.0.1.12
wk-srv-legacy       A     127.0.1.13
wk-nosrv            A     127.0.1.14
_matrix-fed._tcp.wk-nosrv SRV 0 0 8448 t-trap
wk-self             A     127.0.1.15
wk-no-recursion     A     127.0.1.16
wk-cname-deleg      A     127.0.1.17
wk-v6               AAAA  ::1
wk-redir-dest       A     127.0.1.20
wk-redir-301        A     127.0.1.21
wk-redir-302        A     127.0.1.22
wk-redir-307        A     127.0.1.23
wk-redir-308        A     127.0.1.24
wk-redir-chain      A     127.0.1.25
wk-redir-hop        A     127.0.1.26
wk-redir-relative   A     127.0.1.27
wk-redir-loop       A     127.0.1.28
_matrix-fed._tcp.wk-redir-loop SRV 10 0 8448 t-fed
wk-redir-loop-b     A     127.0.1.29
wk-redir-self       A     127.0.1.30
wk-redir-http       A     127.0.1.31
_matrix._tcp.wk-redir-http SRV 0 0 8443 t-legacy
wk-plain-http       A     127.0.1.32
wk-html             A     127.0.1.40
wk-bad-json         A     127.0.1.41
wk-empty-object     A     127.0.1.42
wk-non-string       A     127.0.1.43
wk-array            A     127.0.1.44
wk-url              A     127.0.1.45
wk-empty-string     A     127.0.1.46
wk-404              A     127.0.1.47
_matrix-fed._tcp.wk-404 SRV 10 5 8448 t-fed
wk-503              A     127.0.1.48
_matrix-fed._tcp.wk-503 SRV 10 60 8448 t-w1
_matrix-fed._tcp.wk-503 SRV 10 40 8443 t-w2
_matrix-fed._tcp.wk-503 SRV 20 0 8448 t-fed
wk-wrong-name       A     127.0.1.50
wk-self-signed      A     127.0.1.51
_matrix-fed._tcp.wk-self-signed SRV 0 0 8443 t-fed
wk-expired          A     127.0.1.52
wk-untrusted-ca     A     127.0.1.53
wk-slow             A     127.0.1.60
wk-oversized        A     127.0.1.61
wk-hang             A     127.0.1.62

; ---- delegated names (m.server values)
deleg-port          A     127.0.3.2
deleg-alias         CNAME deleg-alias-hop
deleg-alias-hop     CNAME deleg-real
deleg-real          A     127.0.3.3
deleg-443           A     127.0.3.4
deleg-v6            AAAA  ::1
_matrix-fed._tcp.deleg-srv SRV 10 0 8443 t-srv
_matrix._tcp.deleg-srv SRV 10 0 8449 t-trap
_matrix-fed._tcp.deleg-srv-multi SRV 10 0 8448 t-a
_matrix-fed._tcp.deleg-srv-multi SRV 20 0 8443 t-b
_matrix._tcp.deleg-legacy SRV 0 0 8443 t-legacy
deleg-plain         A     127.0.3.8
deleg-plain         AAAA  ::1
deleg-cname         CNAME deleg-real
deleg-redir         A     127.0.3.9
; gone.mxtest is deliberately absent (NXDOMAIN)

; ---- SRV targets
t-srv               A     127.0.3.5
t-a                 A     127.0.3.6
t-b                 AAAA  ::1
t-legacy            A     127.0.3.7
t-fed               A     127.0.3.30
t-w1                A     127.0.3.31
t-w2                A     127.0.3.32
t-alias             CNAME t-real
t-real              A     127.0.3.33
t-v6                AAAA  ::1
t-noaddr            TXT   "no address records here"
; t-missing.mxtest is deliberately absent (NXDOMAIN)

; ---- steps 4, 5, 6 (no .well-known: nothing listens on :443 at these addresses)
srv-fed             A     127.0.3.41
_matrix-fed._tcp.srv-fed SRV 10 5 8448 t-fed
_matrix._tcp.srv-fed SRV 0 0 8449 t-trap
srv-legacy          A     127.0.3.47
_matrix._tcp.srv-legacy SRV 0 0 8443 t-legacy
srv-cname-target    A     127.0.3.48
_matrix-fed._tcp.srv-cname-target SRV 0 0 8448 t-alias
srv-dot             A     127.0.3.42
_matrix-fed._tcp.srv-dot SRV 0 0 0 .
_matrix._tcp.srv-dot SRV 0 0 8443 t-legacy
srv-dot-legacy      A     127.0.3.49
_matrix._tcp.srv-dot-legacy SRV 0 0 0 .
srv-no-address      A     127.0.3.50
_matrix-fed._tcp.srv-no-address SRV 0 0 8448 t-noaddr
srv-partial         A     127.0.3.51
_matrix-fed._tcp.srv-partial SRV 10 0 8448 t-noaddr
_matrix-fed._tcp.srv-partial SRV 15 0 8448 t-missing
_matrix-fed._tcp.srv-partial SRV 20 0 8443 t-fed
srv-servfail        A     127.0.3.43
srv-servfail-legacy A     127.0.3.52
_matrix._tcp.srv-servfail-legacy SRV 0 0 8443 t-legacy
srv-v6              A     127.0.3.53
_matrix-fed._tcp.srv-v6 SRV 0 0 8448 t-v6
plain               A     127.0.3.40
plain-v6            AAAA  ::1
dual-stack          A     127.0.3.44
dual-stack          AAAA  ::1
cname-chain         CNAME cname-hop1
cname-hop1          CNAME cname-hop2
cname-hop2          A     127.0.3.45
nodata              TXT   "no address records here"
target-badcert      A     127.0.3.46
; nx.mxtest and nx-port.mxtest are deliberately absent (NXDOMAIN)

; ---- served by Caddy (Go crypto/tls): well-known hosts on 127.0.4.N:443, targets on 127.0.5.N
cy-wk-port          A     127.0.4.1
cy-wk-srv           A     127.0.4.2
cy-wk-redir         A     127.0.4.3
cy-wk-dest          A     127.0.4.4
cy-wk-404           A     127.0.4.5
_matrix-fed._tcp.cy-wk-404 SRV 10 0 8448 cy-t-fed
cy-wk-nosrv         A     127.0.4.6
cy-deleg-port       A     127.0.5.1
_matrix-fed._tcp.cy-deleg-srv SRV 10 0 8443 cy-t-srv
cy-t-srv            A     127.0.5.2
cy-t-fed            A     127.0.5.3
cy-deleg-plain      A     127.0.5.4

; ---- a real Synapse (tests/integration/synapse.py, which serves 127.0.6.N): hs.mxtest's
; web server delegates to Synapse's TLS listener on hs-fed:8448, with an SRV fallback to it
hs                  A     127.0.6.3
_matrix-fed._tcp.hs SRV   10 0 8448 hs-fed
hs-fed              A     127.0.6.1

; ---- failover of the HTTP-client adapters (EXTRA_TARGETS; tests/integration/test_requests.py)
fo-refused          A     127.0.3.99
_matrix-fed._tcp.fo-refused SRV 10 0 8448 t-trap
_matrix-fed._tcp.fo-refused SRV 20 0 8448 t-fed
fo-badcert          A     127.0.3.99
_matrix-fed._tcp.fo-badcert SRV 10 0 8448 target-badcert
_matrix-fed._tcp.fo-badcert SRV 20 0 8448 t-fed
"""

# Zones Knot is configured for whose zone file is unloadable: Knot answers SERVFAIL for every
# name at or below them (checked in test_world.py). A child zone of mxtest. wins over the parent.
SERVFAIL_ZONES: tuple[str, ...] = (
    "servfail.mxtest",
    "_matrix-fed._tcp.srv-servfail.mxtest",
    "_matrix-fed._tcp.srv-servfail-legacy.mxtest",
)

CertKind = Literal["valid", "wrong-name", "self-signed", "expired", "untrusted-ca"]
# The TLS server that serves a site or a scenario's hosts: nginx (OpenSSL) or Caddy (Go's
# crypto/tls). They differ on the wire (Go sends its session tickets before it reads the
# client's Finished), so some scenarios are served by each.
ServerKind = Literal["nginx", "caddy"]
SERVER_KINDS: tuple[ServerKind, ...] = ("nginx", "caddy")
WRONG_NAME = _n("wrong-name")  # the name in every deliberately wrong-name certificate
WK_PATH = "/.well-known/matrix/server"
MOVED_PATH = "/.well-known/matrix/server-moved"
VERSION_PATH = "/_matrix/federation/v1/version"
OVERSIZED_BYTES = 200 * 1024
SLOW_RATE = 1  # bytes per second once the slow body starts dripping
SLOW_UNTHROTTLED = 512  # response bytes (headers included) sent before the drip starts
SLOW_BYTES = 4096  # slow body size: the drip would take about an hour


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def _padded_json(m_server: str, size: int) -> bytes:
    """A valid delegation body of exactly ``size`` bytes."""
    head = _json({"m.server": m_server, "padding": ""})
    return _json({"m.server": m_server, "padding": "x" * (size - len(head))})


@dataclass(frozen=True)
class WellKnownSite:
    """A host serving ``/.well-known/matrix/server`` over HTTPS (or plain HTTP)."""

    host: str
    addresses: tuple[str, ...]
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    location: str | None = None
    cache_control: str | None = None
    cert: CertKind = "valid"
    slow: bool = False
    relative_redirect: bool = False  # Location is a path, served by the same site
    port: int = 443
    tls: bool = True
    server: ServerKind = "nginx"


def _redirect(host: str, addr: str, status: int, to_host: str, **kw: Any) -> WellKnownSite:
    return WellKnownSite(
        host=host, addresses=(addr,), status=status, location=f"https://{to_host}{WK_PATH}", **kw
    )


def _body(host: str, addr: str, body: bytes, **kw: Any) -> WellKnownSite:
    return WellKnownSite(host=host, addresses=(addr,), body=body, **kw)


_DELEG_PORT = _json({"m.server": "deleg-port.mxtest:8443"})
_DELEG_REDIR = _json({"m.server": "deleg-redir.mxtest:8443"})
_CY_DELEG_PORT = _json({"m.server": "cy-deleg-port.mxtest:8443"})
# Bodies that would delegate to a trap if a resolver wrongly accepted them.
_TRAP_DELEGATION = "127.0.3.97:8448"

SITES: tuple[WellKnownSite, ...] = (
    # Trap: port.mxtest is resolved with an explicit port (step 2); this must never be read.
    _body(_n("port"), "127.0.3.21", _json({"m.server": _TRAP_DELEGATION})),
    _body(_n("wk-ip"), "127.0.1.1", _json({"m.server": "127.0.3.11"})),
    _body(_n("wk-ip-port"), "127.0.1.2", _json({"m.server": "127.0.3.11:8443"})),
    _body(_n("wk-ipv6"), "127.0.1.3", _json({"m.server": "[::1]"})),
    _body(_n("wk-ipv6-port"), "127.0.1.4", _json({"m.server": "[::1]:8443"})),
    _body(_n("wk-port"), "127.0.1.5", _DELEG_PORT, cache_control="max-age=3600"),
    _body(_n("wk-port-cname"), "127.0.1.6", _json({"m.server": "deleg-alias.mxtest:8448"})),
    _body(_n("wk-port-443"), "127.0.1.7", _json({"m.server": "deleg-443.mxtest:443"})),
    _body(
        _n("wk-text-plain"),
        "127.0.1.8",
        _json({"m.server": "deleg-port.mxtest:8443", "org.example.extra": True}),
        content_type="text/plain",
    ),
    _body(_n("wk-gone"), "127.0.1.9", _json({"m.server": "gone.mxtest:8448"})),
    _body(_n("wk-self-port"), "127.0.1.10", _json({"m.server": "wk-self-port.mxtest:8448"})),
    _body(
        _n("wk-srv"),
        "127.0.1.11",
        _json({"m.server": "deleg-srv.mxtest"}),
        cache_control="max-age=604800",
    ),
    _body(_n("wk-srv-multi"), "127.0.1.12", _json({"m.server": "deleg-srv-multi.mxtest"})),
    _body(_n("wk-srv-legacy"), "127.0.1.13", _json({"m.server": "deleg-legacy.mxtest"})),
    _body(_n("wk-nosrv"), "127.0.1.14", _json({"m.server": "deleg-plain.mxtest"})),
    _body(_n("wk-self"), "127.0.1.15", _json({"m.server": "wk-self.mxtest"})),
    _body(_n("wk-no-recursion"), "127.0.1.16", _json({"m.server": "wk-ip.mxtest"})),
    _body(_n("wk-cname-deleg"), "127.0.1.17", _json({"m.server": "deleg-cname.mxtest"})),
    _body(_n("wk-v6"), "::1", _json({"m.server": "deleg-v6.mxtest:8443"})),
    # Redirects; the destination delegates to deleg-redir.mxtest:8443.
    _body(_n("wk-redir-dest"), "127.0.1.20", _DELEG_REDIR, cache_control="max-age=600"),
    _redirect(_n("wk-redir-301"), "127.0.1.21", 301, _n("wk-redir-dest")),
    _redirect(_n("wk-redir-302"), "127.0.1.22", 302, _n("wk-redir-dest")),
    _redirect(_n("wk-redir-307"), "127.0.1.23", 307, _n("wk-redir-dest")),
    _redirect(_n("wk-redir-308"), "127.0.1.24", 308, _n("wk-redir-dest")),
    _redirect(_n("wk-redir-chain"), "127.0.1.25", 301, _n("wk-redir-hop")),
    _redirect(_n("wk-redir-hop"), "127.0.1.26", 307, _n("wk-redir-dest")),
    WellKnownSite(
        host=_n("wk-redir-relative"),
        addresses=("127.0.1.27",),
        status=302,
        location=MOVED_PATH,
        relative_redirect=True,
        body=_DELEG_REDIR,
    ),
    _redirect(_n("wk-redir-loop"), "127.0.1.28", 302, _n("wk-redir-loop-b")),
    _redirect(_n("wk-redir-loop-b"), "127.0.1.29", 302, _n("wk-redir-loop")),
    _redirect(_n("wk-redir-self"), "127.0.1.30", 301, _n("wk-redir-self")),
    WellKnownSite(
        host=_n("wk-redir-http"),
        addresses=("127.0.1.31",),
        status=301,
        location=f"http://{_n('wk-plain-http')}{WK_PATH}",
    ),
    # Plain-HTTP target of the http: redirect; a valid (trap) delegation if wrongly followed.
    WellKnownSite(
        host=_n("wk-plain-http"),
        addresses=("127.0.1.32",),
        body=_json({"m.server": _TRAP_DELEGATION}),
        port=80,
        tls=False,
    ),
    # Invalid responses.
    _body(
        _n("wk-html"),
        "127.0.1.40",
        b"<html><body><h1>Welcome to nginx!</h1></body></html>\n",
        content_type="text/html",
    ),
    _body(_n("wk-bad-json"), "127.0.1.41", b'{"m.server": "deleg-port.mxtest:8443"'),
    _body(_n("wk-empty-object"), "127.0.1.42", b"{}"),
    _body(_n("wk-non-string"), "127.0.1.43", _json({"m.server": 8448})),
    _body(_n("wk-array"), "127.0.1.44", _json(["deleg-port.mxtest:8443"])),
    _body(_n("wk-url"), "127.0.1.45", _json({"m.server": "https://deleg-port.mxtest"})),
    _body(_n("wk-empty-string"), "127.0.1.46", _json({"m.server": ""})),
    WellKnownSite(host=_n("wk-404"), addresses=("127.0.1.47",), status=404),
    WellKnownSite(host=_n("wk-503"), addresses=("127.0.1.48",), status=503),
    # Bad certificates on the .well-known host; bodies would be valid (trap) delegations.
    _body(_n("wk-wrong-name"), "127.0.1.50", _DELEG_PORT, cert="wrong-name"),
    _body(_n("wk-self-signed"), "127.0.1.51", _DELEG_PORT, cert="self-signed"),
    _body(_n("wk-expired"), "127.0.1.52", _DELEG_PORT, cert="expired"),
    _body(_n("wk-untrusted-ca"), "127.0.1.53", _DELEG_PORT, cert="untrusted-ca"),
    # Slow (drips ~1 byte/s after the headers) and oversized; both valid (trap) delegations.
    _body(_n("wk-slow"), "127.0.1.60", _padded_json(_TRAP_DELEGATION, SLOW_BYTES), slow=True),
    _body(_n("wk-oversized"), "127.0.1.61", _padded_json(_TRAP_DELEGATION, OVERSIZED_BYTES)),
    # Served by Caddy (Go TLS).
    _body(
        _n("cy-wk-port"),
        "127.0.4.1",
        _CY_DELEG_PORT,
        cache_control="max-age=3600",
        server="caddy",
    ),
    _body(_n("cy-wk-srv"), "127.0.4.2", _json({"m.server": "cy-deleg-srv.mxtest"}), server="caddy"),
    _redirect(_n("cy-wk-redir"), "127.0.4.3", 301, _n("cy-wk-dest"), server="caddy"),
    _body(_n("cy-wk-dest"), "127.0.4.4", _CY_DELEG_PORT, server="caddy"),
    WellKnownSite(host=_n("cy-wk-404"), addresses=("127.0.4.5",), status=404, server="caddy"),
    _body(
        _n("cy-wk-nosrv"), "127.0.4.6", _json({"m.server": "cy-deleg-plain.mxtest"}), server="caddy"
    ),
)

# TCP endpoints that accept connections and never answer (served by the black hole thread).
HANG_ENDPOINTS: tuple[tuple[str, int], ...] = (("127.0.1.62", 443),)

# =============================================================================================
# Scenario catalogue
# =============================================================================================

_S = Scenario
_WK_TIMEOUT = 5.0  # resolver .well-known deadline needed by the slow/hang scenarios
_WK_SIZE_LIMIT = 64 * 1024  # resolver .well-known size limit needed by the oversized scenario


def _step6(label: str, addresses: Iterable[str]) -> tuple[Target, ...]:
    """A name without a port found by its A/AAAA records at 8448 (steps 3.5 and 6)."""
    name = _n(label)
    return (_t(name, DEFAULT_PORT, addresses, name),)


def _with_port(label: str, port: int, addresses: Iterable[str]) -> Target:
    """A name with an explicit port (steps 2, 3.2): Host keeps the port, the TLS name not."""
    name = _n(label)
    return _t(name, port, addresses, f"{name}:{port}", name)


def _srv(
    target: str, port: int, addresses: Iterable[str], name: str, prio: int | None = None
) -> Target:
    return _t(_n(target), port, addresses, name, name, prio)


SCENARIOS: tuple[Scenario, ...] = (
    # ---- step 1: IP literals, no DNS at all
    _S(
        "ip4",
        "127.0.3.10",
        "1",
        "IPv4 literal, default port 8448",
        targets=(_t("127.0.3.10", 8448, ["127.0.3.10"], "127.0.3.10"),),
        spec_refs=("R-01",),
    ),
    _S(
        "ip4-port",
        "127.0.3.10:8443",
        "1",
        "IPv4 literal with port; Host keeps the port",
        targets=(_t("127.0.3.10", 8443, ["127.0.3.10"], "127.0.3.10:8443", "127.0.3.10"),),
        spec_refs=("R-02",),
    ),
    _S(
        "ip6",
        "[::1]",
        "1",
        "IPv6 literal, default port; Host bracketed, TLS name bare",
        targets=(_t("::1", 8448, ["::1"], "[::1]", "::1"),),
        spec_refs=("R-03",),
    ),
    _S(
        "ip6-port",
        "[::1]:8443",
        "1",
        "IPv6 literal with port",
        targets=(_t("::1", 8443, ["::1"], "[::1]:8443", "::1"),),
        spec_refs=("R-04",),
    ),
    _S(
        "ip4-no-dns",
        "127.0.3.10",
        "1",
        "IPv4 literal with the black-hole nameserver: resolves without any DNS query",
        targets=(_t("127.0.3.10", 8448, ["127.0.3.10"], "127.0.3.10"),),
        nameserver="blackhole",
        spec_refs=("R-01", "R-05"),
    ),
    # ---- step 2: explicit port
    _S(
        "explicit-port",
        "port.mxtest:8443",
        "2",
        "explicit port; the trap .well-known and _matrix-fed SRV of port.mxtest are not used",
        targets=(_with_port("port", 8443, ["127.0.3.21"]),),
        spec_refs=("R-06",),
    ),
    _S(
        "explicit-port-cname",
        "port-cname.mxtest:8448",
        "2",
        "explicit port; name is a CNAME chain to an AAAA-only (::1) name",
        targets=(_with_port("port-cname", 8448, ["::1"]),),
        spec_refs=("R-08",),
    ),
    _S(
        "explicit-port-nxdomain",
        "nx-port.mxtest:8448",
        "2",
        "explicit port, name NXDOMAIN: fails, no fallback",
        error="no_address",
        spec_refs=("R-09",),
    ),
    # ---- step 3.1: m.server is an IP literal
    _S(
        "wk-ip",
        "wk-ip.mxtest",
        "3.1",
        'm.server "127.0.3.11"',
        targets=(_t("127.0.3.11", 8448, ["127.0.3.11"], "127.0.3.11"),),
        spec_refs=("R-10",),
    ),
    _S(
        "wk-ip-port",
        "wk-ip-port.mxtest",
        "3.1",
        'm.server "127.0.3.11:8443"',
        targets=(_t("127.0.3.11", 8443, ["127.0.3.11"], "127.0.3.11:8443", "127.0.3.11"),),
        spec_refs=("R-11",),
    ),
    _S(
        "wk-ipv6",
        "wk-ipv6.mxtest",
        "3.1",
        'm.server "[::1]"',
        targets=(_t("::1", 8448, ["::1"], "[::1]", "::1"),),
        spec_refs=("R-12",),
    ),
    _S(
        "wk-ipv6-port",
        "wk-ipv6-port.mxtest",
        "3.1",
        'm.server "[::1]:8443"',
        targets=(_t("::1", 8443, ["::1"], "[::1]:8443", "::1"),),
        spec_refs=("R-13",),
    ),
    # ---- step 3.2: m.server name:port
    _S(
        "wk-port",
        "wk-port.mxtest",
        "3.2",
        'm.server "deleg-port.mxtest:8443", Cache-Control max-age=3600',
        targets=(_with_port("deleg-port", 8443, ["127.0.3.2"]),),
        spec_refs=("R-15", "C-01"),
    ),
    _S(
        "wk-port-cname",
        "wk-port-cname.mxtest",
        "3.2",
        'm.server "deleg-alias.mxtest:8448"; deleg-alias is a two-hop CNAME chain',
        targets=(_with_port("deleg-alias", 8448, ["127.0.3.3"]),),
        spec_refs=("R-16",),
    ),
    _S(
        "wk-port-443",
        "wk-port-443.mxtest",
        "3.2",
        'm.server "deleg-443.mxtest:443": Host keeps ":443"',
        targets=(_with_port("deleg-443", 443, ["127.0.3.4"]),),
        spec_refs=("R-14",),
    ),
    _S(
        "wk-text-plain",
        "wk-text-plain.mxtest",
        "3.2",
        "valid body served as text/plain with an extra key",
        targets=(_with_port("deleg-port", 8443, ["127.0.3.2"]),),
        spec_refs=("R-33", "R-34"),
    ),
    _S(
        "wk-ipv6-host",
        "wk-v6.mxtest",
        "3.2",
        ".well-known host is AAAA-only (fetched from [::1]:443); delegates to an AAAA-only name",
        targets=(_with_port("deleg-v6", 8443, ["::1"]),),
    ),
    _S(
        "wk-self-port",
        "wk-self-port.mxtest",
        "3.2",
        "self-delegation with a port",
        targets=(_with_port("wk-self-port", 8448, ["127.0.1.10"]),),
        spec_refs=("R-25",),
    ),
    _S(
        "wk-gone",
        "wk-gone.mxtest",
        "3.2",
        "delegated name NXDOMAIN: fails; the original's _matrix-fed SRV is not used",
        error="no_address",
        spec_refs=("R-23",),
    ),
    # ---- step 3.3: m.server without port, _matrix-fed SRV
    _S(
        "wk-srv",
        "wk-srv.mxtest",
        "3.3",
        "_matrix-fed SRV of the delegated name wins over its _matrix SRV; max-age=604800",
        targets=(_srv("t-srv", 8443, ["127.0.3.5"], _n("deleg-srv"), 10),),
        spec_refs=("R-17", "R-18", "C-03"),
    ),
    _S(
        "wk-srv-multi",
        "wk-srv-multi.mxtest",
        "3.3",
        "two SRV priorities; the second target is AAAA-only",
        targets=(
            _srv("t-a", 8448, ["127.0.3.6"], _n("deleg-srv-multi"), 10),
            _srv("t-b", 8443, ["::1"], _n("deleg-srv-multi"), 20),
        ),
    ),
    # ---- step 3.4: deprecated _matrix SRV of the delegated name
    _S(
        "wk-srv-legacy",
        "wk-srv-legacy.mxtest",
        "3.4",
        "delegated name has only a _matrix._tcp SRV",
        targets=(_srv("t-legacy", 8443, ["127.0.3.7"], _n("deleg-legacy"), 0),),
        spec_refs=("R-19",),
    ),
    # ---- step 3.5: delegated name's A/AAAA, port 8448
    _S(
        "wk-nosrv",
        "wk-nosrv.mxtest",
        "3.5",
        "delegated name dual-stack, no SRV; the original's trap SRV is ignored",
        targets=_step6("deleg-plain", ["127.0.3.8", "::1"]),
        spec_refs=("R-20", "R-22"),
    ),
    _S(
        "wk-self",
        "wk-self.mxtest",
        "3.5",
        "self-delegation without port: no loop, no second .well-known",
        targets=_step6("wk-self", ["127.0.1.15"]),
        spec_refs=("R-24",),
    ),
    _S(
        "wk-no-recursion",
        "wk-no-recursion.mxtest",
        "3.5",
        "delegates to wk-ip.mxtest, whose own .well-known must NOT be fetched",
        targets=_step6("wk-ip", ["127.0.1.1"]),
        spec_refs=("R-21",),
    ),
    _S(
        "wk-cname-deleg",
        "wk-cname-deleg.mxtest",
        "3.5",
        "delegated name is a CNAME",
        targets=_step6("deleg-cname", ["127.0.3.3"]),
    ),
    # ---- redirects
    _S(
        "wk-redir-dest",
        "wk-redir-dest.mxtest",
        "3.2",
        "redirect destination served directly (max-age=600)",
        targets=(_with_port("deleg-redir", 8443, ["127.0.3.9"]),),
    ),
    *(
        _S(
            f"wk-redir-{code}",
            f"wk-redir-{code}.mxtest",
            "3.2",
            f"{code} redirect to another https host, then a valid delegation",
            targets=(_with_port("deleg-redir", 8443, ["127.0.3.9"]),),
            spec_refs=("R-35",),
        )
        for code in (301, 302, 307, 308)
    ),
    _S(
        "wk-redir-chain",
        "wk-redir-chain.mxtest",
        "3.2",
        "redirect chain 301 -> 307 -> 200",
        targets=(_with_port("deleg-redir", 8443, ["127.0.3.9"]),),
    ),
    _S(
        "wk-redir-relative",
        "wk-redir-relative.mxtest",
        "3.2",
        "302 with a relative Location on the same host",
        targets=(_with_port("deleg-redir", 8443, ["127.0.3.9"]),),
    ),
    _S(
        "wk-redir-loop",
        "wk-redir-loop.mxtest",
        "4",
        "redirect loop between two hosts: error, then _matrix-fed SRV",
        targets=(_srv("t-fed", 8448, ["127.0.3.30"], _n("wk-redir-loop"), 10),),
        spec_refs=("R-36",),
    ),
    _S(
        "wk-redir-self",
        "wk-redir-self.mxtest",
        "6",
        "redirect to itself: error, no SRV, A record",
        targets=_step6("wk-redir-self", ["127.0.1.30"]),
        spec_refs=("R-36",),
    ),
    _S(
        "wk-redir-http",
        "wk-redir-http.mxtest",
        "5",
        "redirect to http: is an error (the http site's trap body is not used); _matrix SRV",
        targets=(_srv("t-legacy", 8443, ["127.0.3.7"], _n("wk-redir-http"), 0),),
    ),
    # ---- invalid .well-known responses
    _S(
        "wk-html",
        "wk-html.mxtest",
        "6",
        "200 HTML body",
        targets=_step6("wk-html", ["127.0.1.40"]),
        spec_refs=("R-27",),
    ),
    _S(
        "wk-bad-json",
        "wk-bad-json.mxtest",
        "6",
        "200 truncated JSON",
        targets=_step6("wk-bad-json", ["127.0.1.41"]),
        spec_refs=("R-27",),
    ),
    _S(
        "wk-empty-object",
        "wk-empty-object.mxtest",
        "6",
        "200 {}",
        targets=_step6("wk-empty-object", ["127.0.1.42"]),
        spec_refs=("R-28",),
    ),
    _S(
        "wk-non-string",
        "wk-non-string.mxtest",
        "6",
        '200 {"m.server": 8448}',
        targets=_step6("wk-non-string", ["127.0.1.43"]),
        spec_refs=("R-29",),
    ),
    _S(
        "wk-array",
        "wk-array.mxtest",
        "6",
        "200 JSON array",
        targets=_step6("wk-array", ["127.0.1.44"]),
        spec_refs=("R-30",),
    ),
    _S(
        "wk-url",
        "wk-url.mxtest",
        "6",
        '200 {"m.server": "https://deleg-port.mxtest"} (ungrammatical)',
        targets=_step6("wk-url", ["127.0.1.45"]),
        spec_refs=("R-31",),
    ),
    _S(
        "wk-empty-string",
        "wk-empty-string.mxtest",
        "6",
        '200 {"m.server": ""}',
        targets=_step6("wk-empty-string", ["127.0.1.46"]),
        spec_refs=("R-32",),
    ),
    _S(
        "wk-404",
        "wk-404.mxtest",
        "4",
        "404, then _matrix-fed SRV; Host is the original name without port",
        targets=(_srv("t-fed", 8448, ["127.0.3.30"], _n("wk-404"), 10),),
        spec_refs=("R-26",),
    ),
    _S(
        "wk-503",
        "wk-503.mxtest",
        "4",
        "503, then three SRV records: two weighted at priority 10, one at 20",
        targets=(
            _srv("t-w1", 8448, ["127.0.3.31"], _n("wk-503"), 10),
            _srv("t-w2", 8443, ["127.0.3.32"], _n("wk-503"), 10),
            _srv("t-fed", 8448, ["127.0.3.30"], _n("wk-503"), 20),
        ),
        spec_refs=("R-39", "R-46"),
    ),
    # ---- TLS failures on the .well-known host
    _S(
        "wk-wrong-name",
        "wk-wrong-name.mxtest",
        "6",
        ".well-known host presents a certificate for another name",
        targets=_step6("wk-wrong-name", ["127.0.1.50"]),
        spec_refs=("R-37",),
    ),
    _S(
        "wk-self-signed",
        "wk-self-signed.mxtest",
        "4",
        ".well-known host presents a self-signed certificate; then SRV to port 8443",
        targets=(_srv("t-fed", 8443, ["127.0.3.30"], _n("wk-self-signed"), 0),),
        spec_refs=("R-37", "R-44"),
    ),
    _S(
        "wk-expired",
        "wk-expired.mxtest",
        "6",
        ".well-known host presents an expired certificate from the test CA",
        targets=_step6("wk-expired", ["127.0.1.52"]),
        spec_refs=("R-37",),
    ),
    _S(
        "wk-untrusted-ca",
        "wk-untrusted-ca.mxtest",
        "6",
        ".well-known host presents a certificate from an unknown CA",
        targets=_step6("wk-untrusted-ca", ["127.0.1.53"]),
        spec_refs=("R-37",),
    ),
    # ---- slow, oversized, hanging .well-known (need client limits)
    _S(
        "wk-slow",
        "wk-slow.mxtest",
        "6",
        "200 whose body drips at ~1 byte/s (~1 h): the client deadline must cut it off",
        targets=_step6("wk-slow", ["127.0.1.60"]),
        wk_timeout_max=_WK_TIMEOUT,
        spec_refs=("R-38", "A-13"),
    ),
    _S(
        "wk-oversized",
        "wk-oversized.mxtest",
        "6",
        "200 with a 200 KiB (valid JSON) body: the client size limit must reject it",
        targets=_step6("wk-oversized", ["127.0.1.61"]),
        wk_size_limit_max=_WK_SIZE_LIMIT,
        spec_refs=("A-12",),
    ),
    _S(
        "wk-hang",
        "wk-hang.mxtest",
        "6",
        ":443 accepts TCP but never completes the TLS handshake",
        targets=_step6("wk-hang", ["127.0.1.62"]),
        wk_timeout_max=_WK_TIMEOUT,
        spec_refs=("R-38",),
    ),
    # ---- steps 4-6 without any .well-known (connection refused on :443)
    _S(
        "srv-fed",
        "srv-fed.mxtest",
        "4",
        "_matrix-fed SRV wins over _matrix SRV",
        targets=(_srv("t-fed", 8448, ["127.0.3.30"], _n("srv-fed"), 10),),
        spec_refs=("R-40",),
    ),
    _S(
        "srv-legacy",
        "srv-legacy.mxtest",
        "5",
        "only a _matrix._tcp SRV (wins over the name's A record)",
        targets=(_srv("t-legacy", 8443, ["127.0.3.7"], _n("srv-legacy"), 0),),
        spec_refs=("R-41",),
    ),
    _S(
        "srv-cname-target",
        "srv-cname-target.mxtest",
        "4",
        "SRV target is a CNAME: followed, with a warning",
        targets=(_srv("t-alias", 8448, ["127.0.3.33"], _n("srv-cname-target"), 0),),
        expects_warning=True,
        spec_refs=("R-45",),
    ),
    _S(
        "srv-v6",
        "srv-v6.mxtest",
        "4",
        "SRV target is AAAA-only (::1)",
        targets=(_srv("t-v6", 8448, ["::1"], _n("srv-v6"), 0),),
    ),
    _S(
        "srv-partial",
        "srv-partial.mxtest",
        "4",
        "SRV targets without addresses (NODATA, NXDOMAIN) are dropped; the third remains",
        targets=(_srv("t-fed", 8443, ["127.0.3.30"], _n("srv-partial"), 20),),
        spec_refs=("R-48",),
    ),
    _S(
        "srv-no-address",
        "srv-no-address.mxtest",
        "4",
        "the only SRV target has no address records (NODATA): fails, no step 6",
        error="no_address",
        spec_refs=("R-48",),
    ),
    _S(
        "srv-dot",
        "srv-dot.mxtest",
        "4",
        '_matrix-fed SRV target "." : service unavailable, no fall-through to 5/6',
        error="service_unavailable",
        spec_refs=("R-47",),
    ),
    _S(
        "srv-dot-legacy",
        "srv-dot-legacy.mxtest",
        "5",
        '_matrix SRV target "." : service unavailable, no fall-through to 6',
        error="service_unavailable",
        spec_refs=("R-47",),
    ),
    _S(
        "srv-servfail",
        "srv-servfail.mxtest",
        "6",
        "_matrix-fed SRV answers SERVFAIL (treated as no record), no _matrix SRV: A record",
        targets=_step6("srv-servfail", ["127.0.3.43"]),
        spec_refs=("R-51",),
    ),
    _S(
        "srv-servfail-legacy",
        "srv-servfail-legacy.mxtest",
        "5",
        "_matrix-fed SRV answers SERVFAIL, then the _matrix SRV is used",
        targets=(_srv("t-legacy", 8443, ["127.0.3.7"], _n("srv-servfail-legacy"), 0),),
        spec_refs=("R-51",),
    ),
    _S(
        "plain",
        "plain.mxtest",
        "6",
        "A record only; nothing on :443 (connection refused)",
        targets=_step6("plain", ["127.0.3.40"]),
        spec_refs=("R-38", "R-42"),
    ),
    _S(
        "plain-v6",
        "plain-v6.mxtest",
        "6",
        "AAAA (::1) only; [::1]:443 has no site for this name (certificate mismatch)",
        targets=_step6("plain-v6", ["::1"]),
    ),
    _S(
        "dual-stack",
        "dual-stack.mxtest",
        "6",
        "A and AAAA records",
        targets=_step6("dual-stack", ["127.0.3.44", "::1"]),
        spec_refs=("R-52",),
    ),
    _S(
        "cname-chain",
        "cname-chain.mxtest",
        "6",
        "name is a two-hop CNAME chain; TLS name is the original",
        targets=_step6("cname-chain", ["127.0.3.45"]),
        spec_refs=("R-43",),
    ),
    _S(
        "target-badcert",
        "target-badcert.mxtest",
        "6",
        "resolves fine, but the target presents a wrong-name certificate",
        targets=_step6("target-badcert", ["127.0.3.46"]),
        target_tls_ok=False,
    ),
    _S(
        "nxdomain",
        "nx.mxtest",
        "6",
        "name does not exist",
        error="no_address",
    ),
    _S(
        "nodata",
        "nodata.mxtest",
        "6",
        "name exists (TXT) but has no A/AAAA/CNAME",
        error="no_address",
    ),
    _S(
        "servfail-host",
        "host.servfail.mxtest",
        "6",
        "every lookup answers SERVFAIL (unloadable zone)",
        error="dns_failure",
    ),
    _S(
        "dns-timeout",
        "plain.mxtest",
        "6",
        "black-hole nameserver: every lookup times out",
        error="dns_failure",
        error_alternatives=("deadline_exceeded",),
        nameserver="blackhole",
    ),
    # ---- the same paths through Caddy (Go TLS): well-known hosts and targets
    _S(
        "cy-wk-port",
        "cy-wk-port.mxtest",
        "3.2",
        "Caddy: m.server name:port, the target served by Caddy",
        targets=(_with_port("cy-deleg-port", 8443, ["127.0.5.1"]),),
        server="caddy",
    ),
    _S(
        "cy-wk-srv",
        "cy-wk-srv.mxtest",
        "3.3",
        "Caddy: m.server without port, _matrix-fed SRV to a Caddy target",
        targets=(_srv("cy-t-srv", 8443, ["127.0.5.2"], _n("cy-deleg-srv"), 10),),
        server="caddy",
    ),
    _S(
        "cy-wk-redir",
        "cy-wk-redir.mxtest",
        "3.2",
        "Caddy: 301 to another Caddy host, then a valid delegation",
        targets=(_with_port("cy-deleg-port", 8443, ["127.0.5.1"]),),
        server="caddy",
    ),
    _S(
        "cy-wk-404",
        "cy-wk-404.mxtest",
        "4",
        "Caddy: well-known 404, then _matrix-fed SRV to a Caddy target",
        targets=(_srv("cy-t-fed", 8448, ["127.0.5.3"], _n("cy-wk-404"), 10),),
        server="caddy",
    ),
    _S(
        "cy-wk-nosrv",
        "cy-wk-nosrv.mxtest",
        "3.5",
        "Caddy: m.server without port and no SRV: the delegated name's A record, port 8448",
        targets=_step6("cy-deleg-plain", ["127.0.5.4"]),
        server="caddy",
    ),
)

SCENARIOS_BY_NAME: dict[str, Scenario] = {s.name: s for s in SCENARIOS}

# Targets the servers present beyond the scenarios' own: the second, working target of the
# adapters' failover names (fo-*.mxtest), whose first target refuses or has a wrong
# certificate. Not scenarios: the drivers' tests would then expect the failing first target
# to be served too.
EXTRA_TARGETS: tuple[Target, ...] = (
    _srv("t-fed", 8448, ["127.0.3.30"], _n("fo-refused"), 20),
    _srv("t-fed", 8448, ["127.0.3.30"], _n("fo-badcert"), 20),
)


def scenario(name: str) -> Scenario:
    """Look a scenario up by name (KeyError lists the known names)."""
    try:
        return SCENARIOS_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; known: {sorted(SCENARIOS_BY_NAME)}") from None


def site(host: str) -> WellKnownSite:
    for s in SITES:
        if s.host == host:
            return s
    raise KeyError(host)


# =============================================================================================
# Catalogue self-check (no servers needed)
# =============================================================================================


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def parse_zone() -> dns.zone.Zone:
    return dns.zone.from_text(ZONE_TEXT, origin=f"{ZONE}.", relativize=False)


def zone_addresses(zone: dns.zone.Zone, host: str, max_hops: int = 8) -> set[str] | None:
    """A+AAAA for ``host`` per the zone text, following in-zone CNAMEs; None if NXDOMAIN."""
    name = dns.name.from_text(host)
    for _ in range(max_hops):
        node = zone.get_node(name)
        if node is None:
            return None
        cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
        if cname is None:
            found: set[str] = set()
            for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                rds = node.get_rdataset(dns.rdataclass.IN, rdtype)
                if rds is not None:
                    found.update(r.address for r in rds)
            return found
        name = next(iter(cname)).target
    raise ValueError(f"CNAME chain too long at {host}")


def check_catalogue() -> list[str]:
    """Internal consistency of zone, sites and scenarios; returns a list of problems."""
    problems: list[str] = []
    zone = parse_zone()
    names = [s.name for s in SCENARIOS]
    if len(names) != len(set(names)):
        problems.append("duplicate scenario names")
    for s in SCENARIOS:
        if s.step not in STEPS:
            problems.append(f"{s.name}: unknown step {s.step!r}")
        if (s.error is None) == (not s.targets):
            problems.append(f"{s.name}: exactly one of targets/error must be set")
        for kind in (s.error, *s.error_alternatives):
            if kind is not None and kind not in ERROR_KINDS:
                problems.append(f"{s.name}: unknown error kind {kind!r}")
        for t in s.targets:
            if t.host != t.host.lower() or t.host.endswith("."):
                problems.append(f"{s.name}: host {t.host!r} not lowercase/no trailing dot")
            if _is_ip(t.host):
                if t.addresses != {t.host}:
                    problems.append(f"{s.name}: IP target {t.host} addresses {set(t.addresses)}")
                continue
            got = zone_addresses(zone, t.host)
            if got != set(t.addresses):
                problems.append(f"{s.name}: zone gives {t.host} -> {got}, expected {t.addresses}")
    for ws in SITES:
        got = zone_addresses(zone, ws.host)
        if got != set(ws.addresses):
            problems.append(f"site {ws.host}: zone gives {got}, site listens on {ws.addresses}")
    sites_by_host = {ws.host: ws for ws in SITES}
    for s in SCENARIOS:
        ws = sites_by_host.get(s.server_name.partition(":")[0])
        if ws is not None and ws.server != s.server:
            problems.append(f"{s.name}: served by {s.server}, its well-known by {ws.server}")
    for ws in SITES:
        if ws.server == "caddy" and (not ws.tls or ws.cert != "valid" or ws.slow):
            problems.append(f"site {ws.host}: Caddy sites are plain valid-certificate HTTPS")
        if ws.server == "caddy" and ws.relative_redirect:
            problems.append(f"site {ws.host}: Caddy sites have no relative redirects")
    for ids in _target_sockets("caddy").values():
        # Caddy picks a certificate by SNI; no SNI is sent for an IP literal.
        problems += [f"Caddy target {i} is an IP literal" for i in ids if _is_ip(i)]
    owner: dict[Socket, ServerKind] = {}
    for server in SERVER_KINDS:
        socks = set(_target_sockets(server)) | {
            (a, ws.port) for ws in SITES if ws.server == server for a in ws.addresses
        }
        for sock in socks:
            if owner.setdefault(sock, server) != server:
                problems.append(f"{sock} is served by both {owner[sock]} and {server}")
    seen: dict[tuple[str, int, str], str] = {}
    for sock, names_ in _sni_map().items():
        for n in names_:
            if (sock[0], sock[1], n) in seen:
                problems.append(f"two server blocks for {n} on {sock}")
            seen[(sock[0], sock[1], n)] = n
    return problems


# =============================================================================================
# Certificates
# =============================================================================================


class Certs:
    """All certificates of the world, written as PEM files into ``directory``."""

    def __init__(self, directory: Path) -> None:
        import trustme  # test-only dependency; imported lazily so the catalogue needs none

        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca = trustme.CA(organization_name="mxresolve loopback test CA")
        self.other_ca = trustme.CA(organization_name="mxresolve untrusted CA")
        self.cafile = self.dir / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.cafile))
        self._cache: dict[tuple[str, str], tuple[Path, Path]] = {}

    def pair(self, identity: str, kind: CertKind = "valid") -> tuple[Path, Path]:
        """(certificate chain file, key file) for ``identity`` of the given kind."""
        key = (identity, kind)
        if key in self._cache:
            return self._cache[key]
        stem = f"{kind}-{identity}".replace(":", "_").replace("/", "_")
        crt, pkey = self.dir / f"{stem}.crt", self.dir / f"{stem}.key"
        now = dt.datetime.now(dt.timezone.utc)
        if kind == "self-signed":
            cert_pem, key_pem = _self_signed(identity)
        else:
            if kind == "valid":
                leaf = self.ca.issue_cert(identity)
            elif kind == "wrong-name":
                leaf = self.ca.issue_cert(WRONG_NAME)
            elif kind == "expired":
                leaf = self.ca.issue_cert(
                    identity,
                    not_before=now - dt.timedelta(days=30),
                    not_after=now - dt.timedelta(days=1),
                )
            elif kind == "untrusted-ca":
                leaf = self.other_ca.issue_cert(identity)
            else:
                raise ValueError(kind)
            cert_pem = b"".join(b.bytes() for b in leaf.cert_chain_pems)
            key_pem = leaf.private_key_pem.bytes()
        crt.write_bytes(cert_pem)
        pkey.write_bytes(key_pem)
        pkey.chmod(0o600)
        self._cache[key] = (crt, pkey)
        return crt, pkey


def _self_signed(identity: str) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(identity)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


# =============================================================================================
# Process helpers
# =============================================================================================


class WorldError(RuntimeError):
    """The loopback world could not be started."""


def find_binary(name: str) -> str | None:
    """Locate a server binary; sbin dirs are searched too (often not on a user's PATH)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")


def require_binary(name: str, package: str) -> str:
    """``find_binary``, or a WorldError naming the Debian package to install."""
    path = find_binary(name)
    if path is None:
        raise WorldError(f"{name} not found (install the Debian package '{package}')")
    return path


def _die_with_parent() -> None:
    # Linux PR_SET_PDEATHSIG: the server gets SIGTERM if the test process dies (even by
    # SIGKILL), so no orphan keeps holding the fixed loopback ports.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def _spawn(
    argv: list[str], log: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        return subprocess.Popen(
            argv,
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if os.name == "posix" else None,
        )


def _terminate(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return text[-limit:]


def _port_is_free(port: int) -> bool:
    for family, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            try:
                with socket.socket(family, kind) as s:
                    s.bind((addr, port))
            except OSError:
                return False
    return True


def pick_free_port(attempts: int = 50) -> int:
    """A port free for UDP and TCP on both 127.0.0.1 and ::1."""
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if _port_is_free(port):
            return port
    raise WorldError(f"no free UDP/TCP port on 127.0.0.1 and ::1 after {attempts} attempts")


def ipv6_loopback_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def _tcp_accepts(addr: str, port: int, timeout: float = 0.3) -> bool:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect((addr, port))
        except OSError:
            return False
    return True


def run_nginx(directory: Path, config: str, log: Path, error_log: Path) -> subprocess.Popen[bytes]:
    """nginx in the foreground on ``config`` (written to ``directory``/nginx.conf), with
    ``directory`` as its prefix."""
    nginx = require_binary("nginx", "nginx-light")
    conf = directory / "nginx.conf"
    conf.write_text(config)
    return _spawn([nginx, "-p", str(directory), "-c", str(conf), "-e", str(error_log)], log)


def run_caddy(directory: Path, config: Mapping[str, Any], log: Path) -> subprocess.Popen[bytes]:
    """Caddy in the foreground on ``config`` (written to ``directory``/caddy.json), with a home
    and XDG directories of its own under ``directory`` (nothing lands in the user's)."""
    caddy = require_binary("caddy", "caddy")
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "caddy.json"
    conf.write_text(json.dumps(config, indent=1))
    home = str(directory / "home")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "XDG_CONFIG_HOME": home,
        "XDG_DATA_HOME": home,
    }
    return _spawn([caddy, "run", "--config", str(conf)], log, env=env)


def _wait_listening(
    proc: subprocess.Popen[bytes], sockets: Sequence[tuple[str, int]], what: str, *logs: Path
) -> None:
    """Wait until ``proc`` accepts TCP connections on every socket (WorldError, with the tails
    of ``logs``, if it exits first or takes longer than READY_TIMEOUT)."""
    deadline = time.monotonic() + READY_TIMEOUT
    pending = list(sockets)
    while pending:
        if proc.poll() is not None:
            raise WorldError(
                f"{what} exited with code {proc.returncode} during startup:\n"
                + "".join(_tail(log) for log in logs)
            )
        if time.monotonic() > deadline:
            raise WorldError(
                f"{what} not listening on {pending[:5]} after {READY_TIMEOUT}s:\n"
                + "".join(_tail(log) for log in logs)
            )
        if _tcp_accepts(*pending[0]):
            pending.pop(0)
        else:
            time.sleep(0.05)


def _dns_query(
    qname: str, rdtype: str, addr: str, port: int, timeout: float, tcp: bool = False
) -> dns.message.Message:
    q = dns.message.make_query(qname, rdtype)
    if tcp:
        return dns.query.tcp(q, addr, port=port, timeout=timeout)
    return dns.query.udp(q, addr, port=port, timeout=timeout)


def _user_group() -> tuple[str, str]:
    return pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name


# =============================================================================================
# Black hole
# =============================================================================================


class BlackHole:
    """UDP+TCP "nameserver" on 127.0.0.1 that never answers, plus TCP endpoints that accept
    connections and never answer (e.g. a hanging :443). One thread, bounded in time and in
    the number of connections it holds."""

    MAX_CONNECTIONS = 256
    MAX_LIFETIME = 6 * 3600.0  # the thread ends by itself even if stop() is never called

    def __init__(self, hang_endpoints: Sequence[tuple[str, int]] = ()) -> None:
        self.port = 0
        self.queries_received = 0
        self.connections_accepted = 0
        self._hang_endpoints = tuple(hang_endpoints)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sockets: list[socket.socket] = []

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        for attempt in range(10):
            port = pick_free_port()
            try:
                udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self._sockets.append(udp)
                udp.bind(("127.0.0.1", port))
                tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                self._sockets.append(tcp)
                tcp.bind(("127.0.0.1", port))
                tcp.listen(64)
            except OSError:
                self._close_all()
                if attempt == 9:
                    raise
                continue
            self.port = port
            break
        for addr, hport in self._hang_endpoints:
            family = socket.AF_INET6 if ":" in addr else socket.AF_INET
            s = socket.socket(family, socket.SOCK_STREAM)
            self._sockets.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((addr, hport))
            except OSError as exc:
                self._close_all()
                raise WorldError(f"black hole cannot bind {addr}:{hport}: {exc}") from exc
            s.listen(64)
        for s in self._sockets:
            s.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="mxworld-blackhole", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        conns: list[socket.socket] = []
        for s in self._sockets:
            sel.register(s, selectors.EVENT_READ)
        deadline = time.monotonic() + self.MAX_LIFETIME
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=0.1):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    try:
                        if sock.type == socket.SOCK_DGRAM:
                            sock.recvfrom(65535)  # swallow the query
                            self.queries_received += 1
                        elif sock in self._sockets:
                            conn, _ = sock.accept()
                            conn.setblocking(False)
                            self.connections_accepted += 1
                            conns.append(conn)
                            sel.register(conn, selectors.EVENT_READ)
                            if len(conns) > self.MAX_CONNECTIONS:
                                old = conns.pop(0)
                                sel.unregister(old)
                                old.close()
                        elif not sock.recv(65535):  # swallow data; close on EOF
                            sel.unregister(sock)
                            conns.remove(sock)
                            sock.close()
                        elif sock.getsockname()[1] == self.port:
                            self.queries_received += 1
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        with contextlib.suppress(Exception):
                            sel.unregister(sock)
                        if sock in conns:
                            conns.remove(sock)
                            sock.close()
        finally:
            for c in conns:
                c.close()
            sel.close()

    def _close_all(self) -> None:
        for s in self._sockets:
            s.close()
        self._sockets.clear()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_TIMEOUT)
            if self._thread.is_alive():
                raise WorldError("black hole thread did not stop")
            self._thread = None
        self._close_all()


# =============================================================================================
# Knot DNS
# =============================================================================================


class KnotServer:
    """knotd in the foreground, authoritative for ``zone`` (``zone_text``) and the SERVFAIL
    zones, on ``address`` (and ::1 if ``ipv6``) at a free high port."""

    def __init__(
        self,
        directory: Path,
        zone_text: str = ZONE_TEXT,
        servfail_zones: Sequence[str] = SERVFAIL_ZONES,
        ipv6: bool = True,
        *,
        zone: str = ZONE,
        address: str = "127.0.0.1",
    ) -> None:
        self.dir = directory
        self.zone = zone
        self.zone_text = zone_text
        self.servfail_zones = tuple(servfail_zones)
        self.address = address
        self.ipv6 = ipv6
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "knotd.log"

    @property
    def nameserver(self) -> str:
        return f"{self.address}:{self.port}"

    @property
    def addresses(self) -> list[str]:
        return [self.address] + (["::1"] if self.ipv6 else [])

    def _write_config(self) -> Path:
        zones, run, db = self.dir / "zones", self.dir / "run", self.dir / "db"
        for d in (zones, run, db):
            d.mkdir(parents=True, exist_ok=True)
        (zones / f"{self.zone}.zone").write_text(self.zone_text)
        if self.servfail_zones:
            # Syntactically broken on purpose: Knot refuses to load it and answers SERVFAIL.
            (zones / "broken.zone").write_text("this zone file is broken on purpose (\n")
        user, group = _user_group()
        listen = [f"{a}@{self.port}" for a in self.addresses]
        lines = [
            "server:",
            f'    rundir: "{run}"',
            f"    user: {user}:{group}",
            f"    listen: [ {', '.join(listen)} ]",
            "    udp-workers: 1",
            "    tcp-workers: 1",
            "    background-workers: 1",
            "database:",
            f'    storage: "{db}"',
            "log:",
            "  - target: stderr",
            "    any: info",
            "template:",
            "  - id: default",
            f'    storage: "{zones}"',
            "    zonefile-sync: -1",
            "    zonefile-load: whole",
            "    journal-content: none",
            "zone:",
            f"  - domain: {self.zone}.",
            f"    file: {self.zone}.zone",
        ]
        for z in self.servfail_zones:
            lines += [f"  - domain: {z}.", "    file: broken.zone"]
        conf = self.dir / "knot.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self) -> None:
        knotd = require_binary("knotd", "knot")
        last_error = ""
        for _ in range(3):  # a fresh port if another process grabbed ours meanwhile
            self.port = pick_free_port()
            conf = self._write_config()
            self.log.write_text("")
            self.proc = _spawn([knotd, "-c", str(conf)], self.log)
            try:
                self._wait_ready()
                return
            except WorldError as exc:
                last_error = str(exc)
                _terminate(self.proc)
                self.proc = None
                if "address already in use" not in _tail(self.log).lower():
                    break
        raise WorldError(last_error)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        pending = [(a, tcp) for a in self.addresses for tcp in (False, True)]
        while pending:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise WorldError(
                    f"knotd exited with code {self.proc.returncode} during startup; log:\n"
                    + _tail(self.log)
                )
            log = _tail(self.log)
            if any(f"error: [{self.zone}.]" in line for line in log.splitlines()):
                raise WorldError(f"knotd could not load zone {self.zone}.; log:\n{log}")
            if time.monotonic() > deadline:
                raise WorldError(
                    f"knotd not answering on {pending} after {READY_TIMEOUT}s; log:\n{log}"
                )
            addr, tcp = pending[0]
            try:
                r = _dns_query(f"{self.zone}.", "SOA", addr, self.port, 0.3, tcp=tcp)
            except (OSError, dns.exception.DNSException):
                time.sleep(0.05)
                continue
            if r.rcode() == dns.rcode.NOERROR and r.answer and r.flags & dns.flags.AA:
                pending.pop(0)
            else:
                time.sleep(0.05)  # e.g. SERVFAIL while the zone is still loading

    def stop(self) -> None:
        _terminate(self.proc)


# =============================================================================================
# nginx
# =============================================================================================

Socket = tuple[str, int]


def _target_sockets(server: ServerKind | None = None) -> dict[Socket, dict[str, CertKind]]:
    """(address, port) -> {tls identity: cert kind} for every expected target (of ``server``'s
    scenarios only, if given)."""
    out: dict[Socket, dict[str, CertKind]] = {}
    for s in SCENARIOS:
        if server is not None and s.server != server:
            continue
        kind: CertKind = "valid" if s.target_tls_ok else "wrong-name"
        for t in s.targets:
            for a in t.addresses:
                out.setdefault((a, t.port), {})[t.tls_server_name] = kind
    for t in EXTRA_TARGETS if server in (None, "nginx") else ():  # nginx serves them
        for a in t.addresses:
            out.setdefault((a, t.port), {})[t.tls_server_name] = "valid"
    return out


def _sni_map() -> dict[Socket, list[str]]:
    """Server names per listening socket (targets and sites), for the duplicate check."""
    out: dict[Socket, list[str]] = {}
    for sock, ids in _target_sockets().items():
        out.setdefault(sock, []).extend(ids)
    for ws in SITES:
        for a in ws.addresses:
            out.setdefault((a, ws.port), []).append(ws.host)
    return out


def _listen(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def nginx_head(
    directory: Path, error_log: Path, access_log: Path, worker_connections: int
) -> list[str]:
    """An nginx.conf up to its server blocks (inside ``http {``, left open): one worker in the
    foreground, its pid, logs and temp files under ``directory``."""
    user, group = _user_group()
    tmp = directory / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return [
        "daemon off;",
        "master_process on;",
        "worker_processes 1;",
        f"pid {directory / 'nginx.pid'};",
        f"error_log {error_log} info;",
        # Workers read the bodies and certs from the (0700) temp dir as our own user.
        f"user {user} {group};" if os.geteuid() == 0 else "",
        f"events {{ worker_connections {worker_connections}; }}",
        "http {",
        f"    access_log {access_log};",
        *(
            f"    {kind}_temp_path {tmp / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        ),
        "    server_tokens off;",
        "    keepalive_timeout 5;",
        "    ssl_protocols TLSv1.2 TLSv1.3;",
    ]


def _q(value: str) -> str:
    """An nginx double-quoted string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_VERSION_LOCATION = (
    f"        location = {VERSION_PATH} {{\n"
    "            default_type application/json;\n"
    '            return 200 \'{"server":{"name":"nginx-test","version":"1"},'
    '"host":"$http_host","sni":"$ssl_server_name","site":"$mx_site",'
    '"connection":"$connection"}\';\n'
    "        }\n"
)


class NginxServer:
    """nginx in the foreground (master + 1 worker) with its own prefix under ``directory``."""

    def __init__(self, directory: Path, certs: Certs, ipv6: bool = True) -> None:
        self.dir = directory
        self.certs = certs
        self.ipv6 = ipv6
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "logs" / "stderr.log"
        self.error_log = self.dir / "logs" / "error.log"
        self.sockets: list[tuple[Socket, bool]] = []  # (socket, tls)

    # -- config ---------------------------------------------------------------------------

    def _site_block(self, ws: WellKnownSite, addr: str, default: bool) -> str:
        docroot = self.dir / "htdocs" / ws.host
        docroot.mkdir(parents=True, exist_ok=True)
        body_file = docroot / "server.json"
        body_file.write_bytes(ws.body)
        wk: list[str] = [f"types {{ }} default_type {_q(ws.content_type)};"]
        if ws.cache_control:
            wk.append(f"add_header Cache-Control {_q(ws.cache_control)} always;")
        if ws.location is not None:
            wk.append(f"return {ws.status} {_q(ws.location)};")
        elif ws.status == 200:
            wk.append(f"alias {_q(str(body_file))};")
            if ws.slow:
                # limit_rate counts header bytes too: let the headers and the start of the
                # body out at once, then drip the rest at ~1 byte/s.
                wk += [
                    "sendfile off;",
                    f"limit_rate_after {SLOW_UNTHROTTLED};",
                    f"limit_rate {SLOW_RATE};",
                ]
        else:
            wk.append(f"return {ws.status};")
        lines = [
            "    server {",
            f"        listen {_listen(addr, ws.port)}{' ssl' if ws.tls else ''}"
            f"{' default_server' if default else ''};",
            f"        server_name {ws.host};",
            f"        set $mx_site {_q(ws.host)};",
        ]
        if ws.tls:
            crt, key = self.certs.pair(ws.host, ws.cert)
            lines += [f"        ssl_certificate {crt};", f"        ssl_certificate_key {key};"]
        if ws.relative_redirect:
            lines.append("        absolute_redirect off;")
            lines += [
                f"        location = {MOVED_PATH} {{",
                "            default_type application/json;",
                f"            alias {_q(str(body_file))};",
                "        }",
            ]
        lines += [f"        location = {WK_PATH} {{"] + [f"            {x}" for x in wk]
        lines += ["        }", _VERSION_LOCATION.rstrip("\n"), "        location / { return 404; }"]
        lines.append("    }")
        return "\n".join(lines)

    def _target_block(self, sock: Socket, identity: str, kind: CertKind, default: bool) -> str:
        crt, key = self.certs.pair(identity, kind)
        name = "_" if _is_ip(identity) else identity
        return "\n".join(
            [
                "    server {",
                f"        listen {_listen(*sock)} ssl{' default_server' if default else ''};",
                f"        server_name {name};",
                f"        set $mx_site {_q('target ' + identity)};",
                f"        ssl_certificate {crt};",
                f"        ssl_certificate_key {key};",
                _VERSION_LOCATION.rstrip("\n"),
                "        location / { return 404; }",
                "    }",
            ]
        )

    def _catch_all_block(self, sock: Socket) -> str:
        # Default server for unknown SNI on sockets shared via SNI: a cert for no test name.
        crt, key = self.certs.pair("unknown-sni.invalid")
        return "\n".join(
            [
                "    server {",
                f"        listen {_listen(*sock)} ssl default_server;",
                "        server_name _;",
                f"        ssl_certificate {crt};",
                f"        ssl_certificate_key {key};",
                "        location / { return 421; }",
                "    }",
            ]
        )

    def _config(self) -> str:
        blocks: list[str] = []
        sockets: dict[Socket, bool] = {}
        sites_by_socket: dict[Socket, list[WellKnownSite]] = {}
        for ws in SITES:
            if ws.server != "nginx":
                continue
            for a in ws.addresses:
                sites_by_socket.setdefault((a, ws.port), []).append(ws)
        targets = _target_sockets("nginx")
        for sock in sorted(set(sites_by_socket) | set(targets)):
            if ":" in sock[0] and not self.ipv6:
                continue
            sites = sites_by_socket.get(sock, [])
            ids = targets.get(sock, {})
            tls = all(ws.tls for ws in sites)
            sockets[sock] = tls
            ip_ids = [i for i in ids if _is_ip(i)]
            # One block of a kind on the socket is its default; else a catch-all is.
            need_catch_all = tls and not ip_ids and len(sites) + len(ids) > 1
            if need_catch_all:
                blocks.append(self._catch_all_block(sock))
            only = not need_catch_all and not ip_ids
            for ws in sites:
                blocks.append(self._site_block(ws, sock[0], default=only))
                only = False
            for ident, kind in ids.items():
                blocks.append(self._target_block(sock, ident, kind, default=ident in ip_ids[:1]))
        self.sockets = sorted(sockets.items())
        head = nginx_head(self.dir, self.error_log, self.dir / "logs" / "access.log", 512)
        head += ["    ssl_session_cache off;", "    server_names_hash_bucket_size 128;"]
        return "\n".join(head + blocks + ["}"]) + "\n"

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        config = self._config()
        busy = [s for s, _ in self.sockets if _tcp_accepts(*s, timeout=0.2)]
        if busy:
            raise WorldError(
                f"something already listens on {busy[:5]} (a stale nginx from an earlier run?)"
            )
        self.proc = run_nginx(self.dir, config, self.log, self.error_log)
        _wait_listening(self.proc, [s for s, _ in self.sockets], "nginx", self.log, self.error_log)

    def stop(self) -> None:
        _terminate(self.proc)


# =============================================================================================
# Caddy (Go crypto/tls)
# =============================================================================================

CADDY_SERVER_NAME = "caddy-test"


def _caddy_echo(site: str) -> dict[str, Any]:
    # The Host header and the SNI Caddy saw, like nginx's $http_host and $ssl_server_name.
    # static_response replaces only known placeholders, so the JSON's own braces stay.
    body = (
        '{"server":{"name":"' + CADDY_SERVER_NAME + '","version":"1"},'
        '"host":"{http.request.hostport}","sni":"{http.request.tls.server_name}",'
        f'"site":"{site}"}}'
    )
    return {
        "handler": "static_response",
        "status_code": 200,
        "headers": {"Content-Type": ["application/json"]},
        "body": body,
    }


class CaddyServer:
    """Caddy 2 in the foreground from a generated JSON config: the well-known sites and targets
    whose ``server`` is "caddy". No admin endpoint, no automatic HTTPS or ACME, no HTTP/3;
    certificates from the world's CA, loaded from files."""

    def __init__(self, directory: Path, certs: Certs) -> None:
        self.dir = directory
        self.certs = certs
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "caddy.log"
        self.access_log = self.dir / "access.log"
        self.sockets: list[Socket] = []

    def _routes(self) -> tuple[list[dict[str, Any]], set[str]]:
        routes: list[dict[str, Any]] = []
        identities: set[str] = set()
        for ws in SITES:
            if ws.server != "caddy":
                continue
            identities.add(ws.host)
            headers: dict[str, list[str]] = {}
            if ws.status == 200:
                headers["Content-Type"] = [ws.content_type]
            if ws.cache_control:
                headers["Cache-Control"] = [ws.cache_control]
            if ws.location is not None:
                headers["Location"] = [ws.location]
            wk: dict[str, Any] = {
                "handler": "static_response",
                "status_code": ws.status,
                "headers": headers,
            }
            if ws.status == 200:
                wk["body"] = ws.body.decode()
            host = [{"host": [ws.host]}]
            routes += [
                {"match": [{"host": [ws.host], "path": [WK_PATH]}], "handle": [wk]},
                {
                    "match": [{"host": [ws.host], "path": [VERSION_PATH]}],
                    "handle": [_caddy_echo(ws.host)],
                },
                {"match": host, "handle": [{"handler": "static_response", "status_code": 404}]},
            ]
        for ids in _target_sockets("caddy").values():
            identities.update(ids)
        # Targets: the echo whatever the Host header (nginx picks their block by SNI alone).
        echo = _caddy_echo("target {http.request.tls.server_name}")
        routes.append({"match": [{"path": [VERSION_PATH]}], "handle": [echo]})
        routes.append({"handle": [{"handler": "static_response", "status_code": 404}]})
        return routes, identities

    def _config(self) -> dict[str, Any]:
        routes, identities = self._routes()
        socks = set(_target_sockets("caddy")) | {
            (a, ws.port) for ws in SITES if ws.server == "caddy" for a in ws.addresses
        }
        self.sockets = sorted(socks)
        files = []
        for identity in sorted(identities):
            crt, key = self.certs.pair(identity)
            files.append({"certificate": str(crt), "key": str(key)})
        return {
            "admin": {"disabled": True, "config": {"persist": False}},
            "storage": {"module": "file_system", "root": str(self.dir / "data")},
            "logging": {
                "logs": {
                    "default": {
                        "level": "INFO",
                        "writer": {"output": "file", "filename": str(self.dir / "server.log")},
                        "exclude": ["http.log.access"],
                    },
                    "access": {
                        "level": "INFO",
                        "writer": {"output": "file", "filename": str(self.access_log)},
                        "include": ["http.log.access"],
                    },
                }
            },
            "apps": {
                "http": {
                    "servers": {
                        "world": {
                            "listen": [_listen(a, p) for a, p in self.sockets],
                            "automatic_https": {"disable": True},
                            "tls_connection_policies": [{}],
                            "protocols": ["h1", "h2"],
                            "routes": routes,
                            "logs": {},
                        }
                    }
                },
                "tls": {"certificates": {"load_files": files}},
            },
        }

    def start(self) -> None:
        config = self._config()
        busy = [s for s in self.sockets if _tcp_accepts(*s, timeout=0.2)]
        if busy:
            raise WorldError(f"something already listens on {busy[:5]} (a stale Caddy?)")
        self.proc = run_caddy(self.dir, config, self.log)
        _wait_listening(self.proc, self.sockets, "caddy", self.log)

    def stop(self) -> None:
        _terminate(self.proc)


# =============================================================================================
# The world
# =============================================================================================


class _MachineLock:
    """Exclusive, bounded-wait flock on ``LOCK_PATH``; records the holder for error messages."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else _lock_path()
        self.fd: int | None = None

    def acquire(self, timeout: float) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except PermissionError:  # another user's lock file: flock works read-only too
            fd = os.open(self.path, os.O_RDONLY)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 300, 0).decode(errors="replace").strip()
                    os.close(fd)
                    raise WorldError(
                        f"another loopback world is running (holder: {holder or '?'}); waited "
                        f"{timeout:.0f}s for {self.path} (set {LOCK_WAIT_ENV} to wait longer)"
                    ) from None
                time.sleep(0.2)
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}: {' '.join(_cmdline(os.getpid()))}".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a][:6]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_dirs() -> None:
    """Remove temp dirs of our earlier worlds whose process died without cleaning up."""
    for d in Path(tempfile.gettempdir()).glob(f"{DIR_PREFIX}*"):
        owner = d / "owner.pid"
        try:
            if d.stat().st_uid != os.geteuid() or not owner.is_file():
                continue
            pid = int(owner.read_text().strip())
        except (OSError, ValueError):
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(d, ignore_errors=True)


@dataclass
class LoopbackWorld:
    """Knot + nginx + Caddy + black hole, started together. Use as a context manager.

    Attributes for a resolver under test: ``nameserver`` / ``blackhole_nameserver``
    ("127.0.0.1:PORT"), ``cafile`` (test CA PEM), ``allow_ips``; ``resolver_config(s)`` bundles
    them for a scenario.
    """

    keep_dir: bool = field(default_factory=lambda: os.environ.get("MXRESOLVE_KEEP_WORLD") == "1")
    # The catalogue the servers are built from (read-only views of the module constants).
    scenarios: tuple[Scenario, ...] = field(default=SCENARIOS, init=False)
    sites: tuple[WellKnownSite, ...] = field(default=SITES, init=False)
    hang_endpoints: tuple[tuple[str, int], ...] = field(default=HANG_ENDPOINTS, init=False)
    allow_ips: tuple[str, ...] = field(default=ALLOW_IPS, init=False)

    def __post_init__(self) -> None:
        self._lock = _MachineLock()
        self.dir: Path | None = None
        self.certs: Certs | None = None
        self.knot: KnotServer | None = None
        self.nginx: NginxServer | None = None
        self.caddy: CaddyServer | None = None
        self.blackhole: BlackHole | None = None

    # -- public API -------------------------------------------------------------------------

    @property
    def nameserver(self) -> str:
        assert self.knot is not None, "world not started"
        return self.knot.nameserver

    @property
    def dns_port(self) -> int:
        assert self.knot is not None, "world not started"
        return self.knot.port

    @property
    def blackhole_nameserver(self) -> str:
        assert self.blackhole is not None, "world not started"
        return self.blackhole.nameserver

    @property
    def cafile(self) -> str:
        assert self.certs is not None, "world not started"
        return str(self.certs.cafile)

    def scenario(self, name: str) -> Scenario:
        return scenario(name)

    def site(self, host: str) -> WellKnownSite:
        return site(host)

    def nameserver_for(self, s: Scenario) -> str:
        return self.blackhole_nameserver if s.nameserver == "blackhole" else self.nameserver

    def resolver_config(self, s: Scenario | None = None) -> dict[str, Any]:
        """Keyword arguments the resolver is expected to accept for this world."""
        ns = self.nameserver if s is None else self.nameserver_for(s)
        return {"nameservers": [ns], "cafile": self.cafile, "allow_ips": list(self.allow_ips)}

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting only the test CA."""
        return ssl.create_default_context(cafile=self.cafile)

    def logs(self) -> str:
        parts = []
        if self.knot is not None:
            parts.append("--- knotd\n" + _tail(self.knot.log))
        if self.nginx is not None:
            parts.append("--- nginx error.log\n" + _tail(self.nginx.error_log))
        if self.caddy is not None:
            parts.append("--- caddy\n" + _tail(self.caddy.log))
        return "\n".join(parts)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> LoopbackWorld:
        problems = check_catalogue()
        if problems:
            raise WorldError("inconsistent catalogue:\n  " + "\n  ".join(problems))
        self._lock.acquire(float(os.environ.get(LOCK_WAIT_ENV, "120")))
        try:
            _remove_stale_dirs()
            self.dir = Path(tempfile.mkdtemp(prefix=DIR_PREFIX))
            (self.dir / "owner.pid").write_text(f"{os.getpid()}\n")
            self.certs = Certs(self.dir / "certs")
            # Servers before the black hole thread: fork with fewer threads around.
            self.knot = KnotServer(self.dir / "knot")
            self.knot.start()
            self.nginx = NginxServer(self.dir / "nginx", self.certs)
            self.nginx.start()
            self.caddy = CaddyServer(self.dir / "caddy", self.certs)
            self.caddy.start()
            self.blackhole = BlackHole(HANG_ENDPOINTS)
            self.blackhole.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        errors: list[BaseException] = []
        for part in (self.blackhole, self.caddy, self.nginx, self.knot):
            if part is None:
                continue
            try:
                part.stop()
            except Exception as exc:  # keep stopping the rest
                errors.append(exc)
        if self.dir is not None:
            if self.keep_dir:
                (self.dir / "owner.pid").unlink(missing_ok=True)  # keep it from stale cleanup
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
        self._lock.release()
        if errors:
            raise WorldError(f"errors while stopping the world: {errors!r}")

    def __enter__(self) -> LoopbackWorld:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def missing_prerequisites() -> list[str]:
    """Reasons the world cannot run here (empty when it can)."""
    missing = []
    if find_binary("knotd") is None:
        missing.append("knotd not installed (apt-get install knot; see .ci/install-servers.sh)")
    if find_binary("nginx") is None:
        missing.append("nginx not installed (apt-get install nginx-light)")
    if find_binary("caddy") is None:
        missing.append("caddy not installed (apt-get install caddy)")
    if os.geteuid() != 0:
        try:
            start = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
        except (OSError, ValueError):
            start = 1024
        if start > 443:
            missing.append("not root: cannot bind port 443 on loopback addresses")
    if not ipv6_loopback_available():
        missing.append("IPv6 loopback ::1 unavailable")
    return missing


def iter_target_endpoints(s: Scenario) -> Iterator[tuple[Target, str]]:
    """(target, address) pairs of a scenario, in order."""
    for t in s.targets:
        for a in sorted(t.addresses):
            yield t, a


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Run the loopback world for manual testing.")
    parser.add_argument("--seconds", type=float, default=300.0, help="stop after this long")
    args = parser.parse_args()
    with LoopbackWorld() as world:
        print(f"nameserver={world.nameserver} blackhole={world.blackhole_nameserver}")
        print(f"cafile={world.cafile} dir={world.dir}")
        with contextlib.suppress(KeyboardInterrupt):
            time.sleep(max(0.0, args.seconds))
