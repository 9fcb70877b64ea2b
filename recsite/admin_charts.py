"""Small server-side SVG charts for the admin (line and bar), no JavaScript, no CDN.

The admin must work offline, so charts are plain inline SVG with axes, ticks, a legend
and a `<title>` tooltip on every point or bar.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PALETTE = ("#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d53f8c", "#718096", "#b7791f")
FONT = "font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif"

MARGIN_LEFT = 56
MARGIN_RIGHT = 16
MARGIN_TOP = 34
MARGIN_BOTTOM = 44
LEGEND_ROW = 16


@dataclass(frozen=True)
class Series:
    """One line of a line chart; `None` values leave a gap."""

    name: str
    values: Sequence[float | None]
    color: str | None = None


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1-2-5 steps)."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    value = start
    while value < hi + step * 0.5 and len(ticks) < 50:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < hi:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def format_number(value: float) -> str:
    """A short label for an axis tick or tooltip (1.2k, 0.35, 12)."""
    if value is None:
        return "–"
    magnitude = abs(value)
    if magnitude >= 1_000_000:
        return f"{value / 1_000_000:.3g}M"
    if magnitude >= 10_000:
        return f"{value / 1_000:.3g}k"
    if magnitude >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _label_step(count: int, plot_width: float, label_width: float = 54) -> int:
    """Show every n-th x label so they do not overlap."""
    fits = max(int(plot_width // label_width), 1)
    return max(math.ceil(count / fits), 1)


def _frame(
    *,
    width: int,
    height: int,
    title: str,
    y_label: str,
    ticks: list[float],
    y_of,
    x_labels: Sequence[str],
    x_of,
    css_class: str,
    svg_height: int | None = None,
) -> list[str]:
    """The SVG head, title, y grid with tick labels and x labels (both charts).

    `height` is the plot's frame; `svg_height` (default the same) leaves room below it,
    e.g. for a legend.
    """
    full = svg_height or height
    plot_left, plot_right = MARGIN_LEFT, width - MARGIN_RIGHT
    parts = [
        f'<svg class="rs-chart {css_class}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width} {full}" width="{width}" height="{full}" role="img" '
        f'aria-label="{escape(title)}" style="{FONT};max-width:100%;height:auto">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{width}" height="{full}" fill="#fff"/>',
        f'<text x="{plot_left}" y="16" font-size="13" font-weight="600" fill="#222">'
        f"{escape(title)}</text>",
    ]
    for tick in ticks:
        y = y_of(tick)
        parts.append(
            f'<line x1="{plot_left}" y1="{y:.1f}" x2="{plot_right}" y2="{y:.1f}" '
            f'stroke="#e2e8f0" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{plot_left - 6}" y="{y + 4:.1f}" font-size="10" fill="#555" '
            f'text-anchor="end">{escape(format_number(tick))}</text>'
        )
    bottom = height - MARGIN_BOTTOM
    parts.append(
        f'<line x1="{plot_left}" y1="{bottom}" x2="{plot_right}" y2="{bottom}" '
        'stroke="#666"/>'
        f'<line x1="{plot_left}" y1="{MARGIN_TOP}" x2="{plot_left}" y2="{bottom}" '
        'stroke="#666"/>'
    )
    if y_label:
        cy = (MARGIN_TOP + bottom) / 2
        parts.append(
            f'<text x="12" y="{cy:.1f}" font-size="10" fill="#555" '
            'text-anchor="middle" '
            f'transform="rotate(-90 12 {cy:.1f})">{escape(y_label)}</text>'
        )
    step = _label_step(len(x_labels), plot_right - plot_left)
    for index, label in enumerate(x_labels):
        if index % step and index != len(x_labels) - 1:
            continue
        if index != len(x_labels) - 1 and len(x_labels) - 1 - index < step / 2:
            continue  # keep the last label readable
        parts.append(
            f'<text x="{x_of(index):.1f}" y="{bottom + 16}" font-size="10" fill="#555" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    return parts


def _empty(width: int, height: int, title: str, css_class: str) -> SafeString:
    return mark_safe(
        f'<svg class="rs-chart {css_class} rs-chart-empty" '
        'xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}" style="{FONT};max-width:100%;height:auto">'
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff" '
        'stroke="#e2e8f0"/>'
        f'<text x="{MARGIN_LEFT}" y="16" font-size="13" font-weight="600" fill="#222">'
        f"{escape(title)}</text>"
        f'<text x="{width / 2}" y="{height / 2}" font-size="12" fill="#888" '
        f'text-anchor="middle">No data yet</text></svg>'
    )


def line_chart(
    *,
    x_labels: Sequence[str],
    series: Sequence[Series],
    title: str = "",
    y_label: str = "",
    width: int = 640,
    height: int = 240,
    y_min: float | None = None,
    y_max: float | None = None,
    highlight_index: int | None = None,
    css_class: str = "rs-line-chart",
) -> SafeString:
    """A line chart of one or more series over shared x labels; returns inline SVG."""
    values = [v for s in series for v in s.values if v is not None and math.isfinite(v)]
    if not x_labels or not values:
        return _empty(width, height, title, css_class)
    lo = min(values) if y_min is None else y_min
    hi = max(values) if y_max is None else y_max
    ticks = nice_ticks(lo, hi)
    lo, hi = ticks[0], ticks[-1]
    plot_left, plot_right = MARGIN_LEFT, width - MARGIN_RIGHT
    bottom = height - MARGIN_BOTTOM
    count = len(x_labels)

    def x_of(index: int) -> float:
        if count == 1:
            return (plot_left + plot_right) / 2
        return plot_left + 8 + index * (plot_right - plot_left - 16) / (count - 1)

    def y_of(value: float) -> float:
        return bottom - (value - lo) / (hi - lo) * (bottom - MARGIN_TOP)

    colors = [line.color or PALETTE[n % len(PALETTE)] for n, line in enumerate(series)]
    legend: list[tuple[float, int]] = []  # (x, row) of each entry, below the plot
    x, row = float(plot_left), 0
    for line in series:
        entry = 22 + len(line.name) * 6.2
        if x + entry > width - MARGIN_RIGHT and x > plot_left:
            x, row = float(plot_left), row + 1
        legend.append((x, row))
        x += entry
    legend_height = (legend[-1][1] + 1) * LEGEND_ROW if legend else 0
    parts = _frame(
        width=width,
        height=height,
        title=title,
        y_label=y_label,
        ticks=ticks,
        y_of=y_of,
        x_labels=x_labels,
        x_of=x_of,
        css_class=css_class,
        svg_height=height + legend_height,
    )
    if highlight_index is not None and 0 <= highlight_index < count:
        x = x_of(highlight_index)
        parts.append(
            f'<line class="rs-highlight" x1="{x:.1f}" y1="{MARGIN_TOP}" x2="{x:.1f}" '
            f'y2="{bottom}" stroke="#f6ad55" stroke-width="6" stroke-opacity="0.35"/>'
        )
    for number, line in enumerate(series):
        color = colors[number]
        segments: list[list[str]] = [[]]
        for index, value in enumerate(line.values[:count]):
            if value is None or not math.isfinite(value):
                segments.append([])
                continue
            segments[-1].append(f"{x_of(index):.1f},{y_of(value):.1f}")
        for points in segments:
            if len(points) > 1:
                parts.append(
                    f'<polyline fill="none" stroke="{color}" stroke-width="2" '
                    f'points="{" ".join(points)}"/>'
                )
        for index, value in enumerate(line.values[:count]):
            if value is None or not math.isfinite(value):
                continue
            parts.append(
                f'<circle cx="{x_of(index):.1f}" cy="{y_of(value):.1f}" r="3" '
                f'fill="{color}">'
                f"<title>{escape(line.name)} · {escape(x_labels[index])}: "
                f"{escape(format_number(value))}</title></circle>"
            )
        lx, lrow = legend[number]
        ly = height - 8 + lrow * LEGEND_ROW
        parts.append(
            f'<rect x="{lx:.0f}" y="{ly - 9}" width="10" height="10" fill="{color}"/>'
            f'<text x="{lx + 14:.0f}" y="{ly}" font-size="11" fill="#333">'
            f"{escape(line.name)}</text>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def bar_chart(
    *,
    labels: Sequence[str],
    values: Sequence[float],
    title: str = "",
    y_label: str = "",
    width: int = 640,
    height: int = 220,
    color: str = PALETTE[0],
    highlight_index: int | None = None,
    css_class: str = "rs-bar-chart",
) -> SafeString:
    """A bar chart (one bar per label); returns inline SVG."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not labels or not any(finite):  # all zero says no more than "no data"
        return _empty(width, height, title, css_class)
    ticks = nice_ticks(min(0.0, min(finite)), max(finite))
    lo, hi = ticks[0], ticks[-1]
    plot_left, plot_right = MARGIN_LEFT, width - MARGIN_RIGHT
    bottom = height - MARGIN_BOTTOM
    count = len(labels)
    slot = (plot_right - plot_left) / count
    bar_width = max(slot * 0.75, 1.0)

    def x_of(index: int) -> float:
        return plot_left + slot * (index + 0.5)

    def y_of(value: float) -> float:
        return bottom - (value - lo) / (hi - lo) * (bottom - MARGIN_TOP)

    parts = _frame(
        width=width,
        height=height,
        title=title,
        y_label=y_label,
        ticks=ticks,
        y_of=y_of,
        x_labels=labels,
        x_of=x_of,
        css_class=css_class,
    )
    for index, value in enumerate(values):
        if value is None or not math.isfinite(value):
            continue
        top = y_of(max(value, 0))
        bar_height = abs(y_of(value) - y_of(0))
        fill = "#dd6b20" if index == highlight_index else color
        parts.append(
            f'<rect class="rs-bar" x="{x_of(index) - bar_width / 2:.1f}" y="{top:.1f}" '
            f'width="{bar_width:.1f}" height="{max(bar_height, 0.5):.1f}" '
            f'fill="{fill}"><title>{escape(labels[index])}: '
            f"{escape(format_number(value))}</title></rect>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))
