"""Throwaway loopback "world" for developing the peer drivers.

It runs real servers on 127.0.99.0/24 only:

* an authoritative UDP DNS responder (dnspython message API) for the zone ``mxtest.``
  on ``127.0.99.1:<ephemeral port>``;
* HTTPS servers (stdlib ``ssl`` + ``http.server``) with a throwaway ``trustme`` CA:
  ``/.well-known/matrix/server`` on port 443 of the well-known hosts and
  ``/_matrix/federation/v1/version`` on the federation targets.

Every server logs what it saw (DNS: name/type; HTTPS: address, port, path, Host, SNI), so the
drivers' own observations can be cross-checked.

Usage (needs dnspython and trustme; binding port 443 needs root or CAP_NET_BIND_SERVICE)::

    # serve until stdin closes (or --seconds elapse); prints the driver input JSON first
    python benchmarks/peers/_devworld.py serve --seconds 600

    # start the world, run one driver in one mode, print its output and the server logs
    python benchmarks/peers/_devworld.py run --python .venv-synapse/bin/python \
        --driver benchmarks/peers/synapse_peer.py --mode resolve

    # same, against the real loopback world of tests/integration/world.py (Knot + nginx)
    python benchmarks/peers/_devworld.py run --world integration --python ... --driver ...

This is a development aid only; the differential tests and benchmarks proper use
``tests/integration/world.py`` (Knot DNS + nginx).
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import os
import select
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import trustme

ZONE = dns.name.from_text("mxtest.")
TTL = 300
DNS_ADDR = "127.0.99.1"

# name -> {rdtype: [rdata text, ...]}
RECORDS: dict[str, dict[str, list[str]]] = {
    # 1. delegated via well-known to name:port (no SRV lookup expected)
    "wk-port.mxtest.": {"A": ["127.0.99.2"]},
    "fed-a.mxtest.": {"A": ["127.0.99.11"]},
    # 2. delegated via well-known to a name that has a _matrix-fed SRV record
    "wk-srv.mxtest.": {"A": ["127.0.99.3"]},
    "fed-b.mxtest.": {},  # exists (NODATA for A/AAAA), only the SRV below
    "_matrix-fed._tcp.fed-b.mxtest.": {"SRV": ["10 5 8450 host-b.mxtest."]},
    "host-b.mxtest.": {"A": ["127.0.99.12"]},
    # 3. no well-known (404), two _matrix-fed SRV records; priority 10 target refuses
    "srv-only.mxtest.": {"A": ["127.0.99.4"]},
    "_matrix-fed._tcp.srv-only.mxtest.": {
        "SRV": ["10 5 8451 host-c.mxtest.", "20 5 8452 host-d.mxtest."]
    },
    "host-c.mxtest.": {"A": ["127.0.99.13"]},
    "host-d.mxtest.": {"A": ["127.0.99.14"]},
    # 4. no well-known (404), no SRV: plain A fallback to :8448
    "plain.mxtest.": {"A": ["127.0.99.15"]},
}

# 5. IP literal server name
IP_LITERAL = "127.0.99.16"

NAMES = ["wk-port.mxtest", "wk-srv.mxtest", "srv-only.mxtest", "plain.mxtest", IP_LITERAL]

# (ip, port) -> {"well_known": body-or-None (None = 404), "federation": bool}
HTTPS_SERVERS: dict[tuple[str, int], dict[str, Any]] = {
    ("127.0.99.2", 443): {"well_known": {"m.server": "fed-a.mxtest:8449"}},
    ("127.0.99.3", 443): {"well_known": {"m.server": "fed-b.mxtest"}},
    ("127.0.99.4", 443): {"well_known": None},
    ("127.0.99.15", 443): {"well_known": None},
    ("127.0.99.11", 8449): {"federation": True},
    ("127.0.99.12", 8450): {"federation": True},
    # 127.0.99.13:8451 deliberately has no listener (connection refused)
    ("127.0.99.14", 8452): {"federation": True},
    ("127.0.99.15", 8448): {"federation": True},
    (IP_LITERAL, 8448): {"federation": True},
}

CERT_NAMES = [
    "wk-port.mxtest",
    "fed-a.mxtest",
    "wk-srv.mxtest",
    "fed-b.mxtest",
    "host-b.mxtest",
    "srv-only.mxtest",
    "host-c.mxtest",
    "host-d.mxtest",
    "plain.mxtest",
    IP_LITERAL,
]


@dataclass
class WorldLog:
    lock: threading.Lock = field(default_factory=threading.Lock)
    dns: list[tuple[str, str, str]] = field(default_factory=list)
    https: list[dict[str, Any]] = field(default_factory=list)

    def add_dns(self, name: str, rdtype: str, rcode: str) -> None:
        with self.lock:
            self.dns.append((name, rdtype, rcode))

    def add_https(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.https.append(entry)


def _answer(query: dns.message.Message) -> dns.message.Message:
    resp = dns.message.make_response(query)
    resp.flags |= dns.flags.AA
    resp.flags &= ~dns.flags.RA
    if len(query.question) != 1:
        resp.set_rcode(dns.rcode.FORMERR)
        return resp
    q = query.question[0]
    if not q.name.is_subdomain(ZONE):
        resp.flags &= ~dns.flags.AA
        resp.set_rcode(dns.rcode.REFUSED)
        return resp
    node = RECORDS.get(q.name.to_text().lower())
    if node is None:
        resp.set_rcode(dns.rcode.NXDOMAIN)
        return resp
    rdtype_text = dns.rdatatype.to_text(q.rdtype)
    texts = node.get(rdtype_text, [])
    if texts:
        rrset = dns.rrset.from_text_list(q.name, TTL, dns.rdataclass.IN, q.rdtype, texts)
        resp.answer.append(rrset)
    return resp


class DnsServer:
    """Authoritative UDP responder; the loop checks a stop flag every 0.2 s."""

    def __init__(self, log: WorldLog) -> None:
        self.log = log
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((DNS_ADDR, 0))
        self.port: int = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="devworld-dns", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.sock], [], [], 0.2)
            if not ready:
                continue
            try:
                wire, peer = self.sock.recvfrom(4096)
            except OSError:
                continue
            if not peer[0].startswith("127."):
                continue
            try:
                query = dns.message.from_wire(wire)
            except Exception:
                continue
            resp = _answer(query)
            if query.question:
                q = query.question[0]
                self.log.add_dns(
                    q.name.to_text(),
                    dns.rdatatype.to_text(q.rdtype),
                    dns.rcode.to_text(resp.rcode()),
                )
            with contextlib.suppress(OSError):
                self.sock.sendto(resp.to_wire(max_size=65535), peer)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=2)
        self.sock.close()


def _make_handler(
    addr: tuple[str, int], conf: dict[str, Any], log: WorldLog
) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "devworld"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send_json(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            sni = getattr(self.connection, "_devworld_sni", None)
            log.add_https(
                {
                    "addr": addr[0],
                    "port": addr[1],
                    "path": self.path,
                    "host": self.headers.get("Host"),
                    "sni": sni,
                }
            )
            if self.path == "/.well-known/matrix/server" and "well_known" in conf:
                if conf["well_known"] is None:
                    self._send_json(404, {"errcode": "M_NOT_FOUND"})
                else:
                    self._send_json(200, conf["well_known"])
            elif self.path == "/_matrix/federation/v1/version" and conf.get("federation"):
                self._send_json(
                    200, {"server": {"name": "devworld", "version": f"{addr[0]}:{addr[1]}"}}
                )
            else:
                self._send_json(404, {"errcode": "M_UNRECOGNIZED"})

    return Handler


class TlsHttpServer(http.server.ThreadingHTTPServer):
    """TLS is negotiated in the per-connection thread, so a slow client can't stall accept()."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], handler: type, ctx: ssl.SSLContext) -> None:
        self.tls_ctx = ctx
        super().__init__(addr, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(10)
        # Headers and body go out as separate TLS records; without NODELAY, Nagle plus the
        # client's delayed ACK adds ~40 ms to every keep-alive response.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            tls = self.tls_ctx.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            with contextlib.suppress(OSError):
                tls.close()


def _server_ctx(cert: trustme.LeafCert) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(ctx)

    def on_sni(sock: Any, name: str | None, _ctx: ssl.SSLContext) -> None:
        sock._devworld_sni = name
        return None

    ctx.sni_callback = on_sni
    return ctx


class DevWorld:
    def __init__(self) -> None:
        self.log = WorldLog()
        self.tmpdir = tempfile.TemporaryDirectory(prefix="mx-devworld-")
        ca = trustme.CA()
        self.cafile = os.path.join(self.tmpdir.name, "ca.pem")
        ca.cert_pem.write_to_path(self.cafile)
        leaf = ca.issue_cert(*CERT_NAMES)
        self.ctx = _server_ctx(leaf)
        self.dns = DnsServer(self.log)
        self.https: list[tuple[TlsHttpServer, threading.Thread]] = []

    @property
    def nameserver(self) -> str:
        return f"{DNS_ADDR}:{self.dns.port}"

    def start(self) -> None:
        self.dns.start()
        for addr, conf in HTTPS_SERVERS.items():
            srv = TlsHttpServer(addr, _make_handler(addr, conf, self.log), self.ctx)
            th = threading.Thread(
                target=srv.serve_forever,
                kwargs={"poll_interval": 0.2},
                name=f"devworld-https-{addr[0]}:{addr[1]}",
                daemon=True,
            )
            th.start()
            self.https.append((srv, th))

    def stop(self) -> None:
        for srv, th in self.https:
            srv.shutdown()
            srv.server_close()
            th.join(timeout=2)
        self.dns.stop()
        self.tmpdir.cleanup()

    def driver_input(self, mode: str, rounds: int, **extra: Any) -> dict[str, Any]:
        return {
            "nameserver": self.nameserver,
            "cafile": self.cafile,
            "names": list(NAMES),
            "rounds": rounds,
            "mode": mode,
            **extra,
        }


def _cmd_serve(args: argparse.Namespace) -> int:
    world = DevWorld()
    world.start()
    try:
        print(json.dumps(world.driver_input("resolve", 1)), flush=True)
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            ready, _, _ = select.select([sys.stdin], [], [], 0.5)
            if ready and not sys.stdin.readline():
                break
    finally:
        world.stop()
    return 0


def _integration_world() -> tuple[Any, Any]:
    """Import tests/integration/world.py from this checkout; return (module, started world)."""
    import importlib.util

    path = os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "integration", "world.py"
    )
    spec = importlib.util.spec_from_file_location("mx_integration_world", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses need the module registered
    spec.loader.exec_module(mod)
    missing = mod.missing_prerequisites()
    if missing:
        raise SystemExit("integration world unavailable: " + "; ".join(missing))
    return mod, mod.LoopbackWorld().start()


def _integration_names(mod: Any, mode: str) -> list[str]:
    names: list[str] = []
    for s in mod.SCENARIOS:
        if s.nameserver != "knot":
            continue
        if mode != "resolve" and (not s.ok or s.wk_timeout_max is not None):
            continue  # benchmarks: only scenarios that resolve, and no deliberately slow ones
        if s.server_name not in names:
            names.append(s.server_name)
    return names


def _cmd_run(args: argparse.Namespace) -> int:
    extra = json.loads(args.extra) if args.extra else {}
    world: Any
    if args.world == "integration":
        mod, world = _integration_world()
        names = args.names.split(",") if args.names else _integration_names(mod, args.mode)
        payload = {
            "nameserver": world.nameserver,
            "cafile": world.cafile,
            "names": names,
            "rounds": args.rounds,
            "mode": args.mode,
            **extra,
        }
    else:
        world = DevWorld()
        world.start()
        payload = world.driver_input(args.mode, args.rounds, **extra)
        if args.names:
            payload["names"] = args.names.split(",")
    try:
        proc = subprocess.run(
            [args.python, args.driver],
            input=json.dumps(payload),
            capture_output=True,
            text=True,
            timeout=args.timeout,
            check=False,
        )
        try:
            out: Any = json.loads(proc.stdout)
        except json.JSONDecodeError:
            out = {"unparsed_stdout": proc.stdout}
        report: dict[str, Any] = {
            "world": args.world,
            "driver_exit": proc.returncode,
            "driver_output": out,
            "driver_stderr_tail": proc.stderr[-2000:],
        }
        if isinstance(world, DevWorld):
            if args.mode == "resolve":
                report["world_https_log"] = world.log.https
                report["world_dns_log"] = world.log.dns
            else:
                report["world_counts"] = {
                    "dns_queries": len(world.log.dns),
                    "https_requests": len(world.log.https),
                }
        print(json.dumps(report, indent=1 if args.pretty else None))
        return 0 if proc.returncode == 0 else 1
    finally:
        world.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="serve until stdin closes or --seconds elapse")
    s.add_argument("--seconds", type=float, default=600.0)
    r = sub.add_parser("run", help="run one driver against a fresh world")
    r.add_argument("--python", required=True, help="interpreter of the driver's venv")
    r.add_argument("--driver", required=True)
    r.add_argument("--mode", choices=["resolve", "cold", "cached"], default="resolve")
    r.add_argument("--rounds", type=int, default=3)
    r.add_argument("--extra", default="", help="extra JSON fields for the driver input")
    r.add_argument(
        "--world",
        choices=["dev", "integration"],
        default="dev",
        help="dev: this file's servers; integration: tests/integration/world.py",
    )
    r.add_argument("--names", default="", help="comma-separated server names (override)")
    r.add_argument("--timeout", type=float, default=300.0)
    r.add_argument("--pretty", action="store_true")
    args = ap.parse_args(argv)
    return _cmd_serve(args) if args.cmd == "serve" else _cmd_run(args)


if __name__ == "__main__":
    sys.exit(main())
