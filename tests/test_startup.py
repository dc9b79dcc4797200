"""Start-up cost: what `import mxresolve`, the CLI and a new resolver load and build.

The figures themselves are measured by `nox -s bench` (docs/performance.md); these tests
pin the mechanisms: lazy public names, subcommands that import only what they need,
dnspython's resolvers built on first use, and one default SSLContext per process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import subprocess
import sys
import threading
from typing import Any

import certifi
import pytest

import mxresolve
from mxresolve import AsyncResolver, H11HttpsTransport, IpPolicy, Resolver
from mxresolve._io import net

# Modules a bare `import mxresolve` must not load: each is paid for only when used.
HEAVY = (
    "asyncio",
    "ssl",
    "h11",
    "dns.resolver",
    "dns.asyncresolver",
    "importlib.metadata",
    "mxresolve._io.fakeworld",
    "mxresolve._io.resolver",
    "mxresolve._core.machine",
    "mxresolve._core.cache",
    "typing",  # with re, enum and contextlib, most of a bare import's cost (TYPE_CHECKING)
)


def _loaded_after(code: str) -> set[str]:
    """The modules loaded by ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_import_loads_none_of_the_heavy_modules() -> None:
    loaded = _loaded_after("import mxresolve")
    assert "mxresolve" in loaded
    assert sorted(loaded & set(HEAVY)) == []


