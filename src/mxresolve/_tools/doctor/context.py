"""What every check shares: the options, the resolutions, and memoised probes."""

from __future__ import annotations

import asyncio
import importlib.util
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..._core.events import (
    HttpsGet,
    HttpsResponse,
    Outcome,
    Resolution,
    ResolutionFailure,
    Target,
    TraceKind,
)
from ..._core.grammar import ServerName
from ..._core.settings import IpPolicy
from ..._core.wellknown import InvalidWellKnown, parse_well_known_body
from ..._io.dns_transport import AsyncDnsTransport
from .probe import Probe, probe, unverified_context

__all__ = ["EXTRA_HINT", "Context", "Options", "have"]

EXTRA_HINT = "pip install 'mxresolve[doctor]'"


def have(module: str) -> bool:
    """Whether an optional library (from the ``doctor`` extra) is importable."""
    return importlib.util.find_spec(module) is not None


@dataclass(frozen=True, kw_only=True)
class Options:
    nameservers: Sequence[str] | None = None
    cafile: str | None = None
    allow_ips: Sequence[str] | None = None
    timeout: float = 10.0  # per request; the whole run is bounded by a few of these

    @property
    def resolution_deadline(self) -> float:
        return 2 * self.timeout

    @property
    def checks_deadline(self) -> float:
        return 3 * self.timeout + 1


@dataclass(kw_only=True)
class Context:
    server_name: ServerName
    options: Options
    resolution: Resolution | ResolutionFailure
    fallback: Resolution | ResolutionFailure | None
    ssl_context: ssl.SSLContext
    ip_policy: IpPolicy
    dns: AsyncDnsTransport
    started: float = field(default_factory=time.time)
    target_ok: dict[Target, bool] = field(default_factory=dict)
    _probes: dict[tuple[object, ...], asyncio.Task[Probe]] = field(default_factory=dict)
    _unverified: ssl.SSLContext = field(default_factory=unverified_context)

    @property
    def delegated(self) -> bool:
        return isinstance(self.resolution, Resolution) and self.resolution.step.value.startswith(
            "3."
        )

    @property
    def well_known_exchanges(self) -> list[tuple[HttpsGet, Outcome]]:
        """Every well-known request of the resolution (one per redirect hop), with its outcome."""
        return [
            (e.request, e.outcome)
            for e in self.resolution.trace
            if e.kind is TraceKind.OUTCOME
            and isinstance(e.request, HttpsGet)
            and e.outcome is not None
        ]

    @property
    def delegated_name(self) -> ServerName | None:
        """The ``m.server`` the resolution followed, read with the resolver's own parser."""
        exchanges = self.well_known_exchanges
        if not exchanges or not isinstance(exchanges[-1][1], HttpsResponse):
            return None
        response = exchanges[-1][1]
        if response.status != 200:
            return None
        try:
            return parse_well_known_body(response.body)
        except InvalidWellKnown:
            return None

    def probe(
        self,
        address: str,
        port: int,
        server_hostname: str,
        *,
        verify: bool = True,
        path: str | None = None,
        host_header: str | None = None,
    ) -> asyncio.Task[Probe]:
        """One probe per distinct question, shared by every check that asks it."""
        key = (address, port, server_hostname, verify, path, host_header)
        task = self._probes.get(key)
        if task is None:
            task = asyncio.ensure_future(
                probe(
                    address,
                    port,
                    server_hostname=server_hostname,
                    context=self.ssl_context if verify else self._unverified,
                    timeout=self.options.timeout,
                    path=path,
                    host_header=host_header,
                )
            )
            self._probes[key] = task
        return task

    def cancel_probes(self) -> None:
        for task in self._probes.values():
            task.cancel()
