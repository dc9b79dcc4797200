"""A misconfigured Matrix world on loopback, for ``mxresolve doctor``.

Real servers, set up the way homeserver admins get them wrong: Knot DNS for the zone
``mxdoc.``, nginx (OpenSSL) and Caddy (Go TLS) serving well-knowns and "homeservers", a
throwaway CA (trustme), and a black hole. A homeserver here is static JSON: the federation
version and a server-keys document signed with signedjson (the field's own library), so the
doctor's key checks meet real Ed25519 signatures.

Every case (``CASES``) is one server name and the problem codes the doctor must report for it
(``healthy`` must report none). The addresses are 127.0.9.N, apart from world.py's 127.0.0.1,
127.0.1.N, 127.0.3.N and ::1, so both worlds can run at once in one network namespace. Knot
listens on a free high port on 127.0.9.253. Traffic stays on loopback: ``wkprivate`` points at
192.168.77.7, which the doctor refuses (it is outside ``ALLOW_IPS``) and never contacts.

Run ``python -m tests.integration.doctor_world --seconds 600`` (from the repository root) to
poke at it by hand.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .world import (
    BlackHole,
    KnotServer,
    _listen,
    _q,
    _self_signed,
    _tail,
    _terminate,
    _wait_listening,
    find_binary,
    nginx_head,
    run_caddy,
    run_nginx,
)

ZONE = "mxdoc"
DNS_ADDRESS = "127.0.9.253"
ALLOW_IPS: tuple[str, ...] = ("127.0.0.0/8",)
HANG_ADDRESS = "127.0.9.250"  # the black hole's TCP endpoints: accept, never answer

VERSION_PATH = "/_matrix/federation/v1/version"
KEYS_PATH = "/_matrix/key/v2/server"
CLIENT_VERSIONS_PATH = "/_matrix/client/versions"
WK_SERVER = "/.well-known/matrix/server"
WK_CLIENT = "/.well-known/matrix/client"
WK_SUPPORT = "/.well-known/matrix/support"
CORS = (("Access-Control-Allow-Origin", "*"),)

CertKind = Literal["valid", "expired", "self-signed", "soon", "older"]
ServerKind = Literal["nginx", "caddy"]


def n(label: str) -> str:
    return f"{label}.{ZONE}"


# =============================================================================================
# The data: zone, sites, cases
# =============================================================================================


@dataclass(frozen=True)
class Route:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    location: str | None = None


def _json_route(value: object, *, cors: bool = False, **kw: Any) -> Route:
    return Route(body=json.dumps(value).encode(), headers=CORS if cors else (), **kw)


# Placeholders filled at start: key documents are signed then.
KEYS_FOR = "keys-for:"  # KEYS_FOR + server name: a correctly signed keys document
TAMPERED_KEYS_FOR = "tampered-keys-for:"  # signed, then altered


@dataclass(frozen=True)
class Site:
    """One TLS listener: ``address:port`` with one certificate and fixed responses.

    ``names``: the certificate's names. ``routes``: exact paths. ``proxy``: path prefix ->
    upstream URL (nginx only). Anything else gets a 404.
    """

    server: ServerKind
    address: str
    port: int
    names: tuple[str, ...]
    cert: CertKind = "valid"
    routes: dict[str, Route | str] = field(default_factory=dict)
    proxy: dict[str, str] = field(default_factory=dict)


def _homeserver(server_name: str, *, tampered: bool = False) -> dict[str, Route | str]:
    version = _json_route({"server": {"name": "doctor-world", "version": "1"}})
    keys = (TAMPERED_KEYS_FOR if tampered else KEYS_FOR) + server_name
    return {VERSION_PATH: version, KEYS_PATH: keys}


_CLIENT_VERSIONS = {CLIENT_VERSIONS_PATH: _json_route({"versions": ["v1.11", "v1.12"]}, cors=True)}
_SUPPORT = _json_route(
    {"contacts": [{"matrix_id": "@admin:good.mxdoc", "role": "m.role.admin"}]}, cors=True
)


def _delegation(m_server: str) -> Route:
    return _json_route({"m.server": m_server})


ZONE_TEXT = f"""\
$ORIGIN {ZONE}.
$TTL 300
@                   SOA   ns.{ZONE}. hostmaster.{ZONE}. 2026120101 3600 600 86400 60
@                   NS    ns
ns                  A     {DNS_ADDRESS}

