"""The ``mxresolve`` command.

``mxresolve resolve SERVER_NAME [--json] [--nameserver IP[:PORT]]... [--cafile PEM]
[--allow-ip CIDR]...``
    Resolve a server name for real and explain each step. With ``--json``,
    exactly one JSON object goes to stdout, whatever happens.

``mxresolve doctor SERVER_NAME [--json] [--nameserver IP[:PORT]]... [--cafile PEM]
[--allow-ip CIDR]... [--timeout S]``
    Check everything a remote homeserver meets, and say how to fix what is
    wrong (docs/doctor.md). Exit 0 if federation works, 1 if it fails.

``mxresolve vectors run [PATH ...] [--json] [--explain ID ...] [--harness CMD ...]
[--deviations FILE] [--warnings]``
    Run spec-vectors (the bundled ones by default): one line per vector, then
    the counts; exit 1 if any failed. ``--harness`` runs them against an adapter
    speaking the harness protocol (docs/harness.md) instead of in-process. What the
    loader ignored is counted per vector on stderr; ``--warnings`` lists it.

``mxresolve vectors serve VECTOR_ID [--record FILE] [--run CMD ...]``
    Stand a single-step vector's world up as real servers (Knot DNS, nginx, a
    throwaway CA) for a homeserver to resolve; record what reached them.

``mxresolve vectors check VECTOR_ID RECORD.json [--json]``
    Judge a record of ``vectors serve`` against the vector.

Exit statuses: 0 success, 1 failure (a vector failed, a resolution failed),
2 invalid input (bad arguments, a malformed vector file, an invalid server name).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Sequence

# Each subcommand imports what it needs when it runs, so that `--help` or a resolve that
# needs no network does not pay for the rest (docs/performance.md, start-up). Not even
# typing: `--help` needs none of it (see TYPE_CHECKING in mxresolve/__init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .._core.events import Resolution, ResolutionFailure
    from .vectors import Vector, VectorResult

__all__ = ["main"]


class _UsageError(Exception):
    pass


def _terminal_columns() -> int:
    """``shutil.get_terminal_size().columns``, as argparse sizes its help by it.

    argparse imports shutil for this in every formatter it makes, and shutil imports bz2,
    lzma, zlib and fnmatch: milliseconds, more than resolving an IP literal itself takes.
    """
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        stdout = sys.__stdout__
        try:
            columns = 0 if stdout is None else os.get_terminal_size(stdout.fileno()).columns
        except (ValueError, OSError):  # closed, or not a terminal
            columns = 0
    return columns or 80


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's own formatter and width, sized without shutil (see _terminal_columns)."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        width = _terminal_columns() - 2 if width is None else width  # argparse's own margin
        super().__init__(prog, indent_increment, max_help_position, width)


class _Parser(argparse.ArgumentParser):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(formatter_class=_HelpFormatter, **kwargs)

    # argparse prints and exits on bad arguments; we need to answer in JSON too.
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{self.prog}: {message}")


def _parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The command line's parser, with arguments only for the subcommands ``argv`` names.

    ``--help`` lists every subcommand from its name and help alone; only a subcommand that
    parses needs its arguments, and adding them all would cost a few milliseconds of every
    start (argparse formats each argument as it is added). ``argv`` names the subcommand
    argparse will dispatch to, since a subcommand is chosen by its exact name.
    """
    parser = _Parser(
        prog="mxresolve",
        description="Matrix server-name resolution (spec v1.19): run the spec-vectors, "
        "or resolve a server name and explain every step.",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, summary, add_arguments in _COMMANDS:
        command = commands.add_parser(name, help=summary)
        if name in argv:
            add_arguments(command)
    return parser


def _resolve_arguments(resolve: argparse.ArgumentParser) -> None:
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


def _doctor_arguments(doctor_parser: argparse.ArgumentParser) -> None:
    from . import doctor  # light: the checks load only when the doctor runs

    doctor.add_arguments(doctor_parser)


def _vectors_arguments(vectors: argparse.ArgumentParser) -> None:
    vector_commands = vectors.add_subparsers(dest="vectors_command", required=True)
    run = vector_commands.add_parser("run", help="run vectors (default: the bundled set)")
    run.add_argument("paths", nargs="*", metavar="PATH", help="vector files or folders")
    run.add_argument("--json", action="store_true", help="print machine-readable results")
    run.add_argument(
        "--explain", metavar="ID", nargs="+", help="print these vectors' traces, step by step"
    )
    run.add_argument(
        "--harness",
        metavar="CMD",
        nargs=argparse.REMAINDER,
        help="run an adapter speaking the harness protocol (docs/harness.md); must come last",
    )
    run.add_argument(
        "--warnings",
        action="store_true",
        help="list every field, key or record the loader ignored (default: a count per vector)",
    )
    run.add_argument(
        "--deviations",
        metavar="FILE",
        help='expected deviations: {"deviations": [{"id" or "interpretation", "justification"}]}',
    )
    serve = vector_commands.add_parser(
        "serve", help="stand a single-step vector's world up as real servers (black-box mode)"
    )
    serve.add_argument("vector_id", metavar="VECTOR_ID")
    serve.add_argument("--vectors", action="append", metavar="PATH", help="vector files")
    serve.add_argument(
        "--record", metavar="FILE", help="where to write what the servers saw (default: stdout)"
    )
    serve.add_argument(
        "--seconds", type=float, default=600.0, help="how long to serve without --run (600)"
    )
    serve.add_argument(
        "--run",
        metavar="CMD",
        nargs=argparse.REMAINDER,
        help="run this inside the world (env MXRESOLVE_VECTOR_NAMESERVER, _CAFILE, "
        "_SERVER_NAME), then stop; must come last",
    )
    check = vector_commands.add_parser(
        "check", help="judge what a homeserver did in a served world (black-box mode)"
    )
    check.add_argument("vector_id", metavar="VECTOR_ID")
    check.add_argument("record", metavar="RECORD.json", help="what `vectors serve` recorded")
    check.add_argument("--vectors", action="append", metavar="PATH", help="vector files")
    check.add_argument("--json", action="store_true", help="print the result as JSON")


# Each subcommand: its name, its line in `mxresolve --help`, and what adds its arguments.
_COMMANDS: tuple[tuple[str, str, Callable[[argparse.ArgumentParser], None]], ...] = (
    ("resolve", "resolve a server name and explain it", _resolve_arguments),
    (
        "doctor",
        "check everything a remote homeserver meets, and say how to fix it",
        _doctor_arguments,
    ),
    ("vectors", "the spec-vectors", _vectors_arguments),
)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parser(argv).parse_args(argv)
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
        if args.command == "vectors" and args.vectors_command == "serve":
            return _vectors_serve(args)
        if args.command == "vectors" and args.vectors_command == "check":
            return _vectors_check(args)
        if args.command == "vectors":
            return _vectors_run(args)
    except BrokenPipeError:  # e.g. `mxresolve vectors run | head`: not an error
        # Point stdout at /dev/null so the interpreter's final flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
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


def _vectors_run(args: argparse.Namespace) -> int:
    from .conformance.deviations import (
        Deviations,
        DeviationsError,
        apply_deviation,
        load_deviations,
    )
    from .conformance.harness import MXRESOLVE_IMPLEMENTATION, HarnessError, run_harness
    from .vectors import VectorFormatError, load_vectors, run_vector

    try:
        vectors = load_vectors(args.paths)
        deviations = load_deviations(args.deviations) if args.deviations else Deviations()
    except (VectorFormatError, DeviationsError) as exc:
        print(f"mxresolve: {exc}", file=sys.stderr)
        return 2
    if args.explain:
        by_id = {v.id: v for v in vectors}
        unknown = [i for i in args.explain if i not in by_id]
        if unknown:
            print(f"mxresolve: no vector with id {', '.join(map(repr, unknown))}", file=sys.stderr)
            return 2
        vectors = [by_id[i] for i in args.explain]
    _print_warnings(vectors, every=args.warnings)
    if args.explain:
        statuses = [_explain(by_id[i]) for i in args.explain]
        return max(statuses)
    if args.harness is not None:
        if not args.harness:
            print("mxresolve: --harness needs a command", file=sys.stderr)
            return 2
        try:
            results, implementation = run_harness(args.harness, vectors)
        except HarnessError as exc:
            print(f"mxresolve: {exc}", file=sys.stderr)
            return 2
    else:
        results, implementation = [run_vector(v) for v in vectors], MXRESOLVE_IMPLEMENTATION
    results = [apply_deviation(r, deviations) for r in results]
    counts = Counter(r.verdict for r in results)
    if args.json:
        json.dump(
            {
                "implementation": implementation,
                "results": [r.to_json() for r in results],
                "passed": counts["pass"],
                "alternative": counts["alternative"],
                "failed": counts["fail"],
                "deviations": counts["deviation"],
                "skipped": counts["skip"],
            },
            sys.stdout,
            indent=2,
        )
        print()
    else:
        for r in results:
            print(_summary_line(r))
            for s in r.steps:
                for failure in s.failures:
                    print(f"        {s.name}: {failure}")
        print(
            f"{counts['pass']} passed, {counts['alternative']} alternative, "
            f"{counts['fail']} failed, {counts['deviation']} expected deviations, "
            f"{counts['skip']} skipped"
        )
    return 0 if counts["fail"] == 0 else 1


def _one_vector(paths: list[str] | None, vector_id: str) -> Vector | None:
    from .vectors import VectorFormatError, load_vectors

    try:
        vectors = load_vectors(paths or ())
    except VectorFormatError as exc:
        print(f"mxresolve: {exc}", file=sys.stderr)
        return None
    chosen = next((v for v in vectors if v.id == vector_id), None)
    if chosen is None:
        print(f"mxresolve: no vector with id {vector_id!r}", file=sys.stderr)
    return chosen


def _vectors_serve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .conformance import netns, serve

    vector = _one_vector(args.vectors, args.vector_id)
    if vector is None:
        return 2
    private = netns.enter_private_network()
    try:
        with serve.serving(vector) as world:
            description = world.description()
            description["private_network"] = private
            if private:
                description["join"] = (
                    f"nsenter --net=/proc/{os.getpid()}/ns/net -- YOUR-HOMESERVER-COMMAND"
                )
            print(json.dumps(description, indent=2), file=sys.stderr, flush=True)
            if args.run:
                status = serve.run_inside(args.run, world, timeout=args.seconds)
                print(f"mxresolve: {args.run[0]} exited with status {status}", file=sys.stderr)
            else:
                with contextlib.suppress(KeyboardInterrupt):
                    time.sleep(args.seconds)
            record = json.dumps(world.observations(), indent=2) + "\n"
    except serve.ServeError as exc:
        print(f"mxresolve: {exc}", file=sys.stderr)
        return 2
    if args.record:
        Path(args.record).write_text(record, encoding="utf-8")
    else:
        sys.stdout.write(record)
    return 0


def _vectors_check(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .conformance.judge import judge_step
    from .conformance.serve import observations_to_result

    vector = _one_vector(args.vectors, args.vector_id)
    if vector is None:
        return 2
    try:
        observed = json.loads(Path(args.record).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        print(f"mxresolve: {args.record}: {exc}", file=sys.stderr)
        return 2
    if observed.get("vector") not in (None, vector.id):
        print(f"mxresolve: {args.record} was recorded for {observed['vector']}", file=sys.stderr)
        return 2
    step, observation = observations_to_result(vector, observed)
    verdict = judge_step(step, observation, vector.level, narrow=True)
    failures = [f.to_json() for f in verdict.failures]
    if args.json:
        result = "fail" if failures else "pass"
        _print_json({"id": vector.id, "result": result, "failures": failures,
                     "observed": observation})  # fmt: skip
    else:
        print(f"{'FAIL' if failures else 'PASS'}  {vector.id}  (black box)")
        for failure in verdict.failures:
            print(f"        {failure}")
    return 1 if failures else 0


def _summary_line(r: VectorResult) -> str:
    verdict = r.verdict.upper()
    if r.verdict == "skip":
        return f"SKIP  {r.vector.id}  ({r.skipped})"
    decided = ",".join(sorted({s.decided_step or "-" for s in r.steps}))
    extra = ""
    if r.verdict == "alternative":
        extra = "  reading: " + ", ".join(s.alternative for s in r.steps if s.alternative)
    elif r.verdict in ("fail", "deviation"):
        labels = sorted({f.interpretation or f.level for s in r.steps for f in s.failures})
        extra = f"  [{', '.join(labels)}]"
    return f"{verdict:<5} {r.vector.id}  (step {decided}){extra}"


def _print_warnings(vectors: Sequence[Vector], *, every: bool) -> None:
    """What the loader ignored: each line with ``every``, else one line per vector.

    The bundled suite has a vector made to show that unknown things are ignored; its five
    warnings on every run would only teach users to skip the warnings that matter. A warning
    shared by many vectors (a whole file in an older format) is printed once.
    """
    lines: dict[str, None] = {}  # ordered and unique
    for vector in vectors:
        warnings = sorted(set(vector.warnings))
        if every or len(warnings) == 1:
            lines.update(dict.fromkeys(warnings))
        elif warnings:
            lines[
                f"vector {vector.id!r} ignored {len(warnings)} things it does not know "
                "(--warnings lists them)"
            ] = None
    for line in lines:
        print(f"mxresolve: warning: {line}", file=sys.stderr)


def _explain(vector: Vector) -> int:
    from .explain import render_result
    from .vectors import run_vector

    result = run_vector(vector)
    label = vector.requirement + (f" {vector.interpretation}" if vector.interpretation else "")
    print(f"Vector {vector.id}  [{label}]  ({vector.source})")
    print(textwrap.fill(vector.description, width=100))
    others = [i for i in vector.interpretations if i != vector.interpretation]
    if others:
        print(f"Interpretations of its steps and assertions: {', '.join(others)}")
    version = vector.raw.get("spec", {}).get("cited_version", "v1.19")
    for citation in vector.citations:
        step = f", step {citation['step']}" if "step" in citation else ""
        document = citation.get("document", f"Matrix spec {version}")
        print(f"\n{document}, {citation.get('section', '')}{step}:")
        print(textwrap.indent(textwrap.fill(str(citation["quote"]), width=96), "  > "))
    if vector.settings:
        print(f"\nSettings: {json.dumps(vector.settings)}")
    print(f"\nWorld at t=0 (epoch {vector.epoch:g}):")
    world = {**vector.world, **({"endpoints": vector.endpoints} if vector.endpoints else {})}
    print(textwrap.indent(json.dumps(world, indent=1), "  "))
    for step_result, vector_step in zip(result.steps, vector.steps, strict=True):
        at = vector_step.get("at", 0)
        print(f"\n--- {step_result.name}: resolve {vector_step['resolve']!r} at t={at} s ---")
        if "world_patch" in vector_step:
            print(f"World patch: {json.dumps(vector_step['world_patch'])}")
        assert step_result.result is not None
        print(render_result(step_result.result))
        verdict = "as expected" if not step_result.failures else "NOT as expected:"
        if step_result.alternative:
            verdict = f"as the alternative reading {step_result.alternative!r} expects"
        print(f"\nResult: {verdict}")
        for failure in step_result.failures:
            print(f"  - {failure}")
    print()
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
