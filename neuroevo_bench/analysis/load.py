"""Load a results tree (run directories written by the runner) into one tidy DataFrame.

A run directory is any directory holding ``run.json``; its eval curve is ``curve.csv`` beside it. Runs that
did not finish (``status != "ok"``) or whose records are unreadable are skipped with a warning naming the
directory and the reason, because one crashed job must not hide the other 59 of a sweep; the skips are also
kept in ``df.attrs["skipped"]`` so the report can list them.

This module reads records only: it imports nothing from the training stack (torch, gymnasium, SB3), so a
results tree can be analysed on a laptop.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "CURVE_COLUMNS",
    "RUN_COLUMNS",
    "NoRunsError",
    "SkippedRun",
    "apply_thresholds",
    "find_run_dirs",
    "load_runs",
    "runs_table",
]

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
CURVE_FILE = "curve.csv"

# Run-level columns (one value per run, repeated on each of its eval rows). Names follow run.json except where
# they would collide with a curve column: run.json's totals become total_*, and its normalisation references
# score_random / score_max become norm_random / norm_max (curve.csv's score_max is the best test episode).
RUN_COLUMNS = [
    "run_id",
    "run_dir",
    "env",
    "env_id",
    "algo",
    "seed",
    "status",
    "budget_frames",
    "train_frames",
    "eval_frames",
    "total_agent_steps",
    "frame_skip",
    "total_train_wall_s",
    "total_eval_wall_s",
    "final_score",
    "final_score_std",
    "final_norm_score",
    "score_threshold",
    "norm_random",
    "norm_max",
    "network",
    "untrained",
    "eval_every_frames",
    "git_commit",
    "started_at",
]
# Curve columns every run has after loading (missing optional ones are filled with nan); extra curve columns
# such as generation / fitness_max / fitness_mean (GA, RS) are kept after these.
CURVE_COLUMNS = [
    "eval_index",
    "frames",
    "agent_steps",
    "train_wall_s",
    "eval_wall_s",
    "score_mean",
    "score_std",
    "score_min",
    "score_max",
    "episodes",
]
REQUIRED_CURVE_COLUMNS = ("frames", "train_wall_s", "score_mean")

# run.json key -> DataFrame column, for the numeric run-level fields copied as they are.
_RUN_NUMERIC = {
    "budget_frames": "budget_frames",
    "train_frames": "train_frames",
    "eval_frames": "eval_frames",
    "agent_steps": "total_agent_steps",
    "frame_skip": "frame_skip",
    "train_wall_s": "total_train_wall_s",
    "eval_wall_s": "total_eval_wall_s",
    "final_score_std": "final_score_std",
    "score_threshold": "score_threshold",
    "score_random": "norm_random",
    "score_max": "norm_max",
}


class NoRunsError(ValueError):
    """The given roots hold no usable run: nothing to analyse."""


@dataclass(frozen=True)
class SkippedRun:
    """A run directory left out of the analysis, and why."""

    run_dir: str
    reason: str


class _Skip(Exception):
    """Internal: this run directory cannot be used (message = reason)."""


def find_run_dirs(roots: Iterable[str | Path]) -> list[Path]:
    """Every directory below (or equal to) the roots that holds a run.json, sorted, each once."""
    found: dict[Path, Path] = {}
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise NoRunsError(f"results directory {root} does not exist")
        for run_file in root.rglob(RUN_FILE):
            found.setdefault(run_file.parent.resolve(), run_file.parent)
    return [found[key] for key in sorted(found)]


def load_runs(
    roots: str | Path | Iterable[str | Path], thresholds: dict[str, float] | None = None
) -> pd.DataFrame:
    """Load every usable run below ``roots`` into one tidy DataFrame: one row per (run, test evaluation).

    Columns: :data:`RUN_COLUMNS` (constant within a run), then :data:`CURVE_COLUMNS`, then any extra curve
    columns. ``final_score`` is run.json's (falling back to the last eval row's score_mean);
    ``final_norm_score`` is it normalised as ``(score - norm_random) / (norm_max - norm_random)`` (nan without
    references). ``untrained`` is run.json's flag for a GA / RS / ES run whose budget could not complete one
    generation (False when absent); ``eval_every_frames`` is the config's ``eval.every_frames`` (the resolution
    of SB3's time-to-threshold). ``thresholds`` maps an env name (config name or env id) to a "solved" score
    that replaces run.json's ``score_threshold``. Skipped runs are logged as warnings and listed in
    ``df.attrs["skipped"]`` (list of :class:`SkippedRun`). Raises :class:`NoRunsError` when nothing usable is
    found.
    """
    roots = [roots] if isinstance(roots, str | Path) else list(roots)
    if not roots:
        raise NoRunsError("no results directory given")
    run_dirs = find_run_dirs(roots)
    if not run_dirs:
        raise NoRunsError(
            f"no run directories (directories with {RUN_FILE}) below {', '.join(map(str, roots))}"
        )

    run_ids = [_run_id(run_dir, roots) for run_dir in run_dirs]
    if len(set(run_ids)) < len(run_ids):  # same relative path under two roots: fall back to full paths
        run_ids = [str(run_dir) for run_dir in run_dirs]
    frames: list[pd.DataFrame] = []
    skipped: list[SkippedRun] = []
    for run_dir, run_id in zip(run_dirs, run_ids, strict=True):
        try:
            frames.append(_read_run(run_dir, run_id))
        except _Skip as skip:
            logger.warning("skipping run %s: %s", run_dir, skip)
            skipped.append(SkippedRun(str(run_dir), str(skip)))
    if not frames:
        raise NoRunsError(
            f"no usable runs below {', '.join(map(str, roots))}: all {len(run_dirs)} run directories skipped"
        )

    df = pd.concat(frames, ignore_index=True)
    extra = [c for c in df.columns if c not in RUN_COLUMNS and c not in CURVE_COLUMNS]
    df = df[RUN_COLUMNS + CURVE_COLUMNS + extra]
    df = apply_thresholds(df, thresholds or {})
    _warn_duplicate_seeds(df)
    df.attrs["skipped"] = skipped
    return df


def apply_thresholds(df: pd.DataFrame, thresholds: dict[str, float]) -> pd.DataFrame:
    """Override ``score_threshold`` per env; keys may be config names (``CartPole``) or env ids
    (``CartPole-v1``)."""
    df = df.copy()
    for env, value in thresholds.items():
        rows = (df["env"] == env) | (df["env_id"] == env)
        if not rows.any():
            logger.warning("threshold given for env %r, which has no runs (envs: %s)", env, _envs(df))
        df.loc[rows, "score_threshold"] = float(value)
    return df


def runs_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run with the run-level columns (final eval row's values), for final-score statistics."""
    return df.drop_duplicates("run_id", keep="last")[RUN_COLUMNS].reset_index(drop=True)