; healthy: well-known -> hs.good:8448 (Caddy), SRV fallback to the same, client + support
good                A     127.0.9.1
hs.good             A     127.0.9.2
_matrix-fed._tcp.good SRV 10 0 8448 hs.good

; well-known host down, without and with an SRV record
wkdown              A     127.0.9.10
wkdown-srv          A     127.0.9.11
_matrix-fed._tcp.wkdown-srv SRV 10 0 8448 hs.wkdown-srv
hs.wkdown-srv       A     127.0.9.12

; well-known problems
wkhtml              A     127.0.9.13
_matrix-fed._tcp.wkhtml SRV 10 0 8448 hs.wkhtml
hs.wkhtml           A     127.0.9.46
wkredir             A     127.0.9.14
wkself              A     127.0.9.15
wkprivate           A     192.168.77.7

; delegation to :443, no fallback; a proxy forwarding only the client API
deleg443            A     127.0.9.16
hs.deleg443         A     127.0.9.17
clientonly          A     127.0.9.18
hs.clientonly       A     127.0.9.19

; SRV problems
srvown              A     127.0.9.20
_matrix-fed._tcp.srvown SRV 10 0 8448 hs.srvown
hs.srvown           A     127.0.9.21
srvcert             A     127.0.9.22
_matrix-fed._tcp.srvcert SRV 10 0 8448 hs.srvcert
hs.srvcert          A     127.0.9.23
legacy              A     127.0.9.24
_matrix._tcp.legacy SRV 10 0 8448 hs.legacy
hs.legacy           A     127.0.9.25
srvcname            A     127.0.9.26
_matrix-fed._tcp.srvcname SRV 10 0 8448 alias.srvcname
alias.srvcname      CNAME hs.srvcname
hs.srvcname         A     127.0.9.27
srvdot              A     127.0.9.28
_matrix-fed._tcp.srvdot SRV 0 0 0 .
srvign              A     127.0.9.29
hs.srvign           A     127.0.9.47
_matrix-fed._tcp.hs.srvign SRV 10 0 8448 hs.good

; certificates
stale               A     127.0.9.30
hs.stale            A     127.0.9.31
soon                A     127.0.9.32
hs.soon             A     127.0.9.33
selfsigned          A     127.0.9.34
hs.selfsigned       A     127.0.9.35
half                A     127.0.9.36
hs.half             A     127.0.9.37
hs.half             A     127.0.9.38
tampered            A     127.0.9.39
hs.tampered         A     127.0.9.40

; SRV target with a hand-made copy of the base domain's certificate
srvcopy             A     127.0.9.48
_matrix-fed._tcp.srvcopy SRV 10 0 8448 hs.srvcopy
hs.srvcopy          A     127.0.9.49

; client side
clientdead          A     127.0.9.41
nothing             A     127.0.9.42
nocors              A     127.0.9.43
badsupport          A     127.0.9.44

; everything hangs
blackhole           A     {HANG_ADDRESS}
"""


def _delegated(
    label: str,
    wk_address: str,
    hs_address: str,
    *,
    port: int = 8448,
    hs_server: ServerKind = "nginx",
    cert: CertKind = "valid",
    tampered: bool = False,
) -> tuple[Site, Site]:
    """The usual set-up: nginx serves ``label``'s well-known on :443, delegating to
    ``hs.label:port``, where a homeserver with a ``hs.label`` certificate (of kind ``cert``)
    serves ``label``'s keys."""
    hs = n(f"hs.{label}")
    return (
        Site(
            "nginx", wk_address, 443, (n(label),), routes={WK_SERVER: _delegation(f"{hs}:{port}")}
        ),
        Site(
            hs_server,
            hs_address,
            port,
            (hs,),
            cert=cert,
            routes=_homeserver(n(label), tampered=tampered),
        ),
    )


