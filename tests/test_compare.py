"""Regression tracking: compare, promote, history, on results trees written the way the runner writes them.

The final scores below are real: CartPole-v1, 500k frames, the CI check's config
(scripts/regression_check.sh), seeds 0-4 (as in the committed baseline ci_cartpole when it was made) and
seeds 5-9 of the same config. Two such sweeps differ by seed noise only, which must not be flagged; the same runs with a
score drop or a slow-down injected must be.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from neuroevo_bench.analysis import stats
from neuroevo_bench.analysis.__main__ import main
from neuroevo_bench.analysis.compare import (
    Tolerances,
    baseline_summary,
    compare,
    compare_bench,
    compare_runs,
    promote,
    read_baseline,
    run_summaries,
    welch_diff_ci,
)
from neuroevo_bench.analysis.history import HISTORY_COLUMNS, append_history, plot_history, read_history
from neuroevo_bench.analysis.load import NoRunsError

ROOT = Path(__file__).resolve().parents[1]
SEEDS_0_4 = {
    "ga": [500.0, 500.0, 500.0, 358.8, 469.2],
    "random": [475.9, 463.8, 500.0, 457.4, 500.0],
}
SEEDS_5_9 = {
    "ga": [500.0, 459.7, 440.8, 500.0, 312.5],
    "random": [399.0, 405.9, 500.0, 458.4, 457.9],
}
FPS = {"ga": 300_000.0, "random": 210_000.0, "ppo": 5_000.0}
BUDGET = 500_000
MACHINE = {"cpu": "AMD EPYC", "cores": 2, "torch_threads": 1, "python": "3.11.7"}


def write_run(
    run_dir: Path,
    algo: str,
    seed: int,
    score: float,
    fps: float,
    *,
    machine: dict | None = None,
    budget: int = BUDGET,
    commit: str = "abc1234",
) -> None:
    """A finished run as the runner writes it (run.json + curve.csv + .hydra/overrides.yaml)."""
    run_dir.mkdir(parents=True)
    wall = budget / fps
    meta = {
        "algo": algo,
        "env": "CartPole",
        "env_id": "CartPole-v1",
        "seed": seed,
        "status": "ok",
        "budget_frames": budget,
        "train_frames": budget,
        "eval_frames": 50_000,
        "agent_steps": budget,
        "frame_skip": 1,
        "train_wall_s": wall,
        "eval_wall_s": 1.0,
        "final_score": score,
        "final_score_std": 0.0,
        "score_threshold": 475.0,
        "score_random": 22.0,
        "score_max": 500.0,
        "machine": machine or MACHINE,
        "versions": {"torch": "2.13.0+cpu", "gymnasium": "1.4.0"},
        "git_commit": commit,
        "started_at": "2026-01-01T00:00:00+00:00",
    }
    (run_dir / "run.json").write_text(json.dumps(meta))
    frames = np.linspace(0, budget, 6)
    curve = pd.DataFrame(
        {"frames": frames, "train_wall_s": frames / fps, "score_mean": np.linspace(20, score, 6)}
    )
    curve.to_csv(run_dir / "curve.csv", index=False)
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "overrides.yaml").write_text(f"- algo={algo}\n- seed={seed}\n")


def write_sweep(
    root: Path,
    scores: dict[str, Sequence[float]],
    *,
    first_seed: int = 0,
    fps: dict[str, float] | None = None,
    machine: dict | None = None,
    budget: int = BUDGET,
) -> Path:
    for algo, values in scores.items():
        for i, score in enumerate(values):
            seed = first_seed + i
            speed = (fps or FPS)[algo] * (1 + 0.05 * np.sin(seed))  # a little run-to-run jitter
            write_run(
                root / "CartPole" / algo / f"seed{seed}",
                algo,
                seed,
                score,
                speed,
                machine=machine,
                budget=budget,
            )
    return root


def rows(comparison_runs: pd.DataFrame) -> dict[str, pd.Series]:
    return {r["algo"]: r for _, r in comparison_runs.iterrows()}


# --- judging runs -------------------------------------------------------------------------------------------


def test_seed_noise_is_not_flagged(tmp_path: Path) -> None:
    """Two real sweeps of the same config, different seeds: every row ok, in both directions."""
    a = run_summaries(write_sweep(tmp_path / "a", SEEDS_0_4))
    b = run_summaries(write_sweep(tmp_path / "b", SEEDS_5_9, first_seed=5))
    for new, base in ((a, b), (b, a)):
        table = compare_runs(new, base)
        assert list(table["verdict"]) == ["ok", "ok"], table[["algo", "diff", "diff_ci_low", "diff_ci_high"]]
        assert (table["fps_verdict"] == "ok").all()


def test_injected_score_drop_is_flagged(tmp_path: Path) -> None:
    base = run_summaries(write_sweep(tmp_path / "base", SEEDS_0_4))
    dropped = {"ga": [s - 100 for s in SEEDS_5_9["ga"]], "random": SEEDS_5_9["random"]}
    new = run_summaries(write_sweep(tmp_path / "new", dropped, first_seed=5))
    r = rows(compare_runs(new, base))
    assert r["ga"]["score_verdict"] == "regressed" and r["ga"]["verdict"] == "regressed"
    assert r["ga"]["diff"] == pytest.approx(np.mean(dropped["ga"]) - np.mean(SEEDS_0_4["ga"]))
    assert r["ga"]["diff_ci_high"] < 0 and -r["ga"]["diff"] > r["ga"]["tolerance"] == pytest.approx(47.8)
    # new runs beating baseline runs: 400 > 358.8 (twice) and 359.7 > 358.8, of 5 x 5 pairs
    assert r["ga"]["p_improvement"] == pytest.approx(3 / 25)
    assert r["random"]["verdict"] == "ok"


def test_a_significant_drop_within_the_tolerance_is_not_flagged(tmp_path: Path) -> None:
    """All seeds at 500 before, all at 480 after: the CI excludes 0 (no spread), but 20 < 47.8."""
    base = run_summaries(write_sweep(tmp_path / "base", {"ga": [500.0] * 3}))
    new = run_summaries(write_sweep(tmp_path / "new", {"ga": [480.0] * 3}))
    r = rows(compare_runs(new, base))["ga"]
    assert r["diff_ci_high"] < 0 and r["verdict"] == "ok"
    # ... unless the tolerance is tightened (absolute, per env)
    tight = rows(compare_runs(new, base, Tolerances(score_abs={"CartPole-v1": 10.0})))["ga"]
    assert tight["tolerance"] == 10.0 and tight["verdict"] == "regressed"


def test_injected_throughput_drop_is_flagged_on_the_same_machine_only(tmp_path: Path) -> None:
    base = run_summaries(write_sweep(tmp_path / "base", SEEDS_0_4))
    slow = {"ga": FPS["ga"] / 3, "random": FPS["random"]}
    new = run_summaries(write_sweep(tmp_path / "new", SEEDS_0_4, fps=slow))
    r = rows(compare_runs(new, base))
    assert r["ga"]["fps_ratio"] == pytest.approx(1 / 3, rel=0.05)
    assert r["ga"]["fps_verdict"] == "regressed" and r["ga"]["verdict"] == "regressed"
    assert r["ga"]["score_verdict"] == "ok" and r["random"]["verdict"] == "ok"
    # 0.6x is within the default tolerance (0.5), not within 0.3
    mild = run_summaries(write_sweep(tmp_path / "mild", SEEDS_0_4, fps={k: v * 0.6 for k, v in FPS.items()}))
    assert set(compare_runs(mild, base)["fps_verdict"]) == {"ok"}
    assert set(compare_runs(mild, base, Tolerances(fps=0.3))["fps_verdict"]) == {"regressed"}

    elsewhere = {**MACHINE, "cpu": "Intel Xeon"}
    other = run_summaries(write_sweep(tmp_path / "other", SEEDS_0_4, fps=slow, machine=elsewhere))
    r = rows(compare_runs(other, base))
    assert r["ga"]["fps_verdict"] == "n/a (different machine)" and r["ga"]["verdict"] == "ok"
    assert "different machine" in r["ga"]["note"]


def test_improvements_missing_and_new_rows(tmp_path: Path) -> None:
    base = run_summaries(write_sweep(tmp_path / "base", {"ga": [300.0, 320.0, 280.0], "random": [50.0] * 3}))
    new = run_summaries(write_sweep(tmp_path / "new", {"ga": [480.0, 500.0, 490.0], "ppo": [500.0] * 3}))
    r = rows(compare_runs(new, base))
    assert r["ga"]["verdict"] == "improved" and r["ga"]["p_improvement"] == 1.0
    assert r["random"]["verdict"] == "missing" and r["random"]["note"] == "no new runs"
    assert r["ppo"]["verdict"] == "new"
    single = run_summaries(write_sweep(tmp_path / "single", {"ga": [100.0]}))
    r = rows(compare_runs(single, base))["ga"]
    assert r["score_verdict"] == "n/a" and "fewer than 2 seeds" in r["note"]
    other_budget = run_summaries(write_sweep(tmp_path / "budget", {"ga": [300.0] * 3}, budget=100_000))
    assert "different frame budgets" in rows(compare_runs(other_budget, base))["ga"]["note"]


# --- intervals ----------------------------------------------------------------------------------------------


def test_side_cis_are_the_summary_tables_student_t(tmp_path: Path) -> None:
    """A baseline's CI in a comparison, in its summary.md/history rows and in the report agree: mean_ci."""
    a = run_summaries(write_sweep(tmp_path / "a", SEEDS_0_4))
    b = run_summaries(write_sweep(tmp_path / "b", SEEDS_5_9, first_seed=5))
    r = rows(compare_runs(b, a))
    summary = baseline_summary(a).set_index("algo")
    for algo in ("ga", "random"):
        low, high = map(float, stats.mean_ci(SEEDS_0_4[algo]))
        assert (r[algo]["base_ci_low"], r[algo]["base_ci_high"]) == pytest.approx((low, high))
        assert tuple(summary.loc[algo, ["score_ci_low", "score_ci_high"]]) == pytest.approx((low, high))
        low, high = map(float, stats.mean_ci(SEEDS_5_9[algo]))
        assert (r[algo]["new_ci_low"], r[algo]["new_ci_high"]) == pytest.approx((low, high))
        welch = scipy.stats.ttest_ind(SEEDS_5_9[algo], SEEDS_0_4[algo], equal_var=False).confidence_interval()
        assert (r[algo]["diff_ci_low"], r[algo]["diff_ci_high"]) == pytest.approx(tuple(welch))


