"""A small, dependency-free timeline plot in SVG: rows of intervals and markers over time.

Every timeline on the site is one of these, drawn from data a run of the real machine
produced (docs/tools/generate.py). The output is deterministic text, so `--check` can
compare it byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from html import escape

# Colours by meaning, shared by every plot so a legend reads the same everywhere.
STYLES: dict[str, tuple[str, str]] = {
    "fresh": ("#2e7d32", "cached answer, fresh"),
    "failure": ("#c62828", "cached failure (back-off)"),
    "stale": ("#f9a825", "expired delegation still used (stale_if_error)"),
    "negative": ("#6a1b9a", "cached negative DNS answer"),
}
_MARKS = {
    "fetch": ("#1565c0", "asked the network"),
    "hit": ("#ffffff", "answered from the cache"),
    "fail": ("#c62828", "asked; the request failed"),
}


@dataclass(frozen=True)
class Bar:
    row: int
    start: float
    end: float
    style: str
    label: str = ""


@dataclass(frozen=True)
class Mark:
    row: int
    at: float
    kind: str  # a key of _MARKS
    label: str = ""


def _fmt(seconds: float, unit: str) -> str:
    value = seconds / {"s": 1, "min": 60, "h": 3600}[unit]
    return f"{value:g}{' ' + unit if unit != 's' else ' s'}"


def _dot(cx: float, cy: float, fill: str, title: str | None = None) -> str:
    """A mark: the same circle in the plot (with a tooltip) and in the legend."""
    attributes = f'cx="{cx}" cy="{cy}" r="4.5" fill="{fill}" stroke="#0d47a1" stroke-width="1.5"'
    if title is None:
        return f"<circle {attributes}/>"
    return f"<circle {attributes}><title>{escape(title)}</title></circle>"


def _legend_dot(fill: str, x: float, y: int) -> str:
    return _dot(x + 6, y - 4, fill)


def _legend_box(colour: str, x: float, y: int) -> str:
    return (
        f'<rect x="{x}" y="{y - 10}" width="14" height="12" fill="{colour}" fill-opacity="0.75"/>'
    )


def timeline(
    *,
    title: str,
    rows: list[str],
    bars: list[Bar],
    marks: list[Mark],
    until: float,
    tick: float,
    unit: str = "s",
) -> str:
    """An SVG document: one labelled row per ``rows`` entry, time on the x axis."""
    left, right, top, row_h = 250, 24, 40, 34
    width = 900
    plot_w = width - left - right
    height = top + row_h * len(rows) + 95

    def x(t: float) -> float:
        return round(left + plot_w * min(max(t, 0.0), until) / until, 1)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" '
        'font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{left}" y="20" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    for i, name in enumerate(rows):
        y = top + i * row_h
        fill = "#f5f5f5" if i % 2 == 0 else "#ffffff"
        out.append(f'<rect x="{left}" y="{y}" width="{plot_w}" height="{row_h}" fill="{fill}"/>')
        out.append(
            f'<text x="{left - 8}" y="{y + row_h / 2 + 4}" text-anchor="end">{escape(name)}</text>'
        )
    axis_y = top + row_h * len(rows)
    out.append(
        f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" stroke="#333"/>'
    )
    t = 0.0
    while t <= until + 1e-9:
        out.append(
            f'<line x1="{x(t)}" y1="{top}" x2="{x(t)}" y2="{axis_y + 4}" stroke="#bbb" '
            'stroke-dasharray="2,3"/>'
        )
        out.append(
            f'<text x="{x(t)}" y="{axis_y + 16}" text-anchor="middle">{_fmt(t, unit)}</text>'
        )
        t += tick
    for bar in bars:
        colour = STYLES[bar.style][0]
        y = top + bar.row * row_h + 8
        w = max(x(bar.end) - x(bar.start), 1.0)
        out.append(
            f'<rect x="{x(bar.start)}" y="{y}" width="{w:.1f}" height="{row_h - 16}" '
            f'fill="{colour}" fill-opacity="0.75"><title>{escape(bar.label)}</title></rect>'
        )
        if bar.label and w > 7 * len(bar.label):
            out.append(
                f'<text x="{x(bar.start) + w / 2:.1f}" y="{y + row_h / 2 - 4}" '
                f'text-anchor="middle" fill="#ffffff">{escape(bar.label)}</text>'
            )
    for mark in marks:
        fill, _ = _MARKS[mark.kind]
        out.append(_dot(x(mark.at), top + mark.row * row_h + row_h / 2, fill, mark.label))
    # The legend: each style and mark the plot uses, as its swatch (drawn at x, y) and
    # its text (so far right of the swatch), in lines that wrap at the right edge.
    legend: list[tuple[Callable[[float, int], str], int, str]] = []
    for style, (colour, text) in STYLES.items():
        if any(b.style == style for b in bars):
            legend.append((partial(_legend_box, colour), 20, text))
    for kind, (fill, text) in _MARKS.items():
        if any(m.kind == kind for m in marks):
            legend.append((partial(_legend_dot, fill), 16, text))
    lx, legend_y = 10.0, axis_y + 40
    for swatch, text_x, text in legend:
        needed = text_x + 10 + 6.2 * len(text)
        if lx + needed > width - 10:
            lx, legend_y = 10.0, legend_y + 22
        out.append(swatch(lx, legend_y))
        out.append(f'<text x="{lx + text_x}" y="{legend_y}">{escape(text)}</text>')
        lx += needed
    out.append("</svg>")
    return "\n".join(out) + "\n"
