"""The runner side of the harness protocol (docs/harness.md).

The runner starts an adapter (any program, any language), sends it each
vector's steps as JSON lines on its stdin, answers every DNS and HTTPS question
it asks from the vector's world at the vector's clock, and judges the result it
returns with the same code as the in-process runner. Each message is one JSON
object on one line; the adapter logs to stderr, never to stdout.
"""

from __future__ import annotations

import base64
import contextlib
import json
import queue
import subprocess
import threading
from collections.abc import Mapping, Sequence
from typing import IO, Any
from urllib.parse import urlsplit

from ... import __version__ as _version
from ..._core.events import (
    DnsQuery,
    DnsResult,
    HttpsFailure,
    HttpsGet,
    HttpsResponse,
    RecordType,
    SrvRecord,
)
from ..._core.settings import Settings
from ..vectors import (
    FEATURES,
    StepResult,
    Vector,
    VectorResult,
    skip_reason,
    step_name,
)
from .judge import judge_step
from .world import VectorWorld

__all__ = ["MXRESOLVE_IMPLEMENTATION", "PROTOCOL", "HarnessError", "run_harness"]

PROTOCOL = 1
MXRESOLVE_IMPLEMENTATION = {
    "name": "mxresolve",
    "version": _version,
    "language": "python",
    "adapter": "in-process",
}
REPLY_TIMEOUT = 30.0  # seconds an adapter may take for one message
MAX_ASKS = 1000  # questions in one step: a resolver asking more is looping
_DEFAULT_MAX_BODY = Settings().max_body_bytes


class HarnessError(Exception):
    """The adapter broke the protocol, died, or stopped answering."""


