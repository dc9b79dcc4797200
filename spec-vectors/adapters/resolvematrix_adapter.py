#!/usr/bin/env python3
"""Harness adapter (docs/harness.md) for resolvematrix 1.0 (PyPI), a synchronous resolver.

Run it with a Python that has resolvematrix installed::

    mxresolve vectors run --harness /path/to/venv/bin/python \
        spec-vectors/adapters/resolvematrix_adapter.py

``ServerResolver`` takes its DNS resolver (a dnspython ``Resolver``) and its HTTP
client (an ``httpx.Client``) as arguments; this adapter passes a ``Resolver`` whose
``resolve()`` asks the runner, and a client on an ``httpx.MockTransport`` whose
handler asks the runner, so httpx follows redirects one ask per hop. resolvematrix
caches whole resolutions on the wall clock, so a cache that keeps nothing is passed
and no cache feature is declared. It returns a host, a port, a Host header and an
SNI name (no addresses, no deciding step).
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from typing import Any, ClassVar

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import httpx
from _protocol import Adapter, target
from resolvematrix import server as rm_server
from resolvematrix.cache import BaseCache
from resolvematrix.err import ResolutionError

_FAILURES = {
    "connect_timeout": httpx.ConnectTimeout,
    "read_timeout": httpx.ReadTimeout,
    "protocol_error": httpx.RemoteProtocolError,
    "connection_reset": httpx.ReadError,
}


class _NoCache(BaseCache):
    size = 0

    def cleanup(self) -> int:
        return 0

    def add(self, server_name: str, destination: Any, ttl: float | None = None) -> None:
        return None

    def get(self, server_name: str) -> None:
        return None

    def get_entry(self, server_name: str) -> None:
        return None

    def clear(self) -> None:
        return None

    def remove(self, server_name: str) -> None:
        return None

    def refresh(self, server_name: str) -> None:
        return None

    def mark_online(self, server_name: str) -> None:
        return None

    def mark_offline(self, server_name: str) -> None:
        return None


class ResolvematrixAdapter(Adapter):
    implementation: ClassVar[dict[str, Any]] = {
        "name": "resolvematrix",
        "version": importlib.metadata.version("resolvematrix"),
        "language": "python",
        "adapter": "spec-vectors/adapters/resolvematrix_adapter.py",
    }
    features: ClassVar[list[str]] = [
        "deprecated-matrix-srv",
        "observable-redirects",
        "address-lookup",
        "ipv6",
    ]
    settings: ClassVar[list[str] | None] = []

    def start(self, vector: str, epoch: float, settings: dict[str, Any], seed: int) -> str | None:
        adapter = self

        class AskingResolver(dns.resolver.Resolver):
            def resolve(self, qname: Any, rdtype: Any = "A", *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
                name = str(qname)
                answer = adapter.ask_dns(name, str(rdtype))
                status = answer["status"]
                if status == "NXDOMAIN":
                    raise dns.resolver.NXDOMAIN(qnames=[dns.name.from_text(name)])
                if status == "NODATA":
                    raise dns.resolver.NoAnswer()
                if status == "TIMEOUT":
                    raise dns.resolver.LifetimeTimeout(timeout=0.0, errors=[])
                if status != "NOERROR":
                    raise dns.resolver.NoNameservers()
                return [_rdata(str(rdtype), r) for r in answer["records"]]

        def handler(request: httpx.Request) -> httpx.Response:
            answer = adapter.ask_https(str(request.url))
            if "failure" in answer:
                kind = _FAILURES.get(answer["failure"], httpx.ConnectError)
                raise kind(f"{answer['failure']}: {answer.get('message', '')}", request=request)
            return httpx.Response(
                answer["status"], headers=answer.get("headers", []), content=answer["body"]
            )

        self.resolver = rm_server.ServerResolver(
            client=httpx.Client(transport=httpx.MockTransport(handler)),
            dns_resolver=AskingResolver(configure=False),
            cache=_NoCache(),
        )
        return None

    def resolve(self, server_name: str) -> dict[str, Any]:
        try:
            dest = self.resolver.resolve(server_name)
        except ValueError as exc:
            return {"result": {"error": "invalid_server_name", "message": str(exc)}}
        except ResolutionError as exc:
            return {"result": {"error": "no_address", "message": str(exc)}}
        host, _, port = dest.hostname.rpartition(":")
        tls = dest.sni if dest.sni is not None else host
        return {"result": {"targets": [target(host, int(port), dest.host_header, tls)]}}


def _rdata(rdtype: str, record: Any) -> Any:
    if isinstance(record, dict):  # SRV
        text = f"{record['priority']} {record['weight']} {record['port']} {record['target']}"
    else:
        text = str(record)
    return dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype), text)


if __name__ == "__main__":
    sys.exit(ResolvematrixAdapter().serve())
