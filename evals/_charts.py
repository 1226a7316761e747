"""The report's plots, drawn to PNG bytes so the HTML can carry them inline.

The report is read on air-gapped machines and printed, so a plot must be a picture inside the file, and
must still be told apart in black and white: every series gets its own marker or hatch, not only a
colour. Figures are built with `matplotlib.figure.Figure` directly, never pyplot: pyplot keeps global
state and picks an interactive backend, while a bare Figure renders with Agg and is safe in threads.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from evals._result import Series

if TYPE_CHECKING:
    from matplotlib.axes import Axes

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
HATCHES = ("", "//", "..", "xx", "\\\\", "--", "++", "oo")
# Wide and short so two fit on a printed page; the DPI keeps text sharp on paper.
FIGSIZE = (7.0, 3.4)
DPI = 120


def group_by_chart(series: Sequence[Series]) -> dict[str, list[Series]]:
    """Series per chart, charts in the order a suite first mentions them (dicts keep insertion order)."""
    charts: dict[str, list[Series]] = {}
    for one in series:
        charts.setdefault(one.chart, []).append(one)
    return charts


def chart_png(title: str, series: Sequence[Series]) -> bytes:
    # Imported here: matplotlib takes half a second to load, and every `bastion` command imports this.
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    if _categorical(series):
        _draw_categorical(axes, series)
    else:
        for i, one in enumerate(series):
            xs, ys = _points(one)
            axes.plot([float(x) for x in xs], ys, marker=MARKERS[i % len(MARKERS)], label=one.label)
    axes.set_title(title, fontsize=11)
    axes.set_xlabel(next((s.x_label for s in series if s.x_label), ""))
    axes.set_ylabel(next((s.y_label for s in series if s.y_label), ""))
    axes.grid(True, axis="y", alpha=0.3)
    axes.legend(fontsize=8, frameon=False)
    buffer = io.BytesIO()
    # No metadata: the same results then give the same bytes, and no version string is leaked.
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _categorical(series: Sequence[Series]) -> bool:
    # Bars need slots to group in, and text x values have no scale; numbers with lines keep a real axis.
    return any(s.kind == "bar" or any(isinstance(x, str) for x in s.x) for s in series)


def _draw_categorical(axes: Axes, series: Sequence[Series]) -> None:
    categories: dict[str, int] = {}
    for one in series:
        for x in _points(one)[0]:
            categories.setdefault(_label(x), len(categories))
    n_bars = sum(s.kind == "bar" for s in series)
    width = 0.8 / max(n_bars, 1)
    k = -1  # this bar series' place in its group
    for i, one in enumerate(series):
        xs, ys = _points(one)
        slots = [categories[_label(x)] for x in xs]
        if one.kind == "bar":
            k += 1
            offset = (k - (n_bars - 1) / 2) * width
            axes.bar(
                [slot + offset for slot in slots],
                ys,
                width=width,
                label=one.label,
                hatch=HATCHES[k % len(HATCHES)],
                edgecolor="black",
                linewidth=0.5,
            )
        else:
            axes.plot(slots, ys, marker=MARKERS[i % len(MARKERS)], label=one.label)
    axes.set_xticks(list(categories.values()), list(categories))
    if any(len(label) > 8 for label in categories) and len(categories) > 4:
        axes.tick_params(axis="x", labelrotation=30)


def _points(one: Series) -> tuple[list[float | str], list[float]]:
    # A series with more x than y (or the reverse) is a suite's bug; the report shows what pairs up
    # rather than failing the whole document over one plot.
    n = min(len(one.x), len(one.y))
    return one.x[:n], one.y[:n]


def _label(x: float | str) -> str:
    if isinstance(x, str):
        return x
    return str(int(x)) if math.isfinite(x) and x == int(x) else f"{x:g}"
