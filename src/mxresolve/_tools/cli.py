"""The ``mxresolve`` command.

``mxresolve resolve SERVER_NAME [--json] [--nameserver IP[:PORT]]... [--cafile PEM]
[--allow-ip CIDR]...``
    Resolve a server name for real and explain each step. With ``--json``,
    exactly one JSON object goes to stdout, whatever happens.

``mxresolve doctor SERVER_NAME [--json] [--nameserver IP[:PORT]]... [--cafile PEM]
[--allow-ip CIDR]... [--timeout S]``
    Check everything a remote homeserver meets, and say how to fix what is
    wrong (docs/doctor.md). Exit 0 if federation works, 1 if it fails.

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
from typing import TYPE_CHECKING

# Each subcommand imports what it needs when it runs, so that `--help` or a resolve that
# needs no network does not pay for the rest (docs/performance.md, start-up).
if TYPE_CHECKING:
    from .._core.events import Resolution, ResolutionFailure
    from .vectors import Vector

__all__ = ["main"]


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    # argparse prints and exits on bad arguments; we need to answer in JSON too.
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mxresolve",
        description="Matrix server-name resolution (spec v1.19): run the spec-vectors, "
        "or resolve a server name and explain every step.",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    resolve = commands.add_parser("resolve", help="resolve a server name and explain it")
    resolve.add_argument("server_name", metavar="SERVER_NAME")
    resolve.add_argument("--json", action="store_true", help="print one JSON object")
    resolve.add_argument(
        "--nameserver",
        action="append",
        metavar="IP[:PORT]",
        help="send every DNS query here (repeatable); default: the system's resolvers",
    )
    resolve.add_argument("--cafile", metavar="PEM", help="trust these CAs instead of certifi's")
    resolve.add_argument(
        "--allow-ip",
        action="append",
        metavar="CIDR",
        help="allow a range the default policy refuses, e.g. 127.0.0.0/8 (repeatable)",
    )
    resolve.add_argument("--deny-ip", action="append", metavar="CIDR", help="refuse a range")
    resolve.add_argument(
        "--no-legacy-srv", action="store_true", help="skip the deprecated _matrix._tcp steps"
    )
    resolve.add_argument(
        "--timeout", type=float, default=10.0, metavar="SECONDS", help="per request (10)"
    )

    from . import doctor  # light: the checks load only when the doctor runs

    doctor.add_parser(commands)

    vectors = commands.add_parser("vectors", help="the spec-vectors")
    vector_commands = vectors.add_subparsers(dest="vectors_command", required=True)
    run = vector_commands.add_parser("run", help="run vectors (default: the bundled set)")
    run.add_argument("paths", nargs="*", metavar="PATH", help="vector files or folders")
    run.add_argument("--json", action="store_true", help="print machine-readable results")
    run.add_argument("--explain", metavar="ID", help="print one vector's trace, step by step")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parser().parse_args(argv)
    except _UsageError as exc:
        if ("resolve" in argv or "doctor" in argv) and "--json" in argv:
            _print_json(_error_object(None, "invalid_argument", str(exc)))
        else:
            print(exc, file=sys.stderr)
        return 2
    try:
        if args.command == "resolve":
            return _resolve(args)
        if args.command == "doctor":
            from . import doctor

            return doctor.run(args)
    except BrokenPipeError:  # e.g. `mxresolve resolve x | head`: not an error
        sys.stderr.close()
        return 0
    if args.command == "vectors":
        return _vectors_run(args.paths, as_json=args.json, explain=args.explain)
    raise AssertionError(f"unhandled command {args.command}")  # argparse guarantees this


def _print_json(obj: dict[str, object]) -> None:
    json.dump(obj, sys.stdout, indent=2)
    print()


def _error_object(server_name: str | None, kind: str, message: str) -> dict[str, object]:
    return {"server_name": server_name, "error": {"kind": kind, "message": message}, "trace": []}


def _resolve(args: argparse.Namespace) -> int:
    from .._core.errors import InvalidServerName, MxresolveError
    from .._core.events import FailureKind, Resolution
    from .._core.settings import Settings
    from .._io.resolver import Resolver
    from .explain import render_result

    try:
        resolver = Resolver(
            nameservers=args.nameserver,
            cafile=args.cafile,
            allow_ips=args.allow_ip,
            deny_ips=args.deny_ip,
            settings=Settings(legacy_srv=not args.no_legacy_srv),
            request_timeout=args.timeout,
        )
        result = resolver.resolve_result(args.server_name)
    except InvalidServerName as exc:
        kind, message = FailureKind.INVALID_SERVER_NAME.value, str(exc)
    except (MxresolveError, ValueError) as exc:
        kind, message = "invalid_argument", str(exc)
    else:
        if args.json:
            _print_json(result.to_json())
        else:
            print(render_result(result))
            print(_recovered(result))
        return 0 if isinstance(result, Resolution) else 1
    if args.json:
        _print_json(_error_object(args.server_name, kind, message))
    else:
        print(f"mxresolve: {message}", file=sys.stderr)
    return 2


def _recovered(result: Resolution | ResolutionFailure) -> str:
    """What the resolution recovered from, in a sentence or two, and where to look next."""
    from .._core.events import HttpsGet, Resolution, TraceKind

    notes: list[str] = []
    trace = result.trace
    for i, event in enumerate(trace):
        if event.kind is TraceKind.DECISION and event.message.startswith(
            "the well-known is an error response"
        ):
            fetched = [
                e.outcome
                for e in trace[:i]
                if e.kind is TraceKind.OUTCOME and isinstance(e.request, HttpsGet)
            ]
            reason = event.message.removeprefix("the well-known is an error response (")
            why = str(fetched[-1]) if fetched else reason.split("); cached", 1)[0]
            later = [e.step for e in trace[i + 1 :] if e.kind is TraceKind.STEP]
            went_on = f"; resolution continued at step {later[0]}" if later else ""
            notes.append(f"the well-known failed: {why}{went_on}")
    warnings = sum(e.kind is TraceKind.WARNING for e in trace)
    if warnings:
        notes.append(f"{warnings} warning(s) in the trace above")
    if not notes:
        return f"\nNothing to recover from. Full check-up: mxresolve doctor {result.server_name}"
    recovered = "Recovered from" if isinstance(result, Resolution) else "Along the way"
    return (
        f"\n{recovered}: "
        + "; ".join(notes)
        + f".\nFor what this means and how to fix it: mxresolve doctor {result.server_name}"
    )


def _vectors_run(paths: list[str], *, as_json: bool, explain: str | None) -> int:
    from .vectors import VectorFormatError, load_vectors, run_vector

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
    from .explain import render_result
    from .vectors import run_vector

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