def _sites() -> tuple[Site, ...]:
    good_client = _json_route({"m.homeserver": {"base_url": f"https://{n('hs.good')}"}}, cors=True)
    hs_good = _homeserver(n("good"))
    return (
        # ---- healthy (well-known on nginx, homeserver on Caddy)
        Site(
            "nginx",
            "127.0.9.1",
            443,
            (n("good"),),
            routes={
                WK_SERVER: _delegation(f"{n('hs.good')}:8448"),
                WK_CLIENT: good_client,
                WK_SUPPORT: _SUPPORT,
            },
        ),
        Site("caddy", "127.0.9.2", 8448, (n("hs.good"), n("good")), routes=hs_good),
        Site("caddy", "127.0.9.2", 443, (n("hs.good"), n("good")), routes=_CLIENT_VERSIONS),
        # ---- well-known host down: only the SRV case has a homeserver
        Site("nginx", "127.0.9.12", 8448, (n("wkdown-srv"),), routes=_homeserver(n("wkdown-srv"))),
        # ---- HTML at the well-known path (an SPA's catch-all, on Caddy)
        Site(
            "caddy",
            "127.0.9.13",
            443,
            (n("wkhtml"),),
            routes={
                WK_SERVER: Route(
                    body=b"<!doctype html><html><body>Welcome!</body></html>",
                    content_type="text/html; charset=utf-8",
                )
            },
        ),
        Site("nginx", "127.0.9.46", 8448, (n("wkhtml"),), routes=_homeserver(n("wkhtml"))),
        # ---- a redirect to http (refused), delegation to itself
        Site(
            "nginx",
            "127.0.9.14",
            443,
            (n("wkredir"),),
            routes={WK_SERVER: Route(status=301, location=f"http://{n('wkredir')}{WK_SERVER}")},
        ),
        Site(
            "nginx",
            "127.0.9.15",
            443,
            (n("wkself"),),
            routes={WK_SERVER: _delegation(n("wkself")), **_homeserver(n("wkself"))},
        ),
        Site("nginx", "127.0.9.15", 8448, (n("wkself"),), routes=_homeserver(n("wkself"))),
        # ---- delegation to :443 with no SRV fallback
        *_delegated("deleg443", "127.0.9.16", "127.0.9.17", port=443, hs_server="caddy"),
        # ---- a proxy that forwards only the client API (to the healthy homeserver's)
        Site(
            "nginx",
            "127.0.9.18",
            443,
            (n("clientonly"),),
            routes={WK_SERVER: _delegation(f"{n('hs.clientonly')}:443")},
        ),
        Site(
            "nginx",
            "127.0.9.19",
            443,
            (n("hs.clientonly"),),
            proxy={"/_matrix/client/": "https://127.0.9.2:443"},
        ),
        # ---- SRV target with only its own certificate (delegation works, the fallback not)
        *_delegated("srvown", "127.0.9.20", "127.0.9.21"),
        # ---- SRV only, target with its own certificate: the name the spec requires fails
        Site("caddy", "127.0.9.23", 8448, (n("hs.srvcert"),), routes=_homeserver(n("srvcert"))),
        # ---- legacy SRV only; SRV target behind a CNAME; SRV '.'
        Site("nginx", "127.0.9.25", 8448, (n("legacy"),), routes=_homeserver(n("legacy"))),
        Site("nginx", "127.0.9.27", 8448, (n("srvcname"),), routes=_homeserver(n("srvcname"))),
        # ---- delegation with a port, while the delegated name has SRV records
        *_delegated("srvign", "127.0.9.29", "127.0.9.47"),
        # ---- an IP literal server name, with a certificate for the IP address
        Site("nginx", "127.0.9.45", 8448, ("127.0.9.45",), routes=_homeserver("127.0.9.45:8448")),
        # ---- the stale copy: 443 renewed (Caddy), 8448 still serves the expired one (nginx)
        *_delegated("stale", "127.0.9.30", "127.0.9.31", cert="expired"),
        Site("caddy", "127.0.9.31", 443, (n("hs.stale"),), routes=_CLIENT_VERSIONS),
        # ---- the base domain renewed on 443; the SRV target serves an older copy of it
        Site("nginx", "127.0.9.48", 443, (n("srvcopy"),)),
        Site(
            "caddy",
            "127.0.9.49",
            8448,
            (n("srvcopy"),),
            cert="older",
            routes=_homeserver(n("srvcopy")),
        ),
        # ---- expiring in days; self-signed federation port; one address of two down
        *_delegated("soon", "127.0.9.32", "127.0.9.33", cert="soon"),
        *_delegated(
            "selfsigned", "127.0.9.34", "127.0.9.35", hs_server="caddy", cert="self-signed"
        ),
        *_delegated("half", "127.0.9.36", "127.0.9.37"),
        # ---- tampered key signature
        *_delegated("tampered", "127.0.9.39", "127.0.9.40", tampered=True),
        # ---- client side: base_url where nothing listens; no CORS (Caddy); bad support file
        Site(
            "nginx",
            "127.0.9.41",
            443,
            (n("clientdead"),),
            routes={
                WK_SERVER: _delegation(f"{n('hs.good')}:8448"),
                WK_CLIENT: _json_route(
                    {"m.homeserver": {"base_url": f"https://{n('nothing')}"}}, cors=True
                ),
            },
        ),
        Site(
            "caddy",
            "127.0.9.43",
            443,
            (n("nocors"),),
            routes={
                WK_CLIENT: _json_route({"m.homeserver": {"base_url": f"https://{n('hs.good')}"}})
            },
        ),
        Site(
            "nginx",
            "127.0.9.44",
            443,
            (n("badsupport"),),
            routes={WK_SUPPORT: Route(body=b"<html>Ask in #help</html>", content_type="text/html")},
        ),
    )


