"""What goes in and out of the sans-I/O machine.

Out: requests (:class:`DnsQuery`, :class:`HttpsGet`), the sentinel
:data:`NEED_RESULTS`, and at the end a :class:`Resolution` or a
:class:`ResolutionFailure`. In: outcomes (:class:`DnsResult`,
:class:`HttpsResponse`, :class:`HttpsFailure`).

All of them are frozen, keyword-only dataclasses; don't subclass them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = [
    "NEED_RESULTS",
    "DnsQuery",
    "DnsResult",
    "DnsStatus",
    "FailureKind",
    "HttpsFailure",
    "HttpsFailureKind",
    "HttpsGet",
    "HttpsResponse",
    "NeedResults",
    "Outcome",
    "RecordType",
    "Request",
    "Resolution",
    "ResolutionFailure",
    "SrvRecord",
    "Step",
    "Target",
    "TraceEvent",
    "TraceKind",
]


class Step(str, Enum):
    """The steps of "Resolving server names" (spec v1.19); the value is the spec's number."""

    IP_LITERAL = "1"
    EXPLICIT_PORT = "2"
    WELL_KNOWN = "3"
    DELEGATED_IP_LITERAL = "3.1"
    DELEGATED_EXPLICIT_PORT = "3.2"
    DELEGATED_SRV = "3.3"
    DELEGATED_LEGACY_SRV = "3.4"
    DELEGATED_ADDRESS = "3.5"
    SRV = "4"
    LEGACY_SRV = "5"
    ADDRESS = "6"

    def __str__(self) -> str:
        return str(self.value)


class _Sentinel(type):
    # As in h11: a sentinel is its own type, so `type(x) is x` and it reprs by name.
    def __repr__(cls) -> str:
        return cls.__name__


class NEED_RESULTS(metaclass=_Sentinel):  # noqa: N801 - a sentinel, named like a constant
    """Returned by ``next_event()`` while every request made so far awaits its outcome."""


NeedResults = type[NEED_RESULTS]


# --- requests -------------------------------------------------------------------------


class RecordType(str, Enum):
    SRV = "SRV"
    CNAME = "CNAME"
    AAAA = "AAAA"
    A = "A"

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True, kw_only=True, slots=True)
class DnsQuery:
    """Look up ``rdtype`` records for ``qname`` (absolute, lower-case, ending in '.').

    The answer is expected from a resolver that follows CNAMEs, as recursive
    resolvers do; the result reports the alias chain it followed.
    """

    qname: str
    rdtype: RecordType

    def to_json(self) -> dict[str, Any]:
        return {"op": "dns", "qname": self.qname, "qtype": self.rdtype.value}

    def __str__(self) -> str:
        return f"DNS {self.rdtype.value} {self.qname}"


@dataclass(frozen=True, kw_only=True, slots=True)
class HttpsGet:
    """One HTTPS GET: one hop of the well-known fetch.

    The transport connects to ``host``:``port`` at ``addresses`` (IPv6 first, as
    the machine resolved them through its cache and IP policy; when empty, the
    transport resolves ``host`` itself and applies the IP policy), verifies the
    certificate for ``host``, sends ``GET target`` and reads at most
    ``max_body_bytes`` of body. It does not follow redirects: the machine does,
    one request per hop.
    """

    url: str
    host: str
    port: int
    target: str
    host_header: str
    max_body_bytes: int
    addresses: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"op": "https_get", "url": self.url}

    def __str__(self) -> str:
        return f"GET {self.url}"


Request = DnsQuery | HttpsGet


# --- outcomes -------------------------------------------------------------------------


class DnsStatus(str, Enum):
    """The closed set of things a DNS lookup can come back with."""

    NOERROR = "NOERROR"  # records found
    NXDOMAIN = "NXDOMAIN"  # the name does not exist
    NODATA = "NODATA"  # the name exists, with no records of this type
    SERVFAIL = "SERVFAIL"
    REFUSED = "REFUSED"
    TIMEOUT = "TIMEOUT"

    @property
    def is_negative(self) -> bool:
        """A definite "there is no such record" answer."""
        return self in (DnsStatus.NXDOMAIN, DnsStatus.NODATA)

    @property
    def is_failure(self) -> bool:
        """No answer at all: the truth is unknown."""
        return self in (DnsStatus.SERVFAIL, DnsStatus.REFUSED, DnsStatus.TIMEOUT)


