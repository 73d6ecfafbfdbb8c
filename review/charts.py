"""Inline SVG charts for the review page: no script, no network, readable without colour
(every bar carries its value as text)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

SHADES = ("#c6dbef", "#9ecae1", "#6baed6", "#3182bd", "#08519c", "#08306b")
GAIN, LOSS = "#2b8a3e", "#c92a2a"


def _shade(i: int, n: int) -> str:
    return SHADES[max(0, len(SHADES) - n + i)] if n <= len(SHADES) else SHADES[i % len(SHADES)]


def grouped_bars(
    title: str, rows: Sequence[str], series: Sequence[str],
    values: Sequence[Sequence[float | None]], fmt: str = "{:.0%}", maximum: float | None = None,
) -> Markup:
    """Horizontal bars: one group per row, one bar per series (values[row][series])."""
    label_w, bar_w, bar_h, gap = 210, 420, 14, 10
    known = [v for row in values for v in row if v is not None]
    top = maximum or max(known, default=0.0) or 1.0
    group_h = len(series) * bar_h + gap
    legend_h = 24
    height = legend_h + len(rows) * group_h + 4
    width = label_w + bar_w + 70
    out = [f'<svg role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
           f'width="100%" style="max-width:{width}px" xmlns="http://www.w3.org/2000/svg">',
           f"<title>{escape(title)}</title>"]
    x = label_w
    for j, name in enumerate(series):
        out.append(f'<rect x="{x}" y="4" width="12" height="12" fill="{_shade(j, len(series))}"/>'
                   f'<text x="{x + 16}" y="14" font-size="12">{escape(name)}</text>')
        x += 24 + 8 * len(name)
    for i, row in enumerate(rows):
        y0 = legend_h + i * group_h
        out.append(f'<text x="{label_w - 8}" y="{y0 + group_h / 2}" font-size="13" '
                   f'text-anchor="end" dominant-baseline="middle">{escape(row)}</text>')
        for j, value in enumerate(values[i]):
            y = y0 + j * bar_h
            w = 0.0 if value is None else bar_w * max(0.0, value) / top
            text = "n/a" if value is None else fmt.format(value)
            out.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 2}" '
                       f'fill="{_shade(j, len(series))}"><title>{escape(series[j])}: '
                       f'{escape(text)}</title></rect>'
                       f'<text x="{label_w + w + 4:.1f}" y="{y + bar_h - 4}" font-size="11">'
                       f"{escape(text)}</text>")
    out.append("</svg>")
    return Markup("".join(out))


def signed_bars(title: str, rows: Sequence[tuple[str, float, bool, str]]) -> Markup:
    """One horizontal bar per row (label, size, gain?, value text), green gains, red losses."""
    label_w, bar_w, bar_h = 190, 380, 22
    top = max((abs(v) for _, v, _, _ in rows), default=0.0) or 1.0
    height = len(rows) * bar_h + 6
    width = label_w + bar_w + 150
    out = [f'<svg role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
           f'width="100%" style="max-width:{width}px" xmlns="http://www.w3.org/2000/svg">',
           f"<title>{escape(title)}</title>"]
    for i, (label, value, gain, text) in enumerate(rows):
        y = 3 + i * bar_h
        w = bar_w * abs(value) / top
        out.append(f'<text x="{label_w - 8}" y="{y + bar_h / 2}" font-size="13" '
                   f'text-anchor="end" dominant-baseline="middle">{escape(label)}</text>'
                   f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{bar_h - 6}" '
                   f'fill="{GAIN if gain else LOSS}"/>'
                   f'<text x="{label_w + w + 6:.1f}" y="{y + bar_h / 2}" font-size="12" '
                   f'dominant-baseline="middle">{escape(text)}</text>')
    out.append("</svg>")
    return Markup("".join(out))
