"""Tidy result tables computed from the loaded runs, and their Markdown / LaTeX renderings.

Every number in the report (table cell or plotted point) comes from a function here, so the figures and the
CSVs next to them always agree. Each table is a plain DataFrame with numeric columns; ``format_*`` turns one
into strings for display. A mean over seeds gets a Student-t CI (:func:`stats.mean_ci`, chosen for its
coverage with few seeds); other statistics a bootstrap CI. Randomness: every bootstrap draws from
``rng_for(seed, <table>, <group>...)``, so one group's CI does not depend on which other groups are in the tree.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from . import stats
from .labels import algo_label, format_count, format_score, format_seconds, order_algos, score_decimals
from .load import runs_table

__all__ = [
    "AGGREGATE_METRICS",
    "aggregate_table",
    "curve_table",
    "format_aggregate",
    "format_improvement",
    "format_summary",
    "improvement_table",
    "profile_table",
    "resolution_notes",
    "resolution_table",
    "summary_table",
    "threshold_crossings",
    "to_latex",
    "to_markdown",
    "untrained_notes",
]

logger = logging.getLogger(__name__)

ALL_ENVS = "all envs"
UNTRAINED_MARK = "\u2020"  # dagger after an algorithm name: some of its seeds never completed a generation
# name -> statistic over pooled normalised scores (observations on the last axis)
AGGREGATE_METRICS = {
    "IQM": stats.iqm,
    "Median": stats.median,
    "Mean": stats.mean,
    "Optimality gap": stats.optimality_gap,
}


def _sorted(table: pd.DataFrame, algo_column: str = "algo") -> pd.DataFrame:
    """Rows by env name, then in report algorithm order (GA first)."""
    rank = {algo: i for i, algo in enumerate(order_algos(table[algo_column]))}
    keys = [c for c in ("env",) if c in table]
    order = table.assign(_rank=table[algo_column].map(rank)).sort_values([*keys, "_rank"], kind="stable")
    return order.drop(columns="_rank").reset_index(drop=True)


# --- thresholds ---------------------------------------------------------------------------------------------


def threshold_crossings(df: pd.DataFrame) -> pd.DataFrame:
    """Per run: frames and training wall-clock of the first eval point whose test score is at or above the
    env's threshold (:func:`stats.first_crossing`; never interpolated between eval points).

    Both come from the same eval point. A run that never reaches the threshold has ``reached`` False and
    ``nan`` times; ``run_frames`` / ``run_wall_s`` (its training frames and wall-clock) are what it is known to
    exceed (its censoring times). Columns: run_id, env, algo, seed, threshold, reached, frames_to_threshold,
    wall_s_to_threshold, run_frames, run_wall_s.
    """
    rows = []
    for run_id, curve in df.groupby("run_id", sort=False):
        first = curve.iloc[0]
        threshold = float(first["score_threshold"])
        index = stats.first_crossing(curve["score_mean"], threshold)
        point = curve.iloc[index] if index is not None else None
        rows.append(
            {
                "run_id": run_id,
                "env": first["env"],
                "algo": first["algo"],
                "seed": first["seed"],
                "threshold": threshold,
                "reached": point is not None,
                "frames_to_threshold": float(point["frames"]) if point is not None else float("nan"),
                "wall_s_to_threshold": float(point["train_wall_s"]) if point is not None else float("nan"),
                "run_frames": float(first["train_frames"]),
                "run_wall_s": float(first["total_train_wall_s"]),
            }
        )
    return pd.DataFrame(rows)


def resolution_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per (env, algo): how finely time-to-threshold is measured, i.e. the spacing of its eval points.

    A crossing is only seen at an eval point, so it is late by up to one spacing. GA / RS (runs whose curve has
    a ``generation`` column) evaluate at the first generation end past each ``eval.every_frames``: the
    resolution is one generation (whose frames vary with episode lengths) or ``eval.every_frames``, whichever
    is longer. Other algorithms evaluate every ``eval.every_frames`` (from the run's config; SB3
    rounds up to its rollout). Columns: env, algo, basis ("generation" or "every_frames"), eval_every_frames
    (the configured value, nan if unknown), spacing_min, spacing_median, spacing_max (frames between
    consecutive eval points over all its runs; nan for single-point curves).
    """
    generations = df["generation"] if "generation" in df else pd.Series(np.nan, index=df.index)
    rows = []
    for (env, algo), group in df.assign(_generation=generations).groupby(["env", "algo"], sort=False):
        spacing = np.concatenate(
            [np.diff(run["frames"].to_numpy(float)) for _, run in group.groupby("run_id")]
        )
        every = group["eval_every_frames"].dropna().unique()
        rows.append(
            {
                "env": env,
                "algo": algo,
                "basis": "generation" if group["_generation"].notna().any() else "every_frames",
                "eval_every_frames": float(every[0]) if len(every) == 1 else float("nan"),
                "spacing_min": float(spacing.min()) if spacing.size else float("nan"),
                "spacing_median": float(np.median(spacing)) if spacing.size else float("nan"),
                "spacing_max": float(spacing.max()) if spacing.size else float("nan"),
            }
        )
    return _sorted(pd.DataFrame(rows))


