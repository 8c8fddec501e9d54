"""Regression history: an append-only table of every promote and compare, and its plots across commits.

``results/history.csv`` gets one row per (env, algo) each time results are promoted to a baseline or
compared with one (the *new* side), and one row per speed-benchmark section when a benchmark takes part:
date, event, label, the git commit that produced the numbers, the machine, mean final score with its CI,
training frames/s of the fastest run, the benchmark ratio and the verdict. Rows are only ever added: a header that
no longer matches (columns added in a later version) is migrated by rewriting old rows plus new ones
atomically, never by dropping any. ``python -m neuroevo_bench.analyze history`` plots score and
throughput per (env, algo) in the order the rows were added, labelled with their commits, one colour per
machine (throughput across machines is not comparable).
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neuroevo_bench.records import atomic_write_bytes, atomic_write_text, now_iso

from .compare import Comparison, baseline_summary, machine_key
from .labels import algo_label

__all__ = [
    "BENCH_ENV",
    "DEFAULT_HISTORY",
    "HISTORY_COLUMNS",
    "append_history",
    "comparison_rows",
    "plot_history",
    "read_history",
    "summary_rows",
]

logger = logging.getLogger(__name__)

DEFAULT_HISTORY = Path("results") / "history.csv"
BENCH_ENV = "bench"  # the env column of speed-benchmark rows; their algo column is the section name
HISTORY_COLUMNS = [
    "date",
    "event",
    "label",
    "git_commit",
    "machine",
    "env",
    "env_id",
    "algo",
    "n_seeds",
    "score_mean",
    "score_ci_low",
    "score_ci_high",
    "frames_per_s",
    "budget_frames",
    "bench_ratio",
    "verdict",
]


def summary_rows(
    runs: pd.DataFrame | None,
    *,
    event: str,
    label: str,
    bench: Mapping[str, Any] | None = None,
    verdicts: Mapping[tuple[str, str], str] | None = None,
    date: str | None = None,
) -> pd.DataFrame:
    """History rows for a per-run table (one per env, algo) and a speed benchmark JSON (one per section).

    ``verdicts`` maps (env, algo) - or (:data:`BENCH_ENV`, section) - to the comparison's verdict.
    """
    date = date or now_iso()
    verdicts = verdicts or {}
    rows = []
    if runs is not None and len(runs):
        for _, r in baseline_summary(runs).iterrows():
            rows.append(
                {
                    **{c: r[c] for c in ("git_commit", "machine", "env", "env_id", "algo", "n_seeds")},
                    **{c: r[c] for c in ("score_mean", "score_ci_low", "score_ci_high", "frames_per_s")},
                    "budget_frames": r["budget_frames"],
                    "verdict": verdicts.get((r["env"], r["algo"]), ""),
                }
            )
    if bench is not None:
        meta = bench.get("meta") or {}
        for section in bench.get("results", []):
            rows.append(
                {
                    "git_commit": meta.get("git_commit"),
                    "machine": machine_key(meta.get("machine") or {}),
                    "env": BENCH_ENV,
                    "env_id": BENCH_ENV,
                    "algo": section["name"],
                    "frames_per_s": section.get("project_fps"),
                    "bench_ratio": section.get("ratio"),
                    "verdict": verdicts.get((BENCH_ENV, section["name"]), ""),
                }
            )
    table = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
    table["date"], table["event"], table["label"] = date, event, label
    return table


def comparison_rows(comparison: Comparison) -> pd.DataFrame:
    """History rows for the new side of a comparison, with the comparison's verdicts."""
    verdicts: dict[tuple[str, str], str] = {}
    if not comparison.runs.empty:
        verdicts |= {(r.env, r.algo): r.verdict for r in comparison.runs.itertuples()}
    if not comparison.bench.empty:
        verdicts |= {(BENCH_ENV, r.name): r.verdict for r in comparison.bench.itertuples()}
    return summary_rows(
        comparison.new_runs,
        event="compare",
        label=comparison.new_label,
        bench=comparison.new_bench,
        verdicts=verdicts,
    )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside the history file, so two processes appending at once do not interleave."""
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def append_history(path: str | Path, rows: pd.DataFrame) -> Path:
    """Append ``rows`` to the history CSV at ``path`` (created with a header if absent)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = rows.reindex(columns=HISTORY_COLUMNS)
    with _locked(path):
        header = _header(path)
        if header is None:
            atomic_write_text(path, rows.to_csv(index=False))
        elif header == HISTORY_COLUMNS:
            with open(path, "a") as f:
                f.write(rows.to_csv(index=False, header=False))
        else:
            old = pd.read_csv(path, dtype=str, keep_default_na=False)
            extra = [c for c in old.columns if c not in HISTORY_COLUMNS]
            logger.warning("history %s has columns %s; rewriting it with the current ones", path, header)
            merged = pd.concat([old, rows.astype(object)], ignore_index=True)
            atomic_write_text(path, merged[HISTORY_COLUMNS + extra].to_csv(index=False))
    return path


def _header(path: Path) -> list[str] | None:
    try:
        with open(path) as f:
            first = f.readline().strip()
    except FileNotFoundError:
        return None
    return first.split(",") if first else None


