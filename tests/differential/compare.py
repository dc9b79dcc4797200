"""Compare an mxresolve resolution with what Synapse dialled, at the level both can observe.

Pure functions on plain data: no sockets, no servers, no Synapse. ``run_synapse.py`` feeds it
real results; ``test_compare.py`` feeds it hand-made ones.

What is compared (``compare``):

* **outcome**: mxresolve returned targets vs. a failure; Synapse dialled at least one endpoint
  for the federation request vs. failed before dialling. What happens after the TCP connect
  (TLS verification, the HTTP response) is not resolution and does not count.
* **first endpoint**: the first ``(ip, port)`` Synapse dialled must be the first endpoint of a
  target in mxresolve's first group. A group is one target, or a run of SRV targets of equal
  priority: RFC 2782 orders those at random, so any of them may come first.
* **endpoints**: every endpoint Synapse dialled must be one mxresolve lists, in group order.
  Synapse stops at the first TCP success, so it usually dials only a prefix of the list.
* **Host header**, **TLS name** and, when Synapse got as far as a TLS handshake, **SNI**: those
  of the mxresolve target that owns the first endpoint Synapse dialled.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mxresolve import DnsResult, Resolution, ResolutionFailure, SrvRecord, Step

Endpoint = tuple[str, int]
Verdict = Literal["agree", "differ"]

# Steps whose targets come from SRV records (their order within a priority is random).
SRV_STEPS = frozenset({Step.DELEGATED_SRV, Step.DELEGATED_LEGACY_SRV, Step.SRV, Step.LEGACY_SRV})
# Error text showing that Synapse's TLS handshake started (so its SNI was observable).
_TLS_ERROR_MARKERS = ("VerificationError", "SSL.Error", "SSLError", "TLS")


def endpoint(ip: str, port: int) -> Endpoint:
    """An ``(ip, port)`` pair with the IP in canonical text form (RFC 5952 for IPv6)."""
    return (str(ipaddress.ip_address(ip)), int(port))


def format_endpoint(ep: Endpoint) -> str:
    ip, port = ep
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


@dataclass(frozen=True)
class MxTarget:
    """One mxresolve target, reduced to what a connection would use."""

    endpoints: tuple[Endpoint, ...]  # (address, port) in mxresolve's order
    host_header: str
    tls_server_name: str
    sni: str | None
    srv_priority: int | None = None  # set for targets that came from SRV records


@dataclass(frozen=True)
class MxSide:
    """mxresolve's answer: targets in order, or an error (``"kind: message"``)."""

    step: str | None
    targets: tuple[MxTarget, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def groups(self) -> list[tuple[MxTarget, ...]]:
        """Targets in order, runs of equal SRV priority merged into one unordered group."""
        groups: list[list[MxTarget]] = []
        for t in self.targets:
            prev = groups[-1][-1] if groups else None
            if (
                prev is not None
                and t.srv_priority is not None
                and prev.srv_priority == t.srv_priority
            ):
                groups[-1].append(t)
            else:
                groups.append([t])
        return [tuple(g) for g in groups]

    def endpoints(self) -> list[Endpoint]:
        return [ep for t in self.targets for ep in t.endpoints]


@dataclass(frozen=True)
class SynapseSide:
    """What the Synapse driver observed for one name (``synapse_peer.py``, mode ``resolve``)."""

    dialled: tuple[Endpoint, ...]
    host_header: str | None
    tls_name: str | None
    sni: str | None
    error: str | None
    response_status: int | None = None
    well_known: str | None = None

    @property
    def resolved(self) -> bool:
        """Synapse got as far as dialling the federation request."""
        return bool(self.dialled)

    @property
    def tls_observed(self) -> bool:
        """A TLS handshake started, so ``sni`` is what was sent (not just "not observed")."""
        if self.response_status is not None:
            return True
        return self.error is not None and any(m in self.error for m in _TLS_ERROR_MARKERS)

    @classmethod
    def from_driver(cls, result: Mapping[str, Any]) -> SynapseSide:
        """Build from one entry of the driver's ``results`` list."""
        response = result.get("response")
        status = response.get("status") if isinstance(response, Mapping) else None
        return cls(
            dialled=tuple(endpoint(str(ip), int(port)) for ip, port in result.get("dialled", [])),
            host_header=result.get("host_header"),
            tls_name=result.get("tls_name"),
            sni=result.get("sni"),
            error=result.get("error"),
            response_status=int(status) if status is not None else None,
            well_known=result.get("well_known"),
        )


@dataclass(frozen=True)
class Comparison:
    verdict: Verdict
    aspects: tuple[str, ...]  # which observables differ: outcome, first endpoint, ...
    details: tuple[str, ...]  # one sentence per aspect (or one for an agreement)


def compare(mx: MxSide, syn: SynapseSide) -> Comparison:
    """Compare the two sides; ``aspects`` is empty exactly when the verdict is ``agree``."""
    if not mx.ok and not syn.resolved:
        return Comparison("agree", (), (f"both fail: mxresolve {mx.error}; Synapse {syn.error}",))
    if mx.ok and not syn.resolved:
        return Comparison(
            "differ",
            ("outcome",),
            (f"mxresolve resolves (step {mx.step}); Synapse fails before dialling: {syn.error}",),
        )
    if not mx.ok:
        dialled = ", ".join(format_endpoint(e) for e in syn.dialled)
        return Comparison(
            "differ",
            ("outcome",),
            (f"mxresolve fails ({mx.error}); Synapse dials {dialled}",),
        )

    groups = mx.groups()
    owner: dict[Endpoint, tuple[int, MxTarget]] = {}
    for gi, group in enumerate(groups):
        for t in group:
            for ep in t.endpoints:
                owner.setdefault(ep, (gi, t))
    aspects: list[str] = []
    details: list[str] = []

    first = syn.dialled[0]
    firsts = [t.endpoints[0] for t in groups[0] if t.endpoints] if groups else []
    if first not in firsts:
        aspects.append("first endpoint")
        want = " or ".join(format_endpoint(e) for e in firsts) or "nothing"
        details.append(
            f"Synapse dials {format_endpoint(first)} first; mxresolve starts with {want}"
        )

    unknown = [e for e in syn.dialled if e not in owner]
    order = [owner[e][0] for e in syn.dialled if e in owner]
    if unknown:
        aspects.append("endpoints")
        details.append(
            "Synapse dials "
            + ", ".join(format_endpoint(e) for e in unknown)
            + ", which mxresolve does not list"
        )
    elif any(a > b for a, b in itertools.pairwise(order)):
        aspects.append("endpoints")
        details.append("Synapse dials mxresolve's endpoints out of priority order")

    target = owner[first][1] if first in owner else mx.targets[0]
    if syn.host_header != target.host_header:
        aspects.append("Host header")
        details.append(f"Host: mxresolve {target.host_header!r}, Synapse {syn.host_header!r}")
    if syn.tls_name != target.tls_server_name:
        aspects.append("TLS name")
        details.append(f"TLS name: mxresolve {target.tls_server_name!r}, Synapse {syn.tls_name!r}")
    if syn.tls_observed and syn.sni != target.sni:
        aspects.append("SNI")
        details.append(f"SNI: mxresolve {target.sni!r}, Synapse {syn.sni!r}")

    if aspects:
        return Comparison("differ", tuple(aspects), tuple(details))
    return Comparison("agree", (), ("same endpoints, Host, TLS name and SNI",))


# --- adapters from mxresolve's own types --------------------------------------------------


def _srv_priorities(result: Resolution) -> dict[tuple[str, int], int]:
    """(target host, port) -> SRV priority, from the SRV answers of the deciding step."""
    found: dict[tuple[str, int], int] = {}
    for event in result.trace:
        outcome = event.outcome
        if event.step != result.step or not isinstance(outcome, DnsResult):
            continue
        for record in outcome.records:
            if isinstance(record, SrvRecord):
                key = (record.target.rstrip(".").lower(), record.port)
                found[key] = min(found.get(key, record.priority), record.priority)
    return found


def mx_side(result: Resolution | ResolutionFailure) -> MxSide:
    """Reduce an mxresolve result to the observable level."""
    if isinstance(result, ResolutionFailure):
        step = None if result.step is None else result.step.value
        return MxSide(step=step, error=f"{result.kind.value}: {result.message}")
    priorities = _srv_priorities(result) if result.step in SRV_STEPS else {}
    targets = tuple(
        MxTarget(
            endpoints=tuple(endpoint(a, t.port) for a in t.addresses),
            host_header=t.host_header,
            tls_server_name=t.tls_server_name,
            sni=t.sni,
            srv_priority=priorities.get((t.host, t.port)),
        )
        for t in result.targets
    )
    return MxSide(step=result.step.value, targets=targets)
