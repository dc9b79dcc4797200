"""mxresolve: how one Matrix server finds another.

A reference implementation of the server-server API's "Resolving server
names" (Matrix spec v1.19): a sans-I/O core (:class:`ResolutionMachine`), the
in-memory :class:`FakeWorld` for tests, and the vectors that pin the behaviour.

Everything in ``__all__`` is the public API; modules starting with ``_`` are not.
"""

from ._core.cache import ResolverCache, WellKnownEntry
from ._core.errors import (
    ConnectError,
    InvalidServerName,
    InvalidSettings,
    LocalProtocolError,
    MxresolveError,
    ResolutionError,
)
from ._core.events import (
    NEED_RESULTS,
    DnsQuery,
    DnsResult,
    DnsStatus,
    FailureKind,
    HttpsFailure,
    HttpsFailureKind,
    HttpsGet,
    HttpsResponse,
    Outcome,
    RecordType,
    Request,
    Resolution,
    ResolutionFailure,
    SrvRecord,
    Step,
    Target,
    TraceEvent,
    TraceKind,
)
from ._core.grammar import HostKind, ServerName, parse_server_name, server_name_advisories
from ._core.machine import ResolutionMachine
from ._core.settings import IpPolicy, Settings, SrvDotPolicy, SrvFailurePolicy, SrvTargetAliasPolicy
from ._core.srv import order_srv_records
from ._io.dns_transport import (
    AsyncDnspythonTransport,
    AsyncDnsTransport,
    DnspythonTransport,
    DnsTransport,
)
from ._io.fakeworld import FakeWorld, WorldError
from ._io.https_transport import (
    AsyncH11HttpsTransport,
    AsyncHttpsTransport,
    H11HttpsTransport,
    HttpsTransport,
)
from ._io.resolver import AsyncResolver, Resolver

__version__ = "0.1.0"

__all__ = [
    "NEED_RESULTS",
    "AsyncDnsTransport",
    "AsyncDnspythonTransport",
    "AsyncH11HttpsTransport",
    "AsyncHttpsTransport",
    "AsyncResolver",
    "ConnectError",
    "DnsTransport",
    "DnspythonTransport",
    "H11HttpsTransport",
    "HttpsTransport",
    "Resolver",
    "DnsQuery",
    "DnsResult",
    "DnsStatus",
    "FailureKind",
    "FakeWorld",
    "HostKind",
    "HttpsFailure",
    "HttpsFailureKind",
    "HttpsGet",
    "HttpsResponse",
    "InvalidServerName",
    "InvalidSettings",
    "IpPolicy",
    "LocalProtocolError",
    "MxresolveError",
    "Outcome",
    "RecordType",
    "Request",
    "Resolution",
    "ResolutionError",
    "ResolutionFailure",
    "ResolutionMachine",
    "ResolverCache",
    "ServerName",
    "Settings",
    "SrvDotPolicy",
    "SrvFailurePolicy",
    "SrvRecord",
    "SrvTargetAliasPolicy",
    "Step",
    "Target",
    "TraceEvent",
    "TraceKind",
    "WellKnownEntry",
    "WorldError",
    "__version__",
    "order_srv_records",
    "parse_server_name",
    "server_name_advisories",
]
