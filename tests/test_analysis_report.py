"""The analysis end to end on a synthetic results tree: loading, table values, files, CLI, Hydra callback.

:func:`build_tree` writes two envs:

- CartPole (threshold 475, normalisation 20 -> 500), eval every 1000 frames up to 4000, training at 500
  frames/s for GA (wall-clock = frames / 500), 1000 frames/s for RS and 2000 frames/s for PPO:

  ========  ====  ==========================  ===============================================
  algo      seed  score_mean per eval point   first eval point at or above 475
  ========  ====  ==========================  ===============================================
  ga        0     20 200 400 500 500          3000 frames, 6 s (not 2750 interpolated)
  ga        1     20 100 300 450 480          4000 frames, 8 s
  ga        2     20  50  80 100 120          never (ran 4000 frames, 8 s)
  random    0-2   20  30  40  50  60 + seed   never (ran 4000 frames, 4 s)
  ppo       0-2   20 100 475 490 500 - seed   2000 frames, 1 s
  ========  ====  ==========================  ===============================================

  So GA's median over its 3 seeds is 4000 frames / 8 s (2/3 reached); random search's is "> 4000" (0/3).

- Toy (threshold 0.9, normalisation 0 -> 1), eval every 500 frames up to 1000: ga seeds 0-1 end at 1.0 and
  0.8, ppo seeds 0-1 end at 0.2 and 0.4.

plus broken run directories that must be skipped: invalid JSON, status "failed", no curve.csv.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from omegaconf import OmegaConf
from PIL import Image

from neuroevo_bench.analysis import load_runs, plots, runs_table
from neuroevo_bench.analysis.__main__ import build_parser, main
from neuroevo_bench.analysis.callback import AnalyzeOnMultirunEnd
from neuroevo_bench.analysis.load import RUN_COLUMNS, NoRunsError
from neuroevo_bench.analysis.report import analyze
from neuroevo_bench.analysis.tables import (
    aggregate_table,
    curve_table,
    format_summary,
    improvement_table,
    resolution_table,
    summary_table,
)

# --- the synthetic results tree ---

CARTPOLE = {
    "env": "CartPole",
    "env_id": "CartPole-v1",
    "score_threshold": 475.0,
    "score_random": 20.0,
    "score_max": 500.0,
}
TOY = {"env": "Toy", "env_id": "Toy-v0", "score_threshold": 0.9, "score_random": 0.0, "score_max": 1.0}

CARTPOLE_FRAMES = [0, 1000, 2000, 3000, 4000]
CARTPOLE_SCORES = {
    ("ga", 0): [20, 200, 400, 500, 500],
    ("ga", 1): [20, 100, 300, 450, 480],
    ("ga", 2): [20, 50, 80, 100, 120],
    **{("random", s): [20, 30, 40, 50, 60 + s] for s in range(3)},
    **{("ppo", s): [20, 100, 475, 490, 500 - s] for s in range(3)},
}
FRAMES_PER_SECOND = {"ga": 500.0, "random": 1000.0, "ppo": 2000.0}

TOY_FRAMES = [0, 500, 1000]
TOY_SCORES = {
    ("ga", 0): [0.0, 0.5, 1.0],
    ("ga", 1): [0.0, 0.4, 0.8],
    ("ppo", 0): [0.0, 0.1, 0.2],
    ("ppo", 1): [0.0, 0.3, 0.4],
}

BROKEN_RUNS = ("sweep/broken_json", "sweep/failed", "sweep/no_curve")


def write_run(
    run_dir: Path,
    *,
    algo: str,
    seed: int,
    env: dict,
    frames: list[float],
    scores: list[float],
    fps: float = 1000.0,
    status: str = "ok",
) -> Path:
    """One run directory with run.json and curve.csv in the runner's format."""
    run_dir.mkdir(parents=True, exist_ok=True)
    wall = [f / fps for f in frames]
    curve = pd.DataFrame(
        {
            "frames": frames,
            "agent_steps": frames,
            "train_wall_s": wall,
            "eval_wall_s": [0.1 * (i + 1) for i in range(len(frames))],
            "score_mean": scores,
            "score_std": [1.0] * len(frames),
            "score_min": [s - 1 for s in scores],
            "score_max": [s + 1 for s in scores],
            "episodes": [10] * len(frames),
        }
    )
    if algo in ("ga", "random"):
        curve["generation"] = range(len(frames))
        curve["fitness_max"] = [s + 5 for s in scores]
        curve["fitness_mean"] = [s / 2 for s in scores]
    curve.to_csv(run_dir / "curve.csv", index=False)
    meta = {
        "algo": algo,
        "seed": seed,
        "status": status,
        "budget_frames": frames[-1],
        "train_frames": frames[-1],
        "eval_frames": 10 * len(frames) * 100,
        "agent_steps": frames[-1],
        "frame_skip": 1,
        "train_wall_s": wall[-1],
        "eval_wall_s": 0.1 * len(frames),
        "final_score": scores[-1],
        "final_score_std": 1.0,
        "network": "mlp",
        "config": {"algo": {"name": algo}, "seed": seed, "eval": {"every_frames": 1000}},
        "machine": {"cpu": "test"},
        "versions": {},
        "git_commit": None,
        "started_at": "2025-01-01T00:00:00",
        "finished_at": "2025-01-01T00:01:00",
        "error": None,
        **env,
    }
    (run_dir / "run.json").write_text(json.dumps(meta, indent=2))
    return run_dir


