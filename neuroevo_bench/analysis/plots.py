"""Figures for papers, drawn from the tidy tables of :mod:`.tables`.

Each ``plot_*`` function draws one panel: it takes ``ax=None`` (then draws on ``plt.gca()``) and returns the
Axes, so panels compose into any layout (rliable's ``plot_utils`` style). Colours come from
:func:`algo_palette`, which gives each known algorithm a fixed colour of seaborn's colour-blind palette, so GA
is the same blue in every figure of every report. :func:`paper_style` sets fonts and embeds TrueType fonts in
PDFs (journals reject Type 3 fonts).
"""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Iterable, Iterator, Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.font_manager import FontProperties
from matplotlib.ticker import FuncFormatter, MaxNLocator
from matplotlib.transforms import offset_copy

from .labels import ALGO_ORDER, algo_label, format_count, order_algos

__all__ = [
    "algo_marker",
    "algo_palette",
    "frames_axis",
    "paper_style",
    "plot_aggregate",
    "plot_curves",
    "plot_final_scores",
    "plot_improvement",
    "plot_profile",
]

Color = tuple[float, float, float]

# Index into seaborn's "colorblind" palette per known algorithm: GA blue, random search orange, ES vermilion,
# A2C green, PPO purple, DQN sky blue (neighbouring hues also differ by marker); unknown algorithms take the
# remaining colours in name order.
_FIXED_COLOURS = {"ga": 0, "random": 1, "es": 3, "a2c": 2, "ppo": 4, "dqn": 9}
_SPARE_COLOURS = (5, 7, 6, 8)
_BAND_ALPHA = 0.2


@contextlib.contextmanager
def paper_style(font_scale: float = 1.0) -> Iterator[None]:
    """Seaborn white grid with paper font sizes (10-11 pt), TrueType fonts in PDF."""
    rc = {"pdf.fonttype": 42, "ps.fonttype": 42, "axes.titleweight": "bold", "legend.frameon": False}
    with (
        sns.axes_style("whitegrid"),
        sns.plotting_context("paper", font_scale=1.15 * font_scale),
        mpl.rc_context(rc),
    ):
        yield


def algo_palette(algos: Iterable[str]) -> dict[str, Color]:
    """A colour per algorithm, stable across figures and reports (known algorithms have fixed colours)."""
    colours = sns.color_palette("colorblind", 10)
    unknown = [a for a in order_algos(algos) if a not in ALGO_ORDER]
    palette = {algo: colours[i] for algo, i in _FIXED_COLOURS.items()}
    for i, algo in enumerate(unknown):
        palette[algo] = colours[_SPARE_COLOURS[i % len(_SPARE_COLOURS)]]
    return palette


def frames_axis(axis: mpl.axis.Axis) -> None:
    """Frame counts as 0, 250k, 1M instead of 1e6 offsets."""
    axis.set_major_formatter(FuncFormatter(lambda value, _: "0" if value == 0 else format_count(value)))


def _legend_below(ax: Axes) -> None:
    """Legend under the x-axis label, in columns: it never covers data and keeps the axes full width.

    The drop below the axes is computed in points from the current font sizes (tick length, tick label, axis
    label), so it holds at any figure size and dpi.
    """
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    rc = mpl.rcParams
    tick_font = FontProperties(size=rc["xtick.labelsize"]).get_size_in_points()
    label_font = FontProperties(size=rc["axes.labelsize"]).get_size_in_points()
    drop = rc["xtick.major.size"] + rc["xtick.major.pad"] + 1.2 * tick_font + 4.0
    if ax.get_xlabel():
        drop += rc["axes.labelpad"] + 1.5 * label_font
    anchor = offset_copy(ax.transAxes, fig=ax.figure, y=-drop, units="points")
    ax.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        bbox_transform=anchor,
        ncol=min(len(handles), 2),
        borderaxespad=0.0,
        handlelength=1.5,
        columnspacing=1.2,
    )


