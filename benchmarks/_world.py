"""The bench world: the integration world's servers and catalogue, plus generated names.

Caddy serves the catalogue's Caddy scenarios and ``*.cbench.mxtest`` (24 generated names on
127.0.2.11:443): the Caddy world's cold round (``caddy_cold_names()``).

It is built from the server classes of ``tests/integration/world.py`` (Knot DNS, nginx, the
``trustme`` CA), so the cold round runs against exactly the servers the integration tests use:

* Knot serves the integration zone ``mxtest.`` with ``bench.mxtest`` names appended (one set of
  records per generated name, see :func:`bench_zone_text`);
* nginx serves every integration site, plus three server blocks on ``127.0.2.1:443`` with one
  wildcard certificate ``*.bench.mxtest`` that answer the well-known of every generated name
  (``p*`` and ``s*`` names delegate, ``n*`` names answer 404). Those blocks log
  ``$host $request_uri $status`` to their own access log, so fetches can be counted per name.

Addresses are fixed (127.0.1.x:443 and 127.0.2.1:443), so it takes the same machine lock as the
integration world and waits for it (``MXRESOLVE_WORLD_WAIT`` seconds, default 120). Its temp dir
(``mxbench-*``) is removed when it stops. Traffic stays on 127.0.0.0/8 and ::1.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORLD_PY = ROOT / "tests" / "integration" / "world.py"

BENCH_ZONE = "bench.mxtest"
WK_ADDR = "127.0.2.1"  # nginx, wildcard *.bench.mxtest on :443
TARGET_ADDR = "127.0.2.2"  # delegated hosts and SRV targets (resolution never connects)
NO_WK_ADDR = "127.0.2.3"  # hosts without a well-known: nothing listens, :443 is refused
# Per generated name, by index modulo 5: the spec step the resolution must end in.
KINDS: tuple[tuple[str, str], ...] = (
    ("p", "3.2"),  # well-known -> h<i>.bench.mxtest:8448 (A/AAAA of the delegated host)
    ("p", "3.2"),
    ("s", "3.3"),  # well-known -> h<i>.bench.mxtest (no port) -> _matrix-fed SRV -> target
    ("n", "4"),  # well-known 404 -> _matrix-fed SRV of the name -> target
    ("a", "6"),  # :443 refused -> no SRV (NXDOMAIN twice) -> A/AAAA, port 8448
)
SINGLE_FLIGHT_NAME = f"p99999.{BENCH_ZONE}"  # a p-kind name outside every generated range

# The Caddy world's cold round: generated names of the same kinds whose well-knowns Caddy
# serves (wildcard *.cbench.mxtest on CADDY_WK_ADDR), plus the catalogue's Caddy scenarios.
CADDY_ZONE = "cbench.mxtest"
CADDY_WK_ADDR = "127.0.2.11"
CADDY_NAMES = 24
CADDY_SCENARIOS: tuple[str, ...] = (
    "cy-wk-port",
    "cy-wk-srv",
    "cy-wk-redir",
    "cy-wk-404",
    "cy-wk-nosrv",
)
# The per-name table: one scenario of each group, served by nginx and by Caddy.
PER_NAME_GROUPS: tuple[tuple[str, str, str], ...] = (
    ("well-known -> name:port (3.2)", "wk-port", "cy-wk-port"),
    ("well-known -> SRV (3.3)", "wk-srv", "cy-wk-srv"),
    ("301 -> well-known (3.2)", "wk-redir-301", "cy-wk-redir"),
    ("well-known 404 -> SRV (4)", "wk-404", "cy-wk-404"),
)

# The cold round: 20 names of every kind from the integration catalogue (scenario names).
# 13 of them fetch a well-known over TLS (wk-redir-301 follows one redirect: 14 fetches);
# srv-fed, srv-legacy and plain try :443 and are refused. None of the deliberately slow,
# hanging or black-hole scenarios.
COLD_SCENARIOS: tuple[str, ...] = (
    "ip4",
    "ip6-port",
    "explicit-port",
    "explicit-port-cname",
    "wk-ip",
    "wk-ipv6-port",
    "wk-port",
    "wk-port-cname",
    "wk-port-443",
    "wk-ipv6-host",
    "wk-srv",
    "wk-srv-multi",
    "wk-srv-legacy",
    "wk-nosrv",
    "wk-cname-deleg",
    "wk-redir-301",
    "wk-404",
    "srv-fed",
    "srv-legacy",
    "plain",
)


def load_world_module() -> ModuleType:
    """``tests/integration/world.py`` of this checkout, imported by path (read-only use)."""
    name = "mx_integration_world"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, WORLD_PY)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {WORLD_PY}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses need the module registered
    spec.loader.exec_module(module)
    return module


def bench_name(index: int) -> str:
    kind = KINDS[index % len(KINDS)][0]
    return f"{kind}{index:05d}.{BENCH_ZONE}"


def bench_names(count: int, start: int = 0) -> list[str]:
    if start < 0 or start + count > 99_999:
        raise ValueError("generated names are numbered 00000-99998")
    return [bench_name(i) for i in range(start, start + count)]


def expected_step(name: str) -> str:
    return {kind: step for kind, step in KINDS}[name[0]]


def caddy_name(index: int) -> str:
    kind = KINDS[index % len(KINDS)][0]
    return f"{kind}{index:05d}.{CADDY_ZONE}"


def caddy_zone_text(count: int) -> str:
    """The Caddy-served generated names (relative to mxtest)."""
    lines = ["", "; ---- generated by benchmarks/_world.py: served by Caddy"]
    for i in range(count):
        kind = caddy_name(i)[0]
        n = f"{i:05d}"
        host = f"h{n}.cbench"
        if kind in "psn":
            lines.append(f"{kind}{n}.cbench A {CADDY_WK_ADDR}")
            lines.append(f"{host} A {TARGET_ADDR}")
        if kind == "s":
            lines.append(f"_matrix-fed._tcp.{host} SRV 10 0 8448 {host}")
        elif kind == "n":
            lines.append(f"_matrix-fed._tcp.n{n}.cbench SRV 10 0 8448 {host}")
        elif kind == "a":
            lines.append(f"a{n}.cbench A {NO_WK_ADDR}")
    return "\n".join(lines) + "\n"


def _make_caddy_class(w: ModuleType) -> type:
    class BenchCaddy(w.CaddyServer):  # type: ignore[misc, name-defined]
        """The integration Caddy plus per-name well-knowns of ``*.cbench.mxtest``."""

        def __init__(self, directory: Path, certs: Any, wildcard: tuple[Path, Path]) -> None:
            super().__init__(directory, certs)
            self.wildcard = wildcard

        def _config(self) -> dict[str, Any]:
            config: dict[str, Any] = super()._config()
            server = config["apps"]["http"]["servers"]["world"]
            routes = []
            for i in range(CADDY_NAMES):
                name = caddy_name(i)
                kind, host = name[0], f"h{i:05d}.{CADDY_ZONE}"
                if kind == "a":
                    continue
                if kind == "n":
                    handler: dict[str, Any] = {"handler": "static_response", "status_code": 404}
                else:
                    body = f"{host}:8448" if kind == "p" else host
                    handler = {
                        "handler": "static_response",
                        "status_code": 200,
                        "headers": {"Content-Type": ["application/json"]},
                        "body": f'{{"m.server": "{body}"}}',
                    }
                routes.append(
                    {"match": [{"host": [name], "path": [w.WK_PATH]}], "handle": [handler]}
                )
            server["routes"] = routes + server["routes"]
            server["listen"].append(f"{CADDY_WK_ADDR}:443")
            self.sockets.append((CADDY_WK_ADDR, 443))
            crt, key = self.wildcard
            config["apps"]["tls"]["certificates"]["load_files"].append(
                {"certificate": str(crt), "key": str(key)}
            )
            return config

    return BenchCaddy


def bench_zone_text(count: int) -> str:
    """Records for generated names 0..count-1 (and the single-flight name), relative to mxtest."""
    lines = [
        "",
        "; ---- generated by benchmarks/_world.py",
        f"h99999.bench        A     {TARGET_ADDR}",
        f"p99999.bench        A     {WK_ADDR}",
    ]
    for i in range(count):
        kind = bench_name(i)[0]
        n = f"{i:05d}"
        host = f"h{n}.bench"
        if kind in "ps":
            lines.append(f"{kind}{n}.bench A {WK_ADDR}")
            lines.append(f"{host} A {TARGET_ADDR}")
            if kind == "s":
                lines.append(f"_matrix-fed._tcp.{host} SRV 10 0 8448 {host}")
        elif kind == "n":
            lines.append(f"n{n}.bench A {WK_ADDR}")
            lines.append(f"{host} A {TARGET_ADDR}")
            lines.append(f"_matrix-fed._tcp.n{n}.bench SRV 10 0 8448 {host}")
        else:
            lines.append(f"a{n}.bench A {NO_WK_ADDR}")
    return "\n".join(lines) + "\n"


def _make_nginx_class(w: ModuleType) -> type:
    class BenchNginx(w.NginxServer):  # type: ignore[misc, name-defined]
        """The integration nginx plus the wildcard ``*.bench.mxtest`` well-known blocks."""

        def __init__(self, directory: Path, certs: Any, wildcard: tuple[Path, Path]) -> None:
            super().__init__(directory, certs)
            self.wildcard = wildcard
            self.bench_log = directory / "logs" / "bench-access.log"

        def _bench_blocks(self) -> str:
            crt, key = self.wildcard
            listen = f"{WK_ADDR}:443 ssl"
            zone = BENCH_ZONE.replace(".", r"\.")
            blocks = ["    log_format mxbench '$host $request_uri $status';"]
            bodies = {
                "p": '{"m.server": "h$bn.bench.mxtest:8448"}',
                "s": '{"m.server": "h$bn.bench.mxtest"}',
            }
            for kind, body in bodies.items():
                blocks.append(
                    "\n".join(
                        [
                            "    server {",
                            f"        listen {listen}{' default_server' if kind == 'p' else ''};",
                            f"        server_name ~^{kind}(?<bn>[0-9]+)\\.{zone}$;",
                            f"        ssl_certificate {crt};",
                            f"        ssl_certificate_key {key};",
                            f"        access_log {self.bench_log} mxbench;",
                            f"        location = {w.WK_PATH} {{",
                            "            default_type application/json;",
                            f"            return 200 '{body}';",
                            "        }",
                            "        location / { return 404; }",
                            "    }",
                        ]
                    )
                )
            blocks.append(
                "\n".join(
                    [
                        "    server {",
                        f"        listen {listen};",
                        f"        server_name ~^n[0-9]+\\.{zone}$;",
                        f"        ssl_certificate {crt};",
                        f"        ssl_certificate_key {key};",
                        f"        access_log {self.bench_log} mxbench;",
                        "        location / { return 404; }",
                        "    }",
                    ]
                )
            )
            return "\n".join(blocks) + "\n"

        def _config(self) -> str:
            base: str = super()._config()
            head, brace, _ = base.rpartition("}")
            assert brace, "the integration nginx config ends with the http block"
            self.sockets.append(((WK_ADDR, 443), True))
            return head + self._bench_blocks() + "}\n"

    return BenchNginx


class BenchWorld:
    """Knot + nginx on loopback: the integration catalogue plus ``scale_names`` generated names.

    Use as a context manager. ``nameserver``, ``cafile`` and ``allow_ips`` configure a resolver.
    """

    def __init__(self, scale_names: int) -> None:
        self.w = load_world_module()
        self.scale_names = scale_names
        self._lock = self.w._MachineLock()
        self.dir: Path | None = None
        self.certs: Any = None
        self.knot: Any = None
        self.nginx: Any = None
        self.caddy: Any = None

    # -- configuration for resolvers ------------------------------------------------------

    @property
    def nameserver(self) -> str:
        assert self.knot is not None, "world not started"
        return str(self.knot.nameserver)

    @property
    def cafile(self) -> str:
        assert self.certs is not None, "world not started"
        return str(self.certs.cafile)

    @property
    def allow_ips(self) -> list[str]:
        return list(self.w.ALLOW_IPS)

    def resolver_config(self) -> dict[str, Any]:
        return {
            "nameservers": [self.nameserver],
            "cafile": self.cafile,
            "allow_ips": self.allow_ips,
        }

    @property
    def bench_access_log(self) -> Path:
        assert self.nginx is not None, "world not started"
        return Path(self.nginx.bench_log)

    def cold_names(self) -> list[str]:
        return [self.w.scenario(s).server_name for s in COLD_SCENARIOS]

    def caddy_cold_names(self) -> list[str]:
        """The Caddy world's cold round: every well-known it fetches is served by Caddy."""
        scenarios = [self.w.scenario(s).server_name for s in CADDY_SCENARIOS]
        return scenarios + [caddy_name(i) for i in range(CADDY_NAMES)]

    def check(self, server_name: str, result: Any) -> list[str]:
        """Problems with ``result`` (an mxresolve Resolution/ResolutionFailure) for a name."""
        step = getattr(getattr(result, "step", None), "value", None)
        if server_name.endswith(("." + BENCH_ZONE, "." + CADDY_ZONE)):
            want = expected_step(server_name)
            if not hasattr(result, "targets"):
                return [f"{server_name}: failed ({getattr(result, 'message', result)})"]
            return [] if step == want else [f"{server_name}: step {step}, expected {want}"]
        by_server = {s.server_name: s for s in self.w.SCENARIOS if s.nameserver == "knot"}
        scenario = by_server[server_name]
        if not hasattr(result, "targets"):
            return [f"{server_name}: failed ({getattr(result, 'message', result)})"]
        problems = [
            f"{server_name}: {p}" for p in self.w.compare_targets(scenario.targets, result.targets)
        ]
        if step != scenario.step:
            problems.append(f"{server_name}: step {step}, expected {scenario.step}")
        return problems

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> BenchWorld:
        missing = self.w.missing_prerequisites()
        if missing:
            raise self.w.WorldError("the loopback world cannot run here: " + "; ".join(missing))
        self._lock.acquire(float(os.environ.get(self.w.LOCK_WAIT_ENV, "120")))
        try:
            self.dir = Path(tempfile.mkdtemp(prefix="mxbench-"))
            self.certs = self.w.Certs(self.dir / "certs")
            leaf = self.certs.ca.issue_cert(f"*.{BENCH_ZONE}")
            crt, key = self.dir / "certs" / "bench-wildcard.crt", self.dir / "certs" / "bench.key"
            crt.write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
            key.write_bytes(leaf.private_key_pem.bytes())
            key.chmod(0o600)
            cleaf = self.certs.ca.issue_cert(f"*.{CADDY_ZONE}")
            ccrt, ckey = self.dir / "certs" / "cbench.crt", self.dir / "certs" / "cbench.key"
            ccrt.write_bytes(b"".join(b.bytes() for b in cleaf.cert_chain_pems))
            ckey.write_bytes(cleaf.private_key_pem.bytes())
            ckey.chmod(0o600)
            zone = (
                self.w.ZONE_TEXT + bench_zone_text(self.scale_names) + caddy_zone_text(CADDY_NAMES)
            )
            self.knot = self.w.KnotServer(self.dir / "knot", zone_text=zone)
            self.knot.start()
            self.nginx = _make_nginx_class(self.w)(self.dir / "nginx", self.certs, (crt, key))
            self.nginx.start()
            self.caddy = _make_caddy_class(self.w)(self.dir / "caddy", self.certs, (ccrt, ckey))
            self.caddy.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        try:
            for part in (self.caddy, self.nginx, self.knot):
                if part is not None:
                    part.stop()
        finally:
            self.caddy = self.nginx = self.knot = None
            if self.dir is not None:
                shutil.rmtree(self.dir, ignore_errors=True)  # our own mkdtemp only
                self.dir = None
            self._lock.release()

    def __enter__(self) -> BenchWorld:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
