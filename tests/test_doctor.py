"""The doctor's contract without the network: codes vs docs, the report model, rendering."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from mxresolve._tools.doctor.codes import AREAS, CODES
from mxresolve._tools.doctor.render import render_human, render_json, use_colour
from mxresolve._tools.doctor.report import Check, Problem, Report

ROOT = Path(__file__).resolve().parent.parent


def test_every_code_has_a_section_in_docs_and_no_more() -> None:
    text = (ROOT / "docs/doctor.md").read_text("utf-8")
    sections = re.findall(r"^### `([a-z0-9-]+)`$", text, flags=re.M)
    assert sorted(sections) == sorted(CODES)
    for part in re.split(r"^### ", text, flags=re.M)[1:]:
        for label in ("**Means**", "**Why it matters**", "**Fix**"):
            assert label in part, part.splitlines()[0]


def test_sections_sit_under_their_area() -> None:
    text = (ROOT / "docs/doctor.md").read_text("utf-8")
    area = None
    for line in text.splitlines():
        if line.startswith("## "):
            area = line[3:].strip()
        match = re.match(r"^### `([a-z0-9-]+)`$", line)
        if match:
            assert area == CODES[match.group(1)].area.value, match.group(1)


def test_unknown_code_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown problem code"):
        Problem(code="no-such-code", message="m", fix="f", where="w")


def _report() -> Report:
    check = Check(name="TLS 192.0.2.1:8448", area=AREAS[4], where="192.0.2.1:8448")
    check.problem("tls-expires-soon", "expires in 3 days", "renew it")
    check.problem("tls-expires-soon", "expires in 3 days", "renew it")  # reported twice
    return Report(
        server_name="example.org",
        federation_ok=True,
        verdict="Federation with example.org works, but 1 warning(s) need attention.",
        resolution={"server_name": "example.org", "step": "4", "targets": [], "trace": []},
        checks=[check],
    )


def test_problems_are_deduplicated_and_sorted() -> None:
    report = _report()
    assert [p.code for p in report.problems] == ["tls-expires-soon"]
    assert report.to_json()["problems"][0]["severity"] == "warning"


def test_colour_only_on_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_colour(Tty())
    assert not use_colour(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_colour(Tty())


def test_human_rendering() -> None:
    report = _report()
    plain = render_human(report)
    assert plain.splitlines()[0].startswith("OK  Federation with example.org works")
    assert "\x1b[" not in plain
    assert "[warning] tls-expires-soon" in plain
    coloured = render_human(report, colour=True)
    assert "\x1b[33m[warning]\x1b[0m" in coloured
    assert render_json(report).startswith("{")


def test_readme_shows_doctor_next_to_resolve() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    block = readme[readme.index("mxresolve resolve example.org ") :]
    assert "mxresolve doctor example.org" in block[:800]


def test_a_bug_in_the_doctor_is_one_json_object(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from mxresolve._tools import cli
    from mxresolve._tools.doctor import runner

    async def broken(*args: object, **kw: object) -> Report:
        raise RuntimeError("boom")

    monkeypatch.setattr(runner, "diagnose", broken)
    assert cli.main(["doctor", "example.org", "--json"]) == 1
    error = json.loads(capsys.readouterr().out)["error"]
    assert error == {"kind": "internal_error", "message": "the doctor failed: RuntimeError: boom"}