def test_welch_diff_ci_edge_cases() -> None:
    x, y = [1.0, 2.0, 4.0], [0.5, 0.7, 0.9, 1.0]
    expected = scipy.stats.ttest_ind(x, y, equal_var=False).confidence_interval(0.9)
    assert welch_diff_ci(np.array(x), np.array(y), 0.9) == pytest.approx(tuple(expected))
    assert welch_diff_ci(np.array([500.0] * 3), np.array([480.0] * 4)) == (20.0, 20.0)  # no spread
    low, high = welch_diff_ci(np.array([500.0] * 3), np.array([400.0, 450.0, 500.0]))  # one side tied
    assert low < 50 < high
    assert all(np.isnan(welch_diff_ci(np.array([1.0]), np.array([1.0, 2.0]))))


def test_seed_noise_rarely_looks_significant() -> None:
    """Two sets of 5 seeds from the same distribution: the 95 % Welch interval of their difference excludes
    0 in at most ~5 % of pairs (a percentile bootstrap of the difference: 11-13 % in these scenarios)."""
    for name, scenario in stats.COVERAGE_SCENARIOS.items():
        draws = scenario.sample(stats.rng_for(0, "test_compare", name), (1000, 2, 5))
        false_alarms = np.mean([not (lo <= 0 <= hi) for lo, hi in (welch_diff_ci(x, y) for x, y in draws)])
        assert false_alarms <= 0.06, (name, false_alarms)


