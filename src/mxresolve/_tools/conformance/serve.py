"""Black-box mode: a single-step vector's world as real servers on loopback.

``mxresolve vectors serve VECTOR_ID`` starts Knot DNS (authoritative for the world's
names), nginx (the world's HTTPS responses, and a listener on every expected target,
each with a certificate from a throwaway CA) and prints the nameserver, the CA file and
the addresses, so that an unmodified homeserver can be pointed at it. nginx records
every request it gets (the well-known GETs, and which target was reached with which
``Host`` and SNI); at the end ``serve`` writes them to a JSON file that
``mxresolve vectors check VECTOR_ID FILE`` judges (docs/harness.md, "Black-box mode").

The world's documentation addresses are served on loopback: ``192.0.2.N`` on
``127.0.2.N``, ``198.51.100.N`` on ``127.51.100.N``, ``203.0.113.N`` on ``127.0.113.N``,
and the vector's one IPv6 address on ``::1``. As root, everything runs in a private
network namespace, so ports 443 and 8448 never clash with the host's.

Needs the ``serve`` extra (``pip install mxresolve[serve]``: trustme) and the knotd and
nginx binaries.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..._core.events import HttpsFailure, HttpsGet
from ..vectors import Vector
from .world import Certificate, VectorWorld, endpoint_key, known_world

__all__ = ["ServeError", "ServedWorld", "loopback_address", "observations_to_result"]

READY_SECONDS = 10.0
_LOOPBACK_V4 = {
    ipaddress.ip_network("192.0.2.0/24"): "127.0.2.",
    ipaddress.ip_network("198.51.100.0/24"): "127.51.100.",
    ipaddress.ip_network("203.0.113.0/24"): "127.0.113.",
}
_VERSION_BODY = '{"server": {"name": "spec-vectors black box", "version": "1"}}'


class ServeError(Exception):
    """The vector cannot be served as real servers; says why."""


_IPV4 = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d.])")
_IPV6_LITERAL = re.compile(r"\[([0-9A-Fa-f:.]+)\]")


def served_text(text: str, world: ServedWorld) -> str:
    """``text`` (a server name, a body) with the world's IP literals as they are served."""

    def v4(match: re.Match[str]) -> str:
        try:
            return world.served(match.group(1))
        except (ServeError, ValueError):
            return match.group(0)

    def v6(match: re.Match[str]) -> str:
        try:
            return f"[{world.served(match.group(1))}]"
        except (ServeError, ValueError):
            return match.group(0)

    return _IPV6_LITERAL.sub(v6, _IPV4.sub(v4, text))


def vector_text(text: str, address_map: Mapping[str, str]) -> str:
    """The reverse of :func:`served_text`, for what a homeserver sent (Host, SNI, URLs)."""
    back = {served: vector for vector, served in address_map.items()}
    text = _IPV6_LITERAL.sub(lambda m: f"[{back.get(m.group(1), m.group(1))}]", text)
    if text in back:
        return back[text]
    return _IPV4.sub(lambda m: back.get(m.group(1), m.group(1)), text)


def loopback_address(address: str, ipv6: str | None) -> str:
    """Where a documentation address of the world is served."""
    ip = ipaddress.ip_address(address)
    if ip.version == 6:
        if ipv6 is not None and ip != ipaddress.ip_address(ipv6):
            raise ServeError(f"only one IPv6 address can be served (on ::1); also {address}")
        return "::1"
    for network, prefix in _LOOPBACK_V4.items():
        if ip in network:
            return prefix + address.rsplit(".", 1)[1]
    if ip.is_loopback:
        return address
    raise ServeError(f"{address} is not a documentation or loopback address")


@dataclass(slots=True)
class _Listener:
    address: str  # served (loopback) address
    port: int
    sites: dict[str, list[str]] = field(default_factory=dict)  # server_name -> location lines
    certificates: dict[str, Certificate] = field(default_factory=dict)


