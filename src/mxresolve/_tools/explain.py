"""Human-readable renderings of traces and results (CLI output, docs, --explain)."""

from __future__ import annotations

import textwrap

from .._core.events import Resolution, ResolutionFailure, TraceEvent, TraceKind

__all__ = ["render_result", "render_trace"]

_MARK = {
    TraceKind.STEP: "==>",
    TraceKind.REQUEST: " ->",
    TraceKind.OUTCOME: " <-",
    TraceKind.CACHE: " ==",
    TraceKind.DECISION: "  *",
    TraceKind.WARNING: "  !",
}


def render_trace(trace: tuple[TraceEvent, ...], *, width: int = 100) -> str:
    """One line per trace event, grouped under the step it happened in."""
    lines: list[str] = []
    for event in trace:
        if event.kind is TraceKind.STEP:
            label = f"Step {event.step.value}" if event.step is not None else "Start"
            lines.append(f"{_MARK[event.kind]} {label}: {event.message}")
            continue
        message = event.message
        if event.kind is TraceKind.OUTCOME and event.request is not None and event.outcome:
            message = f"{event.outcome}   (for {event.request})"
        if event.kind is TraceKind.REQUEST:
            message = f"ask: {message}"
        if event.kind is TraceKind.WARNING:
            message = f"warning: {message}"
        lines.extend(
            textwrap.wrap(
                message,
                width=width,
                initial_indent=f"    {_MARK[event.kind]} ",
                subsequent_indent="         ",
                break_on_hyphens=False,
            )
            or [f"    {_MARK[event.kind]}"]
        )
    return "\n".join(lines)


def render_result(result: Resolution | ResolutionFailure) -> str:
    """The trace, then the verdict and the targets in connection order."""
    out = [f"Resolving {result.server_name!r}", render_trace(result.trace), ""]
    if isinstance(result, ResolutionFailure):
        where = f" at step {result.step.value}" if result.step is not None else ""
        out.append(f"FAILED{where}: {result.kind.value}: {result.message}")
        return "\n".join(out)
    out.append(f"Decided by step {result.step.value}. Connect to, in this order:")
    for i, t in enumerate(result.targets, 1):
        out.append(f"  {i}. {t.host}:{t.port}  addresses: {', '.join(t.addresses)}")
        out.append(f"     Host: {t.host_header}")
        sni = "(none: the certificate is for an IP address)" if t.sni is None else t.sni
        out.append(f"     certificate must be valid for: {t.tls_server_name}   SNI: {sni}")
    return "\n".join(out)