def plot_curves(
    curves: pd.DataFrame,
    ax: Axes | None = None,
    *,
    x_label: str = "frames",
    palette: Mapping[str, Color] | None = None,
    threshold: float | None = None,
    title: str | None = None,
    legend: bool = True,
    step: bool = True,
    log_x: bool = False,
    y_range: tuple[float, float] | None = None,
) -> Axes:
    """Mean test return vs ``x`` with CI bands, one line per algo, for one env.

    ``curves``: the rows of :func:`.tables.curve_table` for one env (columns algo, x, mean, ci_low, ci_high,
    n_seeds, optionally n_running). The line is solid while every seed is still training and dotted where some
    have finished and hold their final score, so a reader sees which part of the mean is measured on all seeds.
    Each algorithm also carries a few markers of its own shape, staggered along the line, so lines that
    coincide (e.g. every algorithm at -21 on Pong) all stay visible (the legend names coinciding algorithms),
    and one on its right end, the mean final score of the summary table.
    ``step=True`` draws the step-hold curves as steps (matching ``curve_table(interp="step")``); ``x_label``
    containing "frames" gets k/M tick labels. ``log_x`` draws x on a log scale (points at x = 0 left out): for
    wall-clock when algorithms differ in cost by orders of magnitude. ``y_range``: the range of the seeds' test
    scores; the view spans it (padded), and bands reaching past it are cut at the frame: a t interval is
    symmetric, so with few, spread-out seeds it runs past returns no policy scored (below 0, above 500 on
    CartPole) and would squeeze the curves.
    """
    ax = ax if ax is not None else plt.gca()
    palette = palette or algo_palette(curves["algo"])
    if log_x:
        curves = curves[curves["x"] > 0]
    drawstyle, band_step = ("steps-post", "post") if step else ("default", None)
    algos = order_algos(curves["algo"])
    span = (float(curves["x"].min()), float(curves["x"].max())) if len(curves) else (0.0, 1.0)
    for i, algo in enumerate(algos):
        rows = curves[curves["algo"] == algo]
        colour, marker = palette[algo], algo_marker(algo)
        x, y = rows["x"].to_numpy(float), rows["mean"].to_numpy(float)
        n = int(rows["n_seeds"].iloc[0])
        running = rows["n_running"].to_numpy(int) if "n_running" in rows else np.full(x.size, n)
        # Solid up to the fastest seed's end (the last point where all n run), dotted from there on.
        last_full = int(np.flatnonzero(running >= n)[-1]) if (running >= n).any() else 0
        line = {"color": colour, "drawstyle": drawstyle, "linewidth": 1.5}
        ax.plot(x[: last_full + 1], y[: last_full + 1], **line)
        if last_full < x.size - 1:
            ax.plot(x[last_full:], y[last_full:], linestyle=":", **line)
        ax.fill_between(
            x, rows["ci_low"], rows["ci_high"], color=colour, alpha=_BAND_ALPHA, step=band_step, lw=0
        )
        # Staggered markers, plus one on the line's end: the final mean, the summary table's value.
        mx = np.append(_marker_positions(x, i, len(algos), span, log_x), x[-1:])
        my = _curve_values(x, y, mx, step)
        marks = {"marker": marker, "color": colour, "markeredgecolor": "white", "markeredgewidth": 0.6}
        ax.plot(mx, my, linestyle="none", markersize=5.5, **marks)
        ax.plot([], [], label=f"{algo_label(algo)} (n={n})", **marks)
    for group in _coinciding(curves, algos, step):
        # Wrapped: a legend entry wider than the axes would squeeze them in a constrained layout.
        note = textwrap.fill("lines coincide: " + " = ".join(algo_label(a) for a in group), width=24)
        ax.plot([], [], linestyle="none", label=note)
    if threshold is not None and np.isfinite(threshold):
        ax.axhline(threshold, color="0.3", linestyle="--", linewidth=1.0, label=f"threshold ({threshold:g})")
    ax.set_xlabel(x_label + (" (log scale)" if log_x else ""))
    ax.set_ylabel("test return")
    if y_range is not None and np.isfinite(y_range).all():
        shown = [*y_range, *([threshold] if threshold is not None and np.isfinite(threshold) else [])]
        low, high = min(shown), max(shown)
        pad = 0.05 * (high - low) if high > low else 1.0
        ax.set_ylim(low - pad, high + pad)
    if log_x:
        ax.set_xscale("log")
    else:
        ax.set_xlim(left=0)
    if "frames" in x_label:
        frames_axis(ax.xaxis)
    if title:
        ax.set_title(title)
    if legend:
        _legend_below(ax)
    return ax


# Marker per known algorithm (distinct shapes, legible in grey print); unknown algorithms cycle the spares.
_FIXED_MARKERS = {"ga": "o", "random": "s", "es": "P", "a2c": "^", "ppo": "D", "dqn": "v"}
_SPARE_MARKERS = ("X", "*", "<", ">")
_MARKERS_PER_LINE = 4


def algo_marker(algo: str) -> str:
    """A marker shape per algorithm, fixed for known ones (GA a circle in every figure)."""
    if algo in _FIXED_MARKERS:
        return _FIXED_MARKERS[algo]
    return _SPARE_MARKERS[sum(algo.encode()) % len(_SPARE_MARKERS)]


