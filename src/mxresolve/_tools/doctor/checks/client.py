"""Client discovery (client-server API v1.19, "Server Discovery") and the support file."""

from __future__ import annotations

from ...._core.client_discovery import CLIENT_WELL_KNOWN_PATH, SUPPORT_PATH, ClientOutcome
from ...._io.aio_client_discovery import async_discover_client
from ..codes import Area, Severity
from ..context import Context
from ..report import Check


async def run(ctx: Context) -> list[Check]:
    name = ctx.server_name
    url = f"https://{name.hostname}{CLIENT_WELL_KNOWN_PATH}"
    discovery = await async_discover_client(
        name.text,
        nameservers=ctx.options.nameservers,
        ssl_context=ctx.ssl_context,
        allow_ips=ctx.options.allow_ips,
        request_timeout=ctx.options.timeout,
        deadline=2 * ctx.options.timeout,
        support=True,
    )
    check = Check(name="client discovery", area=Area.CLIENT, where=url)
    if discovery.outcome in (ClientOutcome.FAIL_PROMPT, ClientOutcome.FAIL_ERROR):
        # No response at all (nothing listens on 443) is a setup without client discovery:
        # worth a warning. A response that is wrong, or a base_url that fails, is an error.
        silent = discovery.well_known is None and discovery.outcome is ClientOutcome.FAIL_PROMPT
        check.problem(
            "client-invalid",
            f"client discovery ends in {discovery.outcome.value} at step {discovery.step}: "
            f"{discovery.reason}",
            "Serve a JSON object at "
            f"{url} such as "
            '{"m.homeserver": {"base_url": "https://matrix.example.org"}}, where base_url '
            "answers /_matrix/client/versions (through the same proxy clients use).",
            severity=Severity.WARNING if silent else None,
        )
    elif discovery.outcome is ClientOutcome.IGNORE:
        check.detail = "no client well-known (404): users type the homeserver URL themselves"
    else:
        check.detail = f"homeserver {discovery.homeserver_base_url}"
    response = discovery.well_known
    if response is not None and response.status == 200:
        cors = Check(name="client well-known CORS", area=Area.CLIENT, where=url)
        if response.header("access-control-allow-origin") is None:
            cors.problem(
                "client-cors-missing",
                f"{url} has no Access-Control-Allow-Origin header: web clients (Element Web) "
                "on other origins cannot read it",
                "Add the header Access-Control-Allow-Origin: * to this path (and to "
                "/.well-known/matrix/support).",
            )
        else:
            cors.detail = "Access-Control-Allow-Origin: " + (
                response.header("access-control-allow-origin") or ""
            )
        extra = [cors]
    else:
        extra = []
    support_url = f"https://{name.hostname}{SUPPORT_PATH}"
    support = Check(name="support file", area=Area.CLIENT, where=support_url)
    if discovery.support_error is not None and discovery.support_status is not None:
        support.problem(
            "support-invalid",
            f"{support_url}: {discovery.support_error}",
            'Serve a JSON object such as {"contacts": [{"matrix_id": "@admin:'
            f'{name.host}", "role": "m.role.admin"}}]}}, or a 404 if you publish none.',
        )
    elif discovery.support_error is not None:
        support.skip(discovery.support_error)
    elif discovery.support is None:
        support.detail = "none published (404)"
    else:
        support.detail = f"{len(discovery.support.contacts)} contact(s)"
    return [check, *extra, support]
