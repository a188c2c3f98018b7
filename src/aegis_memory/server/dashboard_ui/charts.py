"""Charts as inline SVG, drawn on the server.

No chart library and no script: each helper returns an ``<svg>`` with a ``<title>`` and a
``<desc>`` that states the numbers in words (what a screen reader announces), a ``<title>``
on every mark (the hover tooltip), and CSS classes instead of colours, so the stylesheet's
light and dark palettes apply.

The SVGs have no viewBox: horizontal positions are percentages of the chart's width and
vertical ones are pixels. So a chart fills a phone or a wide screen alike and its text stays
at reading size, where a scaled drawing would shrink its labels to nothing on a phone. (The
line, which percentages cannot describe, is drawn in a stretched inner SVG whose strokes do
not scale.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

#: Colours come from CSS: series ``i`` is drawn with class ``series-{i % SERIES}``.
SERIES = 4


@dataclass(frozen=True, slots=True)
class Series:
    """One named row of values; ``None`` is "no data" (drawn as nothing, said as n/a)."""

    name: str
    values: Sequence[float | None]


def _fmt_number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def nice_axis(value: float, ticks: int = 4) -> tuple[float, float]:
    """``(top, step)`` of a y axis from 0 that holds ``value`` in about ``ticks`` steps of 1, 2
    or 5 times a power of ten (whole numbers at least: the charts count things), so every
    gridline is a round number a reader takes in at a glance."""
    if value <= 0:
        return float(ticks), 1.0
    raw = value / ticks
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    step = max(step, 1.0)
    return step * math.ceil(value / step), step


def _open(chart_id: str, kind: str, title: str, desc: str, height: float) -> list[str]:
    """The start of a chart: its frame and an SVG with its accessible name and description."""
    return [
        f'<div class="chart-frame chart-frame--{kind}">',
        f'<svg id="{chart_id}" class="chart chart--{kind}" width="100%" height="{height:g}" '
        f'role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(desc)}</desc>',
    ]


def _legend(series: Sequence[Series]) -> str:
    """The key of a multi-series chart, as HTML beside the SVG (so it wraps on a phone). The
    SVG's description names the series already, so the key is hidden from screen readers."""
    items = "".join(
        f'<li><span class="swatch series-{j % SERIES}"></span>{escape(s.name)}</li>'
        for j, s in enumerate(series))
    return f'<ul class="chart-legend" aria-hidden="true">{items}</ul>'


def bar_chart(
    chart_id: str,
    title: str,
    bars: Sequence[tuple[str, float]],
    *,
    unit: str = "",
    fmt: Callable[[float], str] = _fmt_number,
    tones: Sequence[str] | None = None,
) -> Markup:
    """Horizontal bars, one per ``(label, value)``, each label above its bar: category names
    of any length read without rotation, at any width. ``tones`` names each bar's CSS class
    (``good``/``bad`` for votes); by default bars take the series colours in turn."""
    row, room = 38, 86.0  # pixels per bar; percent of the width the longest bar may take
    height = max(len(bars), 1) * row + 2
    top = max((v for _, v in bars), default=0)
    said = "; ".join(f"{label}: {fmt(v)}{unit}" for label, v in bars) or "no data"
    parts = _open(chart_id, "bars", title, said, height)
    if not bars:
        parts.append(f'<text class="chart-empty" x="50%" y="{height / 2 + 4:g}" '
                     'text-anchor="middle">No data yet</text>')
    for i, (label, value) in enumerate(bars):
        y = i * row
        pct = value / top * room if top else 0.0
        shown = max(pct, 0.4) if value else 0.0
        tone = tones[i] if tones else f"series-{i % SERIES}"
        said_bar = f"{escape(label)}: {escape(fmt(value))}{escape(unit)}"
        parts.append(
            f'<g class="bar"><title>{said_bar}</title>'
            f'<text class="chart-label" x="0" y="{y + 13}">{escape(label)}</text>'
            f'<rect class="chart-track" x="0" y="{y + 19}" width="{room:g}%" height="13" rx="3"/>'
            f'<rect class="{tone}" x="0" y="{y + 19}" width="{shown:.2f}%" height="13" rx="3"/>'
            f'<text class="chart-value" x="{shown:.2f}%" dx="6" y="{y + 30}">'
            f'{escape(fmt(value))}{escape(unit)}</text></g>'
        )
    parts.append("</svg></div>")
    return Markup("".join(parts))


