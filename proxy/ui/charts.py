"""Charts as inline SVG, drawn on the server: no chart library, no JavaScript, readable without either.

Colours come from CSS variables (`--series-N`), so the same markup follows the light and dark themes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 28
SERIES_COLOURS = 6


def line_chart(title: str, times: Sequence[datetime], series: Mapping[str, Sequence[float | None]], *,
               unit: str = "", time_format: str = "%H:%M") -> str:
    """One line per series over `times` (the same length as each series); None leaves a gap."""
    values = [v for points in series.values() for v in points if v is not None]
    top = _nice_ceiling(max(values, default=0.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = max(len(times), 1)

    def x(i: int) -> float:
        return LEFT + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return TOP + plot_h - (plot_h * v / top if top else 0)

    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>"]
    for step in range(5):  # horizontal grid with labels
        value = top * step / 4
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}"/>')
        parts.append(f'<text class="axis" x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">'
                     f"{escape(_short(value, unit))}</text>")
    for i in _label_positions(len(times)):
        parts.append(f'<text class="axis" x="{x(i):.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
                     f"{escape(times[i].strftime(time_format))}</text>")
    for index, (name, points) in enumerate(series.items()):
        colour = f"series-{index % SERIES_COLOURS}"
        for run in _runs(points):
            coords = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in run)
            if len(run) == 1:
                i, v = run[0]
                parts.append(f'<circle class="{colour}" cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5"/>')
            else:
                parts.append(f'<polyline class="line {colour}" points="{coords}"><title>{escape(name)}</title>'
                             "</polyline>")
    parts.append("</svg>")
    legend = "".join(f'<li><span class="swatch series-{i % SERIES_COLOURS}"></span>{escape(name)}</li>'
                     for i, name in enumerate(series))
    return (f'<figure class="chart-box"><figcaption>{escape(title)}</figcaption>{"".join(parts)}'
            f'<ul class="legend">{legend}</ul></figure>')


def _runs(points: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    runs: list[list[tuple[int, float]]] = [[]]
    for i, v in enumerate(points):
        if v is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((i, float(v)))
    return [r for r in runs if r]


def _label_positions(n: int, wanted: int = 6) -> list[int]:
    if n <= 0:
        return []
    step = max(1, math.ceil(n / wanted))
    return list(range(0, n, step))


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10^k at or above `value` (an empty chart still gets an axis)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 2.5, 5, 10):
        if value <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def _short(value: float, unit: str) -> str:
    if unit == "$":
        return f"${value:,.4g}"
    if value >= 1000:
        return f"{value / 1000:,.3g}k{unit}"
    return f"{value:,.3g}{unit}"
