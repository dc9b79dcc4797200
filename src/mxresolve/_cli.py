"""The ``mxresolve`` command.

``mxresolve vectors run [PATH ...] [--json] [--explain ID]``
    Run spec-vectors (the bundled ones by default): one line per vector, then
    ``N passed, M failed``; exit 1 if any failed.

Exit statuses: 0 success, 1 failure (a vector failed, a resolution failed),
2 invalid input (bad arguments, a malformed vector file, an invalid server name).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Sequence

from ._explain import render_result
from ._vectors import Vector, VectorFormatError, load_vectors, run_vector

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mxresolve",
        description="Matrix server-name resolution (spec v1.19): run the spec-vectors, "
        "or resolve a server name and explain every step.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    vectors = commands.add_parser("vectors", help="the spec-vectors")
    vector_commands = vectors.add_subparsers(dest="vectors_command", required=True)
    run = vector_commands.add_parser("run", help="run vectors (default: the bundled set)")
    run.add_argument("paths", nargs="*", metavar="PATH", help="vector files or folders")
    run.add_argument("--json", action="store_true", help="print machine-readable results")
    run.add_argument("--explain", metavar="ID", help="print one vector's trace, step by step")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "vectors":
        return _vectors_run(args.paths, as_json=args.json, explain=args.explain)
    raise AssertionError(f"unhandled command {args.command}")  # argparse guarantees this


def _vectors_run(paths: list[str], *, as_json: bool, explain: str | None) -> int:
    try:
        vectors = load_vectors(paths)
    except VectorFormatError as exc:
        print(f"mxresolve: {exc}", file=sys.stderr)
        return 2
    if explain is not None:
        chosen = [v for v in vectors if v.id == explain]
        if not chosen:
            print(f"mxresolve: no vector with id {explain!r}", file=sys.stderr)
            return 2
        return _explain(chosen[0])

    results = [run_vector(v) for v in vectors]
    passed = sum(r.passed for r in results)
    failed = len(results) - passed
    if as_json:
        json.dump(
            {"results": [r.to_json() for r in results], "passed": passed, "failed": failed},
            sys.stdout,
            indent=2,
        )
        print()
    else:
        for r in results:
            decided = ",".join(sorted({s.decided_step or "-" for s in r.steps}))
            print(f"{'PASS' if r.passed else 'FAIL'}  {r.vector.id}  (step {decided})")
            for s in r.steps:
                for failure in s.failures:
                    print(f"        {s.name}: {failure}")
        print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def _explain(vector: Vector) -> int:
    result = run_vector(vector)
    print(f"Vector {vector.id}  [{vector.requirement}]")
    print(textwrap.fill(vector.description, width=100))
    for citation in vector.citations:
        step = f", step {citation['step']}" if "step" in citation else ""
        version = vector.raw.get("spec", {}).get("cited_version", "v1.19")
        print(f"\nSpec {version}{step}:")
        print(textwrap.indent(textwrap.fill(str(citation["quote"]), width=96), "  > "))
    for step_result, vector_step in zip(result.steps, vector.steps, strict=True):
        at = vector_step.get("at", 0)
        print(f"\n--- {step_result.name}: resolve {vector_step['resolve']!r} at t={at} s ---")
        print(render_result(step_result.result))
        verdict = "as expected" if not step_result.failures else "NOT as expected:"
        print(f"\nResult: {verdict}")
        for failure in step_result.failures:
            print(f"  - {failure}")
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