SITES: tuple[Site, ...] = _sites()


@dataclass(frozen=True)
class Case:
    """A server name and what the doctor must say about it."""

    name: str
    server_name: str
    codes: frozenset[str]
    federation_ok: bool | None  # None: not the point of the case (client-side cases)
    description: str
    nameserver: Literal["knot", "blackhole"] = "knot"


def _case(
    name: str,
    codes: Sequence[str],
    ok: bool | None,
    description: str,
    server_name: str | None = None,
) -> Case:
    return Case(name, server_name or n(name), frozenset(codes), ok, description)


CASES: tuple[Case, ...] = (
    _case("good", [], True, "healthy: delegation, SRV fallback, signed keys, client, support"),
    _case(
        "wkdown",
        ["well-known-unreachable", "target-unreachable"],
        False,
        "the well-known host is down and there is no SRV record",
    ),
    _case(
        "wkdown-srv",
        ["well-known-unreachable"],
        True,
        "the well-known host is down; an SRV record keeps federation up",
    ),
    _case("wkhtml", ["well-known-invalid"], True, "an HTML page at the well-known path (Caddy)"),
    _case("wkredir", ["well-known-redirect-refused"], False, "the well-known redirects to http"),
    _case(
        "wkself",
        ["well-known-self-delegation-loop", "no-srv-fallback"],
        True,
        "m.server names the server name itself",
    ),
    _case(
        "wkprivate",
        ["well-known-private-address"],
        False,
        "the well-known host resolves to a private address",
    ),
    _case(
        "deleg443",
        ["no-srv-fallback", "federation-on-443"],
        True,
        "delegation to :443 (Caddy) with no fallback",
    ),
    _case(
        "clientonly",
        ["version-failed", "keys-unreachable", "federation-on-443"],
        False,
        "a proxy on 443 that forwards only /_matrix/client",
    ),
    _case(
        "srvown",
        ["srv-fallback-broken"],
        True,
        "the SRV fallback's target has only its own certificate",
    ),
    _case(
        "srvcert",
        ["tls-name-mismatch"],
        False,
        "SRV only; the target (Caddy) has only its own certificate",
    ),
    _case("legacy", ["srv-legacy-only"], True, "only the deprecated _matrix._tcp SRV"),
    _case("srvcname", ["srv-target-cname"], True, "the SRV target is a CNAME"),
    _case("srvdot", ["srv-target-dot"], False, "SRV target '.': no service"),
    _case(
        "srvign",
        ["srv-ignored"],
        True,
        "delegation with a port while the delegated name has SRV records",
    ),
    _case(
        "stale",
        ["tls-expired", "tls-differs-between-ports"],
        False,
        "443 renewed (Caddy), the federation port (nginx) serves the expired copy",
    ),
    _case(
        "srvcopy",
        ["tls-differs-between-ports"],
        True,
        "an SRV target (Caddy) with an older copy of the base domain's certificate",
    ),
    _case("soon", ["tls-expires-soon"], True, "the federation certificate expires in 5 days"),
    _case("selfsigned", ["tls-untrusted"], False, "a self-signed federation port (Caddy)"),
    _case(
        "half",
        ["target-address-unreachable"],
        True,
        "the homeserver has two addresses, one of which does not listen",
    ),
    _case("tampered", ["keys-invalid"], False, "the keys' self-signature does not verify"),
    _case("clientdead", ["client-invalid"], None, "the client base_url: nothing listens there"),
    _case("nocors", ["client-cors-missing"], None, "a client well-known without CORS (Caddy)"),
    _case("badsupport", ["support-invalid"], None, "a support file that is HTML"),
    _case("ip", ["name-ip-literal"], True, "an IP literal server name", "127.0.9.45:8448"),
)