class ServedWorld:
    """Knot + nginx + a CA for one single-step vector, in a temporary directory."""

    def __init__(self, vector: Vector) -> None:
        if len(vector.steps) != 1:
            raise ServeError(
                f"{vector.id} has {len(vector.steps)} steps; the black box cannot move a "
                "homeserver's clock, so only single-step vectors are served"
            )
        self.vector = vector
        self.step = vector.steps[0]
        warnings: list[str] = []
        world = VectorWorld(
            {**vector.world, "endpoints": vector.endpoints}, now=vector.epoch, epoch=vector.epoch
        )
        if "world_patch" in self.step:
            world.patch(known_world(self.step["world_patch"], vector.id, warnings))
        self.world = world
        self.ipv6 = self._the_ipv6_address()
        self.address_map: dict[str, str] = {}
        self.dir = Path(tempfile.mkdtemp(prefix="mxresolve-serve-"))
        self.processes: list[subprocess.Popen[bytes]] = []
        self.dns_port = 0
        self.access_log = self.dir / "logs" / "requests.jsonl"
        self.extra_records: list[str] = []
        self.listeners = self._listeners()
        self.zone = self._zone() + "".join(f"{r}\n" for r in self.extra_records)

    # --- planning ------------------------------------------------------------------

    def _the_ipv6_address(self) -> str | None:
        found = {
            str(ipaddress.ip_address(r))
            for node in self.world.world["dns"].values()
            for r in node.get("AAAA", {}).get("records", [])
        }
        if len(found) > 1:
            raise ServeError(f"more than one IPv6 address ({sorted(found)}); only ::1 exists")
        return next(iter(found), None)

    def served(self, address: str) -> str:
        served = loopback_address(address, self.ipv6)
        self.address_map[str(ipaddress.ip_address(address))] = served
        return served

    def _zone(self) -> str:
        lines = [
            "$ORIGIN .",
            "$TTL 300",
            ". SOA ns.vectors.invalid. hostmaster.vectors.invalid. 1 3600 600 86400 300",
            ". NS ns.vectors.invalid.",
        ]
        for name, node in self.world.world["dns"].items():
            owner = name.lower()
            had_records = False
            for rtype, entry in node.items():
                if "error" in entry:
                    if entry["error"] in ("NXDOMAIN", "NODATA"):
                        continue
                    raise ServeError(
                        f"{name} {rtype}: {entry['error']} cannot be served by an authoritative "
                        "server (only NXDOMAIN and NODATA)"
                    )
                ttl = int(entry.get("ttl", 300))
                for record in entry.get("records", []):
                    had_records = True
                    if rtype == "A":
                        lines.append(f"{owner} {ttl} A {self.served(record)}")
                    elif rtype == "AAAA":
                        lines.append(f"{owner} {ttl} AAAA {self.served(record)}")
                    elif rtype == "CNAME":
                        lines.append(f"{owner} {ttl} CNAME {record.lower()}")
                    else:  # SRV
                        r = record
                        target = r["target"] if r["target"] == "." else r["target"].lower()
                        lines.append(
                            f"{owner} {ttl} SRV {r['priority']} {r['weight']} {r['port']} {target}"
                        )
            if any(e.get("error") == "NXDOMAIN" for e in node.values()) and had_records:
                raise ServeError(f"{name}: NXDOMAIN for some types only cannot be served")
            if not had_records and not any(e.get("error") == "NXDOMAIN" for e in node.values()):
                lines.append(f'{owner} 300 TXT "exists"')  # the name exists: NODATA
        return "\n".join(lines) + "\n"

    def _listeners(self) -> dict[tuple[str, int], _Listener]:
        listeners: dict[tuple[str, int], _Listener] = {}
        endpoints = self.world.endpoints
        for url, response in self.world.world["https"].items():
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
            port = parts.port or 443
            failure = response.get("failure")
            if failure not in (None, "certificate_invalid", "connection_refused"):
                raise ServeError(f"{url}: the failure {failure!r} is not served by nginx")
            if failure == "connection_refused":
                continue
            addresses = self.world.addresses(host)
            if not addresses:
                # The scripted world answers a listed URL whatever DNS says of its host; a
                # real one needs an address: the host gets one, outside the world's ranges.
                synthetic = f"127.0.9.{len(self.extra_records) + 1}"
                self.extra_records.append(f"{host}. 300 A {synthetic}")
                self.address_map[synthetic] = synthetic
                addresses = [synthetic]
            for address in addresses:
                endpoint = endpoints.get(endpoint_key(address, port), {})
                behaviour = endpoint.get("behaviour", "serve")
                if behaviour == "refuse":
                    continue
                if behaviour != "serve":
                    raise ServeError(f"endpoint {address}:{port}: {behaviour!r} is not served")
                served = self.served(address)
                listener = listeners.setdefault((served, port), _Listener(served, port))
                certificate = Certificate.from_json(endpoint.get("certificate", {}))
                if failure == "certificate_invalid":
                    certificate = Certificate(names=("certificate-invalid.vectors.invalid",))
                listener.certificates[host] = certificate
                listener.sites.setdefault(host, []).extend(self._location(parts.path, response))
        expectations = [self.step, *self.step.get("alternatives", ())]
        for expectation in expectations:
            for item in expectation["expect"].get("targets", []):
                for wanted in item.get("any_order", [item]):
                    host = wanted["host"]
                    addresses = wanted.get("addresses") or self.world.addresses(host)
                    for address in addresses:
                        served = self.served(address)
                        key = (served, wanted["port"])
                        listener = listeners.setdefault(key, _Listener(served, wanted["port"]))
                        name = wanted["tls_server_name"]
                        listener.certificates.setdefault(name, Certificate(names=(name,)))
                        listener.sites.setdefault(name, [])
        return listeners

    def _location(self, path: str, response: Mapping[str, Any]) -> list[str]:
        body_file = self.dir / "bodies" / f"{len(list((self.dir / 'bodies').glob('*')))}.body"
        body_file.parent.mkdir(parents=True, exist_ok=True)
        body = _body(response)
        with contextlib.suppress(UnicodeDecodeError):
            body = served_text(body.decode("utf-8"), self).encode("utf-8")
        body_file.write_bytes(body)
        status = int(response.get("status", 200))
        headers = [(str(k), str(v)) for k, v in response.get("headers", [])]
        content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
        lines = [f"location = {path} {{", f"    types {{ }} default_type {_quote(content_type)};"]
        location = next((v for k, v in headers if k.lower() == "location"), None)
        for name, value in headers:
            if name.lower() not in ("content-type", "location", "content-length"):
                lines.append(f"    add_header {_quote(name)} {_quote(value)} always;")
        if location is not None and 300 <= status < 400:
            lines.append(f"    return {status} {_quote(location)};")
        elif status == 200:
            lines.append(f"    alias {_quote(str(body_file))};")
        else:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                raise ServeError(f"{path}: a {status} with a binary body is not served") from None
            lines.append(f"    return {status} {_quote(text)};")
        lines.append("}")
        return lines

    # --- running -------------------------------------------------------------------

    def start(self) -> None:
        for binary in ("knotd", "nginx"):
            if shutil.which(binary) is None and not Path(f"/usr/sbin/{binary}").exists():
                raise ServeError(f"{binary} not found (Debian: apt-get install knot nginx-light)")
        try:
            import trustme
        except ImportError:
            raise ServeError(
                "black-box mode needs trustme: pip install 'mxresolve[serve]'"
            ) from None
        self.ca = trustme.CA()
        self.untrusted_ca = trustme.CA()
        self.cafile = self.dir / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.cafile))
        self._start_knot()
        self._start_nginx()

    def _binary(self, name: str) -> str:
        return shutil.which(name) or f"/usr/sbin/{name}"

    def _spawn(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        self.processes.append(proc)
        return proc

    def _start_knot(self) -> None:
        zones = self.dir / "zones"
        for sub in ("zones", "run", "db"):
            (self.dir / sub).mkdir(exist_ok=True)
        (zones / "root.zone").write_text(self.zone)
        os.chmod(self.dir, 0o755)
        for path in (zones, zones / "root.zone", self.dir / "run", self.dir / "db"):
            os.chmod(path, 0o777 if path.is_dir() else 0o644)
        self.dns_port = _free_port()
        conf = self.dir / "knot.conf"
        conf.write_text(
            "\n".join(
                [
                    "server:",
                    f'    rundir: "{self.dir / "run"}"',
                    f"    listen: [ 127.0.0.1@{self.dns_port} ]",
                    "    udp-workers: 1",
                    "    tcp-workers: 1",
                    "    background-workers: 1",
                    "database:",
                    f'    storage: "{self.dir / "db"}"',
                    "log:",
                    "  - target: stderr",
                    "    any: info",
                    "template:",
                    "  - id: default",
                    f'    storage: "{zones}"',
                    "    zonefile-sync: -1",
                    "    journal-content: none",
                    "zone:",
                    "  - domain: .",
                    "    file: root.zone",
                ]
            )
            + "\n"
        )
        proc = self._spawn([self._binary("knotd"), "-c", str(conf)], self.dir / "knotd.log")
        _wait(
            lambda: _dns_ready(self.dns_port),
            proc,
            "knotd",
            self.dir / "knotd.log",
        )

    def _certificate_files(self, host: str, certificate: Certificate) -> tuple[Path, Path]:
        # An IP address in a certificate is the address it is served on.
        names = [self.served(n) if _is_ip(n) else n for n in certificate.names or (host,)]
        ca = self.ca if certificate.issuer == "trusted" else self.untrusted_ca
        epoch = dt.datetime.fromtimestamp(self.vector.epoch, dt.timezone.utc)
        now = dt.datetime.now(dt.timezone.utc)
        # Validity is relative to the vector's epoch, served relative to the real clock.
        shift = now - epoch
        not_before = (
            None
            if certificate.not_before is None
            else epoch + dt.timedelta(seconds=certificate.not_before) + shift
        )
        not_after = (
            None
            if certificate.not_after is None
            else epoch + dt.timedelta(seconds=certificate.not_after) + shift
        )
        leaf = ca.issue_cert(*names, not_before=not_before, not_after=not_after)
        index = len(list(self.dir.glob("cert-*.pem")))
        chain, key = self.dir / f"cert-{index}.pem", self.dir / f"key-{index}.pem"
        chain.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        leaf.private_key_pem.write_to_path(str(key))
        return chain, key

    def _start_nginx(self) -> None:
        logs = self.dir / "logs"
        logs.mkdir(exist_ok=True)
        servers = []
        for (address, port), listener in sorted(self.listeners.items()):
            listen = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
            for index, (name, lines) in enumerate(sorted(listener.sites.items())):
                chain, key = self._certificate_files(name, listener.certificates[name])
                server_name = "_" if _is_ip(name) else name
                default = " default_server" if index == 0 else ""
                servers += [
                    "server {",
                    f"    listen {listen} ssl{default};",
                    f"    server_name {server_name};",
                    f"    ssl_certificate {chain};",
                    f"    ssl_certificate_key {key};",
                    *[f"    {line}" for line in lines],
                    "    location = /_matrix/federation/v1/version {",
                    "        default_type application/json;",
                    f"        return 200 {_quote(_VERSION_BODY)};",
                    "    }",
                    "    location / { return 404; }",
                    "}",
                ]
        tmp = self.dir / "tmp"
        tmp.mkdir(exist_ok=True)
        conf = self.dir / "nginx.conf"
        user = "root root" if os.geteuid() == 0 else ""
        conf.write_text(
            "\n".join(
                [
                    "daemon off;",
                    "worker_processes 1;",
                    f"pid {self.dir / 'nginx.pid'};",
                    f"error_log {logs / 'error.log'} info;",
                    f"user {user};" if user else "",
                    "events { worker_connections 256; }",
                    "http {",
                    '    log_format vectors escape=json \'{"address":"$server_addr",'
                    '"port":$server_port,"sni":"$ssl_server_name","host":"$http_host",'
                    '"path":"$request_uri","status":$status}\';',
                    f"    access_log {self.access_log} vectors;",
                    f"    client_body_temp_path {tmp / 'body'};",
                    f"    proxy_temp_path {tmp / 'proxy'};",
                    f"    fastcgi_temp_path {tmp / 'fastcgi'};",
                    f"    uwsgi_temp_path {tmp / 'uwsgi'};",
                    f"    scgi_temp_path {tmp / 'scgi'};",
                    "    server_tokens off;",
                    "    keepalive_timeout 5;",
                    "    server_names_hash_bucket_size 128;",
                    '    geo $dollar { default "$"; }',
                    *servers,
                    "}",
                ]
            )
            + "\n"
        )
        proc = self._spawn(
            [
                self._binary("nginx"),
                "-p",
                str(self.dir),
                "-c",
                str(conf),
                "-e",
                str(logs / "error.log"),
            ],
            self.dir / "nginx.log",
        )
        sockets = list(self.listeners)
        _wait(lambda: all(_accepts(a, p) for a, p in sockets), proc, "nginx", logs / "error.log")

    def stop(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- what happened -------------------------------------------------------------

    def description(self) -> dict[str, Any]:
        return {
            "vector": self.vector.id,
            "server_name": served_text(self.step["resolve"], self),
            "vector_server_name": self.step["resolve"],
            "nameserver": f"127.0.0.1:{self.dns_port}",
            "cafile": str(self.cafile),
            "addresses": dict(sorted(self.address_map.items())),
            "listeners": [f"{a}:{p}" if ":" not in a else f"[{a}]:{p}" for a, p in self.listeners],
            "network_namespace": f"/proc/{os.getpid()}/ns/net",
        }

    def observations(self) -> dict[str, Any]:
        back = {served: vector for vector, served in self.address_map.items()}
        requests, connections = [], []
        if self.access_log.exists():
            for line in self.access_log.read_text("utf-8").splitlines():
                entry = json.loads(line)
                address = back.get(entry["address"], entry["address"])
                host = vector_text(entry["host"], self.address_map)
                sni = vector_text(entry["sni"], self.address_map) if entry["sni"] else None
                if entry["path"].startswith("/.well-known/matrix/server"):
                    # The Host header carries the authority (and a port other than 443).
                    requests.append({"op": "https_get", "url": f"https://{host}{entry['path']}"})
                else:
                    connections.append(
                        {
                            "address": address,
                            "port": entry["port"],
                            "host_header": host,
                            "sni": sni,
                            "path": entry["path"],
                        }
                    )
        return {"vector": self.vector.id, "requests": requests, "connections": connections}


def observations_to_result(
    vector: Vector, observed: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(a step to judge, an observation) from what the black box recorded.

    Only what a black box sees is compared: the well-known GETs that reached a server, and
    the first target the homeserver reached (its address and port, Host and SNI). DNS
    queries, GETs that cannot reach a server (no address, refused, a bad certificate), the
    deciding step, later targets and the cache are not.
    """
    world = VectorWorld(
        {**vector.world, "endpoints": vector.endpoints}, now=vector.epoch, epoch=vector.epoch
    )
    step = dict(vector.steps[0])
    if "world_patch" in step:
        world.patch(known_world(step["world_patch"], vector.id, []))
    expect = dict(step["expect"])
    connections = list(observed.get("connections", []))
    if "targets" in expect and connections:
        first = expect["targets"][0]
        group = first.get("any_order", [first])
        reached = connections[0]
        matched = next(
            (t for t in group if reached["address"] in (t.get("addresses") or [t["host"]])),
            None,
        )
        got = {
            "host": matched["host"] if matched else f"(address {reached['address']})",
            "port": reached["port"],
            "host_header": reached["host_header"],
            "tls_server_name": reached["sni"] or (matched or {}).get("tls_server_name"),
            "sni": reached["sni"],
        }
        expect = {k: v for k, v in expect.items() if k != "targets_level"}
        expect["targets"] = [{k: v for k, v in t.items() if k != "addresses"} for t in group][:1]
        if matched is not None:
            expect["targets"] = [{k: v for k, v in matched.items() if k != "addresses"}]
        outcome: dict[str, Any] = {"targets": [got]}
    elif "targets" in expect:
        outcome = {"error": "no_connection", "message": "no expected target was reached"}
    else:
        outcome = (
            {"error": expect["error"]}
            if not connections
            else {"targets": [], "message": f"reached {connections[0]}"}
        )
    expect.pop("step", None)
    step["expect"] = expect
    step.pop("alternatives", None)
    step.pop("cache", None)
    visible = (_https_only(a, world) for a in step.get("requests", []))
    step["requests"] = [a for a in visible if a is not None]
    return step, {"outcome": outcome, "requests": list(observed.get("requests", []))}


def _reaches_a_server(pattern: Mapping[str, Any], world: VectorWorld) -> bool:
    url = str(pattern.get("url", ""))
    parts = urlsplit(url)
    described = world.world["https"].get(url)
    if isinstance(described, dict) and "failure" in described:
        return False
    if not world.addresses((parts.hostname or "").lower()):
        return isinstance(described, dict)  # served on an address of its own (see _listeners)
    request = HttpsGet(
        url=url, host=parts.hostname or "", port=parts.port or 443, target=parts.path,
        host_header=parts.netloc, max_body_bytes=1 << 30,
    )  # fmt: skip
    return not isinstance(world.answer(request), HttpsFailure)


def _https_only(assertion: Mapping[str, Any], world: VectorWorld) -> dict[str, Any] | None:
    """The part of a request assertion a black box can see (GETs that reach a server)."""
    among = assertion.get("among")
    if among is not None and not any(p.get("op") == "https_get" for p in among):
        return None  # only about DNS queries, which a black box does not see
    if "count" in assertion:
        pattern = assertion["count"]["request"]
        visible = pattern.get("op") == "https_get" and _reaches_a_server(pattern, world)
        return dict(assertion) if visible else None
    out = dict(assertion)
    for kind in ("exact", "includes", "excludes", "in_order"):
        if kind in out:
            out[kind] = [
                p
                for p in out[kind]
                if p.get("op") == "https_get" and ("url" not in p or _reaches_a_server(p, world))
            ]
            if kind == "exact":
                out["among"] = [{"op": "https_get"}]
    return out


# --- helpers ---------------------------------------------------------------------------


def _body(response: Mapping[str, Any]) -> bytes:
    import base64

    if "body_base64" in response:
        return base64.b64decode(response["body_base64"])
    if "body_repeat" in response:
        rep = response["body_repeat"]
        return (str(rep["text"]) * int(rep["times"]) + str(rep.get("then", ""))).encode()
    return str(response.get("body", "")).encode()


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "${dollar}") + '"'


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts(address: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((address, port)) == 0


def _dns_ready(port: int) -> bool:
    import dns.message
    import dns.query

    try:
        dns.query.udp(dns.message.make_query(".", "SOA"), "127.0.0.1", timeout=0.3, port=port)
    except Exception:
        return False
    return True


def _wait(ready: Any, proc: subprocess.Popen[bytes], name: str, log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text("utf-8", "replace")[-3000:] if log.exists() else ""
            raise ServeError(f"{name} did not start:\n{tail}")
        time.sleep(0.05)


@contextlib.contextmanager
def serving(vector: Vector) -> Iterator[ServedWorld]:
    world = ServedWorld(vector)
    try:
        world.start()
        yield world
    finally:
        world.stop()
        if os.environ.get("MXRESOLVE_KEEP_SERVED") != "1":
            world.cleanup()


def run_inside(command: Sequence[str], world: ServedWorld, timeout: float) -> int:
    """Run ``command`` (the homeserver, or a driver) pointed at the world; its exit status."""
    env = dict(os.environ)
    description = world.description()
    env.update(
        MXRESOLVE_VECTOR_NAMESERVER=description["nameserver"],
        MXRESOLVE_VECTOR_CAFILE=description["cafile"],
        MXRESOLVE_VECTOR_SERVER_NAME=description["server_name"],
    )
    try:
        return subprocess.run(list(command), env=env, timeout=timeout, check=False).returncode
    except subprocess.TimeoutExpired:
        return 124
