"""Regenerate the generated parts of docs/ from the code and the vectors.

    python docs/tools/generate.py          # rewrite in place
    python docs/tools/generate.py --check  # exit 1 if anything is stale

* docs/state-machine.md: entirely generated from ``TRANSITIONS``.
* docs/interpretations.md: the lists between ``<!-- vectors I-NN -->`` and
  ``<!-- /vectors -->`` (the vectors whose ``interpretation`` is I-NN).
* docs/algorithm.md: the blocks between ``<!-- trace ID -->`` and
  ``<!-- /trace -->`` (the explained trace of vector ID, run by the library).
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

from mxresolve._core.events import Step
from mxresolve._core.machine import TRANSITIONS, Phase
from mxresolve._tools.explain import render_result
from mxresolve._tools.vectors import Vector, load_vectors, run_vector

DOCS = Path(__file__).resolve().parent.parent
VECTORS = DOCS.parent / "spec-vectors" / "vectors"


def _node(state: Step | Phase) -> str:
    if isinstance(state, Step):
        return "S" + state.value.replace(".", "_")
    return state.name


def _label(state: Step | Phase) -> str:
    if isinstance(state, Step):
        return f"{state.value}: {state.name.replace('_', ' ').lower()}"
    return state.name.lower()


def state_machine() -> str:
    lines = [
        "# The state machine",
        "",
        "Generated from `mxresolve._core.machine.TRANSITIONS` by `docs/tools/generate.py`;",
        "do not edit by hand. Every state but the three phases is a step of",
        '"Resolving server names" (spec v1.19). A move not listed here raises',
        "`LocalProtocolError`.",
        "",
        "```mermaid",
        "stateDiagram-v2",
    ]
    for state in [Phase.START, *Step, Phase.RESOLVED, Phase.FAILED]:
        lines.append(f'    state "{_label(state)}" as {_node(state)}')
    lines.append(f"    [*] --> {_node(Phase.START)}")
    for (source, event), target in TRANSITIONS.items():
        lines.append(f"    {_node(source)} --> {_node(target)}: {event.value}")
    lines += [f"    {_node(Phase.RESOLVED)} --> [*]", f"    {_node(Phase.FAILED)} --> [*]", "```"]
    lines += ["", "| From | Event | To |", "| --- | --- | --- |"]
    for (source, event), target in TRANSITIONS.items():
        lines.append(f"| {_label(source)} | {event.value} | {_label(target)} |")
    return "\n".join(lines) + "\n"


def _replace_blocks(text: str, tag: str, render: dict[str, str]) -> str:
    pattern = re.compile(rf"(<!-- {tag} (\S+) -->\n)(.*?)(<!-- /{tag} -->)", re.DOTALL)

    def fill(match: re.Match[str]) -> str:
        key = match.group(2)
        if key not in render:
            raise SystemExit(f"generate: nothing to put in <!-- {tag} {key} -->")
        return match.group(1) + render[key] + match.group(4)

    return pattern.sub(fill, text)


def interpretations(text: str, vectors: list[Vector]) -> str:
    cited: dict[str, list[str]] = defaultdict(list)
    for vector in vectors:
        interpretation = vector.raw.get("interpretation")
        if interpretation:
            cited[interpretation].append(vector.id)
    keys = re.findall(r"<!-- vectors (\S+) -->", text)
    render = {
        key: "Pinned by: " + ", ".join(f"`{v}`" for v in sorted(cited[key])) + ".\n"
        if cited[key]
        else "Pinned by: (no vector yet).\n"
        for key in keys
    }
    return _replace_blocks(text, "vectors", render)


def algorithm(text: str, vectors: list[Vector]) -> str:
    by_id = {v.id: v for v in vectors}
    render = {}
    for key in re.findall(r"<!-- trace (\S+) -->", text):
        if key not in by_id:
            raise SystemExit(f"generate: no vector {key!r} for docs/algorithm.md")
        result = run_vector(by_id[key])
        blocks = []
        for step in result.steps:
            if result.steps[0] is not step:
                blocks.append("")
            blocks.append(render_result(step.result))
        render[key] = "```text\n" + "\n".join(blocks) + "\n```\n"
    return _replace_blocks(text, "trace", render)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    vectors = load_vectors([VECTORS])
    outputs = {DOCS / "state-machine.md": state_machine()}
    for name, fill in (("interpretations.md", interpretations), ("algorithm.md", algorithm)):
        path = DOCS / name
        if path.exists():
            outputs[path] = fill(path.read_text(encoding="utf-8"), vectors)
    stale = [p for p, text in outputs.items() if not p.exists() or p.read_text("utf-8") != text]
    if check:
        for path in stale:
            print(f"generate: {path.relative_to(DOCS.parent)} is stale; run docs/tools/generate.py")
        return 1 if stale else 0
    for path in stale:
        path.write_text(outputs[path], encoding="utf-8")
        print(f"generate: wrote {path.relative_to(DOCS.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