def case(name: str) -> Case:
    for c in CASES:
        if c.name == name:
            return c
    raise KeyError(name)


# =============================================================================================
# Certificates and keys
# =============================================================================================


class DoctorCerts:
    """A trustme CA and one certificate (chain + key files) per site.

    ``ca``: issue from this CA (another world's, so its clients trust these too) instead of
    a new one.
    """

    def __init__(self, directory: Path, ca: Any = None) -> None:
        import trustme

        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca = (
            ca if ca is not None else trustme.CA(organization_name="mxresolve doctor world CA")
        )
        self.cafile = self.dir / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.cafile))

        self._cache: dict[tuple[tuple[str, ...], str], tuple[Path, Path]] = {}

    def pair(self, site: Site) -> tuple[Path, Path]:
        """One certificate per (names, kind): two ports with the same names share the files."""
        cached = self._cache.get((site.names, site.cert))
        if cached is not None:
            return cached
        stem = f"{site.address}-{site.port}"
        crt, key = self.dir / f"{stem}.crt", self.dir / f"{stem}.key"
        now = dt.datetime.now(dt.timezone.utc)
        if site.cert == "self-signed":
            cert_pem, key_pem = _self_signed(site.names[0])
        else:
            window = {
                "valid": (now - dt.timedelta(days=1), now + dt.timedelta(days=365)),
                "expired": (now - dt.timedelta(days=120), now - dt.timedelta(days=30)),
                "soon": (now - dt.timedelta(days=80), now + dt.timedelta(days=5)),
                "older": (now - dt.timedelta(days=60), now + dt.timedelta(days=30)),
            }[site.cert]
            leaf = self.ca.issue_cert(*site.names, not_before=window[0], not_after=window[1])
            cert_pem = b"".join(b.bytes() for b in leaf.cert_chain_pems)
            key_pem = leaf.private_key_pem.bytes()
        crt.write_bytes(cert_pem)
        key.write_bytes(key_pem)
        key.chmod(0o600)
        self._cache[(site.names, site.cert)] = (crt, key)
        return crt, key


def signed_keys(server_name: str, *, tampered: bool = False) -> bytes:
    """A /_matrix/key/v2/server document, signed with a fresh ed25519 key (signedjson)."""
    from signedjson.key import encode_verify_key_base64, generate_signing_key, get_verify_key
    from signedjson.sign import sign_json

    signing_key = generate_signing_key("doctor")
    key_id = f"{signing_key.alg}:{signing_key.version}"
    document = {
        "server_name": server_name,
        "valid_until_ts": int(time.time() * 1000) + 7 * 86400 * 1000,
        "verify_keys": {key_id: {"key": encode_verify_key_base64(get_verify_key(signing_key))}},
        "old_verify_keys": {},
    }
    signed = sign_json(document, server_name, signing_key)
    if tampered:  # an admin "fixing" the expiry in a cached copy by hand
        signed["valid_until_ts"] += 1
    return json.dumps(signed).encode()