# --- the main comparison table ------------------------------------------------------------------------------


def summary_table(df: pd.DataFrame, *, confidence_level: float = stats.DEFAULT_CONFIDENCE) -> pd.DataFrame:
    """One row per (env, algo): final score over seeds (mean with Student-t CI, IQM, median), frames used,
    frames / wall-clock to threshold and training throughput.

    ``frames_to_threshold`` and ``wall_s_to_threshold`` are medians over *all* seeds of the first eval point at
    or above the threshold, a seed that never reached it counting as "never" (:func:`stats.censored_median`);
    when the median falls on such a seed the value is a lower bound and ``*_bound`` is True (shown as "> x").
    ``n_reached`` seeds reached it. ``n_untrained`` seeds never completed a generation (run.json
    ``untrained``): their score is the untrained network's. ``train_fps`` is the mean over seeds of
    ``train_frames / total_train_wall_s``.
    """
    runs = runs_table(df)
    crossings = threshold_crossings(df).set_index("run_id")
    rows = []
    for (env, algo), group in runs.groupby(["env", "algo"], sort=False):
        scores = group["final_score"].to_numpy(dtype=float)
        low, high = stats.mean_ci(scores, confidence_level)
        cross = crossings.loc[group["run_id"]]
        thresholds = cross["threshold"].dropna().unique()
        if len(thresholds) > 1:
            logger.warning("runs of %s on %s disagree on score_threshold: %s", algo, env, sorted(thresholds))
        budgets = group["budget_frames"].dropna().unique()
        if len(budgets) > 1:
            logger.warning(
                "runs of %s on %s have different frame budgets (%s): compare them with care; their seeds' "
                "final scores are held to the right of their ends in the learning curves",
                algo,
                env,
                ", ".join(f"{b:,.0f}" for b in sorted(budgets)),
            )
        reached = cross["reached"].to_numpy(dtype=bool)
        frames, frames_bound = stats.censored_median(
            cross["frames_to_threshold"], reached, cross["run_frames"]
        )
        wall, wall_bound = stats.censored_median(cross["wall_s_to_threshold"], reached, cross["run_wall_s"])
        has_threshold = len(thresholds) == 1
        fps = group["train_frames"] / group["total_train_wall_s"].where(group["total_train_wall_s"] > 0)
        rows.append(
            {
                "env": env,
                "env_id": group["env_id"].iloc[0],
                "algo": algo,
                "n_seeds": len(group),
                "n_untrained": int(group["untrained"].sum()),
                "final_mean": float(np.mean(scores)),
                "final_ci_low": float(low),
                "final_ci_high": float(high),
                "final_iqm": float(stats.iqm(scores)),
                "final_median": float(np.median(scores)),
                "final_std": float(np.std(scores, ddof=1)) if len(scores) > 1 else float("nan"),
                "train_frames_mean": float(group["train_frames"].mean()),
                "train_wall_s_mean": float(group["total_train_wall_s"].mean()),
                "threshold": float(thresholds[0]) if has_threshold else float("nan"),
                "n_reached": int(reached.sum()),
                "frames_to_threshold": frames if has_threshold else float("nan"),
                "frames_to_threshold_bound": frames_bound and has_threshold,
                "wall_s_to_threshold": wall if has_threshold else float("nan"),
                "wall_s_to_threshold_bound": wall_bound and has_threshold,
                "train_fps": float(fps.mean()),
            }
        )
    return _sorted(pd.DataFrame(rows))


