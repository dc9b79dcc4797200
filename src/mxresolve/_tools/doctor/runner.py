"""Resolve as the spec says, then run every check at once, within deadlines."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..._core.events import (
    FailureKind,
    HttpsFailure,
    HttpsFailureKind,
    HttpsGet,
    HttpsResponse,
    Resolution,
    ResolutionFailure,
)
from ..._core.grammar import parse_server_name
from ..._core.settings import IpPolicy, Settings
from ..._io.aio_dns_transport import AsyncDnspythonTransport
from ..._io.aio_resolver import AsyncResolver
from ..._io.https_transport import AsyncHttpsTransport
from ..._io.net import default_ssl_context, own_ssl_context
from .checks import CHECKS
from .codes import Area, Severity
from .context import Context, Options
from .report import Check, CheckStatus, Report

__all__ = ["diagnose"]

Progress = Callable[[int, int, str], None]
_CAUSE_ORDER = (
    Area.CONNECTION,
    Area.FEDERATION,
    Area.SRV,
    Area.WELL_KNOWN,
    Area.NAME,
    Area.RESILIENCE,
    Area.CLIENT,
)


class _WellKnownDown:
    """An HTTPS transport for the day the base domain is down: every fetch fails."""

    async def fetch(self, request: HttpsGet, timeout: float) -> HttpsResponse | HttpsFailure:
        return HttpsFailure(
            kind=HttpsFailureKind.CONNECTION_REFUSED,
            message="supposed down by the doctor, to see what remote servers would do",
        )


def _resolver(options: Options, https: AsyncHttpsTransport | None = None) -> AsyncResolver:
    return AsyncResolver(
        nameservers=options.nameservers,
        cafile=options.cafile,
        allow_ips=options.allow_ips,
        settings=Settings(deadline=options.resolution_deadline),
        request_timeout=options.timeout,
        https=https,
    )


async def _resolve(
    resolver: AsyncResolver, name: str, options: Options
) -> Resolution | ResolutionFailure:
    try:
        return await asyncio.wait_for(
            resolver.resolve_result(name), options.resolution_deadline + 1
        )
    except asyncio.TimeoutError:
        return ResolutionFailure(
            server_name=name,
            step=None,
            kind=FailureKind.DEADLINE_EXCEEDED,
            message=f"no result in {options.resolution_deadline + 1:g} s",
            trace=(),
        )


async def diagnose(
    server_name: str, options: Options, *, progress: Progress | None = None
) -> Report:
    """Run the doctor. Raises InvalidServerName / InvalidSettings for bad input."""
    name = parse_server_name(server_name)
    resolver = _resolver(options)  # validates the options before any I/O
    resolution, fallback = await asyncio.gather(
        _resolve(resolver, server_name, options),
        _resolve(_resolver(options, https=_WellKnownDown()), server_name, options),
    )
    policy = IpPolicy.from_cidrs(options.allow_ips) if options.allow_ips else Settings().ip_policy
    ctx = Context(
        server_name=name,
        options=options,
        resolution=resolution,
        fallback=fallback,
        ssl_context=own_ssl_context(options.cafile) or default_ssl_context(),
        ip_policy=policy,
        dns=AsyncDnspythonTransport(options.nameservers),
    )
    tasks = {asyncio.ensure_future(run(ctx)): area for area, run in CHECKS}
    done_count = 0
    if progress is not None:
        progress(0, len(tasks), "resolved; checking")
    pending = set(tasks)
    loop = asyncio.get_running_loop()
    ends = loop.time() + options.checks_deadline
    while pending:
        remaining = ends - loop.time()
        if remaining <= 0:
            break
        finished, pending = await asyncio.wait(
            pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
        )
        done_count += len(finished)
        if progress is not None:
            progress(done_count, len(tasks), ", ".join(str(tasks[t]) for t in finished))
    for task in pending:
        task.cancel()
    ctx.cancel_probes()
    checks: list[Check] = []
    for task, area in tasks.items():
        if task in pending:
            late = Check(name=f"{area} checks", area=area, where=name.text)
            late.status = CheckStatus.TIMEOUT
            late.detail = f"not finished within {options.checks_deadline:g} s"
            checks.append(late)
        elif task.exception() is not None:
            broken = Check(name=f"{area} checks", area=area, where=name.text)
            broken.skip(f"the check itself failed: {task.exception()!r}")
            checks.append(broken)
        else:
            checks.extend(task.result())
    await asyncio.gather(*pending, return_exceptions=True)
    federation_ok = isinstance(resolution, Resolution) and any(ctx.target_ok.values())
    report = Report(
        server_name=server_name,
        federation_ok=federation_ok,
        verdict="",
        resolution=resolution.to_json(),
        checks=checks,
    )
    report.verdict = _verdict(report, resolution)
    return report


def _verdict(report: Report, resolution: Resolution | ResolutionFailure) -> str:
    problems = report.problems
    errors = [p for p in problems if p.level is Severity.ERROR]
    warnings = [p for p in problems if p.level is Severity.WARNING]
    name = report.server_name
    if isinstance(resolution, ResolutionFailure):
        return f"Federation with {name} fails: resolution failed ({resolution.kind.value})."
    if not report.federation_ok:
        # Name the error closest to the break: connection and endpoints before the rest.
        rank = {area: i for i, area in enumerate(_CAUSE_ORDER)}
        errors.sort(key=lambda p: rank.get(p.area, len(rank)))
        first = errors[0].code if errors else "no target answered"
        return f"Federation with {name} fails ({first}; {len(errors)} error(s))."
    if errors or warnings:
        return (
            f"Federation with {name} works, but {len(errors)} error(s) and "
            f"{len(warnings)} warning(s) need attention."
        )
    return f"Federation with {name} works; nothing needs doing."