# --- reading one run ----------------------------------------------------------------------------------------


def _read_run(run_dir: Path, run_id: str) -> pd.DataFrame:
    meta = _read_meta(run_dir / RUN_FILE)
    curve = _read_curve(run_dir / CURVE_FILE)

    final_score = _number(meta.get("final_score"))
    if math.isnan(final_score):
        final_score = float(curve["score_mean"].iloc[-1])
    norm_random = _number(meta.get("score_random"))
    norm_max = _number(meta.get("score_max"))
    span = norm_max - norm_random
    final_norm = (final_score - norm_random) / span if span and not math.isnan(span) else float("nan")

    run: dict[str, Any] = {
        "run_id": run_id,
        "run_dir": str(run_dir),
        "env": str(meta.get("env") or meta["env_id"]),
        "env_id": str(meta.get("env_id") or meta["env"]),
        "algo": str(meta["algo"]),
        "seed": int(meta["seed"]),
        "status": meta["status"],
        "final_score": final_score,
        "final_norm_score": final_norm,
        "network": meta.get("network"),
        # GA / RS / ES whose budget could not complete one generation report the untrained network's score.
        # Records written before the field existed trained (or say nothing): False.
        "untrained": meta.get("untrained") is True,
        "eval_every_frames": _eval_every_frames(meta),
        "git_commit": meta.get("git_commit"),
        "started_at": meta.get("started_at"),
    }
    for key, column in _RUN_NUMERIC.items():
        run[column] = _number(meta.get(key))
    if math.isnan(run["train_frames"]):
        run["train_frames"] = float(curve["frames"].iloc[-1])
    if math.isnan(run["total_train_wall_s"]):
        run["total_train_wall_s"] = float(curve["train_wall_s"].iloc[-1])

    curve.insert(0, "eval_index", np.arange(len(curve)))
    for column in CURVE_COLUMNS:
        if column not in curve:
            curve[column] = np.nan
    for column, value in run.items():
        curve[column] = value
    return curve


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise _Skip(f"cannot read {RUN_FILE}: {error}") from error
    except json.JSONDecodeError as error:
        raise _Skip(f"invalid JSON in {RUN_FILE}: {error}") from error
    if not isinstance(meta, dict):
        raise _Skip(f"{RUN_FILE} holds a {type(meta).__name__}, not an object")
    status = meta.get("status")
    if status != "ok":
        error = str(meta.get("error") or "").strip().splitlines()
        raise _Skip(f"status is {status!r}" + (f" ({error[-1]})" if error else ""))
    missing = [key for key in ("algo", "seed") if meta.get(key) is None]
    if meta.get("env") is None and meta.get("env_id") is None:
        missing.append("env")
    if missing:
        raise _Skip(f"{RUN_FILE} lacks {', '.join(missing)}")
    try:
        int(meta["seed"])
    except (TypeError, ValueError) as error:
        raise _Skip(f"seed {meta['seed']!r} is not an integer") from error
    return meta


