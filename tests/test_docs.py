"""The generated parts of docs/ match the code and the vectors."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate", ROOT / "docs/tools/generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_docs_are_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    status = _generator().main(["--check"])
    assert status == 0, capsys.readouterr().out


def test_the_state_diagram_names_every_step() -> None:
    from mxresolve import Step

    text = (ROOT / "docs/state-machine.md").read_text("utf-8")
    for step in Step:
        assert f'"Step {step.value}: ' in text


def test_the_step_table_agrees_with_the_vectors() -> None:
    from mxresolve._tools.vectors import load_vectors

    generator = _generator()
    vectors = load_vectors([ROOT / "spec-vectors/vectors"])
    assert generator.pages.check_step_rules(vectors) == []


def test_the_step_table_check_catches_a_wrong_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """A row that claims step 3.3 sends the delegated port in Host must be caught."""
    import dataclasses

    from mxresolve import Step
    from mxresolve._tools.vectors import load_vectors

    pages = _generator().pages
    wrong = tuple(
        dataclasses.replace(rule, expect=lambda n, d: {"host_header": f"{d.hostname}:8448"})
        if rule.step is Step.DELEGATED_SRV
        else rule
        for rule in pages.STEP_RULES
    )
    monkeypatch.setattr(pages, "STEP_RULES", wrong)
    problems = pages.check_step_rules(load_vectors([ROOT / "spec-vectors/vectors"]))
    assert problems
    assert all("step 3.3 host_header" in p for p in problems)


def test_every_https_failure_kind_is_classified_and_pinned() -> None:
    from mxresolve import HttpsFailureKind

    text = (ROOT / "docs/unavailable.md").read_text("utf-8")
    for kind in HttpsFailureKind:
        (row,) = [line for line in text.splitlines() if line.startswith(f"| `{kind.value}` |")]
        assert not row.endswith("| (none) |"), f"{kind.value} has no vector"


def test_algorithm_headings_are_the_state_names() -> None:
    text = (ROOT / "docs/algorithm.md").read_text("utf-8")
    _generator().pages.check_headings(text)
    with pytest.raises(SystemExit):
        _generator().pages.check_headings(text.replace("Step 3.3: delegated", "Step 3.3: via"))


def test_the_nav_drops_missing_pages_and_adds_unlisted_ones(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    spec = importlib.util.spec_from_file_location("hooks", ROOT / "docs/tools/hooks.py")
    assert spec is not None
    assert spec.loader is not None
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    (tmp_path / "here.md").write_text("# Here\n")
    (tmp_path / "extra.md").write_text("# Extra\n")

    class Config:
        def __init__(self) -> None:
            self.docs_dir = str(tmp_path)
            self.nav = [
                {"Section": [{"Here": "here.md"}, {"Not yet": "later.md"}]},
                {"Gone": "gone.md"},
            ]

    config = hooks.on_config(Config())
    assert config.nav == [{"Section": [{"Here": "here.md"}]}, {"More": ["extra.md"]}]


def test_the_timelines_answer_the_students_question() -> None:
    """A timeout an hour after a good max-age=3600 fetch: stale delegation for an hour."""
    text = (ROOT / "docs/timelines.md").read_text("utf-8")
    assert "| 3600 s | fetch: `read_timeout` | step 3.2 | stale delegation kept (I-17) |" in text
    assert "| 7200 s | no fetch (failure cached) | step 4 |  |" in text
    backoff = re.findall(r"^\| (\d) \| (\d+) s \| (\d+) s \|", text, flags=re.M)
    cached = [int(seconds) for _, _, seconds in backoff]
    assert cached == [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
    assert "| no cache headers (24 h default) | 86400 s | 2 | 0 h, 24 h |" in text


def test_interpretations_link_their_sources() -> None:
    text = (ROOT / "docs/interpretations.md").read_text("utf-8")
    sections = {s.split()[0]: s for s in re.split(r"^### ", text, flags=re.M)[1:]}
    for number in range(1, 36):
        section = sections[f"I-{number:02d}"]
        (sources,) = [line for line in section.splitlines() if line.startswith("Sources: ")]
        assert "](https://" in sources, f"I-{number:02d}"
        assert any(line.startswith("Other implementations: ") for line in section.splitlines())


def test_the_debugging_anchors_the_doctor_links_to() -> None:
    text = (ROOT / "docs/debugging.md").read_text("utf-8")
    for anchor in ("resolve", "proxy-port", "well-known-down", "stale-certificate", "legacy-srv"):
        assert f"{{ #{anchor} }}" in text


def test_every_interpretation_is_pinned_by_a_vector() -> None:
    text = (ROOT / "docs/interpretations.md").read_text("utf-8")
    assert "### I-01" in text
    unpinned = [line for line in text.splitlines() if line.startswith("Pinned by: (no vector yet)")]
    # Each decision needs at least one vector; the list names none missing.
    assert not unpinned, f"{len(unpinned)} interpretations have no vector"


def test_tests_named_as_pins_exist() -> None:
    text = (ROOT / "docs/interpretations.md").read_text("utf-8")
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", text)
    assert named
    for path, function in named:
        source = (ROOT / path).read_text("utf-8")
        assert f"def {function}(" in source, f"{path}::{function} does not exist"


def test_every_decision_is_pinned() -> None:
    text = (ROOT / "docs/interpretations.md").read_text("utf-8")
    sections = re.split(r"^### ", text, flags=re.M)[1:]
    for section in sections:
        assert "Pinned by" in section, section.splitlines()[0]


def test_the_readme_commands_exist() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    assert "pip install . && mxresolve vectors run" in readme
    assert "pip install nox && nox" in readme
    ci = (ROOT / ".ci/run").read_text("utf-8")
    assert "pip install nox && nox" in ci


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
