"""Write the full comparison (tables and figures) for a results tree into one directory.

Every file is written atomically (:func:`neuroevo_bench.records.atomic_write_text` / ``atomic_write_bytes``:
a temporary file in the same directory, then ``os.replace``; figures are rendered into memory first), so a
reader, or a second analysis racing this one at the end of a sweep, never sees a half-written table or figure.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from neuroevo_bench.records import atomic_write_bytes, atomic_write_text  # stdlib only: no training stack

from . import plots, stats, tables
from .labels import order_algos
from .load import load_runs, runs_table

__all__ = ["Report", "analyze", "write_report"]

logger = logging.getLogger(__name__)

LOG_X_SPREAD = 20  # wall-clock curves go to a log axis when algorithms' run times differ more than this
CURVE_AXES = {"frames": "frames", "train_wall_s": "training wall-clock [s]"}
CURVE_FILE_STEMS = {"frames": "score_vs_frames", "train_wall_s": "score_vs_wallclock"}
FIGURE_DIR = "figures"


@dataclass
class Report:
    """What a report run produced: the summary table (numeric and as Markdown) and every file written."""

    out_dir: Path
    summary: pd.DataFrame
    markdown: str
    files: list[Path] = field(default_factory=list)


def analyze(
    roots: str | Path | Iterable[str | Path],
    out_dir: str | Path | None = None,
    *,
    thresholds: dict[str, float] | None = None,
    **options,
) -> Report:
    """Load the runs below ``roots`` and write the report into ``out_dir`` (default: ``<first
    root>/analysis``).

    ``options`` are passed to :func:`write_report`. Raises :class:`.load.NoRunsError` when no run is usable.
    """
    roots = [roots] if isinstance(roots, str | Path) else list(roots)
    df = load_runs(roots, thresholds=thresholds)
    out = Path(out_dir) if out_dir is not None else Path(roots[0]) / "analysis"
    return write_report(df, out, **options)


def write_report(
    df: pd.DataFrame,
    out_dir: str | Path,
    *,
    seed: int = 0,
    n_resamples: int = stats.DEFAULT_RESAMPLES,
    confidence_level: float = stats.DEFAULT_CONFIDENCE,
    reference: str = "ga",
    curve_interp: str = "step",
    formats: Sequence[str] = ("png", "pdf"),
    dpi: int = 300,
) -> Report:
    """Compute every table and figure from the loaded runs ``df`` (see :func:`.load.load_runs`) and write
    them.

    Tables: summary.{md,csv,tex}, runs.csv, aggregate.csv, improvement.csv, profile.csv, curves.csv (the
    numbers behind every figure). Figures, under figures/: per env score vs frames, score vs training
    wall-clock, final-score distribution; over all envs aggregate metrics, performance profile, probability of
    improvement; figures/README.md holds their captions (how to read them).
    """
    out = Path(out_dir)
    (out / FIGURE_DIR).mkdir(parents=True, exist_ok=True)
    boot = {"seed": seed, "n_resamples": n_resamples, "confidence_level": confidence_level}
    files: list[Path] = []

    def write(name: str, text: str) -> None:
        atomic_write_text(out / name, text)
        files.append(out / name)

    summary = tables.summary_table(df, confidence_level=confidence_level)
    aggregate = tables.aggregate_table(df, **boot)
    profile = tables.profile_table(df, **boot)
    improvement = tables.improvement_table(df, reference, **boot)
    curves = pd.concat(
        [
            tables.curve_table(df, x, interp=curve_interp, confidence_level=confidence_level).assign(x_axis=x)
            for x in CURVE_AXES
        ],
        ignore_index=True,
    )
    crossings = tables.threshold_crossings(df)
    runs = runs_table(df).merge(
        crossings[["run_id", "reached", "frames_to_threshold", "wall_s_to_threshold"]], on="run_id"
    )

    display = tables.format_summary(summary, confidence_level)
    table_md = tables.to_markdown(display)
    coverage = _mean_ci_coverage(summary["n_seeds"], confidence_level, seed)
    write(
        "summary.md",
        _summary_markdown(df, summary, table_md, aggregate, improvement, boot, curve_interp, coverage),
    )
    write("summary.csv", summary.to_csv(index=False))
    untrained = " ".join(tables.untrained_notes(summary, _env_titles(runs_table(df))))
    write(
        "summary.tex",
        tables.to_latex(
            display,
            caption=f"Final test return over seeds (mean with {confidence_level:.0%} Student-t CI, IQM, "
            "median), frames used, training frames and wall-clock at the first eval point at or above the "
            "env's threshold (median over all seeds, a seed that never reached it counting as never; "
            "> x: the median seed never reached it; reached/seeds), training throughput."
            + (f" {untrained}" if untrained else ""),
            label="tab:summary",
        ),
    )
    write("runs.csv", runs.to_csv(index=False))
    write("aggregate.csv", aggregate.to_csv(index=False))
    write("improvement.csv", improvement.to_csv(index=False))
    write("profile.csv", profile.to_csv(index=False))
    write("curves.csv", curves.to_csv(index=False))
    if formats:
        write(f"{FIGURE_DIR}/README.md", _figure_captions(curve_interp, confidence_level))

    palette = plots.algo_palette(df["algo"])
    figures = _figures(
        df, summary, curves, aggregate, profile, improvement, palette, step=curve_interp == "step"
    )
    with _quiet("fontTools"):  # its PDF font subsetting logs every glyph at INFO (and Hydra shows INFO)
        for stem, draw in figures:
            files += _save_figure(draw, out / FIGURE_DIR / stem, formats, dpi)
    return Report(out_dir=out, summary=summary, markdown=table_md, files=files)


# --- figures ------------------------------------------------------------------------------------------------


Drawing = Callable[[], Figure]


def _figures(
    df: pd.DataFrame,
    summary: pd.DataFrame,
    curves: pd.DataFrame,
    aggregate: pd.DataFrame,
    profile: pd.DataFrame,
    improvement: pd.DataFrame,
    palette: dict,
    step: bool,
) -> list[tuple[str, Drawing]]:
    """(file stem, function drawing the figure) for every figure of the report."""
    runs = runs_table(df)
    titles = _env_titles(runs)
    figures: list[tuple[str, Drawing]] = []
    for env in sorted(runs["env"].unique()):
        threshold = _env_threshold(summary, env)
        n_algos = runs.loc[runs["env"] == env, "algo"].nunique()
        scores = df.loc[df["env"] == env, "score_mean"]
        y_range = (float(scores.min()), float(scores.max()))
        for x, label in CURVE_AXES.items():
            rows = curves[(curves["env"] == env) & (curves["x_axis"] == x)]

            ends = rows.groupby("algo")["x"].max()
            log_x = (
                x != "frames" and len(ends) > 1 and ends.min() > 0 and ends.max() / ends.min() > LOG_X_SPREAD
            )

            def draw(
                rows=rows, label=label, threshold=threshold, title=titles[env], log_x=log_x, y_range=y_range
            ) -> Figure:
                fig = Figure(figsize=(4.2, 3.4), layout="constrained")
                plots.plot_curves(
                    rows,
                    fig.add_subplot(),
                    x_label=label,
                    palette=palette,
                    threshold=threshold,
                    title=title,
                    step=step,
                    log_x=log_x,
                    y_range=y_range,
                )
                return fig

            figures.append((f"{CURVE_FILE_STEMS[x]}_{_slug(env)}", draw))

        def draw_final(env=env, threshold=threshold, n_algos=n_algos) -> Figure:
            fig = Figure(figsize=(1.2 + 0.9 * n_algos, 3.4), layout="constrained")
            plots.plot_final_scores(
                runs[runs["env"] == env],
                fig.add_subplot(),
                palette=palette,
                threshold=threshold,
                title=titles[env],
            )
            return fig

        figures.append((f"final_scores_{_slug(env)}", draw_final))

    if not aggregate.empty:
        envs_note = _envs_note(runs[np.isfinite(runs["final_norm_score"])], titles)

        def draw_aggregate() -> Figure:
            n_algos = aggregate["algo"].nunique()
            fig = Figure(figsize=(7.0, 1.2 + 0.4 * n_algos), layout="constrained")
            axes = fig.subplots(1, len(tables.AGGREGATE_METRICS), sharey=True)
            for i, (ax, metric) in enumerate(zip(axes, tables.AGGREGATE_METRICS, strict=True)):
                plots.plot_aggregate(aggregate, metric, ax, palette=palette, show_labels=i == 0)
            fig.suptitle(f"Normalised final score, {envs_note}", fontsize="medium")
            return fig

        def draw_profile() -> Figure:
            fig = Figure(figsize=(4.2, 3.4), layout="constrained")
            plots.plot_profile(
                profile, fig.add_subplot(), palette=palette, title=f"Performance profile, {envs_note}"
            )
            return fig

        figures += [("aggregate", draw_aggregate), ("performance_profile", draw_profile)]
    else:
        logger.warning(
            "no run has normalisation references (score_random, score_max): aggregate figures skipped"
        )

    if not improvement.empty:
        scopes = list(dict.fromkeys(improvement["env"]))
        others = order_algos(improvement["algo_y"])

        def draw_improvement() -> Figure:
            fig = Figure(figsize=(1.4 + 2.1 * len(scopes), 1.2 + 0.4 * len(others)), layout="constrained")
            axes = np.atleast_1d(fig.subplots(1, len(scopes), sharey=True, squeeze=False)[0])
            for i, (ax, scope) in enumerate(zip(axes, scopes, strict=True)):
                rows = improvement[improvement["env"] == scope]
                plots.plot_improvement(
                    rows,
                    ax,
                    order=others,
                    palette=palette,
                    title=titles.get(scope, scope),
                    show_labels=i == 0,
                )
            fig.suptitle("Probability of improvement (final test return)", fontsize="medium")
            return fig

        figures.append(("probability_of_improvement", draw_improvement))
    return figures


def _save_figure(draw: Drawing, stem: Path, formats: Sequence[str], dpi: int) -> list[Path]:
    """Draw the figure once and write it in every format: rendered into memory, then written atomically."""
    written = []
    with plots.paper_style():
        fig = draw()
        for fmt in formats:
            # No creation date in PDFs, so a report is byte-for-byte reproducible.
            metadata = {"CreationDate": None} if fmt == "pdf" else None
            image = io.BytesIO()
            fig.savefig(image, format=fmt, dpi=dpi, bbox_inches="tight", pad_inches=0.03, metadata=metadata)
            path = stem.with_suffix(f".{fmt}")
            atomic_write_bytes(path, image.getvalue())
            written.append(path)
    return written


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Raise one library logger to WARNING for the duration, whatever the application configured."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def _env_titles(runs: pd.DataFrame) -> dict[str, str]:
    """Figure title per env: its env id (CartPole-v1), or the config name if two configs share an id."""
    ids = runs.drop_duplicates("env").set_index("env")["env_id"]
    shared = ids.duplicated(keep=False)
    return {env: (env if shared[env] else env_id) for env, env_id in ids.items()}


def _env_threshold(summary: pd.DataFrame, env: str) -> float | None:
    values = summary.loc[summary["env"] == env, "threshold"].dropna().unique()
    return float(values[0]) if len(values) == 1 else None


def _envs_note(runs: pd.DataFrame, titles: dict[str, str]) -> str:
    envs = sorted(runs["env"].unique())
    return titles[envs[0]] if len(envs) == 1 else f"{len(envs)} envs"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "env"


# --- summary.md ---------------------------------------------------------------------------------------------


def _mean_ci_coverage(
    seed_counts: Iterable[int], confidence_level: float, seed: int
) -> dict[tuple[str, int, str], float]:
    """Simulated coverage of the table's mean CI (and of a percentile bootstrap, for contrast) at the seed
    counts of this report, so the notes state how far to trust its intervals (:func:`stats.coverage_table`)."""
    ns = sorted({int(n) for n in seed_counts if n >= 2})
    if not ns:
        return {}
    return stats.coverage_table(
        ns, (stats.MEAN_CI_METHOD, "percentile"), confidence_level=confidence_level, seed=seed
    )


def _coverage_sentence(coverage: dict[tuple[str, int, str], float], level: str) -> str:
    """The notes' sentence stating the simulated coverage of the mean CI per seed count (empty without)."""
    if not coverage:
        return ""
    scenarios = list(dict.fromkeys(name for name, _, _ in coverage))
    ns = sorted({n for _, n, _ in coverage})

    def cells(method: str, n: int) -> str:
        return " / ".join(f"{coverage[name, n, method]:.1%}" for name in scenarios)

    per_n = "; ".join(
        f"n={n}: {cells(stats.MEAN_CI_METHOD, n)} (percentile bootstrap: {cells('percentile', n)})"
        for n in ns
    )
    return (
        f" Measured coverage of this {level} interval over {stats.COVERAGE_DRAWS:,} simulated sets of seeds "
        "drawn from "
        f"{' / '.join(scenarios)} (see `python -m neuroevo_bench.analysis.stats`): {per_n}."
    )


