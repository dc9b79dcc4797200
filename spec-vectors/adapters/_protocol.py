"""The adapter side of the harness protocol (docs/harness.md), standard library only.

An adapter subclasses :class:`Adapter`, says who it is and what it supports,
builds a resolver per vector in :meth:`Adapter.start`, and resolves in
:meth:`Adapter.resolve`, asking the runner through :meth:`Adapter.ask_dns` and
:meth:`Adapter.ask_https`. :meth:`Adapter.serve` runs the message loop.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import sys
from typing import IO, Any, ClassVar

PROTOCOL = 1


class Adapter:
    implementation: ClassVar[dict[str, Any]] = {}
    features: ClassVar[list[str]] = []
    settings: ClassVar[list[str] | None] = []  # setting keys it can map; None: all

    def __init__(self, inp: IO[str] = sys.stdin, out: IO[str] = sys.stdout) -> None:
        self._in, self._out = inp, out
        self._next = 0
        self.now = 0.0

    # --- to implement ------------------------------------------------------------------

    def start(self, vector: str, epoch: float, settings: dict[str, Any], seed: int) -> str | None:
        """Make a fresh resolver; return a reason to skip the vector, or None."""
        raise NotImplementedError

    def resolve(self, server_name: str) -> dict[str, Any]:
        """The result message: {"result": {...}, "step"?: ..., "cache"?: [...]}."""
        raise NotImplementedError

    def end(self) -> None:
        """Drop the vector's resolver."""

    # --- asking the runner -------------------------------------------------------------

    def ask_dns(self, qname: str, qtype: str) -> dict[str, Any]:
        name = qname.lower() if qname.endswith(".") else qname.lower() + "."
        return self._ask({"ask": "dns", "qname": name, "qtype": qtype})

    def ask_https(self, url: str) -> dict[str, Any]:
        """{"status", "headers", "body": bytes} or {"failure", "message"}."""
        answer = self._ask({"ask": "https", "url": url})
        if "body_base64" in answer:
            answer["body"] = base64.b64decode(answer.pop("body_base64"))
        return answer

    def _ask(self, message: dict[str, Any]) -> dict[str, Any]:
        self._next += 1
        self._send({**message, "id": self._next})
        answer = self._receive()
        if answer.get("answer") != self._next:
            raise RuntimeError(f"expected the answer to ask {self._next}, got {answer}")
        return answer

    # --- the loop ----------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        self._out.write(json.dumps(message) + "\n")
        self._out.flush()

    def _receive(self) -> dict[str, Any]:
        line = self._in.readline()
        if not line:
            raise SystemExit(0)
        message: dict[str, Any] = json.loads(line)
        return message

    def serve(self) -> int:
        while True:
            message = self._receive()
            command = message.get("cmd")
            if command == "hello":
                self._send(
                    {
                        "protocol": PROTOCOL,
                        "implementation": self.implementation,
                        "features": self.features,
                        "settings": self.settings,
                    }
                )
            elif command == "start":
                reason = self.start(
                    message["vector"],
                    float(message["epoch"]),
                    message.get("settings", {}),
                    int(message.get("seed", 0)),
                )
                self._send({"skip": reason} if reason else {"ok": True})
            elif command == "resolve":
                self.now = float(message["now"])
                try:
                    reply = self.resolve(message["server_name"])
                except Exception as exc:  # report it, never die mid-vector
                    reply = {"result": {"error": "adapter_error", "message": repr(exc)}}
                self._send(reply)
            elif command == "end":
                self.end()
                self._send({"ok": True})
            elif command == "quit":
                return 0
            else:
                self._send({"error": f"unknown command {command!r}"})


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def split_host_port(netloc: str) -> tuple[str, int | None]:
    """'host:8448' -> ('host', 8448); '[2001:db8::1]:80' -> ('2001:db8::1', 80)."""
    if netloc.startswith("["):
        host, _, rest = netloc[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    host, sep, port = netloc.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host, int(port)
    return netloc, None


def target(host: str, port: int, host_header: str, tls_name: str) -> dict[str, Any]:
    host = host.strip("[]").lower().rstrip(".")
    if is_ip(host):
        host = str(ipaddress.ip_address(host))
    tls = tls_name.strip("[]")
    if is_ip(tls):
        tls = str(ipaddress.ip_address(tls))
    return {
        "host": host,
        "port": port,
        "host_header": host_header,
        "tls_server_name": tls,
        "sni": None if is_ip(tls) else tls,
    }
