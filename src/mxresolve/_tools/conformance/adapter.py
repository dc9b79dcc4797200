"""mxresolve's own adapter for the harness protocol (docs/harness.md).

    mxresolve vectors run --harness python -m mxresolve._tools.conformance.adapter [--ask-early]

A :class:`~mxresolve.Resolver` whose DNS and HTTPS transports ask the runner
over stdout and read its answers from stdin, with the runner's clock. Running
the suite this way and in-process must give the same results (a test checks it).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import random
import sys
from collections.abc import Mapping
from typing import IO, Any

from ... import __version__
from ..._core.cache import ResolverCache
from ..._core.errors import InvalidServerName
from ..._core.events import (
    DnsQuery,
    DnsResult,
    DnsStatus,
    HttpsFailure,
    HttpsFailureKind,
    HttpsGet,
    HttpsResponse,
    Request,
    Resolution,
    ResolutionFailure,
    SrvRecord,
)
from ..._io.resolver import Resolver
from ..vectors import FEATURES, cache_entries, run_settings

__all__ = ["main"]


class _Channel:
    def __init__(self, inp: IO[str], out: IO[str]) -> None:
        self.inp, self.out = inp, out
        self.next_id = 0
        self.asked: list[Request] = []

    def send(self, message: Mapping[str, Any]) -> None:
        self.out.write(json.dumps(message) + "\n")
        self.out.flush()

    def receive(self) -> dict[str, Any]:
        line = self.inp.readline()
        if not line:
            raise SystemExit(0)  # the runner went away
        message: dict[str, Any] = json.loads(line)
        return message

    def ask(self, request: Request, payload: dict[str, Any]) -> dict[str, Any]:
        self.asked.append(request)
        self.next_id += 1
        self.send({**payload, "id": self.next_id})
        answer = self.receive()
        if answer.get("answer") != self.next_id:
            raise SystemExit(f"adapter: expected the answer to {self.next_id}, got {answer}")
        return answer


class _Dns:
    def __init__(self, channel: _Channel) -> None:
        self.channel = channel

    def query(self, query: DnsQuery, timeout: float) -> DnsResult:
        a = self.channel.ask(
            query, {"ask": "dns", "qname": query.qname, "qtype": query.rdtype.value}
        )
        status = DnsStatus(a["status"])
        records: tuple[str | SrvRecord, ...] = tuple(
            SrvRecord(**r) if isinstance(r, dict) else str(r) for r in a.get("records", ())
        )
        return DnsResult(
            status=status,
            records=records if status is DnsStatus.NOERROR else (),
            ttl=a.get("ttl") if status is DnsStatus.NOERROR else None,
            aliases=tuple(a.get("aliases", ())),
        )


class _Https:
    def __init__(self, channel: _Channel) -> None:
        self.channel = channel

    def fetch(self, request: HttpsGet, timeout: float) -> HttpsResponse | HttpsFailure:
        a = self.channel.ask(request, {"ask": "https", "url": request.url})
        if "failure" in a:
            return HttpsFailure(kind=HttpsFailureKind(a["failure"]), message=a.get("message", ""))
        body = base64.b64decode(a.get("body_base64", ""))
        if len(body) > request.max_body_bytes:
            return HttpsFailure(kind=HttpsFailureKind.BODY_TOO_LARGE, message="over the limit")
        headers = tuple((str(k), str(v)) for k, v in a.get("headers", ()))
        return HttpsResponse(status=int(a["status"]), headers=headers, body=body)


def main(
    inp: IO[str] = sys.stdin, out: IO[str] = sys.stdout, *, ask_early: bool | None = None
) -> int:
    """Serve the protocol. ``ask_early``: keep mxresolve's early questions (I-37 to I-39)."""
    if ask_early is None:
        ask_early = "--ask-early" in sys.argv[1:]
    channel = _Channel(inp, out)
    resolver: Resolver | None = None
    cache = ResolverCache()
    clock = [0.0]
    while True:
        message = channel.receive()
        command = message.get("cmd")
        if command == "hello":
            channel.send(
                {
                    "protocol": 1,
                    "implementation": {
                        "name": "mxresolve",
                        "version": __version__,
                        "language": "python",
                        "adapter": "mxresolve._tools.conformance.adapter"
                        + (" --ask-early (the defaults)" if ask_early else " (asking early off)"),
                    },
                    "features": sorted(FEATURES),
                    "settings": None,  # every key: they are mxresolve's Settings fields
                }
            )
        elif command == "start":
            cache = ResolverCache()
            channel.asked = []
            resolver = Resolver(
                # The runner resolves HTTPS hosts itself, and the vectors' request
                # assertions describe a resolver asking one question at a time: mxresolve's
                # early questions (I-37 to I-39) are off unless the vector sets them.
                # One request at a time: this channel waits for each answer in turn.
                settings=dataclasses.replace(
                    run_settings(message.get("settings", {}), early=None if ask_early else False),
                    max_concurrent_requests=1,
                ),
                cache=cache,
                dns=_Dns(channel),
                https=_Https(channel),
                clock=lambda: clock[0],
                random=random.Random(message.get("seed", 0)).random,
                max_memo=0,
            )
            channel.send({"ok": True})
        elif command == "resolve":
            assert resolver is not None, "resolve before start"
            clock[0] = float(message["now"])
            try:
                result: Resolution | ResolutionFailure | None = resolver.resolve_result(
                    message["server_name"]
                )
            except InvalidServerName as exc:
                result = None
                reply: dict[str, Any] = {
                    "result": {"error": "invalid_server_name", "message": str(exc)},
                    "step": None,
                }
            if isinstance(result, ResolutionFailure):
                reply = {
                    "result": {"error": result.kind.value, "message": result.message},
                    "step": None if result.step is None else result.step.value,
                }
            elif isinstance(result, Resolution):
                reply = {
                    "result": {"targets": [t.to_json() for t in result.targets]},
                    "step": result.step.value,
                }
            reply["cache"] = cache_entries(cache, channel.asked, clock[0])
            channel.send(reply)
        elif command == "end":
            resolver = None
            channel.send({"ok": True})
        elif command == "quit":
            return 0
        else:
            channel.send({"error": f"unknown command {command!r}"})


if __name__ == "__main__":
    sys.exit(main())
