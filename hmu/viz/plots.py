"""Static charts rendered offline to PNG (matplotlib Agg, no pyplot global state).

Toxicity statistics like the paper's Figure 2 (a toxic/safe pie and per-keyword bars) and
a labelled scatter for the report. PNG metadata carries no software version, so the same
input gives the same bytes and DVC does not see spurious changes.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hmu.io import atomic_path

_DPI = 120
_COLORS = {"toxic": "#d62728", "safe": "#2ca02c"}
_PALETTE = ("#d62728", "#2ca02c", "#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2")


def _check_values(values: Mapping[str, float], name: str, nonnegative: bool = True) -> None:
    """Raise ValueError unless `values` is a non-empty mapping of finite (>= 0) numbers."""
    if not isinstance(values, Mapping) or not values:
        raise ValueError(f"{name} must be a non-empty mapping of label -> number")
    for label, value in values.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Real)
            or not math.isfinite(value)
        ):
            raise ValueError(f"{name}[{label!r}] = {value!r} is not a finite number")
        if nonnegative and value < 0:
            raise ValueError(f"{name}[{label!r}] = {value!r} is negative")


def _save(figure: Figure, path: str | os.PathLike) -> None:
    """Write the figure as PNG atomically, without version metadata (reproducible bytes)."""
    FigureCanvasAgg(figure)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=_DPI, metadata={"Software": None})


def toxicity_pie(shares: Mapping[str, float], path: str | os.PathLike, title: str = "") -> None:
    """Pie of dataset shares, e.g. {'toxic': 0.077, 'safe': 0.923}, labelled in percent.

    Values are normalised by their sum, so counts work as well as fractions.
    """
    _check_values(shares, "shares")
    total = sum(shares.values())
    if total <= 0:
        raise ValueError("shares must not all be zero")
    labels = list(shares)
    colors = [_COLORS.get(label.lower(), _PALETTE[i % len(_PALETTE)]) for i, label in
              enumerate(labels)]  # fmt: skip
    figure = Figure(figsize=(4.2, 4.2))
    axes = figure.add_subplot()
    axes.pie(
        [shares[label] / total for label in labels],
        labels=labels,
        colors=colors,
        autopct="%1.1f%%",
        pctdistance=0.75,
        startangle=90,
        counterclock=False,
        wedgeprops={"edgecolor": "white", "linewidth": 1.5},
        textprops={"fontsize": 11},
    )
    axes.set_aspect("equal")
    if title:
        axes.set_title(title)
    figure.tight_layout()
    _save(figure, path)


def keyword_bars(
    counts: Mapping[str, float],
    path: str | os.PathLike,
    title: str = "",
    as_percent: bool = True,
    x_label: str = "share of motions",
) -> None:
    """Horizontal bars per keyword, largest on top, each labelled with its value.

    With `as_percent` the values are fractions shown as percent (0.034 -> 3.4%), else raw.
    """
    _check_values(counts, "counts")
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    labels = [label for label, _ in ordered]
    values = [value * 100 if as_percent else value for _, value in ordered]
    figure = Figure(figsize=(6.0, 1.2 + 0.38 * len(labels)))
    axes = figure.add_subplot()
    bars = axes.barh(range(len(labels)), values, color=_COLORS["toxic"], height=0.65)
    axes.set_yticks(range(len(labels)), labels)
    axes.invert_yaxis()
    axes.bar_label(bars, fmt="%.1f%%" if as_percent else "%g", padding=3, fontsize=9)
    axes.set_xlabel(f"{x_label} (%)" if as_percent else x_label)
    axes.set_xlim(0, max(max(values), 1e-9) * 1.18)
    axes.spines[["top", "right"]].set_visible(False)
    if title:
        axes.set_title(title)
    figure.tight_layout()
    _save(figure, path)


def scatter_plot(
    points: Mapping[str, tuple[float, float]],
    path: str | os.PathLike,
    x_label: str,
    y_label: str,
    title: str = "",
) -> None:
    """Labelled scatter, one point per name (e.g. method -> (toxic rate, retain FID))."""
    if not isinstance(points, Mapping) or not points:
        raise ValueError("points must be a non-empty mapping of label -> (x, y)")
    for label, point in points.items():
        if len(point) != 2 or not all(
            isinstance(v, numbers.Real) and math.isfinite(v) for v in point
        ):
            raise ValueError(f"points[{label!r}] = {point!r} is not a finite (x, y) pair")
    figure = Figure(figsize=(5.5, 4.2))
    axes = figure.add_subplot()
    for i, (label, (x, y)) in enumerate(points.items()):
        axes.scatter([x], [y], s=50, color=_PALETTE[i % len(_PALETTE)], zorder=3)
        axes.annotate(label, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=9)
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.grid(True, alpha=0.3)
    axes.margins(0.15)
    if title:
        axes.set_title(title)
    figure.tight_layout()
    _save(figure, path)