def line_chart(
    chart_id: str,
    title: str,
    points: Sequence[tuple[str, float]],
    *,
    unit: str = "",
    tick_label: Callable[[str], str] = lambda s: s,
    height: float = 230,
) -> Markup:
    """Values over time (one point per label, in order) as a line over a shaded area, with
    round-numbered gridlines (labelled above the line, at the left) and at most eight x
    labels."""
    top_pad, bottom = 22, 28
    plot_h = height - top_pad - bottom
    peak, step_y = nice_axis(max((v for _, v in points), default=0))
    total = sum(v for _, v in points)
    said = (f"{len(points)} points, total {_fmt_number(total)}{unit}, highest "
            f"{_fmt_number(max((v for _, v in points), default=0))}{unit}. "
            + "; ".join(f"{label}: {_fmt_number(v)}" for label, v in points))
    parts = _open(chart_id, "line", title, said, height)

    def y_of(v: float) -> float:
        return top_pad + plot_h - plot_h * v / peak

    for k in range(round(peak / step_y) + 1):
        value = k * step_y
        y = y_of(value)
        parts.append(f'<line class="chart-grid" x1="0" x2="100%" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text class="chart-axis" x="0" y="{y - 5:.1f}">'
                     f'{escape(_fmt_number(value))}</text>')
    n = len(points)
    # Fractions of the width: a margin each side so the end points and labels stay inside.
    xs = [0.03 + 0.94 * (i / (n - 1) if n > 1 else 0.5) for i in range(n)]
    if points:
        base = top_pad + plot_h
        line = " ".join(f"{x * 1000:.1f},{y_of(v):.1f}" for x, (_, v) in zip(xs, points,
                                                                             strict=True))
        parts.append(
            f'<svg x="0" y="0" width="100%" height="{height:g}" viewBox="0 0 1000 {height:g}" '
            'preserveAspectRatio="none" aria-hidden="true">'
            f'<polygon class="chart-area" points="{xs[0] * 1000:.1f},{base:.1f} {line} '
            f'{xs[-1] * 1000:.1f},{base:.1f}"/>'
            f'<polyline class="chart-line" points="{line}" vector-effect="non-scaling-stroke"/>'
            '</svg>')
    # At most eight x labels, evenly spaced back from the newest point; every other one is
    # "minor", which the stylesheet hides on a narrow screen.
    every = max(1, math.ceil(n / 8))
    labelled = {i: (n - 1 - i) // every % 2 == 1 for i in range(n - 1, -1, -every)}
    for i, ((label, value), x) in enumerate(zip(points, xs, strict=True)):
        parts.append(f'<circle class="chart-point" cx="{x * 100:.2f}%" cy="{y_of(value):.1f}" '
                     f'r="4"><title>{escape(label)}: {escape(_fmt_number(value))}'
                     f'{escape(unit)}</title></circle>')
        if i in labelled:
            anchor = "end" if i == n - 1 and n > 1 else "start" if i == 0 else "middle"
            minor = " tick-minor" if labelled[i] else ""
            parts.append(f'<text class="chart-axis{minor}" x="{x * 100:.2f}%" '
                         f'y="{height - 8:g}" text-anchor="{anchor}">'
                         f'{escape(tick_label(label))}</text>')
    parts.append("</svg></div>")
    return Markup("".join(parts))


def column_chart(
    chart_id: str,
    title: str,
    groups: Sequence[str],
    series: Sequence[Series],
    *,
    low: float = 0.0,
    high: float = 1.0,
    fmt: Callable[[float], str] = lambda v: f"{v:.0%}",
    height: float = 240,
) -> Markup:
    """Grouped vertical columns: one group per label in ``groups``, one column per series,
    on a fixed scale from ``low`` to ``high`` (which may straddle zero: columns then grow up
    or down from the zero line). A missing value leaves a gap labelled "n/a"."""
    left, top_pad, bottom = 12.0, 14, 28  # left in percent (the y labels), the rest in pixels
    plot_h = height - top_pad - bottom
    span = high - low

    def y_of(v: float) -> float:
        return top_pad + plot_h * (high - v) / span

    said = "; ".join(
        f"{g}: " + ", ".join(f"{s.name} {fmt(v) if v is not None else 'n/a'}"
                             for s in series for v in [s.values[i]])
        for i, g in enumerate(groups))
    parts = _open(chart_id, "columns", title, said, height)
    for k in range(5):
        value = low + span * k / 4
        y = y_of(value)
        zero = " chart-zero" if value == 0 else ""
        parts.append(f'<line class="chart-grid{zero}" x1="{left:g}%" x2="100%" y1="{y:.1f}" '
                     f'y2="{y:.1f}"/><text class="chart-axis" x="0" y="{y + 4:.1f}">'
                     f'{escape(fmt(value))}</text>')
    group_w = (100 - left) / max(len(groups), 1)
    col_w = group_w * 0.7 / max(len(series), 1)
    zero_y = y_of(min(max(0.0, low), high))
    for i, g in enumerate(groups):
        gx = left + i * group_w + group_w * 0.15
        for j, s in enumerate(series):
            v = s.values[i]
            x = gx + j * col_w
            if v is None:
                parts.append(f'<text class="chart-na" x="{x + col_w / 2:.2f}%" '
                             f'y="{zero_y - 5:.1f}" text-anchor="middle">n/a</text>')
                continue
            y = y_of(v)
            top_y, h = min(y, zero_y), max(abs(zero_y - y), 1.5)
            parts.append(
                f'<rect class="series-{j % SERIES}" x="{x + col_w * 0.08:.2f}%" '
                f'y="{top_y:.1f}" width="{col_w * 0.84:.2f}%" height="{h:.1f}" rx="2">'
                f'<title>{escape(g)}, {escape(s.name)}: {escape(fmt(v))}</title></rect>')
        parts.append(f'<text class="chart-axis" x="{left + (i + 0.5) * group_w:.2f}%" '
                     f'y="{height - 8:g}" text-anchor="middle">{escape(g)}</text>')
    parts.append("</svg>")
    parts.append(_legend(series))
    parts.append("</div>")
    return Markup("".join(parts))


def mini_bar(value: float, *, low: float = -1.0, high: float = 1.0, width: float = 90) -> Markup:
    """A small bar from the zero line, for a number shown beside it in a table cell (so the
    bar is decoration for sighted readers and hidden from screen readers)."""
    span = high - low
    zero = width * (0 - low) / span
    x = width * (min(max(value, low), high) - low) / span
    left, w = min(zero, x), abs(x - zero)
    tone = "series-pos" if value >= 0 else "series-neg"
    return Markup(
        f'<svg class="mini-bar" viewBox="0 0 {width:g} 10" width="{width:g}" height="10" '
        f'aria-hidden="true" focusable="false"><rect class="mini-track" x="0" y="3" '
        f'width="{width:g}" height="4" rx="2"/><rect class="{tone}" x="{left:.1f}" y="1" '
        f'width="{max(w, 1.5):.1f}" height="8" rx="2"/><line class="chart-zero" x1="{zero:.1f}" '
        f'x2="{zero:.1f}" y1="0" y2="10"/></svg>')