def _marker_positions(
    x: np.ndarray, index: int, count: int, span: tuple[float, float], log_x: bool
) -> np.ndarray:
    """Marker x positions for line ``index`` of ``count`` lines, whose eval grid is ``x`` (n,).

    The whole x ``span`` of the axes is cut into ``count * _MARKERS_PER_LINE`` slots dealt round-robin to the
    lines, and a line gets the centres of its slots that fall within its own x range. Slots never overlap, so
    coinciding lines put their markers side by side, never on top of each other, however short the lines. A
    line too short to hold any of its slots gets one marker in its middle.
    """
    if x.size == 0:
        return x
    scale = np.log10 if log_x else np.asarray
    lo, hi = scale(np.asarray(span, dtype=float))
    slots = count * _MARKERS_PER_LINE
    centres = lo + (np.arange(index, slots, count) + 0.5) * (hi - lo) / slots
    start, end = scale(x[[0, -1]].astype(float))
    inside = centres[(centres >= start) & (centres <= end)]
    if inside.size == 0:
        inside = np.array([(start + end) / 2])
    return 10**inside if log_x else inside


def _curve_values(x: np.ndarray, y: np.ndarray, at: np.ndarray, step: bool) -> np.ndarray:
    """The drawn curve (x (n,), y (n,)) at ``at`` (m,): the held value for steps, else linear."""
    if not step:
        return np.interp(at, x, y)
    return y[np.clip(np.searchsorted(x, at, side="right") - 1, 0, x.size - 1)]


def _coinciding(curves: pd.DataFrame, algos: list[str], step: bool) -> list[list[str]]:
    """Groups of algorithms whose mean curves are identical where their x ranges overlap (e.g. all at -21)."""
    lines = {a: (g["x"].to_numpy(float), g["mean"].to_numpy(float)) for a, g in curves.groupby("algo")}
    scale = max(1.0, float(np.nanmax(np.abs(curves["mean"])))) if len(curves) else 1.0
    groups: list[list[str]] = []
    for algo in algos:
        x, y = lines[algo]
        for group in groups:
            gx, gy = lines[group[0]]
            lo, hi = max(x[0], gx[0]), min(x[-1], gx[-1])
            at = np.union1d(x, gx)
            at = at[(at >= lo) & (at <= hi)]
            mine, theirs = _curve_values(x, y, at, step), _curve_values(gx, gy, at, step)
            if at.size and np.allclose(mine, theirs, rtol=0, atol=1e-9 * scale, equal_nan=True):
                group.append(algo)
                break
        else:
            groups.append([algo])
    return [g for g in groups if len(g) > 1]


def plot_final_scores(
    runs: pd.DataFrame,
    ax: Axes | None = None,
    *,
    palette: Mapping[str, Color] | None = None,
    threshold: float | None = None,
    title: str | None = None,
) -> Axes:
    """Final test return of every seed (dots) over a box per algo, for one env.

    ``runs``: one row per run with columns algo, final_score (e.g. :func:`.load.runs_table` for one env).
    """
    ax = ax if ax is not None else plt.gca()
    palette = palette or algo_palette(runs["algo"])
    order = order_algos(runs["algo"])
    data = runs.assign(label=runs["algo"].map(algo_label))
    labels = [algo_label(a) for a in order]
    colours = {algo_label(a): palette[a] for a in order}
    common = {
        "data": data,
        "x": "label",
        "y": "final_score",
        "order": labels,
        "hue": "label",
        "hue_order": labels,
    }
    sns.boxplot(
        **common, palette=colours, ax=ax, width=0.55, showfliers=False, legend=False, boxprops={"alpha": 0.35}
    )
    # A swarm, not a jittered strip: no overlapping dots, and no random jitter (figures are reproducible).
    sns.swarmplot(**common, palette=colours, ax=ax, size=5, edgecolor="0.2", linewidth=0.6, legend=False)
    if threshold is not None and np.isfinite(threshold):
        ax.axhline(
            threshold,
            color="0.3",
            linestyle="--",
            linewidth=1.0,
            zorder=0,
            label=f"threshold ({threshold:g})",
        )
    ax.set_xlabel("")
    ax.set_ylabel("final test return")
    if title:
        ax.set_title(title)
    _legend_below(ax)
    return ax