def _read_curve(path: Path) -> pd.DataFrame:
    try:
        curve = pd.read_csv(path)
    except FileNotFoundError as error:
        raise _Skip(f"no {CURVE_FILE}") from error
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise _Skip(f"cannot parse {CURVE_FILE}: {error}") from error
    missing = [c for c in REQUIRED_CURVE_COLUMNS if c not in curve]
    if missing:
        raise _Skip(f"{CURVE_FILE} lacks column(s) {', '.join(missing)}")
    if curve.empty:
        raise _Skip(f"{CURVE_FILE} has no rows")
    for column in curve.columns:
        if column in CURVE_COLUMNS or column in REQUIRED_CURVE_COLUMNS:
            converted = pd.to_numeric(curve[column], errors="coerce")
            if converted.isna().sum() > curve[column].isna().sum():
                raise _Skip(f"{CURVE_FILE} column {column!r} holds non-numeric values")
            curve[column] = converted.astype(float)
    for column in ("frames", "train_wall_s"):
        values = curve[column].to_numpy()
        if np.isnan(values).any() or (np.diff(values) < 0).any():
            raise _Skip(f"{CURVE_FILE} column {column!r} is not non-decreasing")
    return curve


def _number(value: Any) -> float:
    """run.json numbers may be null; nan keeps the column numeric."""
    if value is None or isinstance(value, bool):
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _eval_every_frames(meta: dict[str, Any]) -> float:
    """The run's configured test-eval interval (config ``eval.every_frames``): the resolution of SB3's
    time-to-threshold. ``nan`` when run.json has no resolved config."""
    config = meta.get("config")
    eval_config = config.get("eval") if isinstance(config, dict) else None
    return _number(eval_config.get("every_frames")) if isinstance(eval_config, dict) else float("nan")


def _run_id(run_dir: Path, roots: list[str | Path]) -> str:
    """Path of the run relative to the root it was found under: short, and unique within a report."""
    for root in roots:
        try:
            relative = run_dir.resolve().relative_to(Path(root).resolve())
        except ValueError:
            continue
        return relative.as_posix() if relative.parts else Path(root).resolve().name
    return run_dir.as_posix()


def _envs(df: pd.DataFrame) -> str:
    return ", ".join(sorted(df["env"].unique()))


def _warn_duplicate_seeds(df: pd.DataFrame) -> None:
    runs = df.drop_duplicates("run_id")
    duplicated = runs[runs.duplicated(["env", "algo", "seed"], keep=False)]
    for (env, algo, seed), group in duplicated.groupby(["env", "algo", "seed"]):
        logger.warning(
            "%d runs of %s on %s with seed %s (%s); all are counted as separate runs",
            len(group),
            algo,
            env,
            seed,
            ", ".join(group["run_id"]),
        )