def _materialise(route: Route | str) -> Route:
    if isinstance(route, Route):
        return route
    if route.startswith(TAMPERED_KEYS_FOR):
        return Route(body=signed_keys(route[len(TAMPERED_KEYS_FOR) :], tampered=True))
    if route.startswith(KEYS_FOR):
        return Route(body=signed_keys(route[len(KEYS_FOR) :]))
    raise ValueError(route)


# =============================================================================================
# Servers
# =============================================================================================


class DoctorKnot(KnotServer):
    """knotd for the ``mxdoc.`` zone on DNS_ADDRESS only (world.py's Knot serves ``mxtest.``)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(
            directory,
            zone_text=ZONE_TEXT,
            servfail_zones=(),
            ipv6=False,
            zone=ZONE,
            address=DNS_ADDRESS,
        )


class DoctorNginx:
    def __init__(self, directory: Path, certs: DoctorCerts, sites: Sequence[Site]) -> None:
        self.dir = directory
        self.certs = certs
        self.sites = [s for s in sites if s.server == "nginx"]
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "stderr.log"
        self.error_log = self.dir / "error.log"

    def _block(self, site: Site) -> list[str]:
        crt, key = self.certs.pair(site)
        docroot = self.dir / "htdocs" / f"{site.address}-{site.port}"
        docroot.mkdir(parents=True, exist_ok=True)
        lines = [
            "    server {",
            f"        listen {_listen(site.address, site.port)} ssl;",
            "        server_name _;",
            f"        ssl_certificate {crt};",
            f"        ssl_certificate_key {key};",
        ]
        for i, (path, raw) in enumerate(sorted(site.routes.items())):
            route = _materialise(raw)
            lines.append(f"        location = {path} {{")
            for name, value in route.headers:
                lines.append(f"            add_header {name} {_q(value)} always;")
            if route.location is not None:
                lines.append(f"            return {route.status} {_q(route.location)};")
            else:
                body = docroot / f"r{i}"
                body.write_bytes(route.body)
                lines += [
                    f"            types {{ }} default_type {_q(route.content_type)};",
                    f"            alias {body};",
                ]
            lines.append("        }")
        for prefix, upstream in site.proxy.items():
            lines += [
                f"        location {prefix} {{",
                f"            proxy_pass {upstream};",
                "            proxy_ssl_verify off;",
                # As Synapse's reverse-proxy guide has it: the client's address, scheme and Host.
                "            proxy_set_header X-Forwarded-For $remote_addr;",
                "            proxy_set_header X-Forwarded-Proto $scheme;",
                "            proxy_set_header Host $host;",
                "        }",
            ]
        lines += ["        location / { return 404; }", "    }"]
        return lines

    def config(self) -> str:
        head = nginx_head(self.dir, self.error_log, self.dir / "access.log", 256)
        blocks = [line for site in self.sites for line in self._block(site)]
        return "\n".join([*head, *blocks, "}"]) + "\n"

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = run_nginx(self.dir, self.config(), self.log, self.error_log)
        _wait_listening(
            self.proc, [(s.address, s.port) for s in self.sites], "nginx", self.log, self.error_log
        )

    def stop(self) -> None:
        _terminate(self.proc)


class DoctorCaddy:
    """Caddy 2 (Go's crypto/tls) from a JSON config: no admin API, no automatic HTTPS."""

    def __init__(self, directory: Path, certs: DoctorCerts, sites: Sequence[Site]) -> None:
        self.dir = directory
        self.certs = certs
        self.sites = [s for s in sites if s.server == "caddy"]
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "caddy.log"

    def config(self) -> dict[str, Any]:
        servers: dict[str, Any] = {}
        load_files: list[dict[str, Any]] = []
        tags: dict[Path, str] = {}
        for i, site in enumerate(self.sites):
            crt, key = self.certs.pair(site)
            # Caddy keeps one copy of a certificate loaded twice: one tag per file, not per site.
            tag = tags.get(crt)
            if tag is None:
                tag = tags[crt] = f"cert{len(tags)}"
                load_files.append({"certificate": str(crt), "key": str(key), "tags": [tag]})
            routes = []
            for path, raw in sorted(site.routes.items()):
                route = _materialise(raw)
                headers = {"Content-Type": [route.content_type]}
                headers.update({k: [v] for k, v in route.headers})
                if route.location is not None:
                    headers["Location"] = [route.location]
                routes.append(
                    {
                        "match": [{"path": [path]}],
                        "handle": [
                            {
                                "handler": "static_response",
                                "status_code": route.status,
                                "headers": headers,
                                "body": route.body.decode(),
                            }
                        ],
                    }
                )
            routes.append({"handle": [{"handler": "static_response", "status_code": 404}]})
            servers[f"s{i}"] = {
                "listen": [_listen(site.address, site.port)],
                "routes": routes,
                "tls_connection_policies": [{"certificate_selection": {"any_tag": [tag]}}],
                "automatic_https": {"disable": True},
            }
        return {
            "admin": {"disabled": True},
            "storage": {"module": "file_system", "root": str(self.dir / "storage")},
            "logging": {"logs": {"default": {"level": "WARN"}}},
            "apps": {
                "http": {"servers": servers},
                "tls": {"certificates": {"load_files": load_files}},
            },
        }

    def start(self) -> None:
        self.proc = run_caddy(self.dir, self.config(), self.log)
        _wait_listening(self.proc, [(s.address, s.port) for s in self.sites], "caddy", self.log)

    def stop(self) -> None:
        _terminate(self.proc)


# =============================================================================================
# The world
# =============================================================================================


def missing_prerequisites() -> list[str]:
    missing = [
        f"{binary} not installed"
        for binary in ("knotd", "nginx", "caddy")
        if find_binary(binary) is None
    ]
    if os.geteuid() != 0:
        missing.append("not root: cannot bind port 443 on loopback addresses")
    for module in ("trustme", "signedjson"):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"python package {module} missing (pip install -e '.[test]')")
    return missing


