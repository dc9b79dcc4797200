"""What happens on the day the well-known host is down, and what fronts port 443."""

from __future__ import annotations

import asyncio

from ...._core.events import Resolution, ResolutionFailure, Step
from ..codes import Area
from ..context import Context
from ..report import Check
from .endpoints import VERSION_PATH, describe_failure, version_ok


async def run(ctx: Context) -> list[Check]:
    return [_on_443(ctx), await _fallback(ctx)]


def _on_443(ctx: Context) -> Check:
    check = Check(name="federation port", area=Area.RESILIENCE, where=ctx.server_name.text)
    if not isinstance(ctx.resolution, Resolution):
        check.skip("the resolution failed")
        return check
    for target in ctx.resolution.targets:
        if target.port == 443:
            check.problem(
                "federation-on-443",
                f"federation goes to {target.host}:443, the web port: every proxy, CDN or "
                "firewall in front of it carries federation traffic too",
                "Make sure whatever answers on 443 passes /_matrix/federation/* and "
                "/_matrix/key/* to the homeserver untouched: no buffering limits below the "
                "homeserver's, no rewriting of the Authorization header, no bot protection, "
                "timeouts of a few minutes.",
                where=f"{target.host}:443",
            )
    if not check.problems:
        check.detail = "ports: " + ", ".join(str(t.port) for t in ctx.resolution.targets)
    return check


async def _fallback(ctx: Context) -> Check:
    host = ctx.server_name.host
    check = Check(
        name="without the well-known", area=Area.RESILIENCE, where=f"_matrix-fed._tcp.{host}."
    )
    if not ctx.delegated or ctx.fallback is None:
        check.skip("no delegation: nothing depends on the well-known")
        return check
    fallback = ctx.fallback
    if isinstance(fallback, ResolutionFailure) or fallback.step is Step.ADDRESS:
        where = f"{host}:8448" if isinstance(fallback, Resolution) else f"_matrix-fed._tcp.{host}."
        check.problem(
            "no-srv-fallback",
            f"federation depends on https://{host}/.well-known/matrix/server alone: if {host} "
            "is down, remote servers (which cache the delegation for hours at most) fall back "
            f"to {'port 8448 of ' + host if isinstance(fallback, Resolution) else 'nothing'}"
            ", and federation stops",
            f"Add an SRV record _matrix-fed._tcp.{host}. pointing at the homeserver's host and "
            f"federation port, and give that host a certificate valid for {host} (the spec "
            "requires the server name's certificate on SRV targets found without delegation).",
            where=where,
        )
        return check
    failures: list[str] = []
    for target in fallback.targets:
        probes = await asyncio.gather(
            *(
                ctx.probe(
                    a,
                    target.port,
                    target.tls_server_name,
                    path=VERSION_PATH,
                    host_header=target.host_header,
                )
                for a in target.addresses
            )
        )
        if any(version_ok(p.response) and p.tls_failure is None for p in probes):
            check.detail = f"step {fallback.step.value} would reach {target.host}:{target.port}"
            return check
        failures += [f"{target.host}:{target.port} ({describe_failure(p)})" for p in probes]
    check.problem(
        "srv-fallback-broken",
        f"the SRV fallback (step {fallback.step.value}) would fail if the well-known did: "
        + "; ".join(failures),
        f"The SRV target must present a certificate valid for {host} (not only its own name) "
        "and answer /_matrix/federation/v1/version; add the name to its certificate "
        f"(for example a SAN for {host}), or fix the SRV record.",
        where=f"_matrix-fed._tcp.{host}.",
    )
    return check
