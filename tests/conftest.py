"""Shared test configuration.

Every test runs in a private network namespace when we are root (``tests/netns.py``),
so the loopback worlds never depend on the host's loopback being free.

Hypothesis runs under a profile: "dev" locally, "ci" when CI is set. The CI
profile is derandomised (same examples every run) and bounded in count, so the
property tests take the same time and give the same verdict on every run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from netns import enter_private_network

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=150,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


_NETWORK = enter_private_network()  # at import: before pytest or any test starts a thread


def pytest_report_header(config: pytest.Config) -> str:
    return f"mxresolve network: {_NETWORK}"