class DoctorWorld:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mxdoctor-"))
        self.certs = DoctorCerts(self.dir / "certs")
        self.knot = DoctorKnot(self.dir / "knot")
        self.nginx = DoctorNginx(self.dir / "nginx", self.certs, SITES)
        self.caddy = DoctorCaddy(self.dir / "caddy", self.certs, SITES)
        self.blackhole = BlackHole(hang_endpoints=[(HANG_ADDRESS, 443), (HANG_ADDRESS, 8448)])

    @property
    def cafile(self) -> str:
        return str(self.certs.cafile)

    def nameserver_for(self, c: Case) -> str:
        return self.blackhole.nameserver if c.nameserver == "blackhole" else self.knot.nameserver

    def doctor_args(self, c: Case, *, timeout: float = 3.0) -> list[str]:
        """Command-line arguments for ``mxresolve doctor`` against this world."""
        args = [c.server_name, "--nameserver", self.nameserver_for(c), "--cafile", self.cafile]
        for cidr in ALLOW_IPS:
            args += ["--allow-ip", cidr]
        return [*args, "--timeout", str(timeout)]

    def start(self) -> DoctorWorld:
        self.knot.dir.mkdir(parents=True, exist_ok=True)
        try:
            self.blackhole.start()
            self.knot.start()
            self.nginx.start()
            self.caddy.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for server in (self.caddy, self.nginx, self.knot):
            server.stop()
        self.blackhole.stop()
        if os.environ.get("MXRESOLVE_KEEP_WORLD") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p}\n{_tail(p)}"
            for p in (self.nginx.error_log, self.caddy.log, self.knot.log)
            if p.exists()
        )

    def __enter__(self) -> DoctorWorld:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def iter_codes() -> Iterator[str]:
    for c in CASES:
        yield from c.codes


if __name__ == "__main__":  # pragma: no cover - manual use
    import argparse
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from netns import enter_private_network

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=600)
    options = parser.parse_args()
    print(enter_private_network())
    with DoctorWorld() as world:
        print(f"nameserver {world.knot.nameserver}  cafile {world.cafile}  dir {world.dir}")
        time.sleep(options.seconds)
