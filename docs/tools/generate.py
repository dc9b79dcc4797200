"""Regenerate the generated parts of docs/ from the code and the vectors.

    python docs/tools/generate.py          # rewrite in place
    python docs/tools/generate.py --check  # exit 1 if anything is stale or disagrees

Whole pages (never edit them by hand):

* docs/state-machine.md: the diagram and table, from ``TRANSITIONS``.
* docs/steps.md: the one-page summary of the steps; the table's rules are data here
  (``STEP_RULES``) and are checked against every vector that expects targets.
* docs/unavailable.md: which well-known failures keep a recent delegation (I-17), found
  by running the machine, with the vectors that pin each row.
* docs/timelines.md and docs/assets/timelines/*.svg: caching, back-off, stale-if-error
  and DNS TTLs as plots, each from a run of the real machine, with its data as a table.

Blocks inside hand-written pages:

* ``<!-- vectors I-NN -->`` ... ``<!-- /vectors -->`` in docs/interpretations.md: the
  vectors whose ``interpretation`` is I-NN.
* ``<!-- trace ID -->`` ... ``<!-- /trace -->`` in docs/algorithm.md and
  docs/examples.md: the explained trace of vector ID, run by the library.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pages

from mxresolve._tools.vectors import load_vectors

DOCS = Path(__file__).resolve().parent.parent
VECTORS = DOCS.parent / "spec-vectors" / "vectors"


def _replace_blocks(text: str, tag: str, render: dict[str, str]) -> str:
    pattern = re.compile(rf"(<!-- {tag} (\S+) -->\n)(.*?)(<!-- /{tag} -->)", re.DOTALL)

    def fill(match: re.Match[str]) -> str:
        key = match.group(2)
        if key not in render:
            raise SystemExit(f"generate: nothing to put in <!-- {tag} {key} -->")
        return match.group(1) + render[key] + match.group(4)

    return pattern.sub(fill, text)


def interpretations(text: str, vectors: list[pages.Vector]) -> str:
    cited: dict[str, list[str]] = defaultdict(list)
    for vector in vectors:
        # The vector's own I-NN, and those of its steps and assertions (format 2).
        for interpretation in vector.interpretations:
            cited[interpretation].append(vector.id)
    keys = re.findall(r"<!-- vectors (\S+) -->", text)
    render = {
        key: "Pinned by: " + ", ".join(f"`{v}`" for v in sorted(cited[key])) + ".\n"
        if cited[key]
        else "Pinned by: (no vector yet).\n"
        for key in keys
    }
    return _replace_blocks(text, "vectors", render)


def traces(text: str, vectors: list[pages.Vector]) -> str:
    by_id = {v.id: v for v in vectors}
    render = {}
    for key in re.findall(r"<!-- trace (\S+) -->", text):
        if key not in by_id:
            raise SystemExit(f"generate: no vector {key!r} for a trace block")
        render[key] = "```text\n" + pages.vector_trace(by_id[key]) + "\n```\n"
    return _replace_blocks(text, "trace", render)


def outputs(vectors: list[pages.Vector]) -> dict[Path, str]:
    """Every generated file and its content."""
    out: dict[Path, str] = {
        DOCS / "state-machine.md": pages.state_machine(vectors),
        DOCS / "steps.md": pages.steps_page(vectors),
        DOCS / "unavailable.md": pages.unavailable_page(vectors),
    }
    timeline_page, svgs = pages.timelines_page(vectors)
    out[DOCS / "timelines.md"] = timeline_page
    for name, svg in svgs.items():
        out[DOCS / "assets" / "timelines" / name] = svg
    for name, fill in (
        ("interpretations.md", interpretations),
        ("algorithm.md", traces),
        ("examples.md", traces),
    ):
        path = DOCS / name
        if path.exists():
            text = fill(path.read_text(encoding="utf-8"), vectors)
            if name == "algorithm.md":
                pages.check_headings(text)
            out[path] = text
    return out


def main(argv: list[str]) -> int:
    check = "--check" in argv
    vectors = load_vectors([VECTORS])
    disagreements = pages.check_step_rules(vectors)
    for line in disagreements:
        print(f"generate: the step table disagrees with a vector: {line}")
    generated = outputs(vectors)
    stale = [p for p, text in generated.items() if not p.exists() or p.read_text("utf-8") != text]
    if check:
        for path in stale:
            print(f"generate: {path.relative_to(DOCS.parent)} is stale; run docs/tools/generate.py")
        return 1 if stale or disagreements else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(generated[path], encoding="utf-8")
        print(f"generate: wrote {path.relative_to(DOCS.parent)}")
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