@dataclass(frozen=True, kw_only=True, slots=True)
class SrvRecord:
    priority: int
    weight: int
    port: int
    target: str  # absolute ("fed.example.org."), or "." for "no service here"

    def __post_init__(self) -> None:
        for name in ("priority", "weight", "port"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= 65535:
                raise ValueError(f"SRV {name} must be an integer in 0-65535, not {value!r}")
        if not isinstance(self.target, str) or not self.target:
            raise ValueError(f"SRV target must be a non-empty string, not {self.target!r}")

    def __str__(self) -> str:
        return f"{self.priority} {self.weight} {self.port} {self.target}"


@dataclass(frozen=True, kw_only=True, slots=True)
class DnsResult:
    """The outcome of a :class:`DnsQuery`.

    Attributes:
        status: what came back.
        records: with ``NOERROR``, the answer: address strings for A/AAAA,
            :class:`SrvRecord` for SRV, target names for CNAME. Empty otherwise.
        ttl: seconds the answer may be cached (the rrset TTL, or for a negative
            answer the SOA minimum), or ``None`` if unknown.
        aliases: the CNAME targets the resolver followed from ``qname``, in order.
            A ``NODATA`` with aliases means the chain's end was not answered.
        message: free text from the transport, for the trace.
    """

    status: DnsStatus
    records: tuple[str | SrvRecord, ...] = ()
    ttl: int | None = None
    aliases: tuple[str, ...] = ()
    message: str = ""

    def __post_init__(self) -> None:
        if self.status is DnsStatus.NOERROR and not self.records:
            raise ValueError("a NOERROR DnsResult needs records; use NODATA for none")
        if self.status is not DnsStatus.NOERROR and self.records:
            raise ValueError(f"a {self.status.value} DnsResult cannot carry records")
        if self.ttl is not None and (not isinstance(self.ttl, int) or self.ttl < 0):
            raise ValueError(f"ttl must be a non-negative integer or None, not {self.ttl!r}")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status.value}
        if self.records:
            out["records"] = [str(r) for r in self.records]
        if self.ttl is not None:
            out["ttl"] = self.ttl
        if self.aliases:
            out["aliases"] = list(self.aliases)
        if self.message:
            out["message"] = self.message
        return out

    def __str__(self) -> str:
        if self.status is DnsStatus.NOERROR:
            via = f" via CNAME {' -> '.join(self.aliases)}" if self.aliases else ""
            return ", ".join(str(r) for r in self.records) + via
        return f"{self.status.value}" + (f" ({self.message})" if self.message else "")


@dataclass(frozen=True, kw_only=True, slots=True)
class HttpsResponse:
    """A complete HTTP response to an :class:`HttpsGet` (over verified TLS)."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or ``None``."""
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key.lower() == name]

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "headers": [list(h) for h in self.headers],
            "body": self.body[:512].decode("utf-8", "replace"),
            "body_bytes": len(self.body),
        }

    def __str__(self) -> str:
        return f"HTTP {self.status}, {len(self.body)} bytes"


class HttpsFailureKind(str, Enum):
    """The closed set of ways an HTTPS request can fail before giving a response."""

    NO_ADDRESS = "no_address"  # the URL's host did not resolve
    ADDRESS_REFUSED = "address_refused"  # the IP policy refused every address
    CONNECTION_REFUSED = "connection_refused"
    CONNECT_TIMEOUT = "connect_timeout"
    TLS_HANDSHAKE_FAILED = "tls_handshake_failed"
    CERTIFICATE_INVALID = "certificate_invalid"
    READ_TIMEOUT = "read_timeout"
    CONNECTION_RESET = "connection_reset"
    BODY_TOO_LARGE = "body_too_large"
    HEADERS_TOO_LARGE = "headers_too_large"
    PROTOCOL_ERROR = "protocol_error"


