"""Server-rendered SVG charts: bars (grouped, with optional 95% intervals) and lines, no JavaScript, no CDN.

Every chart is an ``<svg role="img">`` labelled by its ``<title>`` and ``<desc>``; each mark has its
own ``<title>`` (shown as a tooltip), and the page puts the same numbers in a data table next to
it, so screen readers and CSV users get the data without the picture.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import count

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH = 640
HEIGHT = 260
MARGIN_LEFT = 56
MARGIN_RIGHT = 16
MARGIN_TOP = 16
MARGIN_BOTTOM = 56
# Series colours (also set in app.css); each passes 3:1 against white as a graphical object.
PALETTE = ("#3b3fc4", "#c2571a", "#177245", "#8a3ea8", "#a3122a", "#4b5468")

_ids = count(1)


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    # Optional (low, high) per value, drawn as an error bar (a 95% interval).
    intervals: Sequence[tuple[float, float] | None] | None = None


@dataclass(frozen=True)
class Chart:
    title: str
    description: str
    labels: Sequence[str]
    series: Sequence[Series]
    kind: str = "bar"  # "bar" or "line"
    percent: bool = False  # values are shares (0..1), shown as percentages
    y_max: float | None = None
    y_label: str = ""
    extra_classes: Sequence[str] = field(default_factory=tuple)

    def render(self) -> SafeString:
        return render(self)

    def __html__(self) -> str:
        return render(self)

    @property
    def legend(self) -> list[tuple[str, str]]:
        """Return (series name, colour) pairs for an HTML legend under the chart."""
        return [(s.name, PALETTE[i % len(PALETTE)]) for i, s in enumerate(self.series)]

    @property
    def is_empty(self) -> bool:
        """Return whether there is nothing to draw: no categories, every value missing, or every count zero."""
        return not self.labels or all(v is None or (v == 0 and not self.percent) for s in self.series for v in s.values)


def nice_ceiling(value: float) -> float:
    """Return a round number (1, 2, 2.5 or 5 times a power of ten) at or above ``value``."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        candidate = step * 10**exponent
        if candidate >= value - 1e-12:
            return candidate
    return 10 ** (exponent + 1)


def _formatter(chart: Chart) -> Callable[[float], str]:
    if chart.percent:
        return lambda v: f"{v * 100:.0f}%" if abs(v * 100 - round(v * 100)) < 1e-9 else f"{v * 100:.1f}%"
    return lambda v: f"{v:,.0f}" if abs(v - round(v)) < 1e-9 else f"{v:,.3g}"


def _y_max(chart: Chart) -> float:
    if chart.y_max is not None:
        return chart.y_max
    highs = [v for s in chart.series for v in s.values if v is not None]
    for s in chart.series:
        highs += [iv[1] for iv in (s.intervals or []) if iv]
    top = max(highs, default=0.0)
    if top <= 0:
        return 1.0 if chart.percent else 4.0
    # Four equal, round steps: 0, s, 2s, 3s, 4s.
    step = nice_ceiling(top / 4)
    counts = all(float(v).is_integer() for s in chart.series for v in s.values if v is not None)
    if not chart.percent and counts:
        step = max(step, 1.0)  # counts: no fractional ticks
    return min(1.0, 4 * step) if chart.percent and 4 * step > 1.0 and top <= 1.0 else 4 * step


