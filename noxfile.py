"""Developer sessions. `nox` alone runs tests, lint, typecheck and vectors.

`tests` includes the integration suite against real Knot DNS and nginx on
loopback when they are installed (.ci/install-servers.sh installs them);
without them those tests skip, unless MXRESOLVE_REQUIRE_INTEGRATION=1.
"""

from __future__ import annotations

from pathlib import Path

import nox

# Every optional extra: the tests and the type check always see all of them.
EXTRAS = "httpx,aiohttp,twisted,redis,doctor,serve"

nox.options.sessions = ["tests", "lint", "typecheck", "vectors"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False


@nox.session
def tests(session: nox.Session) -> None:
    """Unit and property tests, every vector, and the integration suite (adapters, Redis,
    doctor)."""
    session.install("-e", f".[test,{EXTRAS}]")
    session.run("pytest", *session.posargs)


@nox.session(python=["3.10", "3.11", "3.12", "3.13"])
def tests_matrix(session: nox.Session) -> None:
    """The non-integration tests on each Python version present on this machine."""
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "not integration", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff==0.17.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    # With every extra: the adapters are typed against the clients they plug into.
    session.install("mypy==2.4.1", "-e", f".[{EXTRAS}]")
    session.run("mypy")


@nox.session
def vectors(session: nox.Session) -> None:
    """Check every vector file against the schema and the suite rules, then run them."""
    session.install("-e", ".")
    session.run("python", "spec-vectors/tools/check.py")
    session.run("mxresolve", "vectors", "run")


@nox.session(default=False)
def docs(session: nox.Session) -> None:
    """The documentation site: regenerate-check, build with --strict, check it in Chromium.

    Not in the default list (it fetches mermaid with npm and drives a browser); .ci/run
    calls it. Needs npm and Debian's chromium. The site goes to build/site, screenshots of
    the step table and the state diagram to build/screenshots.
    """
    session.install("-e", ".[test]", "-r", "docs/requirements.txt", "websocket-client==1.9.2")
    session.run("python", "docs/tools/generate.py", "--check")
    session.run("python", "docs/tools/vendor.py")
    session.run("mkdocs", "build", "--strict", env={"NO_MKDOCS_2_WARNING": "1"})
    session.run(
        "pytest",
        "tests/test_docs_browser.py",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={"MXRESOLVE_DOCS_SITE": "build/site"},
    )


@nox.session(default=False)
def differential(session: nox.Session) -> None:
    """mxresolve vs. Synapse on every loopback-world scenario; writes docs/differential.md.

    Not part of the default run. Needs knotd, nginx and root (port 443). mxresolve runs in this
    session's venv; Synapse runs in its own venv (MXRESOLVE_SYNAPSE_VENV, default
    .venv-synapse), created from benchmarks/peers/requirements-synapse.txt when missing or not
    at the pinned version. Posargs go to tests/differential/run_synapse.py (e.g. --json).
    """
    import os

    python = _synapse_venv(session)
    session.install("-e", ".", "dnspython>=2.6", "trustme>=1.1")
    session.run(
        "python",
        "tests/differential/run_synapse.py",
        "--synapse-python",
        str(python),
        *session.posargs,
        env={"MXRESOLVE_WORLD_WAIT": os.environ.get("MXRESOLVE_WORLD_WAIT", "600")},
    )


def _synapse_venv(session: nox.Session) -> Path:
    """The Synapse venv's interpreter (MXRESOLVE_SYNAPSE_VENV, default .venv-synapse),
    created from benchmarks/peers/requirements-synapse.txt when missing or not at the pin."""
    import os
    import re
    import subprocess

    requirements = Path("benchmarks/peers/requirements-synapse.txt")
    venv = Path(os.environ.get("MXRESOLVE_SYNAPSE_VENV", ".venv-synapse"))
    python = venv / "bin" / "python"
    pin = re.search(r"^matrix-synapse==(\S+)", requirements.read_text("utf-8"), re.M)
    installed = None
    if python.exists():
        probe = "import importlib.metadata as m, synapse; print(m.version('matrix-synapse'))"
        done = subprocess.run(
            [str(python), "-c", probe], capture_output=True, text=True, timeout=120, check=False
        )
        installed = done.stdout.strip() if done.returncode == 0 else None
    if installed is None or pin is None or installed != pin.group(1):
        if not python.exists():
            session.run("python", "-m", "venv", str(venv))
        session.run(str(python), "-m", "pip", "install", "-r", str(requirements), external=True)
    return python


@nox.session(default=False)
def e2e(session: nox.Session) -> None:
    """Every HTTP-client adapter, and the doctor, against a real Synapse on loopback (tests
    marked ``synapse``).

    Not part of the default run; .ci/run runs it after. Needs knotd, nginx and root. Synapse
    runs from its own venv (see _synapse_venv). Costs about 30 s once the venv exists.
    """
    python = _synapse_venv(session)
    session.install("-e", f".[test,{EXTRAS}]")
    session.run(
        "pytest",
        "-m",
        "synapse",
        *session.posargs,
        env={
            "MXRESOLVE_SYNAPSE_VENV": str(python.parent.parent.resolve()),
            "MXRESOLVE_REQUIRE_SYNAPSE": "1",
        },
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: mxresolve vs. Synapse and resolvematrix; the tables of docs/performance.md.

    Not part of the default run. Needs knotd, nginx, caddy and root (port 443, a private
    network namespace); takes 5-8 minutes (--quick: 1-1.5). The peer venvs
    (MXRESOLVE_SYNAPSE_VENV / MXRESOLVE_RESOLVEMATRIX_VENV, default .venv-synapse,
    .venv-resolvematrix) are created from benchmarks/peers/requirements-*.txt when missing.
    Posargs go to benchmarks/bench.py (e.g. --quick, --no-peers, --no-rtt, --output PATH).
    """
    import os
    from pathlib import Path

    session.install("-e", ".", "trustme>=1.1")
    peers = Path("benchmarks/peers")
    pythons = []
    for key, default, requirements in (
        ("synapse", ".venv-synapse", peers / "requirements-synapse.txt"),
        ("resolvematrix", ".venv-resolvematrix", peers / "requirements-resolvematrix.txt"),
    ):
        venv = os.environ.get(f"MXRESOLVE_{key.upper()}_VENV", default)
        if not Path(venv, "bin", "python").exists():
            session.run("python", "-m", "venv", venv)
            session.run(f"{venv}/bin/pip", "install", "-r", str(requirements), external=True)
        pythons += [f"--{key}-python", str(Path(venv, "bin", "python"))]
    session.run("python", "benchmarks/bench.py", *pythons, *session.posargs)


@nox.session(default=False)
def bench_store(session: nox.Session) -> None:
    """N workers with their own caches vs. sharing a Redis store (benchmarks/shared_store.py).

    Not part of the default run. Needs knotd, nginx, redis-server and root (port 443); about
    4 minutes on 2 cores with the defaults (4 workers x 10,000 names). Posargs go to the script
    (e.g. --workers 8 --names 2000 --output PATH).
    """
    session.install("-e", ".[redis]", "trustme>=1.1")
    session.run("python", "benchmarks/shared_store.py", *session.posargs)


@nox.session(default=False)
def conformance(session: nox.Session) -> None:
    """Run every vector against each adapter and write docs/conformance.md.

    Not part of the default run (about a minute). Adapters: mxresolve (through the harness
    protocol), Synapse and resolvematrix (their venvs: MXRESOLVE_SYNAPSE_VENV, default
    .venv-synapse, and MXRESOLVE_RESOLVEMATRIX_VENV, default .venv-resolvematrix, created from
    benchmarks/peers/requirements-*.txt when missing), and the JavaScript example (needs `node`).
    """
    import os
    import shutil
    from pathlib import Path

    session.install("-e", ".")
    peers = Path("benchmarks/peers")
    adapters = Path("spec-vectors/adapters")
    out = Path(session.create_tmp())
    adapter = ["python", "-m", "mxresolve._tools.conformance.adapter"]
    # Asking early (the defaults) changes exact request lists only: its file names I-48.
    runs = [
        ("mxresolve", adapter, None),
        (
            "mxresolve-defaults",
            [*adapter, "--ask-early"],
            adapters / "mxresolve-ask-early.deviations.json",
        ),
    ]
    for name, env, default in (
        ("synapse", "MXRESOLVE_SYNAPSE_VENV", ".venv-synapse"),
        ("resolvematrix", "MXRESOLVE_RESOLVEMATRIX_VENV", ".venv-resolvematrix"),
    ):
        venv = Path(os.environ.get(env, default))
        if not (venv / "bin" / "python").exists():
            session.run("python", "-m", "venv", str(venv))
            session.run(
                str(venv / "bin" / "pip"),
                "install",
                "-r",
                str(peers / f"requirements-{name}.txt"),
                external=True,
            )
        deviations = adapters / f"{name}.deviations.json"
        runs.append(
            (
                name,
                [str(venv / "bin" / "python"), str(adapters / f"{name}_adapter.py")],
                deviations if deviations.exists() else None,
            )
        )
    if shutil.which("node"):
        runs.append(("example-js", ["node", str(adapters / "example-js" / "adapter.mjs")], None))
        # Written from docs/harness.md and the vectors alone (its README lists the gaps).
        runs.append(
            ("docs-only-js", ["node", str(adapters / "docs-only-js" / "adapter.mjs")], None)
        )
    else:
        session.warn("node is not on PATH: the JavaScript example adapter is left out")
    outputs = []
    for name, command, deviations in runs:
        target = out / f"{name}.json"
        extra = ["--deviations", str(deviations)] if deviations else []
        log = out / f"{name}.log"
        with target.open("w", encoding="utf-8") as stream, log.open("w") as errors:
            # Exit status 1 means "some vector failed": that is a result, not an error.
            session.run(
                "mxresolve", "vectors", "run", "--json", *extra, "--harness", *command,
                stdout=stream, stderr=errors, success_codes=[0, 1],
            )  # fmt: skip
        outputs.append(str(target))
    session.run(
        "python", "-m", "mxresolve._tools.conformance.report", *outputs,
        "--output", "docs/conformance.md",
    )  # fmt: skip
