"""Calibration metrics, pure and deterministic: Brier score, expected calibration error, reliability bins,
the Wilson interval of a success rate, and the reliability diagram as server-rendered SVG.

Forecasts are probabilities in [0, 1] (a promotion's confidence score in basis points / 10,000); outcomes
are 1 (a true incident, a successful execution) or 0. Anchors: the forecasting literature (Brier 1950;
Naeini et al. 2015 for ECE over equal-width bins).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape


def brier(pairs: list[tuple[float, int]]) -> float | None:
    """Mean squared difference between forecast and outcome; 0 is perfect, 0.25 is a coin at 0.5."""
    if not pairs:
        return None
    return sum((p - o) ** 2 for p, o in pairs) / len(pairs)


@dataclass(frozen=True)
class Bin:
    lower: float
    upper: float
    count: int
    mean_forecast: float | None
    observed_rate: float | None


def reliability_bins(pairs: list[tuple[float, int]], bins: int = 10) -> list[Bin]:
    """Equal-width bins over [0, 1]; a forecast of exactly 1.0 falls in the last bin."""
    grouped: list[list[tuple[float, int]]] = [[] for _ in range(bins)]
    for p, o in pairs:
        grouped[min(int(p * bins), bins - 1)].append((p, o))
    out = []
    for index, members in enumerate(grouped):
        n = len(members)
        out.append(
            Bin(
                lower=index / bins,
                upper=(index + 1) / bins,
                count=n,
                mean_forecast=sum(p for p, _ in members) / n if n else None,
                observed_rate=sum(o for _, o in members) / n if n else None,
            )
        )
    return out


def ece(pairs: list[tuple[float, int]], bins: int = 10) -> float | None:
    """Expected calibration error: the count-weighted mean gap between forecast and observed rate."""
    if not pairs:
        return None
    total = len(pairs)
    return sum(
        b.count / total * abs(b.mean_forecast - b.observed_rate)
        for b in reliability_bins(pairs, bins)
        if b.count
    )


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float] | None:
    """The Wilson score interval (95 %) of a success rate."""
    if n == 0:
        return None
    rate = successes / n
    denominator = 1 + z * z / n
    centre = (rate + z * z / (2 * n)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def reliability_svg(bins: list[Bin], *, size: int = 240, title: str = "reliability") -> str:
    """The reliability diagram: observed rate against mean forecast per bin, with the diagonal."""
    pad = 28
    inner = size - 2 * pad

    def x(value: float) -> float:
        return round(pad + value * inner, 1)

    def y(value: float) -> float:
        return round(size - pad - value * inner, 1)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" width="{size}" height="{size}" '
        'role="img" '
        f'aria-label="{escape(title)}" class="chart">',
        f'<rect x="{pad}" y="{pad}" width="{inner}" height="{inner}" fill="none" stroke="currentColor" '
        'stroke-opacity="0.3"/>',
        f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(1)}" y2="{y(1)}" stroke="currentColor" stroke-dasharray="4 3" '
        'stroke-opacity="0.5"/>',
    ]
    points = [(b.mean_forecast, b.observed_rate, b.count) for b in bins if b.count]
    if points:
        path = " ".join(f"{x(p)},{y(o)}" for p, o, _ in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="currentColor" stroke-width="2"/>')
        for p, o, n in points:
            parts.append(
                f'<circle cx="{x(p)}" cy="{y(o)}" r="3"><title>forecast {p:.2f}, observed {o:.2f}, '
                f"n={n}</title></circle>"
            )
    parts.append(f'<text x="{pad}" y="{size - 6}" font-size="10">forecast</text>')
    parts.append(f'<text x="4" y="{pad - 8}" font-size="10">observed</text>')
    parts.append("</svg>")
    return "".join(parts)
