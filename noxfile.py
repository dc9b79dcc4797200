"""Developer sessions. `nox` alone runs tests, lint, typecheck and vectors.

`tests` includes the integration suite against real Knot DNS and nginx on
loopback when they are installed (.ci/install-servers.sh installs them);
without them those tests skip, unless MXRESOLVE_REQUIRE_INTEGRATION=1.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "vectors"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False


@nox.session
def tests(session: nox.Session) -> None:
    """Unit and property tests, every vector, and the integration suite."""
    session.install("-e", ".[test]")
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
    session.install("mypy==2.4.1", "-e", ".")
    session.run("mypy")


@nox.session
def vectors(session: nox.Session) -> None:
    """Check every vector file against the schema and the suite rules, then run them."""
    session.install("-e", ".")
    session.run("python", "spec-vectors/tools/check.py")
    session.run("mxresolve", "vectors", "run")
