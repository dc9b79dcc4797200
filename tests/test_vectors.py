"""Every spec-vector, one pytest case per vector."""

from __future__ import annotations

import pytest

from mxresolve._vectors import Vector, load_vectors, run_vector

VECTORS = load_vectors()


def test_the_suite_is_large_enough() -> None:
    # The floor; more is welcome.
    assert len(VECTORS) >= 3


@pytest.mark.parametrize("vector", VECTORS, ids=[v.id for v in VECTORS])
def test_vector(vector: Vector) -> None:
    result = run_vector(vector)
    failures = [f"{s.name}: {f}" for s in result.steps for f in s.failures]
    assert not failures, "\n".join(failures)
