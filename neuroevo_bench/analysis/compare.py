"""Regression tracking: compare results with a stored baseline, and promote results to a baseline.

A *baseline* is a small directory, ``results/baselines/<name>/``, committed with the code:

- ``runs.csv``: one row per run (env, algo, seed, final score, frames, training wall-clock, frames/s, the
  machine and library versions, ...): everything a comparison needs and nothing else, so it stays a few KB
  instead of the run directories' checkpoints and policies;
- ``baseline.json``: name, date, the git commit(s) and machine of the runs, the command that promoted it,
  the sweep's overrides and the tolerances to judge against it;
- ``bench.json`` (optional): the speed benchmark's output (``python -m neuroevo_bench.bench --json``);
- ``summary.md``: the same numbers for people.

Judging a row (one env, one algorithm; both sides need two seeds or more):

- *score*: regressed when the new mean is below the baseline's by more than the tolerance AND Welch's t
  interval of the difference of means lies below zero (a statistically supported drop beyond the
  tolerance). The CI alone would flag tiny drops between seeds that all end near the maximum (zero spread
  makes any shift "significant"); the tolerance alone would flag one unlucky seed. The tolerance is
  ``score_tolerance`` (default 0.1) times the env's normalisation range (``score_max - score_random``,
  CartPole 478: a drop of 47.8), or ``score_tolerance`` times ``|baseline mean|`` for an env without
  references, or an absolute value per env (``score_tolerance_abs``). Improved: the mirror image.
- *throughput* (training frames / training wall-clock of the fastest run: on a shared machine load only
  ever slows a run down, so the fastest of a few runs is the least disturbed measure, as ``timeit`` takes
  the minimum time; a real slow-down slows every run): compared only when both sides ran on the same machine (CPU model and core count),
  because frames/s across machines measure the machines. Regressed when new / baseline <
  ``1 - fps_tolerance`` (default 0.5: below half the baseline's speed; generous because shared CI
  machines are noisy), improved when above ``1 / (1 - fps_tolerance)``.
- *speed benchmark*: each section's ratio (project vs a reference, measured side by side in one process,
  so comparable across machines) is judged like throughput.

A baseline row without new runs is ``missing`` (fails: e.g. all runs of an algorithm crashed); a new row
without baseline is ``new`` (does not fail). Reads records only; imports no training code.

Intervals: each side's mean final score carries the report's interval, :func:`.stats.mean_ci` (Student-t over
seeds, chosen by the coverage simulation of :mod:`.stats`), so a baseline's CI is the one its summary table
shows. The difference of the two means carries Welch's t interval, the two-sample form of the same closed
form (each side keeps its own variance; Welch-Satterthwaite degrees of freedom). A percentile bootstrap of the
difference (seeds resampled on each side), like the bootstrap of one mean, runs narrow with 3-10 seeds: on
two sets of seeds drawn from the same distribution (the coverage scenarios of :mod:`.stats`, 2,000 pairs
each) its 95 % interval missed the true difference 0 in 8-20 % of pairs at 3-10 seeds a side, Welch's in
2-5.5 %. So the bootstrap flagged seed noise as a significant change far more often than its level says;
Welch is somewhat conservative instead (fewer false alarms, a little less power). Nothing in a comparison
resamples: it needs no seed.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats

from neuroevo_bench.records import git_commit  # stdlib only: no training stack

from . import stats, tables
from .labels import algo_label, format_count, format_score, order_algos, score_decimals
from .load import NoRunsError, load_runs, runs_table

__all__ = [
    "DEFAULT_BASELINES_DIR",
    "DEFAULT_FPS_TOLERANCE",
    "DEFAULT_SCORE_TOLERANCE",
    "RUN_SUMMARY_COLUMNS",
    "Baseline",
    "Comparison",
    "Tolerances",
    "compare",
    "compare_bench",
    "compare_runs",
    "comparison_markdown",
    "promote",
    "read_baseline",
    "read_bench",
    "read_runs",
    "resolve_baseline",
    "run_summaries",
    "welch_diff_ci",
]


DEFAULT_BASELINES_DIR = Path("results") / "baselines"
BASELINE_FILE = "baseline.json"
RUNS_FILE = "runs.csv"
BENCH_FILE = "bench.json"
SUMMARY_FILE = "summary.md"
DEFAULT_SCORE_TOLERANCE = 0.10
DEFAULT_FPS_TOLERANCE = 0.50
MIN_SEEDS = 2

OK, IMPROVED, REGRESSED, MISSING, NEW = "ok", "improved", "regressed", "missing", "new"
FAILING = (REGRESSED, MISSING)

# The compact per-run table of a baseline (runs.csv); version_* columns follow for every tracked package.
RUN_SUMMARY_COLUMNS = [
    "env",
    "env_id",
    "algo",
    "seed",
    "final_score",
    "score_random",
    "score_max",
    "score_threshold",
    "budget_frames",
    "train_frames",
    "train_wall_s",
    "frames_per_s",
    "machine",
    "machine_cpu",
    "machine_cores",
    "torch_threads",
    "python",
    "git_commit",
    "started_at",
    "overrides",
    "run_id",
]
_SCHEMA = 1


@dataclass(frozen=True)
class Tolerances:
    """How large a change must be to count (see the module docstring)."""

    score: float = DEFAULT_SCORE_TOLERANCE
    fps: float = DEFAULT_FPS_TOLERANCE
    score_abs: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.score >= 0:
            raise ValueError(
                f"score tolerance must be >= 0 (a fraction of the score range), got {self.score}"
            )
        if not 0 <= self.fps < 1:
            raise ValueError(
                f"throughput tolerance must be in [0, 1) (0.5: flag below half the baseline), got {self.fps}"
            )
        for env, value in self.score_abs.items():
            if not value >= 0:
                raise ValueError(f"absolute score tolerance for {env} must be >= 0, got {value}")

    def to_json(self) -> dict[str, Any]:
        return {"score": self.score, "fps": self.fps, "score_abs": dict(self.score_abs)}

    def override(
        self,
        score: float | None = None,
        fps: float | None = None,
        score_abs: Mapping[str, float] | None = None,
    ) -> Tolerances:
        """These tolerances with the given values replaced (None: keep), e.g. a baseline's with CLI flags."""
        return Tolerances(
            score=self.score if score is None else score,
            fps=self.fps if fps is None else fps,
            score_abs={**self.score_abs, **(score_abs or {})},
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Tolerances:
        data = data or {}
        return cls(
            score=float(data.get("score", DEFAULT_SCORE_TOLERANCE)),
            fps=float(data.get("fps", DEFAULT_FPS_TOLERANCE)),
            score_abs={str(k): float(v) for k, v in (data.get("score_abs") or {}).items()},
        )


@dataclass
class Baseline:
    """A stored baseline: its runs (runs.csv), metadata (baseline.json) and speed benchmark (bench.json)."""

    path: Path
    runs: pd.DataFrame
    meta: dict[str, Any]
    bench: dict[str, Any] | None


@dataclass
class Comparison:
    """The outcome of a comparison: one row per (env, algo) and one per benchmark section."""

    runs: pd.DataFrame
    bench: pd.DataFrame
    tolerances: Tolerances
    new_label: str
    baseline_label: str
    confidence_level: float = stats.DEFAULT_CONFIDENCE
    new_runs: pd.DataFrame | None = None
    new_bench: dict[str, Any] | None = None

    @property
    def failed(self) -> bool:
        """True when any row regressed or a baseline row has no new runs: the exit status is then 1."""
        verdicts = [*self.runs.get("verdict", []), *self.bench.get("verdict", [])]
        return any(v in FAILING for v in verdicts)


# --- per-run summaries --------------------------------------------------------------------------------------


def run_summaries(roots: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """The compact per-run table (:data:`RUN_SUMMARY_COLUMNS` + ``version_<package>``) of a results tree.

    Unfinished or broken runs are skipped as in the report (with a warning); raises
    :class:`.load.NoRunsError` when no run is usable.
    """
    runs = runs_table(load_runs(roots))
    rows = []
    for _, run in runs.iterrows():
        meta = json.loads((Path(run["run_dir"]) / "run.json").read_text())
        machine = meta.get("machine") or {}
        frames, wall = float(run["train_frames"]), float(run["total_train_wall_s"])
        row = {
            "env": run["env"],
            "env_id": run["env_id"],
            "algo": run["algo"],
            "seed": int(run["seed"]),
            "final_score": float(run["final_score"]),
            "score_random": float(run["norm_random"]),
            "score_max": float(run["norm_max"]),
            "score_threshold": float(run["score_threshold"]),
            "budget_frames": float(run["budget_frames"]),
            "train_frames": frames,
            "train_wall_s": wall,
            "frames_per_s": frames / wall if wall > 0 else math.nan,
            "machine": machine_key(machine),
            "machine_cpu": machine.get("cpu"),
            "machine_cores": machine.get("cores"),
            "torch_threads": machine.get("torch_threads"),
            "python": machine.get("python"),
            "git_commit": run["git_commit"],
            "started_at": run["started_at"],
            "overrides": _overrides(Path(run["run_dir"])),
            "run_id": run["run_id"],
        }
        for package, version in sorted((meta.get("versions") or {}).items()):
            row[f"version_{package}"] = version
        rows.append(row)
    table = pd.DataFrame(rows)
    versions = sorted(c for c in table.columns if c.startswith("version_"))
    return table[RUN_SUMMARY_COLUMNS + versions].sort_values(["env", "algo", "seed"], ignore_index=True)


def machine_key(machine: Mapping[str, Any]) -> str:
    """What must match for frames/s to be comparable: CPU model and core count ('unknown' if not recorded)."""
    cpu, cores = machine.get("cpu"), machine.get("cores")
    return f"{cpu} x{cores}" if cpu else "unknown"


def _overrides(run_dir: Path) -> str:
    """The Hydra overrides of a run (.hydra/overrides.yaml: one ``- key=value`` per line), space-separated."""
    path = run_dir / ".hydra" / "overrides.yaml"
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return ""
    return " ".join(line[2:].strip() for line in lines if line.startswith("- "))


def is_baseline(path: Path) -> bool:
    return (path / BASELINE_FILE).is_file() and (path / RUNS_FILE).is_file()


def resolve_baseline(name_or_path: str | Path, baselines_dir: str | Path = DEFAULT_BASELINES_DIR) -> Path:
    """A baseline directory, a results tree, or the name of a baseline under ``baselines_dir``."""
    path = Path(name_or_path)
    if path.exists():
        return path
    named = Path(baselines_dir) / str(name_or_path)
    if is_baseline(named):
        return named
    known = sorted(p.name for p in Path(baselines_dir).glob("*") if is_baseline(p))
    raise NoRunsError(
        f"baseline {name_or_path!r} is neither a directory nor a baseline under {baselines_dir}"
        + (f" (baselines there: {', '.join(known)})" if known else "")
    )


def read_baseline(path: str | Path) -> Baseline:
    """Load a baseline directory written by :func:`promote`."""
    path = Path(path)
    if not is_baseline(path):
        raise NoRunsError(f"{path} is not a baseline directory (needs {BASELINE_FILE} and {RUNS_FILE})")
    meta = json.loads((path / BASELINE_FILE).read_text())
    runs = pd.read_csv(path / RUNS_FILE)
    required = ("env", "env_id", "algo", "seed", "final_score", "budget_frames", "frames_per_s", "machine")
    missing = [c for c in required if c not in runs]
    if missing:
        raise NoRunsError(f"{path / RUNS_FILE} lacks column(s) {', '.join(missing)}")
    bench_path = path / BENCH_FILE
    bench = read_bench(bench_path) if bench_path.is_file() else None
    return Baseline(path=path, runs=runs, meta=meta, bench=bench)


def read_runs(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """Per-run table of either a baseline directory (with its baseline.json) or a results tree (None)."""
    path = Path(path)
    if is_baseline(path):
        baseline = read_baseline(path)
        return baseline.runs, baseline.meta
    return run_summaries([path]), None


# --- comparing runs -----------------------------------------------------------------------------------------


def compare_runs(
    new: pd.DataFrame,
    baseline: pd.DataFrame,
    tolerances: Tolerances = Tolerances(),
    *,
    confidence_level: float = stats.DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """One row per (env, algo) present on either side: mean final scores with Student-t CIs
    (:func:`.stats.mean_ci`), their difference with Welch's t CI (:func:`welch_diff_ci`), P(new run >
    baseline run), frames/s of each side's fastest run and their ratio, and verdicts.

    ``new``/``baseline``: per-run tables (:func:`run_summaries` or a baseline's runs.csv). Columns: env,
    env_id, algo, n_new, n_base, new_mean, new_ci_low, new_ci_high, base_mean, base_ci_low, base_ci_high,
    diff, diff_ci_low, diff_ci_high, tolerance, p_improvement, new_fps, base_fps, fps_ratio, new_machine,
    base_machine, score_verdict, fps_verdict, verdict, note.
    """
    keys = pd.concat([new[["env", "algo"]], baseline[["env", "algo"]]]).drop_duplicates()
    rows = []
    for env, algo in keys.itertuples(index=False):
        x = new[(new["env"] == env) & (new["algo"] == algo)]
        b = baseline[(baseline["env"] == env) & (baseline["algo"] == algo)]
        xs = x["final_score"].to_numpy(dtype=float)
        bs = b["final_score"].to_numpy(dtype=float)
        row: dict[str, Any] = {
            "env": env,
            "env_id": (x if len(x) else b)["env_id"].iloc[0],
            "algo": algo,
            "n_new": len(xs),
            "n_base": len(bs),
        }
        notes: list[str] = []
        for side, scores in (("new", xs), ("base", bs)):
            low, high = stats.mean_ci(scores, confidence_level)  # nan for fewer than 2 seeds
            row |= {
                f"{side}_mean": float(np.mean(scores)) if len(scores) else math.nan,
                f"{side}_ci_low": float(low),
                f"{side}_ci_high": float(high),
            }
        row |= {"diff": row["new_mean"] - row["base_mean"], "diff_ci_low": math.nan, "diff_ci_high": math.nan}
        row["tolerance"] = _score_tolerance(
            env, row["env_id"], b if len(b) else x, row["base_mean"], tolerances
        )
        row["p_improvement"] = (
            float(stats.probability_of_improvement(xs, bs)) if len(xs) and len(bs) else math.nan
        )
        row |= _throughput(x, b, tolerances.fps, notes)

        if not len(xs):
            row["score_verdict"] = row["fps_verdict"] = "n/a"
            row["verdict"] = MISSING
            notes.insert(0, "no new runs")
        elif not len(bs):
            row["score_verdict"] = row["fps_verdict"] = "n/a"
            row["verdict"] = NEW
            notes.insert(0, "not in the baseline")
        else:
            if min(len(xs), len(bs)) >= MIN_SEEDS:
                row["diff_ci_low"], row["diff_ci_high"] = welch_diff_ci(xs, bs, confidence_level)
                row["score_verdict"] = _judge_score(row)
            else:
                row["score_verdict"] = "n/a"
                notes.append(f"score not judged: fewer than {MIN_SEEDS} seeds on a side")
            budgets = sorted(set(x["budget_frames"].dropna()) | set(b["budget_frames"].dropna()))
            if len(budgets) > 1:
                notes.append(
                    "different frame budgets (" + ", ".join(format_count(v) for v in budgets) + "): "
                    "scores are not comparable"
                )
            row["verdict"] = _combine(row["score_verdict"], row["fps_verdict"])
        row["note"] = "; ".join(notes)
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    rank = {a: i for i, a in enumerate(order_algos(table["algo"]))}
    table = table.assign(_rank=table["algo"].map(rank)).sort_values(["env", "_rank"], kind="stable")
    return table.drop(columns="_rank").reset_index(drop=True)


def welch_diff_ci(
    x: np.ndarray, y: np.ndarray, confidence_level: float = stats.DEFAULT_CONFIDENCE
) -> tuple[float, float]:
    """Welch's t confidence interval of ``mean(x) - mean(y)`` (two independent sets of seeds, each with its
    own variance): ``diff -+ t_df * se``, ``se = sqrt(s_x^2 / n_x + s_y^2 / n_y)``, ``df`` by
    Welch-Satterthwaite. The two-sample counterpart of :func:`.stats.mean_ci`; the same interval as
    ``scipy.stats.ttest_ind(x, y, equal_var=False).confidence_interval()``, except that when every seed on
    both sides ties (no spread at all: ``se = 0``, where scipy gives ``nan``) it is the zero-width interval
    at the difference, as :func:`.stats.mean_ci` is for one side. Needs two seeds per side (else ``nan``).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if min(x.size, y.size) < 2:
        return math.nan, math.nan
    diff = float(np.mean(x) - np.mean(y))
    vx, vy = np.var(x, ddof=1) / x.size, np.var(y, ddof=1) / y.size
    se2 = float(vx + vy)
    if se2 == 0:
        return diff, diff
    df = se2**2 / (vx**2 / (x.size - 1) + vy**2 / (y.size - 1))
    half = float(scipy.stats.t.ppf(0.5 + confidence_level / 2, df)) * math.sqrt(se2)
    return diff - half, diff + half


def _score_tolerance(
    env: str, env_id: str, runs: pd.DataFrame, base_mean: float, tolerances: Tolerances
) -> float:
    for key in (env, env_id):
        if key in tolerances.score_abs:
            return float(tolerances.score_abs[key])
    span = (runs["score_max"] - runs["score_random"]).dropna() if "score_max" in runs else pd.Series([])
    if len(span) and span.iloc[0] > 0:
        return tolerances.score * float(span.iloc[0])
    return tolerances.score * abs(base_mean) if np.isfinite(base_mean) else math.nan


def _judge_score(row: Mapping[str, Any]) -> str:
    if row["diff_ci_high"] < 0 and -row["diff"] > row["tolerance"]:
        return REGRESSED
    if row["diff_ci_low"] > 0 and row["diff"] > row["tolerance"]:
        return IMPROVED
    return OK


def _throughput(x: pd.DataFrame, b: pd.DataFrame, tolerance: float, notes: list[str]) -> dict[str, Any]:
    new_fps = float(x["frames_per_s"].max()) if len(x) else math.nan
    base_fps = float(b["frames_per_s"].max()) if len(b) else math.nan
    new_machines = sorted(set(x["machine"].astype(str)))
    base_machines = sorted(set(b["machine"].astype(str)))
    out = {
        "new_fps": new_fps,
        "base_fps": base_fps,
        "fps_ratio": new_fps / base_fps if base_fps > 0 else math.nan,
        "new_machine": ", ".join(new_machines),
        "base_machine": ", ".join(base_machines),
        "fps_verdict": "n/a",
    }
    if not len(x) or not len(b):
        return out
    same = len(new_machines) == 1 and new_machines == base_machines and new_machines[0] != "unknown"
    if not same:
        notes.append("frames/s not compared: different machine")
        out["fps_verdict"] = "n/a (different machine)"
        return out
    out["fps_verdict"] = _judge_ratio(out["fps_ratio"], tolerance)
    return out


def _judge_ratio(ratio: float, tolerance: float) -> str:
    if not np.isfinite(ratio):
        return "n/a"
    if ratio < 1 - tolerance:
        return REGRESSED
    if ratio > 1 / (1 - tolerance):
        return IMPROVED
    return OK


def _combine(*verdicts: str) -> str:
    if REGRESSED in verdicts:
        return REGRESSED
    if IMPROVED in verdicts:
        return IMPROVED
    return OK


# --- comparing speed benchmarks -----------------------------------------------------------------------------


def compare_bench(new: Mapping[str, Any], baseline: Mapping[str, Any], tolerance: float) -> pd.DataFrame:
    """One row per benchmark section: baseline and new ratio (project vs reference), their quotient, verdict.

    Ratios are measured side by side in one process, so unlike frames/s they are compared across machines
    (a note says when the machines differ). A section missing on one side is listed, not judged: optional
    sections (SB3, Atari, Ray) depend on what is installed.
    """
    new_rows = {r["name"]: r for r in new.get("results", [])}
    base_rows = {r["name"]: r for r in baseline.get("results", [])}
    new_machine = machine_key((new.get("meta") or {}).get("machine") or {})
    base_machine = machine_key((baseline.get("meta") or {}).get("machine") or {})
    rows = []
    for name in [*base_rows, *(n for n in new_rows if n not in base_rows)]:
        x, b = new_rows.get(name), base_rows.get(name)
        ratio_new = float(x["ratio"]) if x else math.nan
        ratio_base = float(b["ratio"]) if b else math.nan
        change = ratio_new / ratio_base if b and x and ratio_base > 0 else math.nan
        note = ""
        if x is None:
            verdict, note = "n/a", "section not in the new benchmark"
        elif b is None:
            verdict, note = NEW, "section not in the baseline"
        else:
            verdict = _judge_ratio(change, tolerance)
            if new_machine != base_machine:
                note = f"different machine ({base_machine} -> {new_machine})"
        goal = (x or b or {}).get("goal")
        rows.append(
            {
                "name": name,
                "base_ratio": ratio_base,
                "new_ratio": ratio_new,
                "change": change,
                "goal": float(goal) if goal is not None else math.nan,
                "new_project_fps": float(x["project_fps"]) if x and "project_fps" in x else math.nan,
                "verdict": verdict,
                "note": note,
            }
        )
    return pd.DataFrame(
        rows,
        columns=["name", "base_ratio", "new_ratio", "change", "goal", "new_project_fps", "verdict", "note"],
    )


# --- the whole comparison -----------------------------------------------------------------------------------


def compare(
    new: Sequence[str | Path],
    baseline: str | Path,
    *,
    bench: str | Path | None = None,
    tolerances: Tolerances | None = None,
    overrides: Mapping[str, Any] | None = None,
    confidence_level: float = stats.DEFAULT_CONFIDENCE,
) -> Comparison:
    """Compare results trees or baseline directories ``new`` with ``baseline`` (a baseline directory or a
    results tree), and optionally a speed benchmark JSON with the baseline's bench.json.

    ``tolerances``: default those stored in the baseline's baseline.json, else the module defaults;
    ``overrides`` (keyword arguments of :meth:`Tolerances.override`) then replace single values.
    Every interval of a comparison is closed-form (see the module docstring): nothing is resampled.
    """
    baseline = Path(baseline)
    base_runs, base_meta = read_runs(baseline)
    if tolerances is None:
        tolerances = Tolerances.from_json((base_meta or {}).get("tolerances"))
    tolerances = tolerances.override(**(overrides or {}))
    runs, new_runs = pd.DataFrame(), None
    if new:
        new_runs = pd.concat([read_runs(path)[0] for path in new], ignore_index=True)
        runs = compare_runs(new_runs, base_runs, tolerances, confidence_level=confidence_level)
    bench_table, new_bench = pd.DataFrame(), None
    if bench is not None:
        base_bench_path = baseline / BENCH_FILE
        if not base_bench_path.is_file():
            raise NoRunsError(
                f"baseline {baseline} has no {BENCH_FILE} to compare {bench} with; promote one with --bench"
            )
        new_bench = read_bench(bench)
        bench_table = compare_bench(new_bench, read_bench(base_bench_path), tolerances.fps)
    return Comparison(
        runs=runs,
        bench=bench_table,
        tolerances=tolerances,
        new_label=", ".join(str(p) for p in new) or str(bench),
        baseline_label=str(baseline),
        confidence_level=confidence_level,
        new_runs=new_runs,
        new_bench=new_bench,
    )


def read_bench(path: str | Path) -> dict[str, Any]:
    """A speed benchmark JSON (``python -m neuroevo_bench.bench --json PATH``), checked for its shape."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise ValueError(f"{path} is not a speed benchmark JSON (python -m neuroevo_bench.bench --json PATH)")
    for row in data["results"]:
        if not isinstance(row, dict) or "name" not in row or "ratio" not in row:
            raise ValueError(f"{path}: every result needs a name and a ratio, got {row!r}")
    return data


def comparison_markdown(comparison: Comparison) -> str:
    """The comparison as Markdown (fit for a pull-request comment): verdict first, then the tables."""
    level = f"{comparison.confidence_level:.0%}"
    tol = comparison.tolerances
    status = "REGRESSION" if comparison.failed else "no regression"
    lines = [
        f"## Regression check: {status}",
        "",
        f"New: `{comparison.new_label}`; baseline: `{comparison.baseline_label}`.",
        "",
    ]
    if not comparison.runs.empty:
        lines += [tables.to_markdown(_format_runs(comparison.runs, level)), ""]
    if not comparison.bench.empty:
        lines += ["Speed benchmark (ratio = project / reference, measured side by side):", ""]
        lines += [tables.to_markdown(_format_bench(comparison.bench)), ""]
    bounds = f"below {1 - tol.fps:.0%} of the baseline" + (
        f", improved above {1 / (1 - tol.fps):.0%}" if tol.fps > 0 else ""
    )
    if not comparison.runs.empty:
        abs_note = (
            " (absolute for " + ", ".join(f"{k}: {v:g}" for k, v in tol.score_abs.items()) + ")"
            if tol.score_abs
            else ""
        )
        lines += [
            f"- Score: final test return, mean over seeds [{level} Student-t CI, as in the summary table]; "
            f"difference of the means [{level} Welch t CI]. Regressed when the new mean is lower by more "
            f"than the tolerance ({tol.score:g} x the env's score range{abs_note}) and the {level} Welch CI "
            "of the difference lies below 0. P(new > base): probability that a new run beats a baseline "
            "run.",
            "- Frames/s: training frames / training wall-clock of the fastest run (load only slows runs "
            "down); compared on the same machine "
            f"only; regressed {bounds}.",
        ]
    if not comparison.bench.empty:
        lines.append(
            f"- Speed benchmark: a section's ratio regressed {bounds}; compared across machines too, as both "
            "sides of a ratio are measured together."
        )
    return "\n".join(lines) + "\n"


def _format_runs(runs: pd.DataFrame, level: str) -> pd.DataFrame:
    rows = []
    for _, r in runs.iterrows():
        decimals = score_decimals(r["base_mean"], r["new_mean"], r["base_ci_high"], r["new_ci_high"])

        diff = "-"
        if r["n_new"] and r["n_base"]:
            diff = f"{r['diff']:+,.{decimals}f}"
            if not np.isnan(r["diff_ci_low"]):
                diff += f" [{r['diff_ci_low']:+,.{decimals}f}, {r['diff_ci_high']:+,.{decimals}f}]"
        fps = "-"
        if r["n_new"] and r["n_base"]:
            fps = f"{format_count(r['base_fps'])} -> {format_count(r['new_fps'])}"
            fps += (
                f" (x{r['fps_ratio']:.2f})"
                if r["fps_verdict"] != "n/a (different machine)"
                else " (n/a: different machine)"
            )
        rows.append(
            {
                "env": r["env_id"],
                "algo": algo_label(r["algo"]),
                f"baseline [{level} CI]": _score_cell(r, "base", decimals),
                f"new [{level} CI]": _score_cell(r, "new", decimals),
                f"difference [{level} CI]": diff,
                "tolerance": format_score(r["tolerance"], decimals),
                "P(new > base)": "-" if np.isnan(r["p_improvement"]) else f"{r['p_improvement']:.2f}",
                "frames/s": fps,
                "verdict": f"**{r['verdict']}**" if r["verdict"] in FAILING else r["verdict"],
                "note": r["note"],
            }
        )
    return pd.DataFrame(rows)


def _score_cell(row: pd.Series, side: str, decimals: int) -> str:
    """'mean [low, high] (n=3)' of one side of a comparison row; '-' without runs."""
    n = row[f"n_{side}"]
    if not n:
        return "-"
    low, high = row[f"{side}_ci_low"], row[f"{side}_ci_high"]
    ci = "" if np.isnan(low) else f" [{format_score(low, decimals)}, {format_score(high, decimals)}]"
    return f"{format_score(row[f'{side}_mean'], decimals)}{ci} (n={n})"


def _format_bench(bench: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, r in bench.iterrows():
        rows.append(
            {
                "section": r["name"],
                "baseline ratio": "-" if np.isnan(r["base_ratio"]) else f"{r['base_ratio']:.3g}",
                "new ratio": "-" if np.isnan(r["new_ratio"]) else f"{r['new_ratio']:.3g}",
                "change": "-" if np.isnan(r["change"]) else f"x{r['change']:.2f}",
                "goal": "-" if np.isnan(r["goal"]) else f">= {r['goal']:g}",
                "verdict": f"**{r['verdict']}**" if r["verdict"] in FAILING else r["verdict"],
                "note": r["note"],
            }
        )
    return pd.DataFrame(rows)


# --- promoting a baseline -----------------------------------------------------------------------------------


def promote(
    results: Sequence[str | Path],
    name: str,
    *,
    baselines_dir: str | Path = DEFAULT_BASELINES_DIR,
    bench: str | Path | None = None,
    tolerances: Tolerances = Tolerances(),
    command: str | None = None,
    force: bool = False,
) -> Baseline:
    """Write the runs below ``results`` (and a bench JSON) as the baseline ``baselines_dir/name``.

    Refuses to replace an existing baseline unless ``force``: a baseline is what later changes are judged
    against, so replacing one is a decision. The directory is written next to its final place and renamed
    onto it, so a reader never sees half a baseline.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ValueError(f"baseline name {name!r}: use letters, digits, '.', '_' and '-' (e.g. ci_cartpole)")
    target = Path(baselines_dir) / name
    if target.exists() and not force:
        raise FileExistsError(f"baseline {target} exists; pass --force to replace it")
    runs = pd.concat([read_runs(path)[0] for path in results], ignore_index=True)
    bench_data = read_bench(bench) if bench is not None else None
    commits = runs["git_commit"].dropna().astype(str)
    meta = {
        "schema": _SCHEMA,
        "name": name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commits": sorted(set(commits)),
        "git_commit": commits.mode().iloc[0] if len(commits) else None,
        "promoted_at_commit": git_commit(),
        "machines": sorted(set(runs["machine"].astype(str))),
        "command": command
        or " ".join([Path(sys.executable).name, "-m", "neuroevo_bench.analyze", *sys.argv[1:]]),
        "sweep_overrides": _sweep_overrides(results),
        "results": [str(p) for p in results],
        "n_runs": len(runs),
        "envs": sorted(set(runs["env"])),
        "algos": order_algos(runs["algo"]),
        "tolerances": tolerances.to_json(),
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{name}."))
    try:
        runs.to_csv(staging / RUNS_FILE, index=False)
        (staging / BASELINE_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        if bench_data is not None:
            (staging / BENCH_FILE).write_text(json.dumps(bench_data, indent=2) + "\n")
        baseline = Baseline(path=target, runs=runs, meta=meta, bench=bench_data)
        (staging / SUMMARY_FILE).write_text(_baseline_markdown(baseline))
        os.chmod(staging, 0o755)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return baseline


def _sweep_overrides(results: Sequence[str | Path]) -> list[list[str]]:
    """The task overrides of each results tree's Hydra multirun (multirun.yaml), if it was one."""
    found = []
    for root in results:
        path = Path(root) / "multirun.yaml"
        if not path.is_file():
            continue
        from omegaconf import OmegaConf  # Hydra's config library: light, and installed with the analysis

        overrides = OmegaConf.select(OmegaConf.load(path), "hydra.overrides.task", default=None)
        if overrides is not None:
            found.append([str(o) for o in overrides])
    return found


def _baseline_markdown(baseline: Baseline) -> str:
    meta = baseline.meta
    summary = baseline_summary(baseline.runs)
    rows = [
        {
            "env": r["env_id"],
            "algo": algo_label(r["algo"]),
            "seeds": str(r["n_seeds"]),
            "final score [95% Student-t CI]": f"{format_score(r['score_mean'])} "
            + (
                "[n/a]"
                if np.isnan(r["score_ci_low"])
                else f"[{format_score(r['score_ci_low'])}, {format_score(r['score_ci_high'])}]"
            ),
            "frames": format_count(r["budget_frames"]),
            "train frames/s (fastest run)": format_count(r["frames_per_s"]),
        }
        for _, r in summary.iterrows()
    ]
    lines = [
        f"# Baseline `{meta['name']}`",
        "",
        f"Promoted {meta['created']} from runs at commit {meta['git_commit']} on {', '.join(meta['machines'])}.",
        "",
        f"Command: `{meta['command']}`",
        "",
    ]
    for overrides in meta["sweep_overrides"]:
        lines += [f"Sweep: `python -m neuroevo_bench -m {' '.join(overrides)}`", ""]
    lines += [tables.to_markdown(pd.DataFrame(rows)), ""]
    if baseline.bench:
        lines += [
            "Speed benchmark ratios: "
            + ", ".join(f"{r['name']} {float(r['ratio']):.3g}" for r in baseline.bench["results"]),
            "",
        ]
    return "\n".join(lines)


def baseline_summary(
    runs: pd.DataFrame, *, confidence_level: float = stats.DEFAULT_CONFIDENCE
) -> pd.DataFrame:
    """Per (env, algo) of a per-run table: seeds, mean final score with the summary table's Student-t CI
    (:func:`.stats.mean_ci`; ``nan`` for one seed), fastest run's frames/s, budget, the runs' git commit and
    machine (what the history records)."""
    rows = []
    for (env, algo), group in runs.groupby(["env", "algo"], sort=False):
        scores = group["final_score"].to_numpy(dtype=float)
        low, high = (float(v) for v in stats.mean_ci(scores, confidence_level))
        commits = group["git_commit"].dropna().astype(str)
        rows.append(
            {
                "env": env,
                "env_id": group["env_id"].iloc[0],
                "algo": algo,
                "n_seeds": len(scores),
                "score_mean": float(np.mean(scores)),
                "score_ci_low": low,
                "score_ci_high": high,
                "frames_per_s": float(group["frames_per_s"].max()),
                "budget_frames": float(group["budget_frames"].max()),
                "git_commit": commits.mode().iloc[0] if len(commits) else None,
                "machine": ", ".join(sorted(set(group["machine"].astype(str)))),
            }
        )
    return pd.DataFrame(rows)
