"""The report for people (grouped by area, verdict first, coloured on a terminal) and
for programs (exactly one JSON object)."""

from __future__ import annotations

import json
import os
import textwrap
from typing import IO

from .codes import AREAS, Severity
from .context import EXTRA_HINT
from .report import CheckStatus, Report

__all__ = ["render_human", "render_json", "use_colour"]

_COLOURS = {
    "red": "\x1b[31m",
    "yellow": "\x1b[33m",
    "green": "\x1b[32m",
    "blue": "\x1b[34m",
    "dim": "\x1b[2m",
    "bold": "\x1b[1m",
}
_RESET = "\x1b[0m"
_SEVERITY_COLOUR = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.INFO: "blue"}


def use_colour(stream: IO[str]) -> bool:
    """Colour only on a terminal, and never with NO_COLOR set (no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    return hasattr(stream, "isatty") and stream.isatty()


def render_json(report: Report) -> str:
    return json.dumps(report.to_json(), indent=2)


def render_human(report: Report, *, colour: bool = False, width: int = 100) -> str:
    def paint(text: str, what: str) -> str:
        return f"{_COLOURS[what]}{text}{_RESET}" if colour else text

    def wrap(text: str, indent: str) -> list[str]:
        return textwrap.wrap(
            text,
            width=width,
            initial_indent=indent,
            subsequent_indent=indent + "  ",
            break_on_hyphens=False,
            break_long_words=False,
        ) or [indent]

    mark = paint("OK", "green") if report.federation_ok else paint("FAIL", "red")
    lines = [f"{mark}  {paint(report.verdict, 'bold')}", ""]
    resolution = report.resolution
    if "error" in resolution:
        lines.append(
            f"Resolution failed: {resolution['error']['kind']}: {resolution['error']['message']}"
        )
    else:
        targets = ", ".join(
            f"{t['host']}:{t['port']} ({', '.join(t['addresses'])})" for t in resolution["targets"]
        )
        lines.append(f"Resolution: decided by step {resolution['step']}: {targets}")
    problems_by_area = {area: [p for p in report.problems if p.area is area] for area in AREAS}
    for area in AREAS:
        checks = [c for c in report.checks if c.area is area]
        if not checks:
            continue
        lines += ["", paint(str(area).upper(), "bold")]
        for p in problems_by_area[area]:
            tag = paint(f"[{p.level.value}]", _SEVERITY_COLOUR[p.level])
            lines += wrap(f"{tag} {p.code}: {p.message}", "  ")
            lines += wrap(f"where: {p.where}", "      ")
            lines += wrap(f"fix: {p.fix}", "      ")
        for c in checks:
            if c.status is CheckStatus.OK:
                lines += wrap(
                    paint(f"ok  {c.name}" + (f": {c.detail}" if c.detail else ""), "dim"), "  "
                )
            elif c.status is CheckStatus.SKIPPED:
                lines += wrap(paint(f"--  {c.name}: skipped: {c.detail}", "dim"), "  ")
            elif c.status is CheckStatus.TIMEOUT:
                lines += wrap(paint(f"!!  {c.name}: {c.detail}", "yellow"), "  ")
    skipped_extra = [c for c in report.skipped if EXTRA_HINT in c.detail]
    if skipped_extra or any(EXTRA_HINT in c.detail for c in report.checks):
        lines += ["", f"Some checks were skipped; for all of them: {EXTRA_HINT}"]
    lines += ["", "Each code is explained in docs/doctor.md: what it means and how to fix it."]
    return "\n".join(lines)