def render(chart: Chart) -> SafeString:
    """Return the chart as accessible inline SVG markup."""
    uid = next(_ids)
    title_id, desc_id = f"chart-{uid}-title", f"chart-{uid}-desc"
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    y_top = _y_max(chart)
    fmt = _formatter(chart)

    def y_of(v: float) -> float:
        return MARGIN_TOP + plot_h * (1 - min(max(v, 0.0), y_top) / y_top)

    classes = " ".join(["chart", f"chart--{chart.kind}", *chart.extra_classes])
    out = [
        f'<svg class="{escape(classes)}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{title_id} {desc_id}" preserveAspectRatio="xMidYMid meet" '
        f'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{title_id}">{escape(chart.title)}</title>',
        f'<desc id="{desc_id}">{escape(chart.description)}</desc>',
    ]
    # Grid lines and y tick labels: five steps from 0 to the top.
    for i in range(5):
        v = y_top * i / 4
        y = y_of(v)
        out.append(
            f'<line class="chart__grid" x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#d9dde7" stroke-width="1"/>'
        )
        out.append(
            f'<text class="chart__tick" x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" '
            f'font-size="11" fill="#4b5468">{escape(fmt(v))}</text>'
        )
    if chart.y_label:
        out.append(
            f'<text class="chart__axis-label" x="12" y="{MARGIN_TOP + plot_h / 2:.1f}" font-size="11" fill="#4b5468" '
            f'text-anchor="middle" transform="rotate(-90 12 {MARGIN_TOP + plot_h / 2:.1f})">'
            f"{escape(chart.y_label)}</text>"
        )
    n = max(len(chart.labels), 1)
    slot = plot_w / n
    # Few categories: horizontal labels cut to the slot; many: every k-th label, slanted (about 44 px each).
    horizontal = n <= 6
    every = 1 if horizontal else max(1, math.ceil(n / max(plot_w // 44, 1)))
    label_y = HEIGHT - MARGIN_BOTTOM + 16
    for i, label in enumerate(chart.labels):
        if i % every:
            continue
        x = MARGIN_LEFT + slot * (i + 0.5)
        limit = max(int(slot / 6.5), 4) if horizontal else 14
        text = label if len(label) <= limit else label[: limit - 1] + "…"
        placement = (
            'text-anchor="middle"' if horizontal else f'text-anchor="end" transform="rotate(-30 {x:.1f} {label_y})"'
        )
        out.append(
            f'<text class="chart__label" x="{x:.1f}" y="{label_y}" font-size="11" fill="#1b2130" {placement}>'
            f"{escape(text)}</text>"
        )
    if chart.kind == "line":
        out += _lines(chart, slot, y_of, fmt)
    else:
        out += _bars(chart, slot, y_of, fmt)
    out.append(
        f'<line class="chart__axis" x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" y1="{y_of(0):.1f}" '
        f'y2="{y_of(0):.1f}" stroke="#858da1" stroke-width="1"/>'
    )
    out.append("</svg>")
    return mark_safe("".join(out))  # noqa: S308 - every interpolated text above is escaped


def _bars(chart: Chart, slot: float, y_of, fmt) -> list[str]:
    out = []
    k = max(len(chart.series), 1)
    group_w = slot * 0.75
    bar_w = group_w / k
    base = y_of(0)
    for si, series in enumerate(chart.series):
        colour = PALETTE[si % len(PALETTE)]
        for i, value in enumerate(series.values):
            if value is None:
                continue
            x = MARGIN_LEFT + slot * i + (slot - group_w) / 2 + bar_w * si
            y = y_of(value)
            tip = f"{chart.labels[i]} — {series.name}: {fmt(value)}"
            interval = series.intervals[i] if series.intervals and i < len(series.intervals) else None
            if interval:
                tip += f" (95%: {fmt(interval[0])}–{fmt(interval[1])})"
            out.append(
                f'<rect class="chart__bar chart__series-{si}" x="{x + 1:.1f}" y="{y:.1f}" '
                f'width="{max(bar_w - 2, 1):.1f}" height="{max(base - y, 0):.1f}" fill="{colour}">'
                f"<title>{escape(tip)}</title></rect>"
            )
            if interval:
                cx = x + bar_w / 2
                y1, y2 = y_of(interval[0]), y_of(interval[1])
                out.append(
                    f'<path class="chart__interval" d="M{cx:.1f} {y1:.1f}V{y2:.1f}M{cx - 5:.1f} {y1:.1f}H{cx + 5:.1f}'
                    f'M{cx - 5:.1f} {y2:.1f}H{cx + 5:.1f}" stroke="#1b2130" stroke-width="1.5" fill="none"/>'
                )
    return out


def _lines(chart: Chart, slot: float, y_of, fmt) -> list[str]:
    out = []
    for si, series in enumerate(chart.series):
        colour = PALETTE[si % len(PALETTE)]
        points = [
            (MARGIN_LEFT + slot * (i + 0.5), y_of(v), v, chart.labels[i])
            for i, v in enumerate(series.values)
            if v is not None
        ]
        if len(points) > 1:
            d = "M" + "L".join(f"{x:.1f} {y:.1f}" for x, y, _, _ in points)
            out.append(
                f'<path class="chart__line chart__series-{si}" d="{d}" stroke="{colour}" stroke-width="2.5" '
                'fill="none" stroke-linejoin="round"/>'
            )
        for x, y, v, label in points:
            out.append(
                f'<circle class="chart__point chart__series-{si}" cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}">'
                f"<title>{escape(f'{label} — {series.name}: {fmt(v)}')}</title></circle>"
            )
    return out