class _Adapter:
    def __init__(self, command: Sequence[str]) -> None:
        try:
            self.process = subprocess.Popen(
                list(command),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                bufsize=1,
            )
        except OSError as exc:
            raise HarnessError(f"cannot start the adapter {command[0]!r}: {exc}") from None
        self.lines: queue.Queue[str | None] = queue.Queue()
        assert self.process.stdout is not None
        self.reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self.reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, message: Mapping[str, Any]) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise HarnessError(f"the adapter exited (status {self.process.poll()})") from None

    def receive(self) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=REPLY_TIMEOUT)
        except queue.Empty:
            raise HarnessError(f"the adapter sent nothing for {REPLY_TIMEOUT:g} s") from None
        if line is None:
            raise HarnessError(f"the adapter exited (status {self.process.wait(5)})")
        try:
            message = json.loads(line)
        except ValueError:
            raise HarnessError(
                f"the adapter wrote a line that is not JSON: {line[:200]!r}"
            ) from None
        if not isinstance(message, dict):
            raise HarnessError(f"the adapter wrote {line[:200]!r}, not a JSON object")
        return message

    def close(self) -> None:
        try:
            self.send({"cmd": "quit"})
            self.process.wait(10)
        except (HarnessError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        # The reader ends at the adapter's end of output; only then close its pipe.
        self.reader.join(10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):  # it died mid-write: nothing to flush
                    stream.close()


def run_harness(
    command: Sequence[str], vectors: Sequence[Vector]
) -> tuple[list[VectorResult], dict[str, Any]]:
    """Run ``vectors`` against the adapter started by ``command``."""
    adapter = _Adapter(command)
    try:
        adapter.send({"cmd": "hello", "protocol": PROTOCOL})
        hello = adapter.receive()
        if hello.get("protocol") != PROTOCOL or not isinstance(hello.get("implementation"), dict):
            raise HarnessError(f"expected a hello for protocol {PROTOCOL}, got {hello}")
        # The runner answers from the endpoints itself: every adapter supports them.
        features = (frozenset(hello.get("features", ())) & FEATURES) | {"endpoints"}
        settings_keys = hello.get("settings", [])
        results = [_run(adapter, v, features, settings_keys) for v in vectors]
        return results, dict(hello["implementation"])
    finally:
        adapter.close()


def _run(
    adapter: _Adapter, vector: Vector, features: frozenset[str], settings_keys: Any
) -> VectorResult:
    reason = skip_reason(vector, features)
    unmapped = (
        sorted(set(vector.settings) - set(settings_keys)) if isinstance(settings_keys, list) else []
    )
    if reason is None and unmapped:
        reason = f"cannot map settings {', '.join(unmapped)}"
    if reason is not None:
        return VectorResult(vector=vector, steps=(), skipped=reason)
    adapter.send(
        {
            "cmd": "start",
            "vector": vector.id,
            "epoch": vector.epoch,
            "settings": vector.settings,
            "seed": 0,
        }
    )
    started = adapter.receive()
    if "skip" in started:
        return VectorResult(vector=vector, steps=(), skipped=f"adapter: {started['skip']}")
    world = VectorWorld(
        {**vector.world, "endpoints": vector.endpoints}, now=vector.epoch, epoch=vector.epoch
    )
    max_body = int(vector.settings.get("max_body_bytes", _DEFAULT_MAX_BODY))
    steps = []
    for index, step in enumerate(vector.steps):
        if "world_patch" in step:
            world.patch(step["world_patch"])
        world.now = vector.epoch + float(step.get("at", 0))
        name = step_name(step, index)
        adapter.send(
            {"cmd": "resolve", "step": name, "server_name": step["resolve"], "now": world.now}
        )
        before = len(world.log)
        reply = _answer_until_result(adapter, world, max_body)
        observed: dict[str, Any] = {
            "outcome": _outcome(reply.get("result")),
            "requests": [r.to_json() for r in world.log[before:]],
            "epoch": vector.epoch,
        }
        if "step" in reply:
            observed["step"] = reply["step"]
        if isinstance(reply.get("cache"), list):
            observed["cache"] = reply["cache"]
        verdict = judge_step(step, observed, vector.level, narrow="address-level" not in features)
        steps.append(
            StepResult(
                name=name,
                decided_step=reply.get("step"),
                failures=verdict.failures,
                result=None,
                observed=observed,
                alternative=verdict.alternative,
                not_compared=verdict.not_compared,
            )
        )
    adapter.send({"cmd": "end", "vector": vector.id})
    adapter.receive()
    return VectorResult(vector=vector, steps=tuple(steps))


def _outcome(result: Any) -> dict[str, Any]:
    if not isinstance(result, dict):
        raise HarnessError(f"a result must be an object with 'targets' or 'error', not {result!r}")
    if "error" in result:
        return {"error": str(result["error"]), "message": str(result.get("message", ""))}
    targets = result.get("targets")
    if not isinstance(targets, list):
        raise HarnessError(f"a result needs a 'targets' list or an 'error': {result!r}")
    return {"targets": targets}


def _answer_until_result(adapter: _Adapter, world: VectorWorld, max_body: int) -> dict[str, Any]:
    for _ in range(MAX_ASKS):
        message = adapter.receive()
        if "result" in message:
            return message
        ask = message.get("ask")
        if ask == "dns":
            answer = _dns(world, message)
        elif ask == "https":
            answer = _https(world, message, max_body)
        else:
            raise HarnessError(f"expected an 'ask' or a 'result', got {message}")
        adapter.send({"answer": message.get("id"), **answer})
    raise HarnessError(f"more than {MAX_ASKS} questions in one step")


def _dns(world: VectorWorld, ask: Mapping[str, Any]) -> dict[str, Any]:
    qname = str(ask.get("qname", "")).lower()
    qname = qname if qname.endswith(".") else qname + "."
    try:
        rdtype = RecordType(ask.get("qtype"))
    except ValueError:
        # A type the world cannot hold (TXT, HTTPS...): nothing there.
        return {"status": "NODATA"}
    outcome = world.answer(DnsQuery(qname=qname, rdtype=rdtype))
    assert isinstance(outcome, DnsResult)
    out: dict[str, Any] = {"status": outcome.status.value}
    if outcome.records:
        out["records"] = [
            {"priority": r.priority, "weight": r.weight, "port": r.port, "target": r.target}
            if isinstance(r, SrvRecord)
            else r
            for r in outcome.records
        ]
        out["ttl"] = outcome.ttl
    out["aliases"] = list(outcome.aliases)
    return out


def _https(world: VectorWorld, ask: Mapping[str, Any], max_body: int) -> dict[str, Any]:
    url = str(ask.get("url", ""))
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return {"failure": "protocol_error", "message": f"not an https URL: {url!r}"}
    host = parts.hostname
    port = parts.port or 443
    request = HttpsGet(
        url=url,
        host=host,
        port=port,
        target=(parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
        host_header=parts.netloc,
        max_body_bytes=max_body,
    )
    outcome = world.answer(request)
    if isinstance(outcome, HttpsFailure):
        return {"failure": outcome.kind.value, "message": outcome.message}
    assert isinstance(outcome, HttpsResponse)
    return {
        "status": outcome.status,
        "headers": [list(h) for h in outcome.headers],
        "body_base64": base64.b64encode(outcome.body).decode("ascii"),
    }