@dataclass(frozen=True, kw_only=True, slots=True)
class HttpsFailure:
    kind: HttpsFailureKind
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"failure": self.kind.value, "message": self.message}

    def __str__(self) -> str:
        return self.kind.value + (f" ({self.message})" if self.message else "")


Outcome = DnsResult | HttpsResponse | HttpsFailure


# --- results --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Target:
    """One place to connect to, and how to talk to it once connected.

    Attributes:
        host: the host to connect to: an SRV target, a (delegated) hostname, or
            an IP literal (no brackets). Lower-case, no trailing dot.
        port: the TCP port.
        addresses: the IP addresses ``host`` resolved to, IPv6 first.
        host_header: the exact ``Host`` header value to send.
        tls_server_name: the name (or IP address) the certificate must be valid for.
        sni: the SNI to send, or ``None`` when ``tls_server_name`` is an IP
            address (spec v1.19, TLS: SNI is not sent for IP certificates).
    """

    host: str
    port: int
    addresses: tuple[str, ...]
    host_header: str
    tls_server_name: str
    sni: str | None

    @property
    def sends_sni(self) -> bool:
        return self.sni is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "addresses": list(self.addresses),
            "host_header": self.host_header,
            "tls_server_name": self.tls_server_name,
            "sni": self.sni,
        }


class TraceKind(str, Enum):
    STEP = "step"  # a step was entered, and why
    REQUEST = "request"  # a request went out
    OUTCOME = "outcome"  # its outcome came back
    CACHE = "cache"  # an answer came from, or went into, the cache
    DECISION = "decision"  # the algorithm chose something
    WARNING = "warning"  # allowed, but worth an admin's attention


@dataclass(frozen=True, kw_only=True, slots=True)
class TraceEvent:
    """One line of a resolution's story."""

    step: Step | None
    kind: TraceKind
    message: str
    request: Request | None = None
    outcome: Outcome | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "step": None if self.step is None else self.step.value,
            "kind": self.kind.value,
            "message": self.message,
        }
        if self.request is not None:
            out["request"] = self.request.to_json()
        if self.outcome is not None:
            out["outcome"] = self.outcome.to_json()
        return out

    def __str__(self) -> str:
        where = f"step {self.step.value}" if self.step is not None else "start"
        return f"[{where}] {self.kind.value}: {self.message}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Resolution:
    """A successful resolution.

    Attributes:
        server_name: the server name resolved, as given.
        step: the spec step that decided.
        targets: where to connect, in order; try the next one if one fails.
        trace: how the answer was reached.
        expires_at: when the answer's freshest input expires (the caller's clock).
    """

    server_name: str
    step: Step
    targets: tuple[Target, ...]
    trace: tuple[TraceEvent, ...]
    expires_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "server_name": self.server_name,
            "step": self.step.value,
            "targets": [t.to_json() for t in self.targets],
            "trace": [e.to_json() for e in self.trace],
        }


class FailureKind(str, Enum):
    """The closed set of reasons a resolution can end without targets."""

    INVALID_SERVER_NAME = "invalid_server_name"
    SERVICE_UNAVAILABLE = "service_unavailable"  # SRV target "." (RFC 2782)
    NO_ADDRESS = "no_address"  # names found, but no usable A/AAAA records
    DNS_FAILURE = "dns_failure"  # SERVFAIL/timeout with nothing to fall back to
    REFUSED_ADDRESS = "refused_address"  # every address was refused by the IP policy
    DEADLINE_EXCEEDED = "deadline_exceeded"


@dataclass(frozen=True, kw_only=True, slots=True)
class ResolutionFailure:
    """A resolution that ended without a target: a value, not an exception."""

    server_name: str
    step: Step | None
    kind: FailureKind
    message: str
    trace: tuple[TraceEvent, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "server_name": self.server_name,
            "step": None if self.step is None else self.step.value,
            "error": {"kind": self.kind.value, "message": self.message},
            "trace": [e.to_json() for e in self.trace],
        }