def _summary_markdown(
    df: pd.DataFrame,
    summary: pd.DataFrame,
    table_md: str,
    aggregate: pd.DataFrame,
    improvement: pd.DataFrame,
    boot: dict,
    curve_interp: str,
    coverage: dict[tuple[str, int, str], float],
) -> str:
    runs = runs_table(df)
    titles = _env_titles(runs)
    skipped = df.attrs.get("skipped", [])
    level = f"{boot['confidence_level']:.0%}"
    resolution = tables.resolution_notes(tables.resolution_table(df), titles)
    lines = [
        "# Benchmark summary",
        "",
        f"{len(runs)} runs ({', '.join(order_algos(runs['algo']))} on "
        f"{', '.join(sorted(runs['env'].unique()))})"
        + (f"; {len(skipped)} run directories skipped (listed below)." if skipped else "."),
        "",
        table_md,
        *(f"- {note}" for note in tables.untrained_notes(summary, titles)),
        f"- Final score: mean return of the last test evaluation of each run; mean over seeds with a {level} "
        "Student-t CI (mean ± t(n-1) · sd / √n; seeds that all tie give a zero-width interval; being "
        "symmetric, it can reach past the best attainable return). Chosen over a percentile bootstrap, which "
        "covers far less than its nominal level with few seeds."
        + _coverage_sentence(coverage, level)
        + " IQM: 25 % trimmed mean over seeds.",
        "- Frames / wall-clock to threshold: training frames and training wall-clock of the first eval point "
        "whose test score is at or above the threshold (never interpolated between eval points). Median over "
        "all seeds, a seed that never reached it counting as later than its run's end; '> x' when the median "
        "depends on such a seed (x: the median with each of them put at its run's end, a lower bound); "
        "(reached/seeds). A crossing is only seen at an eval "
        "point, so it is late by up to one eval spacing, the resolution: " + " ".join(resolution),
        "- Frames: training frames used (test evaluations excluded). Train frames/s: training frames / "
        "training wall-clock, mean over seeds.",
        "- Learning curves (figures/, curves.csv): " + _curve_caption(curve_interp, level),
        "",
    ]
    if not aggregate.empty:
        lines += [
            "## Aggregate over envs (normalised score)",
            "",
            "Normalised score = (score - score_random) / (score_max - score_random); runs pooled over envs, "
            f"{level} CIs: percentile bootstrap stratified by env ({boot['n_resamples']:,} resamples, seed "
            f"{boot['seed']}). Optimality gap: mean shortfall below 1 (lower is better).",
            "",
            tables.to_markdown(tables.format_aggregate(aggregate)),
        ]
    if not improvement.empty:
        lines += [
            "## Probability of improvement",
            "",
            "P(X > Y): probability that a run of X ends with a higher test return than a run of Y (ties "
            "count half; Mann-Whitney U / (n m)); 'all envs' averages the per-env probabilities; "
            f"{level} percentile bootstrap CIs.",
            "",
            tables.to_markdown(tables.format_improvement(improvement, titles)),
        ]
    if skipped:
        lines += ["## Skipped runs", ""]
        lines += [f"- `{s.run_dir}`: {s.reason}" for s in skipped]
        lines.append("")
    return "\n".join(lines)


