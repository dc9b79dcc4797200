"""The doctor's report: problems, the checks that ran, and the verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .codes import CODES, Area, Severity

__all__ = ["Check", "CheckStatus", "Problem", "Report"]


class CheckStatus(str, Enum):
    OK = "ok"
    PROBLEM = "problem"  # ran and found at least one problem
    SKIPPED = "skipped"  # could not run (a missing extra, nothing to check)
    TIMEOUT = "timeout"  # did not finish before the doctor's deadline

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True, kw_only=True, slots=True)
class Problem:
    """One thing wrong, named by a stable code, with where it is and how to fix it."""

    code: str
    message: str
    fix: str
    where: str
    severity: Severity | None = None  # None: the code's usual severity

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unknown problem code {self.code!r}")

    @property
    def level(self) -> Severity:
        return self.severity if self.severity is not None else CODES[self.code].severity

    @property
    def area(self) -> Area:
        return CODES[self.code].area

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.level.value,
            "message": self.message,
            "fix": self.fix,
            "where": self.where,
        }


@dataclass(kw_only=True, slots=True)
class Check:
    """One check that ran (or was skipped), and what it found."""

    name: str
    area: Area
    where: str
    status: CheckStatus = CheckStatus.OK
    detail: str = ""
    problems: list[Problem] = field(default_factory=list)

    def problem(self, code: str, message: str, fix: str, **kw: Any) -> Problem:
        found = Problem(
            code=code, message=message, fix=fix, where=kw.pop("where", self.where), **kw
        )
        self.problems.append(found)
        self.status = CheckStatus.PROBLEM
        return found

    def skip(self, why: str) -> None:
        self.status = CheckStatus.SKIPPED
        self.detail = why

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "area": self.area.value,
            "where": self.where,
            "result": self.status.value,
            "detail": self.detail,
            "problems": [p.code for p in self.problems],
        }


@dataclass(kw_only=True, slots=True)
class Report:
    server_name: str
    federation_ok: bool
    verdict: str
    resolution: dict[str, Any]
    checks: list[Check]

    @property
    def problems(self) -> list[Problem]:
        order = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
        seen: set[tuple[str, str, str]] = set()
        out: list[Problem] = []
        for check in self.checks:
            for p in check.problems:
                key = (p.code, p.where, p.message)
                if key not in seen:
                    seen.add(key)
                    out.append(p)
        return sorted(out, key=lambda p: order[p.level])

    @property
    def skipped(self) -> list[Check]:
        return [c for c in self.checks if c.status is CheckStatus.SKIPPED]

    def to_json(self) -> dict[str, Any]:
        return {
            "server_name": self.server_name,
            "federation_ok": self.federation_ok,
            "verdict": self.verdict,
            "resolution": self.resolution,
            "problems": [p.to_json() for p in self.problems],
            "checks": [c.to_json() for c in self.checks],
        }