# --- promote, compare, CLI ----------------------------------------------------------------------------------


def test_promote_compare_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = write_sweep(tmp_path / "sweep", SEEDS_0_4)
    (sweep / "multirun.yaml").write_text(
        "hydra:\n  overrides:\n    task:\n    - algo=ga,random\n    - seed=0,1,2,3,4\n"
    )
    baselines = tmp_path / "baselines"
    baseline = promote([sweep], "ci_test", baselines_dir=baselines, tolerances=Tolerances(score=0.2))
    stored = read_baseline(baselines / "ci_test")
    assert sorted(p.name for p in stored.path.iterdir()) == ["baseline.json", "runs.csv", "summary.md"]
    assert stored.meta["sweep_overrides"] == [["algo=ga,random", "seed=0,1,2,3,4"]]
    assert stored.meta["tolerances"]["score"] == 0.2 and stored.meta["machines"] == ["AMD EPYC x2"]
    assert (stored.path / "runs.csv").stat().st_size < 5_000  # small enough to commit
    pd.testing.assert_frame_equal(stored.runs, baseline.runs, check_dtype=False)
    assert stored.runs.loc[0, "overrides"] == "algo=ga seed=0"
    with pytest.raises(FileExistsError, match="--force"):
        promote([sweep], "ci_test", baselines_dir=baselines)

    # the same runs against their own baseline: nothing changed; the baseline's tolerance is used
    same = compare([sweep], stored.path)
    assert list(same.runs["verdict"]) == ["ok", "ok"] and not same.failed
    assert (same.runs["diff"] == 0).all() and same.tolerances.score == 0.2
    assert same.runs["tolerance"].iloc[0] == pytest.approx(0.2 * 478)
    # a baseline directory works as NEW too, and a results tree as the baseline
    reverse = compare([stored.path], sweep)
    assert list(reverse.runs["verdict"]) == ["ok", "ok"]

    # CLI, by baseline name: exit 0, then 1 with a regression; Markdown for a PR comment
    history = tmp_path / "history.csv"
    common = ["--baselines-dir", str(baselines), "--history", str(history)]
    assert main(["compare", str(sweep), "--baseline", "ci_test", *common]) == 0
    assert "## Regression check: no regression" in capsys.readouterr().out
    broken = write_sweep(
        tmp_path / "broken", {"ga": [30.0, 25.0, 40.0, 22.0, 35.0], "random": SEEDS_0_4["random"]}
    )
    markdown = tmp_path / "comment.md"
    code = main(["compare", str(broken), "--baseline", "ci_test", "--markdown", str(markdown), *common])
    assert code == 1
    text = markdown.read_text()
    assert text.startswith("## Regression check: REGRESSION") and "| **regressed** |" in text
    assert "Student-t CI, as in the summary table" in text and "Welch CI of the difference" in text
    assert text == capsys.readouterr().out
    assert len(read_history(history)) == 4  # two compares x two algos

    assert main(["compare", str(sweep), "--baseline", "nope", "--baselines-dir", str(baselines)]) == 2
    assert "baselines there: ci_test" in capsys.readouterr().err
    assert main(["compare", "--baseline", "ci_test", "--baselines-dir", str(baselines)]) == 2
    assert "nothing to compare" in capsys.readouterr().err