def test_help_loads_no_resolver() -> None:
    loaded = _loaded_after(
        "import sys\nfrom mxresolve._tools.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    )
    assert "argparse" in loaded  # the probe did build the parser
    # shutil: argparse's own terminal width (bz2, lzma, zlib); typing: only type checkers need
    # it there; the doctor: its arguments are added only when `mxresolve doctor` runs.
    not_for_help = {"asyncio", "dns.resolver", "mxresolve._io.resolver", "ssl", "shutil", "typing"}
    assert sorted(loaded & (not_for_help | {"mxresolve._tools.doctor"})) == []


def test_only_the_subcommand_named_gets_its_arguments() -> None:
    from mxresolve._tools import cli

    def arguments(argv: list[str]) -> dict[str, list[str]]:
        parser = cli._parser(argv)
        (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return {name: [a.dest for a in sub._actions] for name, sub in commands.choices.items()}

    bare = {"resolve": ["help"], "doctor": ["help"], "vectors": ["help"]}
    assert arguments(["--help"]) == bare
    resolve = arguments(["resolve", "example.org", "--json"])
    assert resolve["resolve"][:3] == ["help", "server_name", "json"]
    assert resolve["doctor"] == resolve["vectors"] == ["help"]
    assert arguments(["vectors", "run"])["vectors"] == ["help", "vectors_command"]


@pytest.mark.parametrize("columns", [None, "120", "37", "0", "-3", "wide"])
def test_the_help_is_as_wide_as_argparse_would_make_it(
    monkeypatch: pytest.MonkeyPatch, columns: str | None
) -> None:
    import shutil

    from mxresolve._tools import cli

    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert cli._terminal_columns() == shutil.get_terminal_size().columns
    assert cli._HelpFormatter("mxresolve")._width == argparse.HelpFormatter("mxresolve")._width


def test_resolving_an_ip_literal_loads_no_dns_resolver_and_no_ca_bundle() -> None:
    code = (
        "from mxresolve import Resolver\nfrom mxresolve._io import net\n"
        "r = Resolver()\nassert r.resolve('8.8.8.8:8448').step.value == '1'\n"
        "assert net._default_context is None, 'the CA bundle was loaded'"
    )
    loaded = _loaded_after(code)
    assert sorted(loaded & {"dns.resolver", "dns.asyncresolver", "importlib.metadata"}) == []


# The blocking path must not pay for the asyncio half of mxresolve (asyncio pulls in
# concurrent.futures' process pool, subprocess and more), nor for what only a fetch needs:
# h11, ssl, certifi (its CA bundle) and email.utils (HTTP dates in Expires); nor for the
# shared store code when it has no store.
NOT_FOR_AN_IP_LITERAL = (
    "asyncio",
    "ssl",
    "h11",
    "certifi",
    "email.utils",
    "mxresolve._core.store",
    "mxresolve._io.sharing",
    "pathlib",  # only the CLI's conformance subcommands read or write files
    "shutil",  # argparse imports it for the terminal's width (and bz2, lzma, zlib with it)
    "secrets",  # DNS query IDs come from os.urandom: secrets imports hmac and hashlib
    "hashlib",
    "dns.ipv4",  # the DNS fast path's address decoding: only an answer needs it
    "dns.ipv6",
    "socket",  # net.py and the DNS transport import it where they make a socket
    "selectors",
    "urllib.parse",  # only a well-known redirect needs it
    "mxresolve._io.aio_resolver",
    "mxresolve._io.aio_net",
    "mxresolve._io.aio_https_transport",
    "mxresolve._io.aio_dns_transport",
)


def test_blocking_resolve_of_an_ip_literal_imports_no_asyncio_and_no_h11() -> None:
    code = (
        "from mxresolve import Resolver\n"
        "assert Resolver().resolve('8.8.8.8:8448').step.value == '1'"
    )
    loaded = _loaded_after(code)
    assert "mxresolve._io.resolver" in loaded  # the probe did drive the blocking resolver
    assert sorted(loaded & set(NOT_FOR_AN_IP_LITERAL)) == []


def test_cli_resolve_of_an_ip_literal_imports_no_asyncio_and_no_h11() -> None:
    code = (
        "import contextlib, io\nfrom mxresolve._tools.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    code = main(['resolve', '8.8.8.8:8448'])\n"
        "assert code in (0, None), code\n"
        "assert 'Step 1' in out.getvalue(), out.getvalue()"
    )
    loaded = _loaded_after(code)
    assert "mxresolve._io.resolver" in loaded
    assert sorted(loaded & set(NOT_FOR_AN_IP_LITERAL)) == []


def test_the_asyncio_driver_still_loads_its_half() -> None:
    loaded = _loaded_after("from mxresolve import AsyncResolver\nAsyncResolver()")
    assert {"asyncio", "mxresolve._io.aio_resolver"} <= loaded


def test_every_public_name_resolves_in_a_fresh_interpreter() -> None:
    code = (
        "import mxresolve\n"
        "missing = [n for n in mxresolve.__all__ if getattr(mxresolve, n, None) is None]\n"
        "assert not missing, missing\n"
        "assert set(mxresolve.__all__) <= set(dir(mxresolve))"
    )
    _loaded_after(code)


def test_public_names_are_the_objects_of_their_modules() -> None:
    from mxresolve._core.machine import ResolutionMachine
    from mxresolve._io.fakeworld import FakeWorld

    assert mxresolve.ResolutionMachine is ResolutionMachine
    assert mxresolve.FakeWorld is FakeWorld
    assert set(mxresolve.__all__) <= set(dir(mxresolve))
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        _ = mxresolve.NoSuchName  # type: ignore[attr-defined]


def test_resolvers_share_one_default_context() -> None:
    first, second, third = Resolver(), Resolver(), AsyncResolver()
    shared = net.default_ssl_context()
    assert first._ssl_context is shared
    assert second._ssl_context is shared
    assert third._ssl_context is shared
    assert first._https._ssl is shared  # type: ignore[attr-defined]
    assert shared.verify_mode == ssl.CERT_REQUIRED
    assert shared.check_hostname


def test_cafile_and_ssl_context_win_over_the_default() -> None:
    shared = net.default_ssl_context()
    with_cafile = Resolver(cafile=certifi.where())
    assert with_cafile._ssl_context is not shared
    assert with_cafile._https._ssl is with_cafile._ssl_context  # type: ignore[attr-defined]
    own = ssl.create_default_context()
    with_context = AsyncResolver(ssl_context=own)
    assert with_context._ssl_context is own
    assert with_context._https._ssl is own  # type: ignore[attr-defined]
    transport = H11HttpsTransport(object(), ssl_context=own, ip_policy=IpPolicy())  # type: ignore[arg-type]
    assert transport._ssl is own


def test_the_default_context_is_built_once_under_concurrency(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(net, "_default_context", None)
    built: list[ssl.SSLContext] = []
    real = net.make_ssl_context

    def counting() -> ssl.SSLContext:
        context = real()
        built.append(context)
        return context

    monkeypatch.setattr(net, "make_ssl_context", counting)
    start = threading.Barrier(8)
    seen: list[ssl.SSLContext] = []

    def worker() -> None:
        start.wait(timeout=10)
        seen.append(net.default_ssl_context())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(built) == 1
    assert len(seen) == 8
    assert all(s is built[0] for s in seen)


def test_client_discovery_shares_the_default_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Without cafile or ssl_context, nothing builds a context of its own: each would load
    # certifi's bundle again (tens of milliseconds).
    from mxresolve import async_discover_client, discover_client

    net.default_ssl_context()
    built: list[object] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    options: dict[str, Any] = {"allow_ips": ["127.0.0.0/8"], "request_timeout": 1.0}
    discover_client("127.0.0.1:9", **options)  # a refused port: it ends at once
    asyncio.run(async_discover_client("127.0.0.1:9", **options))
    assert built == []


def test_the_blocking_client_discovery_imports_no_asyncio() -> None:
    loaded = _loaded_after("from mxresolve import discover_client")
    assert "mxresolve._io.client_discovery" in loaded
    assert sorted(loaded & {"asyncio", "mxresolve._io.aio_client_discovery"}) == []
