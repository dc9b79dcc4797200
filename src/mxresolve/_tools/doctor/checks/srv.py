"""The SRV records remote servers look up (steps 3.3, 3.4, 4 and 5, spec v1.19)."""

from __future__ import annotations

import asyncio

from ...._core.events import DnsQuery, DnsResult, DnsStatus, RecordType, SrvRecord
from ...._core.grammar import HostKind, ServerName
from ..codes import Area
from ..context import Context
from ..report import Check

FED, LEGACY = "_matrix-fed._tcp", "_matrix._tcp"


async def _query(ctx: Context, qname: str, rdtype: RecordType) -> DnsResult:
    try:
        return await ctx.dns.query(DnsQuery(qname=qname, rdtype=rdtype), ctx.options.timeout)
    except Exception as exc:  # a transport bug: report, don't crash the doctor
        return DnsResult(status=DnsStatus.SERVFAIL, message=str(exc)[:200])


async def _one_name(ctx: Context, name: ServerName, why: str) -> Check:
    fqdn = name.host + "."
    check = Check(name=f"SRV for {name.host}", area=Area.SRV, where=f"{FED}.{fqdn}")
    fed, legacy = await asyncio.gather(
        _query(ctx, f"{FED}.{fqdn}", RecordType.SRV),
        _query(ctx, f"{LEGACY}.{fqdn}", RecordType.SRV),
    )
    records = [r for r in fed.records + legacy.records if isinstance(r, SrvRecord)]
    failed = [r for r in (fed, legacy) if r.status.is_failure]
    if failed and not records:
        check.skip("the DNS lookups failed: " + ", ".join(str(r) for r in failed))
        return check
    if name.port is not None and records:
        check.problem(
            "srv-ignored",
            f"{why} has a port ({name.text}), so its SRV records are never looked up",
            "Nothing to do; remove the SRV records if nothing else uses them.",
        )
        return check
    if name.port is not None:
        check.skip(f"{why} has a port: SRV is not consulted")
        return check
    if not fed.records and legacy.records:
        check.problem(
            "srv-legacy-only",
            f"only the deprecated {LEGACY}.{fqdn} exists; servers that dropped it (the spec "
            f"deprecated it in v1.8) will not find {name.host}'s homeserver",
            f"Add {FED}.{fqdn} with the same priority, weight, port and target.",
            where=f"{LEGACY}.{fqdn}",
        )
    for record in records:
        if record.target == ".":
            check.problem(
                "srv-target-dot",
                f"an SRV record for {name.host} has target '.': 'no service here' (RFC 2782)",
                "Nothing to do if federation is meant to be off for this name; otherwise replace "
                "the record with one naming the homeserver.",
            )
    targets = sorted({r.target for r in records if r.target != "."})
    for target, result in zip(
        targets,
        await asyncio.gather(*(_query(ctx, t, RecordType.A) for t in targets)),
        strict=True,
    ):
        aliases = result.aliases
        if not aliases and result.status is not DnsStatus.NOERROR:
            aliases = (await _query(ctx, target, RecordType.AAAA)).aliases
        if aliases:
            check.problem(
                "srv-target-cname",
                f"the SRV target {target} is a CNAME (to {aliases[-1]}); RFC 2782 forbids it "
                "and some servers refuse it",
                f"Point the SRV record at {aliases[-1]} (the name with the A/AAAA records).",
                where=target,
            )
    if not check.problems:
        shown = ", ".join(str(r) for r in records) or "none"
        check.detail = f"records: {shown}"
    return check


async def run(ctx: Context) -> list[Check]:
    name = ctx.server_name
    names: list[tuple[ServerName, str]] = []
    if name.kind is HostKind.DNS:
        names.append((name, "the server name"))
    delegated = ctx.delegated_name
    if delegated is not None and delegated.kind is HostKind.DNS and delegated.host != name.host:
        names.append((delegated, "the delegated name"))
    if not names:
        check = Check(name="SRV", area=Area.SRV, where=name.text)
        check.skip("IP literals have no SRV records")
        return [check]
    return list(await asyncio.gather(*(_one_name(ctx, n, why) for n, why in names)))
