"""mxresolve: how one Matrix server finds another.

A reference implementation of the server-server API's "Resolving server
names" (Matrix spec v1.19): a sans-I/O core (:class:`ResolutionMachine`), the
in-memory :class:`FakeWorld` for tests, and the vectors that pin the behaviour.
Client discovery (client-server API v1.19, "Server Discovery") is
:func:`discover_client` / :func:`async_discover_client` over
:class:`ClientDiscoveryMachine`.

Everything in ``__all__`` is the public API; modules starting with ``_`` are not.
"""

import importlib

# typing.TYPE_CHECKING without importing typing, which (with re, enum and contextlib) would
# be most of what `import mxresolve` costs; type checkers give this name typing's meaning.
TYPE_CHECKING = False
if TYPE_CHECKING:  # the real imports, for type checkers and IDEs; at run time see __getattr__
    from typing import Any

    from ._core.cache import ResolverCache, WellKnownEntry
    from ._core.client_discovery import ClientDiscovery, ClientDiscoveryMachine, ClientOutcome
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
    from ._core.settings import (
        IpPolicy,
        Settings,
        SrvDotPolicy,
        SrvFailurePolicy,
        SrvTargetAliasPolicy,
    )
    from ._core.srv import order_srv_records
    from ._io.aio_client_discovery import async_discover_client
    from ._io.aio_dns_transport import AsyncDnspythonTransport
    from ._io.aio_https_transport import AsyncH11HttpsTransport
    from ._io.aio_resolver import AsyncResolver
    from ._io.client_discovery import discover_client
    from ._io.dns_transport import AsyncDnsTransport, DnspythonTransport, DnsTransport
    from ._io.fakeworld import FakeWorld, WorldError
    from ._io.https_transport import AsyncHttpsTransport, H11HttpsTransport, HttpsTransport
    from ._io.resolver import Resolver

__version__ = "0.1.0"


__all__ = [
    "NEED_RESULTS",
    "AsyncDnsTransport",
    "AsyncDnspythonTransport",
    "AsyncH11HttpsTransport",
    "AsyncHttpsTransport",
    "AsyncResolver",
    "ClientDiscovery",
    "ClientDiscoveryMachine",
    "ClientOutcome",
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
    "async_discover_client",
    "discover_client",
    "order_srv_records",
    "parse_server_name",
    "server_name_advisories",
]

# Each public name is imported from its module on first use (PEP 562), so that
# `import mxresolve` costs almost nothing and a program pays only for what it uses:
# the asyncio driver, dnspython's resolvers, FakeWorld and h11 load when first needed.
_LAZY: dict[str, str] = {
    "ResolverCache": "._core.cache",
    "WellKnownEntry": "._core.cache",
    "ClientDiscovery": "._core.client_discovery",
    "ClientDiscoveryMachine": "._core.client_discovery",
    "ClientOutcome": "._core.client_discovery",
    "ConnectError": "._core.errors",
    "InvalidServerName": "._core.errors",
    "InvalidSettings": "._core.errors",
    "LocalProtocolError": "._core.errors",
    "MxresolveError": "._core.errors",
    "ResolutionError": "._core.errors",
    "NEED_RESULTS": "._core.events",
    "DnsQuery": "._core.events",
    "DnsResult": "._core.events",
    "DnsStatus": "._core.events",
    "FailureKind": "._core.events",
    "HttpsFailure": "._core.events",
    "HttpsFailureKind": "._core.events",
    "HttpsGet": "._core.events",
    "HttpsResponse": "._core.events",
    "Outcome": "._core.events",
    "RecordType": "._core.events",
    "Request": "._core.events",
    "Resolution": "._core.events",
    "ResolutionFailure": "._core.events",
    "SrvRecord": "._core.events",
    "Step": "._core.events",
    "Target": "._core.events",
    "TraceEvent": "._core.events",
    "TraceKind": "._core.events",
    "HostKind": "._core.grammar",
    "ServerName": "._core.grammar",
    "parse_server_name": "._core.grammar",
    "server_name_advisories": "._core.grammar",
    "ResolutionMachine": "._core.machine",
    "IpPolicy": "._core.settings",
    "Settings": "._core.settings",
    "SrvDotPolicy": "._core.settings",
    "SrvFailurePolicy": "._core.settings",
    "SrvTargetAliasPolicy": "._core.settings",
    "order_srv_records": "._core.srv",
    "async_discover_client": "._io.aio_client_discovery",
    "discover_client": "._io.client_discovery",
    "AsyncDnspythonTransport": "._io.aio_dns_transport",
    "AsyncDnsTransport": "._io.dns_transport",
    "DnspythonTransport": "._io.dns_transport",
    "DnsTransport": "._io.dns_transport",
    "FakeWorld": "._io.fakeworld",
    "WorldError": "._io.fakeworld",
    "AsyncH11HttpsTransport": "._io.aio_https_transport",
    "AsyncHttpsTransport": "._io.https_transport",
    "H11HttpsTransport": "._io.https_transport",
    "HttpsTransport": "._io.https_transport",
    "AsyncResolver": "._io.aio_resolver",
    "Resolver": "._io.resolver",
}


def __getattr__(name: str) -> "Any":
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
