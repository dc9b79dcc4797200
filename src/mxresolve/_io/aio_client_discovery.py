"""The asyncio client-discovery driver; what it shares with the blocking one is in
:mod:`.client_discovery`."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Sequence

from .._core.client_discovery import ClientDiscovery, ClientOutcome
from .._core.errors import LocalProtocolError
from .._core.events import HttpsGet, Outcome
from .aio_dns_transport import AsyncDnspythonTransport
from .aio_https_transport import AsyncH11HttpsTransport
from .client_discovery import (
    DEFAULT_DEADLINE,
    DEFAULT_REQUEST_TIMEOUT,
    _late,
    _machine,
    _raised,
    _tls_and_policy,
)
from .https_transport import AsyncHttpsTransport

__all__ = ["async_discover_client"]


async def async_discover_client(
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
    https: AsyncHttpsTransport | None = None,
) -> ClientDiscovery:
    """The asyncio form of :func:`discover_client`; requests of one step run concurrently."""
    machine = _machine(user_id_or_server_name, request_timeout, deadline, support, no_response)
    if https is None:
        context, policy = _tls_and_policy(cafile, ssl_context, allow_ips, deny_ips)
        https = AsyncH11HttpsTransport(
            AsyncDnspythonTransport(nameservers), ssl_context=context, ip_policy=policy
        )
    transport = https
    ends = time.monotonic() + deadline

    async def perform(request: HttpsGet) -> Outcome:
        remaining = ends - time.monotonic()
        if remaining <= 0:
            return _late(request)
        try:
            return await asyncio.wait_for(
                transport.fetch(request, min(request_timeout, remaining)), remaining
            )
        except asyncio.TimeoutError:
            return _late(request)
        except Exception as exc:
            return _raised(exc)

    while True:
        batch: list[HttpsGet] = []
        event = machine.next_event()
        while isinstance(event, HttpsGet):
            batch.append(event)
            event = machine.next_event()
        if isinstance(event, ClientDiscovery):
            return event
        if not batch:
            raise LocalProtocolError("the machine waits for results nobody is computing")
        for request, outcome in zip(
            batch, await asyncio.gather(*(perform(r) for r in batch)), strict=True
        ):
            machine.receive(request, outcome)