def plot_aggregate(
    aggregate: pd.DataFrame,
    metric: str,
    ax: Axes | None = None,
    *,
    palette: Mapping[str, Color] | None = None,
    show_labels: bool = True,
) -> Axes:
    """One aggregate metric (e.g. "IQM") per algo: point estimate (tick) on its CI bar.

    ``aggregate``: rows of :func:`.tables.aggregate_table`. ``show_labels=False`` hides the algorithm names,
    for panels that share the y axis with one that shows them.
    """
    ax = ax if ax is not None else plt.gca()
    rows = aggregate[aggregate["metric"] == metric]
    order = order_algos(aggregate["algo"])
    palette = palette or algo_palette(order)
    for y, algo in enumerate(order):
        _interval(ax, y, rows[rows["algo"] == algo], "value", palette[algo])
    _category_axis(ax, [algo_label(a) for a in order], show_labels)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=3))  # narrow panels: few ticks, no overlapping labels
    ax.set_title(metric)
    ax.set_xlabel("normalised score")
    return ax


def plot_profile(
    profile: pd.DataFrame,
    ax: Axes | None = None,
    *,
    palette: Mapping[str, Color] | None = None,
    title: str | None = None,
    legend: bool = True,
) -> Axes:
    """Performance profiles (fraction of runs with normalised score > tau) with CI bands; rows of
    :func:`.tables.profile_table`. Drawn as steps: the fraction only changes where a run's score lies."""
    ax = ax if ax is not None else plt.gca()
    palette = palette or algo_palette(profile["algo"])
    for algo in order_algos(profile["algo"]):
        rows = profile[profile["algo"] == algo]
        ax.plot(
            rows["tau"],
            rows["fraction"],
            color=palette[algo],
            label=algo_label(algo),
            linewidth=1.5,
            drawstyle="steps-post",
        )
        ax.fill_between(
            rows["tau"],
            rows["ci_low"],
            rows["ci_high"],
            color=palette[algo],
            alpha=_BAND_ALPHA,
            lw=0,
            step="post",
        )
    ax.set_xlabel(r"normalised score $\tau$")
    ax.set_ylabel("fraction of runs\n" + r"with score $> \tau$")
    ax.set_ylim(-0.02, 1.02)
    if title:
        ax.set_title(title)
    if legend:
        _legend_below(ax)
    return ax


def plot_improvement(
    improvement: pd.DataFrame,
    ax: Axes | None = None,
    *,
    order: Sequence[str] | None = None,
    palette: Mapping[str, Color] | None = None,
    title: str | None = None,
    show_labels: bool = True,
) -> Axes:
    """P(X > Y) with CI bars, one row per compared algorithm Y, for one scope (an env or "all envs").

    ``improvement``: rows of :func:`.tables.improvement_table` for that scope. ``order``: the Y algorithms,
    one row each (default: those in ``improvement``); give panels that share y the same order so rows line up
    (an algorithm without data leaves its row empty). The dashed line at 0.5 is "no difference": an interval
    entirely right of it means X ends better than Y more often than not.
    """
    ax = ax if ax is not None else plt.gca()
    order = list(order) if order is not None else order_algos(improvement["algo_y"])
    palette = palette or algo_palette([*improvement["algo_x"], *order])
    for y, algo in enumerate(order):
        _interval(ax, y, improvement[improvement["algo_y"] == algo], "probability", palette[algo])
    reference = algo_label(improvement["algo_x"].iloc[0]) if len(improvement) else "X"
    ax.axvline(0.5, color="0.3", linestyle="--", linewidth=1.0, zorder=0)
    _category_axis(ax, [f"vs {algo_label(a)}" for a in order], show_labels)
    ax.set_xlim(-0.03, 1.03)
    ax.set_xlabel(f"P({reference} > Y)")
    if title:
        ax.set_title(title)
    return ax


def _interval(ax: Axes, y: float, rows: pd.DataFrame, column: str, colour: Color) -> None:
    """A point estimate (vertical tick) on its CI bar at height ``y``; nothing if ``rows`` is empty."""
    if rows.empty:
        return
    row = rows.iloc[0]
    if np.isfinite(row["ci_low"]):
        width = row["ci_high"] - row["ci_low"]
        ax.barh(y, width, left=row["ci_low"], height=0.6, color=colour, alpha=0.4, linewidth=0)
    ax.plot([row[column]], [y], marker="|", markersize=16, markeredgewidth=2.5, color=colour)


def _category_axis(ax: Axes, labels: list[str], show_labels: bool) -> None:
    """One row per label, the first on top. Labels are hidden with tick_params, not by setting empty labels,
    because panels sharing y share the tick labels too."""
    ax.set_yticks(range(len(labels)), labels)
    ax.tick_params(axis="y", labelleft=show_labels)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.grid(axis="y", visible=False)
    ax.margins(x=0.05)
