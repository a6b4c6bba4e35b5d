"""Server-rendered SVG charts for console pages: no JavaScript, no CDN, every label escaped.

Two shapes are enough for now: `bars` (one horizontal bar per labelled series value, grouped by label)
and `columns` (one column group per period, oldest first). Each chart is drawn next to the table holding
the same numbers, so the chart is never the only place a number is shown (and has a `<title>` per bar).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# One colour per series key, in the console's palette (static/console.css uses the same names).
PALETTE = ("#c0392b", "#d68910", "#2e86c1", "#7d3c98", "#1e8449", "#566573")


def _colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def bars(
    rows: Sequence[tuple[str, Mapping[str, int]]], *, keys: Sequence[str], title: str, width: int = 560
) -> SafeString:
    """Horizontal bars: for each (label, values) row, one bar per key, scaled to the largest value."""
    bar, gap, label_width = 12, 10, 220
    largest = max([values.get(k, 0) for _, values in rows for k in keys] or [0]) or 1
    height = max(len(rows), 1) * (bar * len(keys) + gap) + 24
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    y = 4
    for label, values in rows:
        parts.append(f'<text x="0" y="{y + bar}" font-size="11">{escape(label)}</text>')
        for index, key in enumerate(keys):
            value = int(values.get(key, 0))
            length = int((width - label_width - 50) * value / largest)
            parts.append(
                f'<rect x="{label_width}" y="{y}" width="{max(length, 1)}" height="{bar - 2}" '
                f'fill="{_colour(index)}"><title>{escape(label)} {escape(key)}: {value}</title></rect>'
                f'<text x="{label_width + length + 4}" y="{y + bar - 3}" font-size="10">{value}</text>'
            )
            y += bar
        y += gap
    parts.append(_legend(keys, y=height - 8))
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 -- every interpolated label is escaped above


def columns(
    periods: Sequence[tuple[str, Mapping[str, int]]], *, keys: Sequence[str], title: str, height: int = 160
) -> SafeString:
    """Grouped columns per period (oldest first), scaled to the largest value; the period under each."""
    column, gap = 8, 6
    width = max(len(periods), 1) * (column * len(keys) + gap) + 10
    plot = height - 34
    largest = max([values.get(k, 0) for _, values in periods for k in keys] or [0]) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    x = 5
    for period, values in periods:
        for index, key in enumerate(keys):
            value = int(values.get(key, 0))
            tall = int(plot * value / largest)
            parts.append(
                f'<rect x="{x}" y="{plot - tall + 4}" width="{column - 1}" height="{max(tall, 1)}" '
                f'fill="{_colour(index)}"><title>{escape(period)} {escape(key)}: {value}</title></rect>'
            )
            x += column
        parts.append(
            f'<text x="{x - column * len(keys)}" y="{plot + 16}" font-size="8">{escape(period[-5:])}</text>'
        )
        x += gap
    parts.append(_legend(keys, y=height - 4))
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 -- every interpolated label is escaped above


def _legend(keys: Sequence[str], *, y: int) -> str:
    return "".join(
        f'<rect x="{4 + index * 120}" y="{y - 8}" width="8" height="8" fill="{_colour(index)}"/>'
        f'<text x="{16 + index * 120}" y="{y}" font-size="10">{escape(key)}</text>'
        for index, key in enumerate(keys)
    )