def build_tree(root: Path) -> Path:
    """The tree described in the module docstring, under ``root`` (runs nested at different depths)."""
    for (algo, seed), scores in CARTPOLE_SCORES.items():
        write_run(
            root / "sweep" / f"CartPole_{algo}_{seed}",
            algo=algo,
            seed=seed,
            env=CARTPOLE,
            frames=CARTPOLE_FRAMES,
            scores=scores,
            fps=FRAMES_PER_SECOND[algo],
        )
    for (algo, seed), scores in TOY_SCORES.items():
        write_run(
            root / "other" / "deeper" / f"toy_{algo}_{seed}",
            algo=algo,
            seed=seed,
            env=TOY,
            frames=TOY_FRAMES,
            scores=scores,
        )
    broken_json, failed, no_curve = (root / name for name in BROKEN_RUNS)
    write_run(broken_json, algo="ga", seed=9, env=CARTPOLE, frames=CARTPOLE_FRAMES, scores=[1] * 5)
    (broken_json / "run.json").write_text('{"algo": "ga", "seed": ')
    write_run(
        failed, algo="ppo", seed=9, env=CARTPOLE, frames=CARTPOLE_FRAMES, scores=[1] * 5, status="failed"
    )
    write_run(no_curve, algo="ppo", seed=8, env=CARTPOLE, frames=CARTPOLE_FRAMES, scores=[1] * 5)
    (no_curve / "curve.csv").unlink()
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tree(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def runs(tree: Path) -> pd.DataFrame:
    return load_runs(tree)


FAST = {"n_resamples": 200, "formats": ("png",), "dpi": 40}  # figures drawn, but cheap


# --- loading ------------------------------------------------------------------------------------------------


def test_load_runs_gives_one_tidy_row_per_eval_point(runs: pd.DataFrame) -> None:
    assert list(runs.columns[: len(RUN_COLUMNS)]) == RUN_COLUMNS
    assert {"frames", "train_wall_s", "score_mean", "eval_index", "generation", "fitness_max"} <= set(
        runs.columns
    )
    assert runs["run_id"].nunique() == 13
    assert len(runs) == 9 * len(CARTPOLE_FRAMES) + 4 * len(TOY_FRAMES)
    ga0 = runs[runs["run_id"] == "sweep/CartPole_ga_0"]
    assert ga0["score_mean"].tolist() == CARTPOLE_SCORES[("ga", 0)]
    assert ga0["final_norm_score"].iloc[0] == pytest.approx((500 - 20) / 480)
    assert ga0["total_train_wall_s"].iloc[0] == pytest.approx(8.0)
    assert runs.loc[runs["algo"] == "ppo", "generation"].isna().all()  # GA/RS-only columns


def test_load_runs_skips_broken_runs_with_a_warning_naming_them(
    tree: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="neuroevo_bench.analysis"):
        df = load_runs(tree)
    skipped = {Path(s.run_dir).relative_to(tree).as_posix(): s.reason for s in df.attrs["skipped"]}
    assert set(skipped) == set(BROKEN_RUNS)
    assert "invalid JSON" in skipped["sweep/broken_json"]
    assert "failed" in skipped["sweep/failed"]
    assert "no curve.csv" in skipped["sweep/no_curve"]
    for name in BROKEN_RUNS:
        assert any(str(tree / name) in record.getMessage() for record in caplog.records), name


def test_load_runs_without_usable_runs_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(NoRunsError, match="no run directories"):
        load_runs(tmp_path)
    with pytest.raises(NoRunsError, match="does not exist"):
        load_runs(tmp_path / "missing")
    write_run(
        tmp_path / "only", algo="ga", seed=0, env=TOY, frames=TOY_FRAMES, scores=[0, 0, 0], status="running"
    )
    with pytest.raises(NoRunsError, match="all 1 run directories skipped"):
        load_runs(tmp_path)


def test_threshold_override(tree: Path) -> None:
    df = load_runs(tree, thresholds={"Toy-v0": 0.3})  # by env id; config names work too
    summary = summary_table(df).set_index(["env", "algo"])
    assert summary.loc[("Toy", "ppo"), "threshold"] == 0.3
    # seed 1 (0, 0.3, 0.4) reaches 0.3 at its 500-frame eval point, seed 0 (0, 0.1, 0.2) never within its
    # 1000 frames: of two seeds the median is the mean of both, more than (500 + 1000) / 2.
    toy_ppo = summary.loc[("Toy", "ppo")]
    assert toy_ppo[["n_reached", "frames_to_threshold", "frames_to_threshold_bound"]].tolist() == [
        1,
        750,
        True,
    ]
    assert summary.loc[("CartPole", "ga"), "threshold"] == 475.0  # other envs untouched


# --- table values -------------------------------------------------------------------------------------------


def test_summary_table_values(runs: pd.DataFrame) -> None:
    summary = summary_table(runs).set_index(["env", "algo"])
    assert list(summary.index) == [  # env by name, then GA, RS, A2C, PPO order
        ("CartPole", "ga"),
        ("CartPole", "random"),
        ("CartPole", "ppo"),
        ("Toy", "ga"),
        ("Toy", "ppo"),
    ]
    ga = summary.loc[("CartPole", "ga")]
    assert ga["n_seeds"] == 3
    assert ga["final_mean"] == pytest.approx((500 + 480 + 120) / 3)
    assert ga["final_median"] == 480
    assert ga["final_iqm"] == pytest.approx((500 + 480 + 120) / 3)  # n = 3: nothing trimmed
    # Student-t: mean -+ t_{0.975, 2} sd / sqrt(3)
    half = 4.302652729911275 * np.std([500, 480, 120], ddof=1) / np.sqrt(3)
    assert ga["final_ci_low"] == pytest.approx(ga["final_mean"] - half)
    assert ga["final_ci_high"] == pytest.approx(ga["final_mean"] + half)
    assert ga["n_reached"] == 2
    # First eval points at or above 475: 3000 and 4000 frames; the third seed never: median 4000, not a
    # mean of the two successes, and never interpolated (2750 / 3833 frames).
    assert (ga["frames_to_threshold"], ga["frames_to_threshold_bound"]) == (4000, False)
    assert (ga["wall_s_to_threshold"], ga["wall_s_to_threshold_bound"]) == (8.0, False)
    assert ga["train_fps"] == pytest.approx(500)
    assert ga["train_frames_mean"] == 4000

    rs = summary.loc[("CartPole", "random")]
    assert rs["n_reached"] == 0
    assert (rs["frames_to_threshold"], rs["frames_to_threshold_bound"]) == (4000, True)  # "> 4k": its budget
    assert (rs["wall_s_to_threshold"], rs["wall_s_to_threshold_bound"]) == (4.0, True)
    ppo = summary.loc[("CartPole", "ppo")]
    assert (ppo["n_reached"], ppo["frames_to_threshold"], ppo["wall_s_to_threshold"]) == (3, 2000, 1.0)
    assert ppo["train_fps"] == pytest.approx(2000)
    assert ppo["final_ci_low"] == pytest.approx(499 - 4.302652729911275 * 1 / np.sqrt(3))
    toy = summary.loc[("Toy", "ga")]  # 1.0 at 1000 frames (0.9 was crossed at 900 between evals); 0.8 never
    assert toy[["n_reached", "frames_to_threshold", "frames_to_threshold_bound"]].tolist() == [1, 1000, True]
    assert (summary["n_untrained"] == 0).all()  # run.json without the field: trained

    display = format_summary(summary.reset_index()).set_index(["env", "algo"])
    assert display.loc[("CartPole-v1", "GA"), "frames to threshold"] == "4k (2/3)"
    assert display.loc[("CartPole-v1", "GA"), "wall-clock to threshold [s]"] == "8.0 (2/3)"
    assert display.loc[("CartPole-v1", "Random search"), "frames to threshold"] == "> 4k (0/3)"
    assert display.loc[("CartPole-v1", "Random search"), "wall-clock to threshold [s]"] == "> 4.0 (0/3)"
    assert display.loc[("CartPole-v1", "PPO"), "frames to threshold"] == "2k (3/3)"
    assert display.loc[("Toy-v0", "GA"), "frames to threshold"] == "> 1k (1/2)"
    assert display.loc[("CartPole-v1", "GA"), "final score, mean [95% CI]"].startswith("366.7 [")


def test_aggregate_table_values(runs: pd.DataFrame) -> None:
    table = aggregate_table(runs, n_resamples=300).set_index(["algo", "metric"])
    # GA's normalised final scores pooled over envs: CartPole (s - 20) / 480, Toy s.
    ga = np.array([480 / 480, 460 / 480, 100 / 480, 1.0, 0.8])
    assert table.loc[("ga", "Mean"), "value"] == pytest.approx(ga.mean())
    assert table.loc[("ga", "Median"), "value"] == pytest.approx(np.median(ga))
    assert table.loc[("ga", "IQM"), "value"] == pytest.approx(np.mean(np.sort(ga)[1:4]))
    assert table.loc[("ga", "Optimality gap"), "value"] == pytest.approx(np.mean(1 - np.minimum(ga, 1)))
    assert table.loc[("ga", "Mean"), ["n_runs", "n_envs"]].tolist() == [5, 2]
    assert table.loc[("random", "Mean"), ["n_runs", "n_envs"]].tolist() == [3, 1]


def test_improvement_table_values(runs: pd.DataFrame) -> None:
    table = improvement_table(runs, "ga", n_resamples=300).set_index(["env", "algo_y"])
    assert table.loc[("CartPole", "random"), "probability"] == 1.0
    assert table.loc[("CartPole", "ppo"), "probability"] == pytest.approx(2.5 / 9)
    assert table.loc[("Toy", "ppo"), "probability"] == 1.0
    assert table.loc[("all envs", "ppo"), "probability"] == pytest.approx((2.5 / 9 + 1.0) / 2)
    assert ("all envs", "random") not in table.index  # RS ran on one env only: no aggregate over envs
    assert improvement_table(runs, "a2c").empty  # no such runs: skipped, not an error


def test_untrained_runs_are_marked(tmp_path: Path) -> None:
    """run.json's ``untrained`` (missing: False) puts a dagger on the algorithm and a note under the table."""
    for seed, untrained in ((0, True), (1, None)):
        run = write_run(tmp_path / f"ga_{seed}", algo="ga", seed=seed, env=TOY, frames=[0], scores=[0.1])
        if untrained is not None:
            meta = json.loads((run / "run.json").read_text())
            (run / "run.json").write_text(json.dumps({**meta, "untrained": untrained}))
    write_run(tmp_path / "ppo_0", algo="ppo", seed=0, env=TOY, frames=TOY_FRAMES, scores=[0.0, 0.1, 0.2])
    df = load_runs(tmp_path)
    assert runs_table(df).set_index("run_id")["untrained"].to_dict() == {
        "ga_0": True,
        "ga_1": False,
        "ppo_0": False,
    }
    summary = summary_table(df).set_index("algo")
    assert summary.loc["ga", "n_untrained"] == 1 and summary.loc["ppo", "n_untrained"] == 0
    assert format_summary(summary.reset_index())["algo"].tolist() == ["GA \u2020", "PPO"]
    report = analyze(tmp_path, **FAST)
    markdown = (tmp_path / "analysis" / "summary.md").read_text()
    assert "| GA \u2020 " in report.markdown
    assert "\u2020 GA on Toy-v0: 1 of 2 seeds never completed a generation (budget too small)" in markdown
    assert "GA $^\\dagger$" in (tmp_path / "analysis" / "summary.tex").read_text()


def test_resolution_table(runs: pd.DataFrame) -> None:
    table = resolution_table(runs).set_index(["env", "algo"])
    ga, ppo = table.loc[("CartPole", "ga")], table.loc[("CartPole", "ppo")]
    assert (
        ga["basis"] == "generation" and ppo["basis"] == "every_frames"
    )  # GA curves have a generation column
    assert ppo["eval_every_frames"] == 1000  # read from run.json's config
    assert ga[["spacing_min", "spacing_median", "spacing_max"]].tolist() == [1000, 1000, 1000]


# --- learning curves ----------------------------------------------------------------------------------------


@pytest.fixture
def uneven(tmp_path: Path) -> pd.DataFrame:
    """Two GA seeds on Toy, one twice as fast in wall-clock: seed 0 ends at 1 s (score 1.0), seed 1 at 2 s
    (0.8)."""
    write_run(tmp_path / "fast", algo="ga", seed=0, env=TOY, frames=TOY_FRAMES, scores=[0.0, 0.5, 1.0])
    write_run(
        tmp_path / "slow", algo="ga", seed=1, env=TOY, frames=TOY_FRAMES, scores=[0.0, 0.4, 0.8], fps=500
    )
    return load_runs(tmp_path)


def test_curves_hold_finished_seeds_final_scores_to_the_slowest_seed(uneven: pd.DataFrame) -> None:
    curve = curve_table(uneven, "train_wall_s")
    # grid 0, 0.5, 1, 2 s. fast: 0, 0.5, 1.0, then held at 1.0; slow (evals at 0, 1, 2 s): 0, 0, 0.4, 0.8.
    assert curve["x"].tolist() == [0.0, 0.5, 1.0, 2.0]
    np.testing.assert_allclose(curve["mean"], [0.0, 0.25, 0.7, 0.9])
    assert curve["n_running"].tolist() == [2, 2, 2, 1]
    # The right end is the table's mean final score, with the table's interval: figure and table agree.
    summary = summary_table(uneven).iloc[0]
    end = curve.iloc[-1]
    assert end["mean"] == pytest.approx(summary["final_mean"])
    assert (end["ci_low"], end["ci_high"]) == (
        pytest.approx(summary["final_ci_low"]),
        pytest.approx(summary["final_ci_high"]),
    )
    frames = curve_table(uneven, "frames")  # same frames for both seeds: nothing held
    assert frames["x"].tolist() == TOY_FRAMES and (frames["n_running"] == 2).all()


def _marker_lines(ax) -> dict[str, np.ndarray]:
    """marker shape -> x positions of the drawn markers (lines with markers and no line style, not empty)."""
    return {
        line.get_marker(): np.asarray(line.get_xdata(), dtype=float)
        for line in ax.lines
        if line.get_linestyle() == "None" and line.get_marker() not in ("None", "") and len(line.get_xdata())
    }


def test_coinciding_curves_all_stay_visible() -> None:
    """Pong-like: every algorithm flat at -21. Each gets its own marker shape at its own x positions, and the
    legend says the lines coincide."""
    x = np.array([0.0, 250e3, 500e3, 750e3, 1e6])
    curves = pd.concat(
        [
            pd.DataFrame(
                {"algo": algo, "x": x, "mean": -21.0, "ci_low": -21.0, "ci_high": -21.0, "n_seeds": 3}
            )
            for algo in ("ppo", "ga", "a2c")
        ]
    )
    with plots.paper_style():
        fig = Figure(figsize=(4, 3))
        ax = plots.plot_curves(curves, fig.add_subplot(), threshold=18.0)
    markers = _marker_lines(ax)
    assert set(markers) == {plots.algo_marker(a) for a in ("ga", "a2c", "ppo")} == {"o", "^", "D"}
    staggered = [set(xs[:-1]) for xs in markers.values()]  # the last marker of each sits on the line's end
    assert all(len(xs) >= 2 for xs in staggered)
    assert not (staggered[0] & staggered[1] or staggered[0] & staggered[2] or staggered[1] & staggered[2])
    legend = [text.get_text().replace("\n", " ") for text in ax.get_legend().get_texts()]
    assert "lines coincide: GA = A2C = PPO" in legend
    assert legend[:3] == ["GA (n=3)", "A2C (n=3)", "PPO (n=3)"]


def test_held_part_of_a_curve_is_dotted(uneven: pd.DataFrame) -> None:
    with plots.paper_style():
        fig = Figure(figsize=(4, 3))
        ax = plots.plot_curves(curve_table(uneven, "train_wall_s"), fig.add_subplot(), x_label="wall-clock")
    drawn = [line for line in ax.lines if line.get_linestyle() in ("-", ":") and len(line.get_xdata())]
    solid, dotted = (next(line for line in drawn if line.get_linestyle() == style) for style in ("-", ":"))
    assert list(solid.get_xdata()) == [0.0, 0.5, 1.0]  # both seeds training
    assert list(dotted.get_xdata()) == [1.0, 2.0]  # the fast seed has finished and holds 1.0


# --- the report: files, CLI, reproducibility ----------------------------------------------------------------

TABLE_FILES = [
    "summary.md",
    "summary.csv",
    "summary.tex",
    "runs.csv",
    "aggregate.csv",
    "improvement.csv",
    "profile.csv",
    "curves.csv",
]
FIGURE_STEMS = [
    "score_vs_frames_CartPole",
    "score_vs_frames_Toy",
    "score_vs_wallclock_CartPole",
    "score_vs_wallclock_Toy",
    "final_scores_CartPole",
    "final_scores_Toy",
    "aggregate",
    "performance_profile",
    "probability_of_improvement",
]


def test_cli_writes_every_table_and_figure(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "analysis"
    with caplog.at_level(logging.WARNING, logger="neuroevo_bench.analysis"):
        status = main([str(tree), "--out", str(out), "--resamples", "200", "--seed", "3", "--dpi", "72"])
    assert status == 0
    for name in TABLE_FILES:
        assert (out / name).stat().st_size > 0, name
    for stem in FIGURE_STEMS:
        for fmt in ("png", "pdf"):
            assert (out / "figures" / f"{stem}.{fmt}").stat().st_size > 0, f"{stem}.{fmt}"
    with Image.open(out / "figures" / "score_vs_frames_CartPole.png") as png:
        assert png.info["dpi"] == pytest.approx((72, 72), abs=0.1)
    assert build_parser().parse_args(["report", "x"]).dpi == 300  # the default is print quality
    assert not list(out.rglob("*.tmp"))  # atomic writes leave no temporaries
    for written in (out / "summary.md", out / "figures" / "aggregate.pdf"):  # shared results: 0644
        assert written.stat().st_mode & 0o777 == 0o644, written

    printed = capsys.readouterr().out
    assert printed.startswith("| env ") and "| CartPole-v1 | GA " in printed and "4k (2/3)" in printed
    assert "sweep/broken_json" in caplog.text
    markdown = (out / "summary.md").read_text()
    assert printed in markdown and "## Skipped runs" in markdown and "broken_json" in markdown
    assert "\\begin{tabular}" in (out / "summary.tex").read_text()
    csv = pd.read_csv(out / "summary.csv").set_index(["env", "algo"])
    assert csv.loc[("CartPole", "ga"), "frames_to_threshold"] == 4000
    assert csv.loc[("Toy", "ppo"), "n_reached"] == 0
    per_run = pd.read_csv(out / "runs.csv").set_index("run_id")
    assert per_run.loc["sweep/CartPole_ga_0", ["reached", "frames_to_threshold"]].tolist() == [True, 3000]
    assert not per_run.loc["sweep/CartPole_ga_2", "reached"]
    assert "Student-t" in markdown and "Measured coverage" in markdown and "never interpolated" in markdown
    assert "GA one generation" in markdown and "PPO eval.every_frames = 1k frames" in markdown
    assert "slowest seed" in (out / "figures" / "README.md").read_text()


def test_report_is_reproducible_bit_for_bit(tree: Path, tmp_path: Path) -> None:
    def files(seed: int, name: str) -> dict[str, bytes]:
        analyze(tree, tmp_path / name, seed=seed, n_resamples=200, formats=())
        return {p.name: p.read_bytes() for p in sorted((tmp_path / name).glob("*.*"))}

    first, again, other = files(0, "a"), files(0, "b"), files(1, "c")
    assert first == again
    assert first["aggregate.csv"] != other["aggregate.csv"]  # the seed does drive the bootstrap


def test_figures_are_reproducible(runs: pd.DataFrame) -> None:
    """The dot layout of final-score plots is a swarm, not random jitter; PDFs carry no creation date."""

    def render(fmt: str) -> bytes:
        with plots.paper_style():
            fig = Figure(figsize=(3, 3))
            cartpole = runs_table(runs).query("env == 'CartPole'")
            plots.plot_final_scores(cartpole, fig.add_subplot(), threshold=475.0, title="CartPole-v1")
            buffer = io.BytesIO()
            fig.savefig(buffer, format=fmt, dpi=40, metadata={"CreationDate": None} if fmt == "pdf" else None)
        return buffer.getvalue()

    assert render("png") == render("png")
    assert render("pdf") == render("pdf")


def test_default_output_dir_and_explicit_subcommand(tree: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    write_run(copy / "r0", algo="ga", seed=0, env=TOY, frames=TOY_FRAMES, scores=[0.0, 0.5, 1.0])
    assert main(["report", str(copy), "--resamples", "50", "--formats", ""]) == 0  # tables only
    assert (copy / "analysis" / "summary.md").exists()
    assert not list((copy / "analysis" / "figures").iterdir())


def test_single_seed_is_reported_without_interval(tmp_path: Path) -> None:
    for algo, scores in (("ga", [0.0, 0.5, 1.0]), ("ppo", [0.0, 0.1, 0.2])):
        write_run(tmp_path / algo, algo=algo, seed=0, env=TOY, frames=TOY_FRAMES, scores=scores)
    report = analyze(tmp_path, **FAST)
    assert "1.00 [n/a]" in report.markdown
    assert np.isnan(report.summary["final_ci_low"]).all()
    assert (tmp_path / "analysis" / "figures" / "probability_of_improvement.png").exists()


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([str(tmp_path)]) == 2  # bad input, as for status and compare
    assert "no run directories" in capsys.readouterr().err
    with pytest.raises(SystemExit) as error:
        main([str(tmp_path), "--threshold", "CartPole"])
    assert error.value.code == 2
    assert "ENV=VALUE" in capsys.readouterr().err


# --- Hydra callback -----------------------------------------------------------------------------------------


def test_callback_analyses_the_sweep_dir(tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sweep = tmp_path / "sweep"
    for (algo, seed), scores in TOY_SCORES.items():
        write_run(sweep / f"{algo}_{seed}", algo=algo, seed=seed, env=TOY, frames=TOY_FRAMES, scores=scores)
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    AnalyzeOnMultirunEnd(n_resamples=100, formats=[]).on_multirun_end(config)
    assert (sweep / "analysis" / "summary.csv").exists()
    assert "| Toy-v0 | GA " in capsys.readouterr().out


def test_callback_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "empty")}}})
    AnalyzeOnMultirunEnd().on_multirun_end(config)  # nothing to analyse: logged, not raised
    assert "analysis of sweep" in caplog.text and "does not exist" in caplog.text
    AnalyzeOnMultirunEnd().on_multirun_end(OmegaConf.create({}))  # no sweep dir at all
    assert caplog.text.count("analysis of sweep") == 2