def format_summary(summary: pd.DataFrame, confidence_level: float = stats.DEFAULT_CONFIDENCE) -> pd.DataFrame:
    """The summary table as display strings (what summary.md / summary.tex show).

    Times to threshold read "median (reached/seeds)", or "> x (reached/seeds)" when the median seed never
    reached it; an algorithm with untrained seeds is marked with a dagger (:func:`untrained_notes`).
    """
    ci = f"{confidence_level:.0%} CI"

    def to_threshold(row: pd.Series, column: str, fmt) -> str:
        if np.isnan(row["threshold"]):
            return "n/a"
        value = ("> " if row[f"{column}_bound"] else "") + fmt(row[column])
        return f"{value} ({row['n_reached']}/{row['n_seeds']})"

    # Show the env id (CartPole-v1) unless two env configs share one; then the config names tell them apart.
    ids_unique = summary.groupby("env_id")["env"].nunique().max() <= 1 if len(summary) else True
    rows = []
    for _, row in summary.iterrows():
        scores = [
            row[c] for c in ("final_mean", "final_ci_low", "final_ci_high", "final_iqm", "final_median")
        ]
        decimals = score_decimals(*scores)
        mean, low, high, iqm, median = (format_score(v, decimals) for v in scores)
        interval = "[n/a]" if np.isnan(row["final_ci_low"]) else f"[{low}, {high}]"
        mark = f" {UNTRAINED_MARK}" if row["n_untrained"] else ""
        rows.append(
            {
                "env": row["env_id"] if ids_unique else row["env"],
                "algo": algo_label(row["algo"]) + mark,
                "seeds": str(row["n_seeds"]),
                f"final score, mean [{ci}]": f"{mean} {interval}",
                "IQM": iqm,
                "median": median,
                "frames": format_count(row["train_frames_mean"]),
                "threshold": "n/a" if np.isnan(row["threshold"]) else f"{row['threshold']:g}",
                "frames to threshold": to_threshold(row, "frames_to_threshold", format_count),
                "wall-clock to threshold [s]": to_threshold(row, "wall_s_to_threshold", format_seconds),
                "train frames/s": format_count(row["train_fps"]),
            }
        )
    return pd.DataFrame(rows)


def untrained_notes(summary: pd.DataFrame, env_labels: dict[str, str] | None = None) -> list[str]:
    """One note per (env, algo) with untrained seeds: "† GA on Pong: 3 of 5 seeds never completed ..."."""
    env_labels = env_labels or {}
    return [
        f"{UNTRAINED_MARK} {algo_label(row['algo'])} on {env_labels.get(row['env'], row['env'])}: "
        f"{row['n_untrained']} of {row['n_seeds']} seeds never completed a generation (budget too small): "
        "their score is the untrained network's."
        for _, row in summary.iterrows()
        if row["n_untrained"]
    ]


def resolution_notes(resolution: pd.DataFrame, env_labels: dict[str, str] | None = None) -> list[str]:
    """Per env, one sentence on the resolution of time-to-threshold for each algorithm (:func:`resolution_table`)."""
    env_labels = env_labels or {}
    notes = []
    for env, group in resolution.groupby("env", sort=False):
        parts = []
        for _, row in group.iterrows():
            if row["basis"] == "generation":
                every = row["eval_every_frames"]
                every_text = (
                    f"eval.every_frames = {format_count(every)}"
                    if np.isfinite(every)
                    else "eval.every_frames"
                )
                what = (
                    f"one generation or {every_text}, whichever is longer (eval points at the first generation "
                    f"end past each eval.every_frames{_spacing(row, ': ')})"
                )
            elif np.isfinite(row["eval_every_frames"]):
                what = f"eval.every_frames = {format_count(row['eval_every_frames'])} frames"
            else:
                what = f"its eval spacing{_spacing(row, ' ')}"
            parts.append(f"{algo_label(row['algo'])} {what}")
        notes.append(f"{env_labels.get(env, env)}: " + "; ".join(parts) + ".")
    return notes


def _spacing(row: pd.Series, lead: str) -> str:
    """ "45.7k-227k frames here, median 119k" (or "1M frames here"); empty without two eval points."""
    if np.isnan(row["spacing_median"]):
        return ""
    low, high = format_count(row["spacing_min"]), format_count(row["spacing_max"])
    if low == high:
        return f"{lead}{low} frames here"
    return f"{lead}{low}-{high} frames here, median {format_count(row['spacing_median'])}"


# --- aggregates over envs on normalised scores --------------------------------------------------------------