def _curve_caption(curve_interp: str, level: str) -> str:
    """How to read a learning-curve figure (summary.md notes and figures/README.md say the same)."""
    between = (
        "held from one test evaluation to the next (step-hold, never interpolated: a score is known only "
        "where it was measured)"
        if curve_interp == "step"
        else "linearly interpolated between test evaluations"
    )
    return (
        f"mean over seeds of each run's test score, {between}. A seed that has finished holds its final "
        "score to the right of its end, so the curve spans the slowest seed and every point averages all "
        "seeds: the right end is the table's mean final score. The line is solid while all seeds are "
        "training and dotted where some have finished. Bands: "
        f"{level} Student-t CIs of the mean over seeds (the table's interval). Markers tell the algorithms "
        "apart (coinciding lines stay visible) and are not eval points; the one on a line's right end is its "
        "mean final score."
    )


def _figure_captions(curve_interp: str, confidence_level: float) -> str:
    level = f"{confidence_level:.0%}"
    curve = _curve_caption(curve_interp, level)
    return "\n".join(
        [
            "# Figures",
            "",
            "Every number drawn here is in the CSV tables one directory up (curves.csv, runs.csv, "
            "aggregate.csv, profile.csv, improvement.csv).",
            "",
            f"- `score_vs_frames_<env>`: test return vs training frames; {curve}",
            "- `score_vs_wallclock_<env>`: the same against measured training wall-clock (test evaluations "
            "excluded); a log axis when algorithms' run times differ by more than "
            f"{LOG_X_SPREAD}x. Wall-clock runs differ per seed, so the right end of a curve is its slowest "
            "seed's end.",
            "- `final_scores_<env>`: final test return of every seed (dots) over a box per algorithm.",
            f"- `aggregate`: IQM, median, mean and optimality gap of normalised final scores with {level} "
            "stratified bootstrap CIs.",
            "- `performance_profile`: fraction of runs with normalised final score above tau, with bootstrap "
            "CI bands.",
            "- `probability_of_improvement`: P(reference > other) on final test return, bootstrap CIs.",
            "",
        ]
    )