def test_promote_cli_refuses_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = write_sweep(tmp_path / "sweep", {"ga": [1.0, 2.0]})
    base = ["--baselines-dir", str(tmp_path / "b"), "--no-history"]
    assert main(["promote", str(sweep), "--name", "../x", *base]) == 2
    assert "baseline name '../x'" in capsys.readouterr().err
    assert main(["promote", str(tmp_path / "empty"), "--name", "x", *base]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["promote", str(sweep), "--name", "x", *base]) == 0
    assert main(["promote", str(sweep), "--name", "x", *base]) == 2
    assert "--force" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["compare", str(sweep), "--baseline", "x", "--fps-tolerance", "1.5"])
    with pytest.raises(NoRunsError):
        read_baseline(sweep)


# --- speed benchmark ----------------------------------------------------------------------------------------


def bench_json(ratios: dict[str, float], cpu: str = "AMD EPYC") -> dict:
    return {
        "meta": {"date": "2026-01-01", "git_commit": "abc1234", "machine": {"cpu": cpu, "cores": 2}},
        "results": [
            {"name": n, "ratio": r, "project_fps": 1e6 * r, "reference_fps": 1e6, "goal": 0.6}
            for n, r in ratios.items()
        ],
    }


def test_bench_ratio_drop_is_flagged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = bench_json({"ga_vs_naive": 250.0, "eval_vs_ideal": 0.8, "atari": 1.1})
    table = compare_bench(bench_json({"ga_vs_naive": 100.0, "eval_vs_ideal": 0.7}), base, tolerance=0.5)
    verdicts = dict(zip(table["name"], table["verdict"], strict=True))
    assert verdicts == {"ga_vs_naive": "regressed", "eval_vs_ideal": "ok", "atari": "n/a"}
    assert table.loc[0, "change"] == pytest.approx(0.4)
    moved = compare_bench(bench_json({"ga_vs_naive": 240.0}, cpu="Intel"), base, tolerance=0.5)
    assert moved.loc[0, "verdict"] == "ok" and "different machine" in moved.loc[0, "note"]

    # through promote and the CLI, benchmark alone (no runs)
    sweep = write_sweep(tmp_path / "sweep", SEEDS_0_4)
    (tmp_path / "base.json").write_text(json.dumps(base))
    (tmp_path / "new.json").write_text(json.dumps(bench_json({"ga_vs_naive": 100.0, "eval_vs_ideal": 0.8})))
    promote([sweep], "b", baselines_dir=tmp_path / "bl", bench=tmp_path / "base.json")
    history = tmp_path / "history.csv"
    args = ["--baseline", str(tmp_path / "bl" / "b"), "--history", str(history)]
    assert main(["compare", "--bench", str(tmp_path / "new.json"), *args]) == 1
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| ga_vs_naive"))
    assert [cell.strip() for cell in row.split("|")[2:7]] == [
        "250",
        "100",
        "x0.40",
        ">= 0.6",
        "**regressed**",
    ]
    bench_rows = read_history(history)
    assert list(bench_rows["algo"]) == ["ga_vs_naive", "eval_vs_ideal"]
    assert list(bench_rows["verdict"]) == ["regressed", "ok"] and list(bench_rows["bench_ratio"]) == [
        100.0,
        0.8,
    ]
    # a baseline without bench.json cannot judge a benchmark
    promote([sweep], "nobench", baselines_dir=tmp_path / "bl")
    assert (
        main(
            ["compare", "--bench", str(tmp_path / "new.json"), "--baseline", str(tmp_path / "bl" / "nobench")]
        )
        == 2
    )
    assert "has no bench.json" in capsys.readouterr().err


