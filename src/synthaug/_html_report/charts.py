"""Geometry of the inline SVG charts of ``report.html`` (the templates draw it).

Charts are computed here, from numbers in ``report.json``, so that the page needs no plotting
library, no script and no network: a :class:`BarChart` is plain coordinates for ``<rect>``,
``<line>`` and ``<text>`` elements.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["Bar", "BarChart", "bar_chart", "PALETTE"]

#: Colour-blind-safe series colours (Okabe-Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")

_LABEL_W = 170
_CHAR_W = 7  # room per character of a category label (11 px text): labels are never truncated
_PLOT_W = 430
_BAR_H = 13
_ROW_GAP = 9
_TOP = 8
_AXIS_H = 34


@dataclass(frozen=True)
class Bar:
    """One bar: its box, an optional error whisker (``x_low``..``x_high``) and a caption."""

    x: float
    y: float
    width: float
    height: float
    colour: str
    caption: str
    x_low: float | None = None
    x_high: float | None = None


@dataclass
class BarChart:
    """A grouped horizontal bar chart: one row per category, one bar per series."""

    title: str
    width: int
    height: int
    label_x: int
    rows: list[tuple[str, float]] = field(default_factory=list)  # (category, y of its label)
    bars: list[Bar] = field(default_factory=list)
    ticks: list[tuple[float, str]] = field(default_factory=list)  # (x, text)
    axis_y: float = 0.0
    axis_label: str = ""
    reference: tuple[float, str] | None = None  # (x, text)
    legend: list[tuple[str, str]] = field(default_factory=list)  # (colour, series name)


def _finite(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _nice_max(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k that is >= ``value``."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * 10**exponent >= value:
            return step * 10**exponent
    return 10 ** (exponent + 1)


def bar_chart(
    title: str,
    categories: Sequence[str],
    series: Mapping[str, Sequence[object]],
    *,
    errors: Mapping[str, Sequence[object]] | None = None,
    axis_label: str = "",
    reference: tuple[float, str] | None = None,
    max_value: float | None = None,
) -> BarChart | None:
    """A chart of ``series[name][i]`` for each category ``i`` (None/NaN values draw no bar).

    ``errors`` gives a symmetric whisker per value; ``reference`` a vertical line
    ``(value, text)``; ``max_value`` fixes the axis end (else a round number above the data).
    Returns None when no value is finite (nothing to draw).
    """
    values = [[_finite(v) for v in series[name]] for name in series]
    errs = [[_finite(e) or 0.0 for e in (errors or {}).get(name, [None] * len(categories))] for name in series]
    finite = [v + e for vs, es in zip(values, errs) for v, e in zip(vs, es) if v is not None]
    if not finite:
        return None
    top = max_value or _nice_max(max(finite + ([reference[0]] if reference else [])) * 1.02)
    scale = _PLOT_W / top
    n = len(series)
    row_h = n * _BAR_H + _ROW_GAP
    label_w = max(_LABEL_W, _CHAR_W * max((len(str(c)) for c in categories), default=0) + 12)
    chart = BarChart(title=title, width=label_w + _PLOT_W + 20, height=0, label_x=label_w - 6,
                     axis_label=axis_label)
    for i, category in enumerate(categories):
        y0 = _TOP + i * row_h
        chart.rows.append((category, y0 + n * _BAR_H / 2 + 4))
        for k, name in enumerate(series):
            value = values[k][i]
            if value is None:
                continue
            x_end = label_w + max(0.0, min(value, top)) * scale
            err = errs[k][i]
            chart.bars.append(Bar(
                x=label_w, y=y0 + k * _BAR_H, width=x_end - label_w, height=_BAR_H - 2,
                colour=PALETTE[k % len(PALETTE)], caption=f"{category} · {name}: {value:.4g}"
                + (f" ± {err:.2g}" if err else ""),
                x_low=label_w + max(0.0, value - err) * scale if err else None,
                x_high=label_w + min(top, value + err) * scale if err else None))
    chart.axis_y = _TOP + len(categories) * row_h
    chart.ticks = [(label_w + top * f * scale, f"{top * f:.3g}") for f in (0, 0.25, 0.5, 0.75, 1.0)]
    if reference is not None and _finite(reference[0]) is not None:
        chart.reference = (label_w + min(reference[0], top) * scale, reference[1])
    if n > 1:
        chart.legend = [(PALETTE[k % len(PALETTE)], name) for k, name in enumerate(series)]
    chart.height = int(chart.axis_y + _AXIS_H + 16 * len(chart.legend))  # one legend line per series
    return chart
