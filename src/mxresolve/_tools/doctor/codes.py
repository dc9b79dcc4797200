"""The problem codes: a stable contract, each documented in docs/doctor.md.

A code never changes meaning once released; new ones may be added. The
severity here is the usual one; a check may lower it (a well-known failure
that resolution recovers from is still an error for the admin, but a missing
identity server is never one).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["AREAS", "CODES", "Area", "CodeInfo", "Severity"]


class Severity(str, Enum):
    ERROR = "error"  # something is broken: federation or clients fail
    WARNING = "warning"  # works today, breaks on the next mishap or for some servers
    INFO = "info"  # nothing to do; worth knowing

    def __str__(self) -> str:
        return str(self.value)


class Area(str, Enum):
    NAME = "name"
    WELL_KNOWN = "well-known"
    RESILIENCE = "resilience"
    SRV = "srv"
    CONNECTION = "connection"
    FEDERATION = "federation endpoints"
    CLIENT = "client side"

    def __str__(self) -> str:
        return str(self.value)


AREAS: tuple[Area, ...] = tuple(Area)


@dataclass(frozen=True, slots=True)
class CodeInfo:
    area: Area
    severity: Severity
    title: str


_E, _W, _I = Severity.ERROR, Severity.WARNING, Severity.INFO

CODES: dict[str, CodeInfo] = {
    "name-ip-literal": CodeInfo(Area.NAME, _W, "the server name is an IP address"),
    "well-known-unreachable": CodeInfo(
        Area.WELL_KNOWN, _E, "the server well-known could not be fetched"
    ),
    "well-known-invalid": CodeInfo(Area.WELL_KNOWN, _E, "the server well-known is not valid"),
    "well-known-redirect-refused": CodeInfo(
        Area.WELL_KNOWN, _E, "the server well-known redirects where servers will not follow"
    ),
    "well-known-self-delegation-loop": CodeInfo(
        Area.WELL_KNOWN, _W, "the well-known delegates to the name it is served for"
    ),
    "well-known-private-address": CodeInfo(
        Area.WELL_KNOWN, _E, "the well-known host resolves to a private address"
    ),
    "no-srv-fallback": CodeInfo(Area.RESILIENCE, _W, "federation depends on the well-known alone"),
    "srv-fallback-broken": CodeInfo(
        Area.RESILIENCE, _W, "the SRV fallback would fail if the well-known did"
    ),
    "federation-on-443": CodeInfo(
        Area.RESILIENCE, _I, "federation is served on port 443, behind whatever fronts it"
    ),
    "srv-legacy-only": CodeInfo(Area.SRV, _W, "only the deprecated _matrix._tcp SRV exists"),
    "srv-target-cname": CodeInfo(Area.SRV, _W, "an SRV target is a CNAME"),
    "srv-target-dot": CodeInfo(Area.SRV, _I, "an SRV record says there is no service"),
    "srv-ignored": CodeInfo(Area.SRV, _I, "SRV records exist but a port makes them irrelevant"),
    "target-unreachable": CodeInfo(Area.CONNECTION, _E, "no address of a target answers"),
    "target-address-unreachable": CodeInfo(
        Area.CONNECTION, _W, "one address of a target does not answer"
    ),
    "tls-untrusted": CodeInfo(Area.CONNECTION, _E, "the certificate is not trusted"),
    "tls-name-mismatch": CodeInfo(
        Area.CONNECTION, _E, "the certificate is not valid for the required name"
    ),
    "tls-expired": CodeInfo(Area.CONNECTION, _E, "the certificate has expired"),
    "tls-expires-soon": CodeInfo(
        Area.CONNECTION, _W, "the certificate expires in less than 14 days"
    ),
    "tls-differs-between-ports": CodeInfo(
        Area.CONNECTION, _W, "port 443 and the federation port serve different certificates"
    ),
    "version-failed": CodeInfo(
        Area.FEDERATION, _E, "GET /_matrix/federation/v1/version does not answer"
    ),
    "keys-unreachable": CodeInfo(Area.FEDERATION, _E, "GET /_matrix/key/v2/server does not answer"),
    "keys-invalid": CodeInfo(Area.FEDERATION, _E, "the server keys are not valid"),
    "client-invalid": CodeInfo(Area.CLIENT, _E, "client discovery fails"),
    "client-cors-missing": CodeInfo(Area.CLIENT, _W, "the client well-known has no CORS header"),
    "support-invalid": CodeInfo(Area.CLIENT, _W, "the support file is not valid"),
}
