"""``mxresolve doctor``: why federation with a server name breaks, and how to fix it.

It resolves the name as the spec says (the same machine as ``mxresolve resolve``),
then runs every check a remote homeserver meets, concurrently and within
deadlines, and reports problems by stable codes (docs/doctor.md).

Layout: ``codes`` (the contract), ``report`` (the model), ``probe`` (one
bounded connection), ``context`` (what checks share), ``checks/`` (one module
per area), ``runner`` (resolution, then the checks), ``render`` (people and JSON).
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(doctor: argparse.ArgumentParser) -> None:
    """The arguments of ``mxresolve doctor`` (its line in ``mxresolve --help`` is the CLI's)."""
    doctor.add_argument("server_name", metavar="SERVER_NAME")
    doctor.add_argument("--json", action="store_true", help="print one JSON object")
    doctor.add_argument(
        "--nameserver", action="append", metavar="IP[:PORT]", help="DNS server (repeatable)"
    )
    doctor.add_argument("--cafile", metavar="PEM", help="trust these CAs instead of certifi's")
    doctor.add_argument(
        "--allow-ip", action="append", metavar="CIDR", help="allow a refused range (repeatable)"
    )
    doctor.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="per request (10); the whole run ends within about 5 times this",
    )


class _Progress:
    """One self-erasing status line on stderr, only on a terminal."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()

    def __call__(self, done: int, total: int, what: str) -> None:
        if self.live:
            sys.stderr.write(f"\r\x1b[2K  checking: {done}/{total} areas done ({what})")
            sys.stderr.flush()

    def start(self, name: str) -> None:
        if self.live:
            sys.stderr.write(f"\r\x1b[2K  resolving {name}...")
            sys.stderr.flush()

    def clear(self) -> None:
        if self.live:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 federation works (maybe with warnings), 1 it fails, 2 bad input."""
    # Imported here: `mxresolve --help` and the other subcommands need none of it.
    import asyncio

    from ..._core.errors import InvalidServerName, MxresolveError
    from ..._core.events import FailureKind
    from .context import Options
    from .render import render_human, render_json, use_colour
    from .runner import diagnose

    if args.timeout is None or not 0 < args.timeout <= 300:
        return _bad_input(args, "invalid_argument", "--timeout must be in (0, 300] seconds")
    options = Options(
        nameservers=args.nameserver,
        cafile=args.cafile,
        allow_ips=args.allow_ip,
        timeout=args.timeout,
    )
    progress = _Progress()
    progress.start(args.server_name)
    try:
        report = asyncio.run(diagnose(args.server_name, options, progress=progress))
    except InvalidServerName as exc:
        return _bad_input(args, FailureKind.INVALID_SERVER_NAME.value, str(exc))
    except MxresolveError as exc:
        return _bad_input(args, "invalid_argument", str(exc))
    except Exception as exc:  # a bug in the doctor: still one line, or one JSON object
        message = f"the doctor failed: {type(exc).__name__}: {exc}"
        return _bad_input(args, "internal_error", message, status=1)
    finally:
        progress.clear()
    if args.json:
        print(render_json(report))
    else:
        print(render_human(report, colour=use_colour(sys.stdout)))
    return 0 if report.federation_ok else 1


def _bad_input(args: argparse.Namespace, kind: str, message: str, *, status: int = 2) -> int:
    if args.json:
        print(
            json.dumps(
                {"server_name": args.server_name, "error": {"kind": kind, "message": message}},
                indent=2,
            )
        )
    else:
        print(f"mxresolve doctor: {message}", file=sys.stderr)
    return status