def read_history(path: str | Path) -> pd.DataFrame:
    """The history table, rows in the order they were added."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no history at {path}: it is written by 'analyze promote' and 'analyze compare'"
        )
    table = pd.read_csv(path)
    missing = [c for c in HISTORY_COLUMNS if c not in table]
    if missing:
        raise ValueError(f"{path} is not a history table (lacks {', '.join(missing)})")
    return table


# --- plots --------------------------------------------------------------------------------------------------


def plot_history(
    history: pd.DataFrame, out_dir: str | Path, *, formats: Sequence[str] = ("png",), dpi: int = 150
) -> list[Path]:
    """One figure per (env, algo) - and per benchmark section - with score and throughput over the rows.

    Files: ``history_<env>_<algo>.<fmt>`` in ``out_dir``. Returns the paths written.
    """
    from matplotlib.figure import Figure

    from . import plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    machines = list(dict.fromkeys(history["machine"].fillna("unknown").astype(str)))
    palette = dict(zip(machines, _colours(len(machines)), strict=True))
    written: list[Path] = []
    for (env, algo), rows in history.groupby(["env", "algo"], sort=False):
        rows = rows.reset_index(drop=True)
        bench = env == BENCH_ENV
        with plots.paper_style():
            fig = Figure(figsize=(8.0, 3.2), layout="constrained")
            left, right = fig.subplots(1, 2, sharex=True)
            if bench:
                _series(left, rows, "bench_ratio", None, palette, "ratio (project / reference)")
                _series(right, rows, "frames_per_s", None, palette, "project frames/s")
                fig.suptitle(f"Speed benchmark: {algo}", fontsize="medium")
            else:
                _series(
                    left, rows, "score_mean", ("score_ci_low", "score_ci_high"), palette, "final test return"
                )
                _series(right, rows, "frames_per_s", None, palette, "train frames/s (fastest run)")
                fig.suptitle(f"{rows['env_id'].iloc[0]}: {algo_label(algo)}", fontsize="medium")
            for ax in (left, right):
                _commit_axis(ax, rows)
            handles, labels = right.get_legend_handles_labels()
            unique = dict(zip(labels, handles, strict=True))
            fig.legend(unique.values(), unique.keys(), loc="outside lower center", ncols=min(3, len(unique)))
            for fmt in formats:
                path = out / f"history_{_slug(env)}_{_slug(algo)}.{fmt}"
                image = io.BytesIO()
                metadata = {"CreationDate": None} if fmt == "pdf" else None  # reproducible PDFs
                fig.savefig(image, format=fmt, dpi=dpi, metadata=metadata)
                atomic_write_bytes(path, image.getvalue())
                written.append(path)
    return written


def _series(ax, rows: pd.DataFrame, column: str, band: tuple[str, str] | None, palette, ylabel: str) -> None:
    """Points (with CI bars) coloured by machine, joined by a grey line; regressed rows ringed in red."""
    x = np.arange(len(rows))
    y = rows[column].to_numpy(dtype=float)
    ax.plot(x, y, color="0.75", linewidth=1.0, zorder=1)
    for machine, group in rows.groupby(rows["machine"].fillna("unknown").astype(str), sort=False):
        index = group.index.to_numpy()
        yerr = None
        if band is not None:
            low, high = (group[c].to_numpy(dtype=float) for c in band)
            yerr = np.vstack([y[index] - low, high - y[index]])
            yerr = np.where(np.isfinite(yerr), yerr, 0.0)
        ax.errorbar(
            x[index], y[index], yerr=yerr, fmt="o", color=palette[machine], label=machine, capsize=2, zorder=2
        )
    regressed = rows.index[rows["verdict"].fillna("").astype(str) == "regressed"].to_numpy()
    if len(regressed):
        ax.scatter(
            x[regressed],
            y[regressed],
            s=120,
            facecolors="none",
            edgecolors="red",
            zorder=3,
            label="regressed",
        )
    ax.set_ylabel(ylabel)
    if band is None:  # throughput and benchmark ratios: from zero, so the drawn change is the real one
        ax.set_ylim(bottom=0)
        if "frames" in ylabel:
            from .plots import frames_axis

            frames_axis(ax.yaxis)


def _commit_axis(ax, rows: pd.DataFrame) -> None:
    labels = [_short_commit(c) for c in rows["git_commit"]]
    step = max(1, len(labels) // 25)  # at most ~25 labels
    ticks = np.arange(0, len(labels), step)
    ax.set_xticks(ticks, [labels[i] for i in ticks], rotation=90, fontsize="x-small")
    ax.set_xlabel("commit (in order of the history rows)")


def _short_commit(commit: Any) -> str:
    if not isinstance(commit, str) or not commit:
        return "?"
    sha, dirty = commit.removesuffix("+dirty"), commit.endswith("+dirty")
    return sha[:7] + ("*" if dirty else "")


def _colours(n: int) -> list[tuple[float, float, float]]:
    import seaborn as sns

    return list(sns.color_palette("colorblind", max(n, 1)))[:n]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("_") or "x"