# --- history ------------------------------------------------------------------------------------------------


def test_history_appends_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history = tmp_path / "results" / "history.csv"
    baselines = ["--baselines-dir", str(tmp_path / "bl"), "--history", str(history)]
    for i, (scores, name) in enumerate(((SEEDS_0_4, "one"), (SEEDS_5_9, "two"))):
        sweep = write_sweep(tmp_path / f"sweep{i}", scores, first_seed=5 * i)
        assert main(["promote", str(sweep), "--name", name, *baselines]) == 0
    assert main(["compare", str(tmp_path / "sweep1"), "--baseline", "one", *baselines]) == 0
    capsys.readouterr()
    table = read_history(history)
    assert list(table.columns) == HISTORY_COLUMNS
    assert list(table["event"]) == ["promote"] * 4 + ["compare"] * 2
    assert list(table["verdict"].fillna("")) == [""] * 4 + ["ok", "ok"]
    ga = table[table["algo"] == "ga"]
    assert ga["score_mean"].tolist() == pytest.approx([465.6, 442.6, 442.6])
    assert (table["machine"] == "AMD EPYC x2").all() and (table["n_seeds"] == 5).all()

    # an older file with other columns is migrated, never truncated
    old = tmp_path / "old.csv"
    old.write_text("date,event,env,algo,score_mean,legacy\n2025-01-01,compare,CartPole,ga,400,x\n")
    append_history(old, table.tail(1))
    migrated = pd.read_csv(old)
    assert len(migrated) == 2 and migrated.loc[0, "legacy"] == "x" and migrated.loc[0, "score_mean"] == 400

    assert main(["history", "--history", str(history)]) == 0
    out = history.parent / "history"
    assert sorted(p.name for p in out.iterdir()) == ["history_CartPole_ga.png", "history_CartPole_random.png"]
    assert "6 history rows, 2 (env, algo) series" in capsys.readouterr().out
    bench = pd.DataFrame(
        [
            {
                "env": "bench",
                "env_id": "bench",
                "algo": "ga_vs_naive",
                "bench_ratio": r,
                "frames_per_s": 1e5,
                "git_commit": f"c{i}+dirty",
                "machine": "m",
                "verdict": "regressed" if r < 100 else "ok",
            }
            for i, r in enumerate((250.0, 90.0))
        ]
    ).reindex(columns=HISTORY_COLUMNS)
    files = plot_history(bench, tmp_path / "figs", formats=("png", "pdf"))
    assert [p.name for p in files] == ["history_bench_ga_vs_naive.png", "history_bench_ga_vs_naive.pdf"]
    assert main(["history", "--history", str(tmp_path / "none.csv")]) == 1


