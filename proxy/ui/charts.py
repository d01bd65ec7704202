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


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float], *, unit: str = "") -> str:
    """One horizontal bar per label (a ranking: groups by spend), labels on the left, values at the bars."""
    row, label_w = 22, 150
    height = TOP + row * max(len(labels), 1) + BOTTOM
    top = _nice_ceiling(max(values, default=0.0))
    plot_w = WIDTH - label_w - RIGHT - 64  # room for the value after the longest bar
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>"]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = TOP + row * i
        width = plot_w * value / top if top else 0
        parts.append(f'<text class="axis" x="{label_w - 6}" y="{y + 15}" text-anchor="end">'
                     f"{escape(_clip(label, 22))}<title>{escape(label)}</title></text>")
        parts.append(f'<rect class="bar series-0" x="{label_w}" y="{y + 3}" width="{width:.1f}" height="{row - 6}">'
                     f"<title>{escape(label)}: {escape(_exact(value, unit))}</title></rect>")
        parts.append(f'<text class="axis" x="{label_w + width + 4:.1f}" y="{y + 15}">'
                     f"{escape(_exact(value, unit))}</text>")
    parts.append("</svg>")
    return f'<figure class="chart-box"><figcaption>{escape(title)}</figcaption>{"".join(parts)}</figure>'


def stacked_bar_chart(title: str, periods: Sequence[str], series: Mapping[str, Sequence[float]], *,
                      unit: str = "") -> str:
    """One column per period (a day, an hour), stacked by series (the groups), with a legend."""
    n = max(len(periods), 1)
    totals = [sum(points[i] for points in series.values()) for i in range(len(periods))]
    top = _nice_ceiling(max(totals, default=0.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / n
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>"]
    for step in range(5):
        y = TOP + plot_h - plot_h * step / 4
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{escape(_short(top * step / 4, unit))}</text>")
    for i, period in enumerate(periods):
        base = 0.0
        for index, (name, points) in enumerate(series.items()):
            value = points[i]
            if value <= 0 or not top:
                continue
            y, h = TOP + plot_h * (1 - (base + value) / top), plot_h * value / top
            parts.append(f'<rect class="bar series-{index % SERIES_COLOURS}" x="{LEFT + slot * (i + 0.15):.1f}" '
                         f'y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}">'
                         f"<title>{escape(period)} · {escape(name)}: {escape(_exact(value, unit))}</title></rect>")
            base += value
    for i in _label_positions(len(periods)):
        parts.append(f'<text class="axis" x="{LEFT + slot * (i + 0.5):.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
                     f"{escape(periods[i])}</text>")
    parts.append("</svg>")
    legend = "".join(f'<li><span class="swatch series-{i % SERIES_COLOURS}"></span>{escape(name)}</li>'
                     for i, name in enumerate(series))
    return (f'<figure class="chart-box"><figcaption>{escape(title)}</figcaption>{"".join(parts)}'
            f'<ul class="legend">{legend}</ul></figure>')


def _clip(text: str, length: int) -> str:
    return text if len(text) <= length else text[:length - 1] + "…"


def _exact(value: float, unit: str) -> str:
    return f"${value:,.6f}".rstrip("0").rstrip(".") if unit == "$" else f"{value:,.0f}{unit}"
