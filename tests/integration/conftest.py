"""Fixtures for integration tests against the loopback world (Knot DNS, nginx, Caddy and a
black hole).

``loopback_world`` starts one world per session, ``doctor_world`` (tests/integration/
doctor_world.py) one per module. Without knotd/nginx/caddy (or root for :443) the tests using
them are skipped, unless MXRESOLVE_REQUIRE_INTEGRATION=1, which turns that into a
failure. A test that takes a ``loopback_scenario`` argument runs once per catalogue scenario.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Protocol, TypeVar

import pytest

from .doctor_world import DoctorWorld
from .doctor_world import missing_prerequisites as doctor_missing_prerequisites
from .synapse import REQUIRE_ENV as REQUIRE_SYNAPSE_ENV
from .synapse import VENV_ENV, SynapseServer, start_synapse, synapse_python
from .world import SCENARIOS, LoopbackWorld, Scenario, WorldError, missing_prerequisites

REQUIRE_ENV = "MXRESOLVE_REQUIRE_INTEGRATION"


def pytest_configure(config: pytest.Config) -> None:
    # Harmless if pyproject.toml registers the marker too.
    config.addinivalue_line(
        "markers", "integration: runs against real servers on loopback (Knot DNS, nginx, Caddy)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "loopback_scenario" in metafunc.fixturenames:
        metafunc.parametrize("loopback_scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])


def integration_required() -> bool:
    return os.environ.get(REQUIRE_ENV) == "1"


class _World(Protocol):
    def start(self) -> object: ...
    def stop(self) -> None: ...


W = TypeVar("W", bound=_World)


def _started(make: Callable[[], W], missing: list[str], what: str) -> Iterator[W]:
    """A world for a fixture: skipped where ``missing`` says it cannot run here (a failure under
    MXRESOLVE_REQUIRE_INTEGRATION=1), started, stopped after."""
    if missing:
        reason = f"{what} unavailable: " + "; ".join(missing)
        if integration_required():
            pytest.fail(f"{reason} ({REQUIRE_ENV}=1)", pytrace=False)
        pytest.skip(reason)
    world = make()
    try:
        world.start()
    except WorldError as exc:
        # Installed but broken is always a failure, never a skip.
        pytest.fail(f"{what} failed to start: {exc}", pytrace=False)
    try:
        yield world
    finally:
        world.stop()


@pytest.fixture(scope="session")
def loopback_world() -> Iterator[LoopbackWorld]:
    yield from _started(LoopbackWorld, missing_prerequisites(), "loopback world")


@pytest.fixture(scope="module")
def doctor_world() -> Iterator[DoctorWorld]:
    """The doctor's misconfigured world (tests/integration/doctor_world.py)."""
    yield from _started(DoctorWorld, doctor_missing_prerequisites(), "doctor world")


@pytest.fixture
def world_scenario(loopback_world: LoopbackWorld) -> Callable[[str], Scenario]:
    """Look-up function: ``world_scenario("wk-port")`` -> Scenario."""

    def lookup(name: str) -> Scenario:
        return loopback_world.scenario(name)

    return lookup


@pytest.fixture(scope="session")
def synapse_server(loopback_world: LoopbackWorld) -> Iterator[SynapseServer]:
    """A real Synapse on loopback (tests/integration/synapse.py), started once per session.

    Needs a Synapse venv in MXRESOLVE_SYNAPSE_VENV (``nox -s e2e`` makes one); without it the
    tests using this skip, unless MXRESOLVE_REQUIRE_SYNAPSE=1.
    """
    python = synapse_python()
    if python is None:
        reason = f"no Synapse venv: set {VENV_ENV} (nox -s e2e creates one)"
        if os.environ.get(REQUIRE_SYNAPSE_ENV) == "1":
            pytest.fail(f"{reason} ({REQUIRE_SYNAPSE_ENV}=1)", pytrace=False)
        pytest.skip(reason)
    try:
        with start_synapse(loopback_world, python) as server:
            yield server
    except WorldError as exc:
        pytest.fail(f"Synapse failed to start: {exc}", pytrace=False)
