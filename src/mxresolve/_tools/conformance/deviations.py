"""Expected deviations: one file per implementation, in the spirit of x509-limbo's.

Format (docs/harness.md, "Deviations")::

    {"implementation": "synapse 1.163.2",
     "deviations": [
        {"id": "step3::redirect-loop", "justification": "why this vector fails"},
        {"interpretation": "I-48", "justification": "why this reading differs"}]}

An entry names either one vector (``id``: the whole vector may fail) or one
interpretation (``interpretation``: every assertion labelled with that I-NN may
fail, in any vector). A vector that fails is reported as ``deviation`` with the
justifications when an ``id`` entry names it, or when every one of its failures
is at an interpretation some entry names; a MUST or SHOULD failure, or one at
another I-NN, keeps it a ``fail``. A vector that passes is reported as it is, so
a stale entry shows.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..vectors import VectorResult

__all__ = ["Deviations", "DeviationsError", "apply_deviation", "load_deviations"]

_INTERPRETATION = re.compile(r"I-[0-9]{2,}\Z")


class DeviationsError(ValueError):
    """A deviations file that does not follow the format; says where."""


@dataclass(frozen=True, slots=True)
class Deviations:
    """What one implementation is expected to fail, each with its justification."""

    by_id: dict[str, str] = field(default_factory=dict)  # vector id -> justification
    by_interpretation: dict[str, str] = field(default_factory=dict)  # I-NN -> justification


def load_deviations(path: str | Path) -> Deviations:
    try:
        document: Any = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise DeviationsError(f"{path}: cannot read JSON: {exc}") from None
    entries = document.get("deviations") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise DeviationsError(f"{path}: expected an object with a 'deviations' list")
    found = Deviations()
    for index, entry in enumerate(entries):
        where = f"{path}: deviations[{index}]"
        if not isinstance(entry, dict):
            raise DeviationsError(f"{where}: expected an object")
        justification = entry.get("justification")
        if not (isinstance(justification, str) and justification.strip()):
            raise DeviationsError(f"{where}: needs a non-empty 'justification'")
        keys = [key for key in ("id", "interpretation") if key in entry]
        if len(keys) != 1:
            raise DeviationsError(f"{where}: needs exactly one of 'id' and 'interpretation'")
        key = keys[0]
        value = entry[key]
        if key == "id" and not (isinstance(value, str) and value):
            raise DeviationsError(f"{where}: 'id' must be a vector id")
        if key == "interpretation" and not (
            isinstance(value, str) and _INTERPRETATION.match(value)
        ):
            raise DeviationsError(f"{where}: 'interpretation' must be an id like 'I-48'")
        table = found.by_id if key == "id" else found.by_interpretation
        if value in table:
            raise DeviationsError(f"{path}: {value!r} is listed twice")
        table[value] = justification
    return found


def apply_deviation(result: VectorResult, deviations: Deviations) -> VectorResult:
    """``result`` as a deviation when the file expects every one of its failures."""
    if result.passed:
        return result
    justification = deviations.by_id.get(result.vector.id)
    if justification is None:
        failures = [f for step in result.steps for f in step.failures]
        labels = sorted({f.interpretation or "" for f in failures})
        if any(
            f.level != "INTERPRETATION" or f.interpretation not in deviations.by_interpretation
            for f in failures
        ):
            return result  # a MUST or SHOULD failure, or an I-NN the file does not name
        justification = " ".join(f"{i}: {deviations.by_interpretation[i]}" for i in labels)
    return dataclasses.replace(result, deviation=justification)
