"""A vector's world (format 2): DNS, HTTPS responses, and endpoints with certificates.

:class:`VectorWorld` is a :class:`~mxresolve.FakeWorld` that also knows which
``address:port`` serves which certificate, refuses or times out
(``world.endpoints``, spec-vectors/README.md "Endpoints"), and that drops what it
does not understand (a TXT record, an ``http://`` key, a new world key) with a
warning instead of refusing the vector.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..._core.events import (
    DnsQuery,
    DnsResult,
    DnsStatus,
    HttpsFailure,
    HttpsFailureKind,
    HttpsGet,
    Outcome,
    RecordType,
    Request,
)
from ..._io.fakeworld import FakeWorld, merge_patch

__all__ = ["BEHAVIOURS", "Certificate", "VectorWorld", "known_world"]

RECORD_TYPES = frozenset({"A", "AAAA", "CNAME", "SRV", "*"})
BEHAVIOURS = {
    "serve": None,
    "refuse": HttpsFailureKind.CONNECTION_REFUSED,
    "timeout": HttpsFailureKind.CONNECT_TIMEOUT,
    "reset": HttpsFailureKind.CONNECTION_RESET,
    "tls_handshake_failure": HttpsFailureKind.TLS_HANDSHAKE_FAILED,
}
ISSUERS = frozenset({"trusted", "self_signed", "untrusted"})
_FAILURES = frozenset(k.value for k in HttpsFailureKind)


def known_world(world: Mapping[str, Any], where: str, warnings: list[str]) -> dict[str, Any]:
    """``world`` without what format 2 does not define, each drop noted in ``warnings``."""
    out: dict[str, Any] = {}
    for key, value in world.items():
        if key == "dns" and isinstance(value, dict):
            out["dns"] = {}
            for name, node in value.items():
                if not isinstance(node, dict):
                    out["dns"][name] = node  # None deletes in a patch; bad shapes fail later
                    continue
                kept = {t: e for t, e in node.items() if t in RECORD_TYPES}
                for rtype in node.keys() - kept.keys():
                    warnings.append(f"{where}: ignored {rtype} record of {name} (not in format 2)")
                out["dns"][name] = kept
        elif key == "https" and isinstance(value, dict):
            out["https"] = {}
            for url, response in value.items():
                if not url.startswith("https://"):
                    warnings.append(f"{where}: ignored {url!r}: only https:// URLs are fetched")
                elif isinstance(response, dict) and response.get("failure", "x") not in (
                    _FAILURES | {"x"}
                ):
                    warnings.append(
                        f"{where}: {url}: unknown failure {response['failure']!r} "
                        "answered as protocol_error"
                    )
                    out["https"][url] = {**response, "failure": "protocol_error"}
                else:
                    out["https"][url] = response
        elif key == "endpoints" and isinstance(value, dict):
            out["endpoints"] = value
        elif key in ("dns", "https", "endpoints"):
            out[key] = value  # a wrong shape: FakeWorld or the endpoint check says where
        else:
            warnings.append(f"{where}: ignored world key {key!r} (not in format 2)")
    return out


@dataclass(frozen=True, kw_only=True, slots=True)
class Certificate:
    """What an endpoint presents. ``names=None`` is valid for any name (format 1 worlds)."""

    names: tuple[str, ...] | None = None
    issuer: str = "trusted"
    not_before: float | None = None  # seconds after epoch
    not_after: float | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Certificate:
        names = raw.get("names")
        issuer = str(raw.get("issuer", "trusted"))
        if issuer not in ISSUERS:
            raise ValueError(f"unknown certificate issuer {issuer!r} (one of {sorted(ISSUERS)})")
        return cls(
            names=None if names is None else tuple(str(n).lower() for n in names),
            issuer=issuer,
            not_before=raw.get("not_before"),
            not_after=raw.get("not_after"),
        )

    def problem(self, host: str, at: float) -> str | None:
        """Why this certificate is not valid for ``host`` at ``at`` (seconds after epoch)."""
        if self.issuer != "trusted":
            return f"the certificate is {self.issuer.replace('_', '-')}"
        if self.not_before is not None and at < self.not_before:
            return "the certificate is not valid yet"
        if self.not_after is not None and at >= self.not_after:
            return "the certificate has expired"
        if self.names is not None and not any(_name_matches(n, host) for n in self.names):
            return f"the certificate is for {', '.join(self.names)}, not {host}"
        return None


def _name_matches(pattern: str, host: str) -> bool:
    host = host.lower().rstrip(".")
    pattern = pattern.rstrip(".")
    if pattern.startswith("*."):  # RFC 6125: a wildcard stands for exactly one label
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:] and _ip(host) is None
    if _ip(pattern) is not None and _ip(host) is not None:
        return _ip(pattern) == _ip(host)
    return pattern == host


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def endpoint_key(address: str, port: int) -> str:
    ip = ipaddress.ip_address(address)
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def check_endpoints(endpoints: Any) -> None:
    """Reject a malformed ``endpoints`` object, naming the offending key."""
    if not isinstance(endpoints, dict):
        raise ValueError("world.endpoints must be an object")
    for key, endpoint in endpoints.items():
        host, _, port = str(key).rpartition(":")
        if _ip(host) is None or not port.isdigit() or (":" in host and not host.startswith("[")):
            raise ValueError(f"endpoints[{key!r}]: keys are ADDRESS:PORT or [IPV6]:PORT")
        if not isinstance(endpoint, dict):
            raise ValueError(f"endpoints[{key!r}] must be an object")
        behaviour = endpoint.get("behaviour", "serve")
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"endpoints[{key!r}]: unknown behaviour {behaviour!r}")
        if "certificate" in endpoint:
            Certificate.from_json(endpoint["certificate"])


class VectorWorld(FakeWorld):
    """A FakeWorld with endpoints; ``epoch`` anchors certificate validity periods."""

    def __init__(
        self, world: Mapping[str, Any] | None = None, *, now: float = 0.0, epoch: float = 0.0
    ) -> None:
        self.epoch = epoch
        self.endpoints: dict[str, Any] = {}
        self.log: list[Request] = []
        super().__init__(world, now=now)

    def patch(self, patch: Mapping[str, Any]) -> None:
        patch = dict(patch)
        endpoints_patch = patch.pop("endpoints", None)
        if endpoints_patch is not None:
            merged = merge_patch(self.endpoints, endpoints_patch)
            check_endpoints(merged)
            self.endpoints = merged
        super().patch(patch)

    def answer(self, request: Request) -> Outcome:
        self.log.append(request)
        if isinstance(request, DnsQuery):
            return super().answer(request)
        outcome = self._connect(request)
        return outcome if outcome is not None else super().answer(request)

    def _connect(self, request: HttpsGet) -> HttpsFailure | None:
        """The failure connecting to the URL's endpoints gives, or None to answer the GET."""
        described = self.world["https"].get(request.url)
        if isinstance(described, dict) and "failure" in described:
            return None  # a failure written for the URL wins, as in format 1
        parts = urlsplit(request.url)
        host = (parts.hostname or "").lower()
        port = parts.port or 443
        addresses = self.addresses(host)
        if not self.endpoints or not addresses:
            return None
        first: HttpsFailure | None = None
        for address in addresses:
            endpoint = self.endpoints.get(endpoint_key(address, port), {})
            kind = BEHAVIOURS[endpoint.get("behaviour", "serve")]
            if kind is not None:
                first = first or HttpsFailure(kind=kind, message=f"{address} port {port}")
                continue
            certificate = Certificate.from_json(endpoint.get("certificate", {}))
            problem = certificate.problem(host, self.now - self.epoch)
            if problem is not None:
                return HttpsFailure(kind=HttpsFailureKind.CERTIFICATE_INVALID, message=problem)
            return None
        return first

    def addresses(self, host: str) -> list[str]:
        """The host's addresses as the transport finds them (AAAA, then A); not logged."""
        if _ip(host) is not None:
            return [str(_ip(host))]
        fqdn = host.rstrip(".") + "."
        found: list[str] = []
        for rtype in (RecordType.AAAA, RecordType.A):
            result: DnsResult = self.dns(fqdn, rtype)
            if result.status is DnsStatus.NOERROR:
                found.extend(str(r) for r in result.records)
        return found
