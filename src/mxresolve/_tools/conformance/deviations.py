"""Expected deviations: one file per implementation, in the spirit of x509-limbo's.

Format (docs/harness.md, "Deviations")::

    {"implementation": "synapse 1.163.2",
     "deviations": [{"id": "step3::redirect-loop", "justification": "why this is expected"}]}

A vector listed there that fails is reported as ``deviation`` with its
justification instead of ``fail``; one that passes is reported as it is.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ..vectors import VectorResult

__all__ = ["DeviationsError", "apply_deviation", "load_deviations"]


class DeviationsError(ValueError):
    """A deviations file that does not follow the format; says where."""


def load_deviations(path: str | Path) -> dict[str, str]:
    """Vector id -> justification."""
    try:
        document: Any = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise DeviationsError(f"{path}: cannot read JSON: {exc}") from None
    entries = document.get("deviations") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise DeviationsError(f"{path}: expected an object with a 'deviations' list")
    found: dict[str, str] = {}
    for index, entry in enumerate(entries):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("id"), str)
            and isinstance(entry.get("justification"), str)
            and entry["justification"].strip()
        ):
            raise DeviationsError(
                f"{path}: deviations[{index}] needs an 'id' and a non-empty 'justification'"
            )
        if entry["id"] in found:
            raise DeviationsError(f"{path}: {entry['id']!r} is listed twice")
        found[entry["id"]] = entry["justification"]
    return found


def apply_deviation(result: VectorResult, deviations: dict[str, str]) -> VectorResult:
    if result.passed or result.vector.id not in deviations:
        return result
    return dataclasses.replace(result, deviation=deviations[result.vector.id])
