"""The server well-known, as the resolution met it (step 3, spec v1.19)."""

from __future__ import annotations

from ...._core.events import (
    DnsQuery,
    HttpsFailure,
    HttpsFailureKind,
    HttpsResponse,
    RecordType,
    Resolution,
    TraceKind,
)
from ...._core.wellknown import REDIRECT_STATUSES, InvalidWellKnown, parse_well_known_body
from ..codes import Area, Severity
from ..context import Context
from ..report import Check

_FIX_SERVE = (
    "Serve {url} with status 200 and a JSON body such as "
    '{{"m.server": "matrix.example.org:443"}}, over HTTPS with a certificate valid for {host}.'
)


async def _no_fetch(ctx: Context, check: Check, url: str) -> None:
    host = ctx.server_name.host
    found: list[str] = []
    for rdtype in (RecordType.AAAA, RecordType.A):
        try:
            result = await ctx.dns.query(
                DnsQuery(qname=host + ".", rdtype=rdtype), ctx.options.timeout
            )
        except Exception:  # a transport bug: say what we know
            continue
        found += [str(r) for r in result.records]
    refusals = [why for why in (ctx.ip_policy.refusal(a) for a in found) if why is not None]
    if found and len(refusals) == len(found):
        check.problem(
            "well-known-private-address",
            f"{host} resolves only to addresses remote servers refuse to contact "
            f"({'; '.join(refusals)})",
            f"Give {host} public A/AAAA records (split-horizon DNS often causes this: check "
            "the records the public sees).",
            where=url,
        )
    elif not found:
        check.problem(
            "well-known-unreachable",
            f"{host} has no A or AAAA record, so {url} cannot be fetched",
            f"If you mean to delegate, give {host} an address serving the file; otherwise "
            "nothing to do.",
            where=url,
            severity=Severity.WARNING if isinstance(ctx.resolution, Resolution) else None,
        )
    else:
        check.skip("the resolution ended before the well-known was fetched")


async def run(ctx: Context) -> list[Check]:
    name = ctx.server_name
    url = f"https://{name.hostname}/.well-known/matrix/server"
    check = Check(name="server well-known", area=Area.WELL_KNOWN, where=url)
    if name.is_ip_literal or name.port is not None:
        check.skip("the server name has an IP address or a port: no well-known is consulted")
        return [check]
    fetched = ctx.well_known_exchanges
    decisions = [
        e.message
        for e in ctx.resolution.trace
        if e.kind is TraceKind.DECISION and "well-known is an error response" in e.message
    ]
    if not fetched:
        # No request went out: the machine found no usable address for the host itself.
        await _no_fetch(ctx, check, url)
        return [check]
    request, outcome = fetched[-1]
    fix = _FIX_SERVE.format(url=url, host=name.host)
    if isinstance(outcome, HttpsFailure):
        if outcome.kind is HttpsFailureKind.ADDRESS_REFUSED:
            check.problem(
                "well-known-private-address",
                f"{request.host} resolves only to addresses remote servers refuse to contact "
                f"({outcome.message})",
                f"Give {request.host} public A/AAAA records (split-horizon DNS often causes "
                "this: check the records the public sees).",
                where=request.url,
            )
        else:
            # Nothing listening on 443 while SRV or 8448 carries federation is a valid setup
            # (no delegation meant); a host that answers badly is not.
            quiet = outcome.kind in (
                HttpsFailureKind.CONNECTION_REFUSED,
                HttpsFailureKind.NO_ADDRESS,
            ) and isinstance(ctx.resolution, Resolution)
            check.problem(
                "well-known-unreachable",
                f"{request.url} could not be fetched: {outcome.kind.value}"
                + (f" ({outcome.message})" if outcome.message else "")
                + "; remote servers skip to step 4 (SRV) and the delegation is lost",
                fix
                if outcome.kind is not HttpsFailureKind.CERTIFICATE_INVALID
                else f"Install a certificate for {request.host} from a public CA on port "
                f"{request.port} (the full chain), then check it with this command again.",
                where=request.url,
                severity=Severity.WARNING if quiet else None,
            )
        return [check]
    assert isinstance(outcome, HttpsResponse)
    if outcome.status in REDIRECT_STATUSES:
        why = decisions[-1] if decisions else f"HTTP {outcome.status}"
        check.problem(
            "well-known-redirect-refused",
            f"{request.url} redirects, and servers will not follow: {why}",
            "Serve the file directly, or redirect only to an https:// URL on a host with a valid "
            "certificate, with no loop and at most a few hops.",
            where=request.url,
        )
        return [check]
    if outcome.status == 404 and len(fetched) == 1:
        check.detail = "no well-known (404): resolution goes on with SRV and port 8448"
        return [check]
    if outcome.status != 200:
        check.problem(
            "well-known-invalid",
            f"{request.url} answered HTTP {outcome.status}, not 200: servers ignore the file",
            fix,
            where=request.url,
        )
        return [check]
    try:
        delegated = parse_well_known_body(outcome.body)
    except InvalidWellKnown as exc:
        looks_html = outcome.body.lstrip()[:1] == b"<"
        check.problem(
            "well-known-invalid",
            f"{request.url} is not a valid delegation: {exc}"
            + (" (it looks like an HTML page)" if looks_html else ""),
            fix + " A web server's catch-all page or SPA routing often answers this path; "
            "add an exact location for it.",
            where=request.url,
        )
        return [check]
    content_type = (outcome.header("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        check.problem(
            "well-known-invalid",
            f"{request.url} has Content-Type {content_type or '(none)'!r}: the spec tells servers "
            "to accept it, but some tools and clients reject anything but application/json",
            "Serve it with Content-Type: application/json.",
            where=request.url,
            severity=Severity.WARNING,
        )
    if delegated.host == name.host and (delegated.port is None or delegated.port == 8448):
        check.problem(
            "well-known-self-delegation-loop",
            f"m.server is {delegated.text!r}, the server name itself: the delegation adds a "
            "fetch and nothing else, and a server that runs discovery again on the delegated "
            "name would loop",
            f"Delegate to the host that runs the homeserver (m.server: matrix.{name.host}:443, for "
            "example), or remove the well-known if this host is the homeserver.",
            where=request.url,
        )
    if not check.problems:
        check.detail = f"m.server is {delegated.text!r}"
    return [check]
