"""Shared test configuration.

Hypothesis runs under a profile: "dev" locally, "ci" when CI is set. The CI
profile is derandomised (same examples every run) and bounded in count, so the
property tests take the same time and give the same verdict on every run.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

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
