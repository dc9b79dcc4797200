"""Client discovery drivers: :func:`discover_client` (blocking) here, and
:func:`~mxresolve._io.aio_client_discovery.async_discover_client` (asyncio) in
:mod:`.aio_client_discovery`, so that blocking programs never import asyncio.

Both are loops around :class:`~mxresolve._core.client_discovery.ClientDiscoveryMachine`,
over the same HTTPS transports (and so the same IP policy, TLS checks and
limits) as the server-name resolvers.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Sequence

from .._core.client_discovery import ClientDiscovery, ClientDiscoveryMachine, ClientOutcome
from .._core.errors import InvalidSettings, LocalProtocolError
from .._core.events import NEED_RESULTS, HttpsFailure, HttpsFailureKind, HttpsGet, Outcome
from .._core.settings import IpPolicy, Settings
from .dns_transport import DnspythonTransport
from .https_transport import H11HttpsTransport, HttpsTransport
from .net import own_ssl_context

__all__ = ["discover_client"]

DEFAULT_REQUEST_TIMEOUT = 10.0
DEFAULT_DEADLINE = 30.0


def _policy(allow_ips: Sequence[str] | None, deny_ips: Sequence[str] | None) -> IpPolicy:
    if allow_ips is None and deny_ips is None:
        return Settings().ip_policy
    return IpPolicy.from_cidrs(allow_ips or (), deny_ips or ())


def _check_times(request_timeout: float, deadline: float) -> None:
    for name, value in (("request_timeout", request_timeout), ("deadline", deadline)):
        if not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise InvalidSettings(f"{name} must be a positive number of seconds, not {value!r}")


# What both drivers do before their first request, and decide about each one.


def _machine(
    user_id_or_server_name: str,
    request_timeout: float,
    deadline: float,
    support: bool,
    no_response: ClientOutcome,
) -> ClientDiscoveryMachine:
    """The machine for one discovery, once the arguments are checked."""
    _check_times(request_timeout, deadline)
    return ClientDiscoveryMachine(user_id_or_server_name, support=support, no_response=no_response)


def _tls_and_policy(
    cafile: str | None,
    ssl_context: ssl.SSLContext | None,
    allow_ips: Sequence[str] | None,
    deny_ips: Sequence[str] | None,
) -> tuple[ssl.SSLContext | None, IpPolicy]:
    """The TLS context and IP policy of the default transport: the resolvers' own."""
    return own_ssl_context(cafile, ssl_context), _policy(allow_ips, deny_ips)


def _late(request: HttpsGet) -> HttpsFailure:
    return HttpsFailure(
        kind=HttpsFailureKind.READ_TIMEOUT, message=f"{request.url}: past the discovery deadline"
    )


def _raised(exc: Exception) -> Outcome:
    # A transport that raises is a bug in it; discovery still ends cleanly.
    message = f"the transport raised {type(exc).__name__}: {exc}"[:300]
    return HttpsFailure(kind=HttpsFailureKind.PROTOCOL_ERROR, message=message)


def discover_client(
    user_id_or_server_name: str,
    *,
    nameservers: Sequence[str] | None = None,
    cafile: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    allow_ips: Sequence[str] | None = None,
    deny_ips: Sequence[str] | None = None,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    deadline: float = DEFAULT_DEADLINE,
    support: bool = False,
    no_response: ClientOutcome = ClientOutcome.FAIL_PROMPT,
    https: HttpsTransport | None = None,
) -> ClientDiscovery:
    """Find the homeserver a client should use for ``@user:example.org`` (or ``example.org``).

    Client-server API v1.19, "Server Discovery". Never raises for what the
    network does: the result's ``outcome`` says what happened. Raises
    :class:`~mxresolve.InvalidServerName` for a name that does not parse and
    :class:`~mxresolve.InvalidSettings` for bad arguments. ``support`` also
    fetches the support file; ``no_response`` is the outcome when the client
    well-known gets no response at all (docs/interpretations.md, I-43).
    """
    machine = _machine(user_id_or_server_name, request_timeout, deadline, support, no_response)
    if https is None:
        context, policy = _tls_and_policy(cafile, ssl_context, allow_ips, deny_ips)
        https = H11HttpsTransport(
            DnspythonTransport(nameservers), ssl_context=context, ip_policy=policy
        )
    ends = time.monotonic() + deadline
    while True:
        event = machine.next_event()
        if isinstance(event, ClientDiscovery):
            return event
        if event is NEED_RESULTS:
            raise LocalProtocolError("the sync driver answers every request at once")
        assert isinstance(event, HttpsGet)
        remaining = ends - time.monotonic()
        outcome: Outcome
        if remaining <= 0:
            outcome = _late(event)
        else:
            try:
                outcome = https.fetch(event, min(request_timeout, remaining))
            except Exception as exc:
                outcome = _raised(exc)
        machine.receive(event, outcome)