def _normalised_runs(df: pd.DataFrame) -> pd.DataFrame:
    runs = runs_table(df)
    usable = runs[np.isfinite(runs["final_norm_score"])]
    missing = sorted(set(runs["env"]) - set(usable["env"]))
    if missing:
        logger.warning(
            "env(s) %s lack score_random/score_max in run.json: left out of the normalised aggregates",
            ", ".join(missing),
        )
    return usable


def _strata(runs: pd.DataFrame, column: str = "final_norm_score") -> list[np.ndarray]:
    """The runs' scores split per env (sorted by env name): the strata of a stratified bootstrap."""
    return [group[column].to_numpy(dtype=float) for _, group in runs.groupby("env", sort=True)]


def aggregate_table(
    df: pd.DataFrame,
    *,
    seed: int = 0,
    n_resamples: int = stats.DEFAULT_RESAMPLES,
    confidence_level: float = stats.DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """IQM, median, mean and optimality gap of the normalised final scores per algo, pooled over envs, with
    stratified-bootstrap CIs (runs resampled within each env).

    Pooling weights envs by their number of runs (equal weights when every algo/env has the same seeds). Runs
    without normalisation references are left out with a warning. Columns: algo, metric, value, ci_low,
    ci_high, n_runs, n_envs.
    """
    runs = _normalised_runs(df)
    rows = []
    for algo in order_algos(runs["algo"]):
        strata = _strata(runs[runs["algo"] == algo])
        for name, metric in AGGREGATE_METRICS.items():

            def pooled(*strata: np.ndarray, metric=metric) -> np.ndarray:
                return metric(np.concatenate(strata, axis=-1))

            low, high = stats.stratified_bootstrap_ci(
                strata,
                pooled,
                stats.rng_for(seed, "aggregate", name, algo),
                n_resamples=n_resamples,
                confidence_level=confidence_level,
            )
            rows.append(
                {
                    "algo": algo,
                    "metric": name,
                    "value": float(pooled(*strata)),
                    "ci_low": float(low),
                    "ci_high": float(high),
                    "n_runs": sum(len(s) for s in strata),
                    "n_envs": len(strata),
                }
            )
    return pd.DataFrame(rows, columns=["algo", "metric", "value", "ci_low", "ci_high", "n_runs", "n_envs"])


def format_aggregate(aggregate: pd.DataFrame) -> pd.DataFrame:
    """Aggregate table as display strings: one row per algo, one column per metric ("0.812 [0.75, 0.86]")."""
    rows = []
    for algo, group in aggregate.groupby("algo", sort=False):
        row = {
            "algo": algo_label(algo),
            "runs": str(group["n_runs"].iloc[0]),
            "envs": str(group["n_envs"].iloc[0]),
        }
        for _, metric in group.iterrows():
            interval = (
                "[n/a]"
                if np.isnan(metric["ci_low"])
                else f"[{metric['ci_low']:.3f}, {metric['ci_high']:.3f}]"
            )
            row[metric["metric"]] = f"{metric['value']:.3f} {interval}"
        rows.append(row)
    return pd.DataFrame(rows)


def profile_table(
    df: pd.DataFrame,
    taus: Sequence[float] | None = None,
    *,
    seed: int = 0,
    n_resamples: int = stats.DEFAULT_RESAMPLES,
    confidence_level: float = stats.DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Performance profile per algo: fraction of runs (pooled over envs) with normalised final score > tau,
    with stratified-bootstrap CI bands. Default taus: 201 points spanning [0, 1] and every observed score.
    Columns: algo, tau, fraction, ci_low, ci_high.
    """
    runs = _normalised_runs(df)
    if runs.empty:
        return pd.DataFrame(columns=["algo", "tau", "fraction", "ci_low", "ci_high"])
    if taus is None:
        scores = runs["final_norm_score"]
        taus = np.linspace(min(0.0, scores.min()), max(1.0, scores.max()), 201)
    taus = np.asarray(taus, dtype=float)

    def profile(*strata: np.ndarray) -> np.ndarray:
        return stats.performance_profile(np.concatenate(strata, axis=-1), taus)

    parts = []
    for algo in order_algos(runs["algo"]):
        strata = _strata(runs[runs["algo"] == algo])
        low, high = stats.stratified_bootstrap_ci(
            strata,
            profile,
            stats.rng_for(seed, "profile", algo),
            n_resamples=n_resamples,
            confidence_level=confidence_level,
            # each resample compares every run with every tau: bound memory to ~20M comparisons at once
            batch=max(1, 20_000_000 // (taus.size * sum(len(s) for s in strata))),
        )
        parts.append(
            pd.DataFrame(
                {"algo": algo, "tau": taus, "fraction": profile(*strata), "ci_low": low, "ci_high": high}
            )
        )
    return pd.concat(parts, ignore_index=True)


# --- probability of improvement -----------------------------------------------------------------------------


def improvement_table(
    df: pd.DataFrame,
    reference: str = "ga",
    *,
    seed: int = 0,
    n_resamples: int = stats.DEFAULT_RESAMPLES,
    confidence_level: float = stats.DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """P(reference > other) on final scores, per env and averaged over envs, with bootstrap CIs.

    Per env, X and Y are resampled independently; the "all envs" row is the mean of the per-env probabilities
    over the envs where both algorithms ran (as in rliable), with each algorithm's runs resampled within each
    env. Raw scores suffice: the statistic is rank based. Columns: env, algo_x, algo_y, probability, ci_low,
    ci_high, n_x, n_y, n_envs. Empty (with a warning) when the reference algorithm has no runs.
    """
    columns = ["env", "algo_x", "algo_y", "probability", "ci_low", "ci_high", "n_x", "n_y", "n_envs"]
    runs = runs_table(df)
    if reference not in set(runs["algo"]):
        logger.warning("no %s runs: probability of improvement skipped", reference)
        return pd.DataFrame(columns=columns)

    def mean_improvement(*pairs: np.ndarray) -> np.ndarray:
        per_env = [
            stats.probability_of_improvement(x, y) for x, y in zip(pairs[::2], pairs[1::2], strict=True)
        ]
        return np.mean(per_env, axis=0)

    rows = []
    for other in order_algos(runs["algo"]):
        if other == reference:
            continue
        pairs: list[np.ndarray] = []
        envs = []
        for env, group in runs.groupby("env", sort=True):
            x = group.loc[group["algo"] == reference, "final_score"].to_numpy(dtype=float)
            y = group.loc[group["algo"] == other, "final_score"].to_numpy(dtype=float)
            if x.size == 0 or y.size == 0:
                continue
            envs.append(env)
            pairs += [x, y]
        scopes = [(env, pairs[2 * i : 2 * i + 2]) for i, env in enumerate(envs)]
        if len(envs) > 1:
            scopes.append((ALL_ENVS, pairs))
        for scope, data in scopes:
            low, high = stats.stratified_bootstrap_ci(
                data,
                mean_improvement,
                stats.rng_for(seed, "improvement", scope, reference, other),
                n_resamples=n_resamples,
                confidence_level=confidence_level,
            )
            rows.append(
                {
                    "env": scope,
                    "algo_x": reference,
                    "algo_y": other,
                    "probability": float(mean_improvement(*data)),
                    "ci_low": float(low),
                    "ci_high": float(high),
                    "n_x": sum(len(x) for x in data[::2]),
                    "n_y": sum(len(y) for y in data[1::2]),
                    "n_envs": len(data) // 2,
                }
            )
    table = pd.DataFrame(rows, columns=columns)
    # Per-env rows by env name, the "all envs" rows last; within a scope, report algorithm order.
    rank = {algo: i for i, algo in enumerate(order_algos(table["algo_y"]))}
    table["_scope"] = (table["env"] == ALL_ENVS).astype(int)
    table["_rank"] = table["algo_y"].map(rank)
    return (
        table.sort_values(["_scope", "env", "_rank"], kind="stable")
        .drop(columns=["_scope", "_rank"])
        .reset_index(drop=True)
    )


def format_improvement(improvement: pd.DataFrame, env_labels: dict[str, str] | None = None) -> pd.DataFrame:
    """Probability-of-improvement table as display strings; ``env_labels`` renames envs (e.g. to env ids)."""
    env_labels = env_labels or {}
    rows = []
    for _, row in improvement.iterrows():
        interval = "[n/a]" if np.isnan(row["ci_low"]) else f"[{row['ci_low']:.2f}, {row['ci_high']:.2f}]"
        rows.append(
            {
                "env": env_labels.get(row["env"], row["env"]),
                "comparison": f"P({algo_label(row['algo_x'])} > {algo_label(row['algo_y'])})",
                "probability [CI]": f"{row['probability']:.2f} {interval}",
                "runs": f"{row['n_x']} vs {row['n_y']}",
            }
        )
    return pd.DataFrame(rows)


# --- learning curves on a common grid -----------------------------------------------------------------------


def curve_table(
    df: pd.DataFrame,
    x: str = "frames",
    *,
    interp: str = "step",
    confidence_level: float = stats.DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """Mean test score over seeds with a Student-t CI band, per (env, algo), on a common grid of ``x``.

    ``x`` is ``"frames"`` or ``"train_wall_s"``. The grid is the union of the seeds' eval points from the
    latest first eval point to the *slowest* seed's end. A seed that has finished holds its final score to the
    right of its end (its policy is final), so every point averages all seeds and the curve ends at the
    table's mean final score. ``interp="step"`` holds each run's latest test evaluation between eval points,
    ``"linear"`` interpolates (:func:`stats.interpolate_curve`). ``n_running``: seeds still training at that x
    (the others are held). Columns: env, algo, x, mean, ci_low, ci_high, n_seeds, n_running.
    """
    parts = []
    for (env, algo), group in df.groupby(["env", "algo"], sort=False):
        runs = [
            (run[x].to_numpy(dtype=float), run["score_mean"].to_numpy(dtype=float))
            for _, run in group.groupby("run_id")
        ]
        start = max(xs[0] for xs, _ in runs)
        grid = np.unique(np.concatenate([xs for xs, _ in runs]))
        grid = grid[grid >= start]
        curves = np.stack([stats.interpolate_curve(xs, ys, grid, kind=interp) for xs, ys in runs])
        mean, low, high = stats.curve_band(curves, confidence_level=confidence_level)
        ends = np.array([xs[-1] for xs, _ in runs])
        parts.append(
            pd.DataFrame(
                {
                    "env": env,
                    "algo": algo,
                    "x": grid,
                    "mean": mean,
                    "ci_low": low,
                    "ci_high": high,
                    "n_seeds": len(runs),
                    "n_running": (ends[np.newaxis, :] >= grid[:, np.newaxis]).sum(axis=1),
                }
            )
        )
    return _sorted(pd.concat(parts, ignore_index=True))


# --- renderings ---------------------------------------------------------------------------------------------


def to_markdown(table: pd.DataFrame) -> str:
    """GitHub-flavoured Markdown table (no ``tabulate`` dependency); text columns left-, numbers
    right-aligned."""
    header = [str(c) for c in table.columns]
    cells = [[str(v).replace("|", r"\|") for v in row] for row in table.itertuples(index=False)]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(header)]
    right = [bool(cells) and all(_numeric_cell(r[i]) for r in cells) for i in range(len(header))]

    def line(values: list[str]) -> str:
        padded = [v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right, strict=True)]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(
        ("-" * (w + 1) + ":") if r else ("-" * (w + 2)) for w, r in zip(widths, right, strict=True)
    )
    return "\n".join([line(header), rule + "|", *(line(r) for r in cells)]) + "\n"


def to_latex(table: pd.DataFrame, caption: str | None = None, label: str | None = None) -> str:
    """A booktabs ``table`` environment (needs ``\\usepackage{booktabs}``); text is escaped for LaTeX."""
    spec = "".join("r" if all(_numeric_cell(str(v)) for v in table[c]) else "l" for c in table.columns)
    lines = ["\\begin{table}[t]", "\\centering", "\\small"]
    if caption:
        lines.append(f"\\caption{{{_latex_escape(caption)}}}")
    if label:
        lines.append(f"\\label{{{label}}}")
    lines += [f"\\begin{{tabular}}{{{spec}}}", "\\toprule"]
    lines.append(" & ".join(_latex_escape(str(c)) for c in table.columns) + " \\\\")
    lines.append("\\midrule")
    previous_env = None
    for row in table.itertuples(index=False):
        values = [str(v) for v in row]
        if "env" in table.columns:
            env = values[list(table.columns).index("env")]
            if previous_env is not None and env != previous_env:
                lines.append("\\midrule")
            previous_env = env
        lines.append(" & ".join(_latex_escape(v) for v in values) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines) + "\n"


def _numeric_cell(value: str) -> bool:
    """Whether a display cell is a number (possibly with a CI or count after it), for right alignment."""
    if value in ("n/a", "[n/a]"):
        return True
    head = value.removeprefix("> ").split(" ")[0].replace(",", "").rstrip("kMG")
    try:
        float(head)
    except ValueError:
        return False
    return True


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    ">": r"$>$",
    "<": r"$<$",
    UNTRAINED_MARK: r"$^\dagger$",
}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)