def test_committed_ci_baseline_is_valid() -> None:
    """The baseline scripts/regression_check.sh compares with: GA, random search and ES, 5 seeds, a benchmark."""
    baseline = read_baseline(ROOT / "results" / "baselines" / "ci_cartpole")
    counts = baseline.runs.groupby("algo")["seed"].apply(sorted).to_dict()
    assert counts == {algo: [0, 1, 2, 3, 4] for algo in ("es", "ga", "random")}
    assert (baseline.runs["budget_frames"] == BUDGET).all()
    assert baseline.runs["final_score"].between(0, 500).all() and baseline.meta["tolerances"]["fps"] == 0.5
    assert {r["name"] for r in baseline.bench["results"]} == {"ga_vs_naive", "eval_vs_ideal", "es_vs_ga"}
    assert baseline.meta["sweep_overrides"][0][:4] == [
        "algo=ga,random,es",
        "env=CartPole",
        "seed=0,1,2,3,4",
        "budget.frames=500000",
    ]


@pytest.mark.slow
def test_real_sweeps_seed_noise_and_injected_drops(make_cfg, tmp_path: Path) -> None:
    """Two real GA sweeps (the CI check's config, seeds 0-2 and 3-5): not flagged; the second sweep's run
    records with a score drop or a slow-down written into them: flagged."""
    from neuroevo_bench.runner import run

    for seed in range(6):
        sweep = "a" if seed < 3 else "b"
        cfg = make_cfg(
            "algo=ga", "env=CartPole", f"seed={seed}", "budget.frames=500000", "eval.every_frames=100000"
        )
        run(cfg, tmp_path / sweep / "CartPole" / "ga" / f"seed{seed}")
    a, b = run_summaries(tmp_path / "a"), run_summaries(tmp_path / "b")
    # scores only: two sweeps one after the other on a shared machine may differ in speed by more than 2x
    assert compare_runs(b, a)["score_verdict"].tolist() == ["ok"]
    assert compare_runs(a, b)["score_verdict"].tolist() == ["ok"]

    for change, field in (("score", "final_score"), ("speed", "train_wall_s")):
        edited = tmp_path / change
        for run_json in sorted((tmp_path / "b").rglob("run.json")):
            meta = json.loads(run_json.read_text())
            meta[field] = meta[field] - 200 if change == "score" else meta[field] * 3
            target = edited / run_json.parent.relative_to(tmp_path / "b")
            target.mkdir(parents=True)
            (target / "run.json").write_text(json.dumps(meta))
            (target / "curve.csv").write_bytes((run_json.parent / "curve.csv").read_bytes())
        row = compare_runs(run_summaries(edited), a).iloc[0]
        assert row["verdict"] == "regressed"
        assert row["score_verdict" if change == "score" else "fps_verdict"] == "regressed"
