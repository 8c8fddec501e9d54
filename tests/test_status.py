"""Watching a sweep: ``python -m neuroevo_bench.analyze status`` over a fabricated results tree (every kind of
run, and broken records), and a multirun with a failed job exiting 1 after its analysis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from neuroevo_bench.analysis.__main__ import main
from neuroevo_bench.analysis.callback import AnalyzeOnMultirunEnd
from neuroevo_bench.analysis.status import (
    NoRunsFound,
    first_error_line,
    format_duration,
    read_status,
)
from tests.conftest import ROOT

NOW = time.time()

# A chained traceback whose last exception has a message over two lines and a note: its last non-empty line
# does not name the exception.
TRACEBACK = """Traceback (most recent call last):
  File "/x/runner.py", line 10, in run
    algo.train_until(n)
  File "/x/ga.py", line 5, in train_until
    raise KeyError("slot")
KeyError: 'slot'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/x/runner.py", line 12, in run
    raise RuntimeError("evaluation failed:\\n3 of 8 workers died")
RuntimeError: evaluation failed:
3 of 8 workers died
while evaluating generation 7
"""

CURVE = "frames,agent_steps,train_wall_s,eval_wall_s,eval_frames,score_mean,score_std,score_min,score_max,episodes\n"


def _run(
    run_dir: Path,
    status: str,
    *,
    algo: str,
    seed: int,
    frames: int | None,
    budget: int = 500_000,
    wall: float | None = None,
    score: float | None = None,
    curve: list[tuple[int, float, float]] = (),  # (frames, train_wall_s, score_mean)
    age_s: float | None = 3600.0,  # None: as written now
    checkpoint_age_s: float | None = None,
    checkpoint_every_s: float = 300.0,
    **extra,
) -> Path:
    run_dir.mkdir(parents=True)
    record = {
        "algo": algo,
        "env": "CartPole",
        "env_id": "CartPole-v1",
        "seed": seed,
        "status": status,
        "budget_frames": budget,
        "train_frames": frames,
        "train_wall_s": wall,
        "final_score": score,
        "config": {"checkpoint_every_s": checkpoint_every_s, "budget": {"frames": budget}},
        "error": None,
        **extra,
    }
    (run_dir / "run.json").write_text(json.dumps(record))
    rows = "".join(f"{f},{f},{w},0.1,100,{s},1.0,{s},{s},10\n" for f, w, s in curve)
    (run_dir / "curve.csv").write_text(CURVE + rows)
    if age_s is not None:
        _age(run_dir / "run.json", age_s)
        _age(run_dir / "curve.csv", age_s)
    if checkpoint_age_s is not None:
        (run_dir / "checkpoint.pkl").write_bytes(b"not unpickled by the status reader")
        _age(run_dir / "checkpoint.pkl", checkpoint_age_s)
    return run_dir


def _age(path: Path, age_s: float) -> None:
    os.utime(path, (NOW - age_s, NOW - age_s))


def build_tree(root: Path) -> Path:
    sweep = root / "sweep"
    _run(sweep / "CartPole/ga/seed0", "ok", algo="ga", seed=0, frames=499_713, wall=2.5, score=479.2,
         curve=[(0, 0.0, 20.0), (499_713, 2.5, 479.2)], checkpoint_age_s=3600)  # fmt: skip
    failed = _run(sweep / "CartPole/ga/seed1", "failed", algo="ga", seed=1, frames=100_000, wall=1.0,
                  curve=[(0, 0.0, 20.0)], checkpoint_age_s=4000)  # fmt: skip
    (failed / "error.txt").write_text(TRACEBACK)  # run.json has no error text: error.txt is read
    _run(sweep / "CartPole/ppo/seed0", "interrupted", algo="ppo", seed=0, frames=120_000, wall=30.0,
         curve=[(0, 0.0, 9.0), (100_000, 25.0, 87.5)], checkpoint_age_s=5000)  # fmt: skip
    # running and alive: 250k of 1M frames at 5k frames/s -> 150 s to go
    _run(sweep / "CartPole/ppo/seed1", "running", algo="ppo", seed=1, frames=250_000, budget=1_000_000,
         wall=50.0, score=200.0, curve=[(0, 0.0, 9.0), (250_000, 50.0, 200.0)], age_s=30,
         checkpoint_age_s=30)  # fmt: skip
    # running, but nothing written for 3 h: its process is likely gone
    _run(sweep / "CartPole/random/seed0", "running", algo="random", seed=0, frames=50_000, wall=1.0,
         score=30.0, curve=[(0, 0.0, 20.0), (50_000, 1.0, 30.0)], age_s=3 * 3600,
         checkpoint_age_s=3 * 3600)  # fmt: skip
    # a job Hydra started whose run has not written run.json yet: read from .hydra/config.yaml
    starting = sweep / "CartPole/random/seed1" / ".hydra"
    starting.mkdir(parents=True)
    (starting / "config.yaml").write_text(
        "algo:\n  name: random\nenv:\n  name: CartPole\n  id: CartPole-v1\n  budget_frames: 200000\n"
        "seed: 1\nbudget:\n  frames: ${env.budget_frames}\ncheckpoint_every_s: 600.0\n"
    )
    _age(starting / "config.yaml", 5)
    broken = sweep / "CartPole/a2c/seed0"
    broken.mkdir(parents=True)
    (broken / "run.json").write_text('{"algo": "a2c", "seed": ')
    (sweep / "analysis").mkdir()  # not a run
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    return sweep


@pytest.fixture()
def sweep(tmp_path: Path) -> Path:
    return build_tree(tmp_path)


def test_status_reads_every_kind_of_run(sweep: Path) -> None:
    status = read_status(sweep, now=NOW)
    runs = {run.run: run for run in status.runs}
    assert list(runs) == [  # sorted by env, algo, seed
        "CartPole/ga/seed0",
        "CartPole/ga/seed1",
        "CartPole/ppo/seed0",
        "CartPole/ppo/seed1",
        "CartPole/random/seed0",
        "CartPole/random/seed1",
    ]
    assert [run.status for run in runs.values()] == [
        "ok",
        "failed",
        "interrupted",
        "running",
        "running",
        "starting",
    ]

    ok = runs["CartPole/ga/seed0"]
    assert (ok.train_frames, ok.budget_frames, ok.score, ok.score_source) == (
        499_713,
        500_000,
        479.2,
        "run.json",
    )
    assert ok.train_fps == pytest.approx(499_713 / 2.5)
    assert ok.eta_s is None and not ok.stale
    assert ok.checkpoint_age_s == pytest.approx(3600, abs=1)

    failed = runs["CartPole/ga/seed1"]
    assert failed.error == "RuntimeError: evaluation failed:"

    interrupted = runs["CartPole/ppo/seed0"]
    assert (interrupted.score, interrupted.score_source) == (
        87.5,
        "curve.csv",
    )  # no final_score: last eval row
    assert interrupted.eta_s is None and not interrupted.stale

    alive = runs["CartPole/ppo/seed1"]
    assert alive.train_fps == pytest.approx(5000.0)
    assert alive.eta_s == pytest.approx(150.0)
    assert alive.progress == pytest.approx(0.25)
    assert alive.checkpoint_age_s == pytest.approx(30, abs=1) and not alive.stale

    dead = runs["CartPole/random/seed0"]
    assert dead.stale and dead.stale_after_s == 900.0  # max(10 min, 3 x 300 s)

    starting = runs["CartPole/random/seed1"]
    assert (starting.env, starting.algo, starting.seed, starting.budget_frames) == (
        "CartPole",
        "random",
        1,
        200_000,
    )
    assert starting.stale_after_s == 1800.0 and not starting.stale
    assert starting.train_frames is None and starting.updated_age_s is None

    assert [Path(d).relative_to(sweep).as_posix() for d, _ in status.skipped] == ["CartPole/a2c/seed0"]
    assert "not valid JSON" in status.skipped[0][1]


def test_status_cli_table_summary_and_exit_1_when_a_run_failed(
    sweep: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["status", str(sweep)]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = lines[0].split()
    assert header[:4] == ["env", "algo", "seed", "status"]
    for column in ("frames", "budget", "%", "score", "frames/s", "ETA", "checkpoint", "updated", "run"):
        assert column in header, column
    rows = {line.split()[-1]: line for line in lines[1:7]}
    assert rows["CartPole/ga/seed0"].split()[:9] == [
        "CartPole", "ga", "0", "ok", "499.7k", "/", "500k", "99.9", "479.2"
    ]  # fmt: skip
    assert "200k" in rows["CartPole/ga/seed0"]  # frames/s
    running = rows["CartPole/ppo/seed1"].split()
    assert running[3:9] == ["running", "250k", "/", "1M", "25.0", "200.0"]
    assert "2m30s" in running and "5k" in running  # ETA, frames/s
    assert "stale?" in rows["CartPole/random/seed0"] and "stale?" not in rows["CartPole/ppo/seed1"]
    assert rows["CartPole/random/seed0"].split()[10] == "?"  # no ETA for a run that is likely dead
    assert rows["CartPole/ppo/seed0"].split()[3] == "interrupted" and "87.5" in rows["CartPole/ppo/seed0"]
    assert rows["CartPole/random/seed1"].split()[3] == "starting"
    # aligned: every row has its status and its run directory where the header has their names
    status_at, run_at = lines[0].index("status"), lines[0].rindex("run")
    assert [line[status_at:].split()[0] for line in lines[1:7]] == [
        "ok", "failed", "interrupted", "running", "running", "starting"
    ]  # fmt: skip
    assert [line[run_at:] for line in lines[1:7]] == list(rows)
    assert f"failed: {sweep / 'CartPole/ga/seed1'}: RuntimeError: evaluation failed:" in out
    assert f"note: skipped {sweep / 'CartPole/a2c/seed0'}: run.json is not valid JSON" in out
    assert lines[-1] == (
        "6 runs: 1 ok, 2 running (1 stale?), 1 starting, 1 interrupted, 1 failed; 1 unreadable; "
        "frames 1.019M / 3.2M (31.8%)"
    )


def test_status_json(sweep: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["status", str(sweep), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    rows = {row["run"]: row for row in data["runs"]}
    assert rows["CartPole/ppo/seed1"]["eta_s"] == pytest.approx(150.0)
    assert rows["CartPole/ga/seed1"]["error"] == "RuntimeError: evaluation failed:"
    assert rows["CartPole/random/seed0"]["stale"] is True
    assert data["summary"]["counts"] == {"ok": 1, "running": 2, "starting": 1, "interrupted": 1, "failed": 1}
    assert data["summary"]["failed"] == 1 and data["summary"]["skipped"] == 1
    assert data["skipped"][0]["run_dir"] == str(sweep / "CartPole/a2c/seed0")


def test_status_exit_0_without_failed_runs_and_2_on_bad_input(tmp_path: Path) -> None:
    ok = tmp_path / "ok"
    _run(ok / "CartPole/ga/seed0", "ok", algo="ga", seed=0, frames=500_000, wall=2.0, score=500.0)
    _run(ok / "CartPole/ga/seed1", "running", algo="ga", seed=1, frames=0, wall=0.0, age_s=0)
    (tmp_path / "empty").mkdir()
    broken = tmp_path / "broken" / "run"
    broken.mkdir(parents=True)
    (broken / "run.json").write_text("[1, 2]")

    def cli(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "neuroevo_bench.analyze", "status", *args]
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)

    done = cli(str(ok))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("2 runs: 1 ok, 1 running; frames 500k / 1M")
    assert " ? " in done.stdout.splitlines()[2]  # running, no frames/s yet: ETA unknown
    for args, message in (
        ((str(tmp_path / "missing"),), "does not exist"),
        ((str(tmp_path / "empty"),), "no runs below"),
        ((str(tmp_path / "broken"),), "no readable runs"),
        ((str(ok / "CartPole/ga/seed0" / "run.json"),), "is a file, not a directory"),
    ):
        proc = cli(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert proc.stderr.splitlines()[-1].startswith("error: ") and message in proc.stderr, proc.stderr
    assert cli().returncode == 2  # no RESULTS_DIR


def test_status_of_one_run_dir_and_of_the_reference_results(capsys: pytest.CaptureFixture) -> None:
    reference = ROOT / "results" / "reference"
    status = read_status(reference)
    assert len(status.runs) == 30 and {run.status for run in status.runs} == {"ok"}
    assert [(run.algo, run.seed) for run in status.runs[:6]] == [("a2c", s) for s in range(5)] + [("dqn", 0)]
    one = read_status(reference / "CartPole/ga/seed0").runs
    score = json.loads((reference / "CartPole/ga/seed0/run.json").read_text())["final_score"]
    assert [(run.run, run.score) for run in one] == [(".", score)]
    assert main(["status", str(reference)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("30 runs: 30 ok; frames 14.99M / 15M")


def test_status_skips_records_of_any_shape_without_crashing(tmp_path: Path) -> None:
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "run.json").write_text(json.dumps({"status": "running", "seed": "x", "train_frames": "lots",
                                              "budget_frames": None, "config": [1], "error": 3}))  # fmt: skip
    (odd / "curve.csv").write_bytes(b"\xff\xfe\x00garbage")
    status = read_status(tmp_path)
    [run] = status.runs
    assert (run.status, run.seed, run.train_frames, run.budget_frames, run.eta_s) == (
        "running",
        None,
        None,
        None,
        None,
    )
    assert any("curve.csv" in note for note in run.notes)
    with pytest.raises(NoRunsFound):
        read_status([])


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (TRACEBACK, "RuntimeError: evaluation failed:"),
        (
            'Traceback (most recent call last):\n  File "a.py", line 1, in <module>\n    f()\nKeyboardInterrupt\n',
            "KeyboardInterrupt",
        ),
        (
            'Traceback (most recent call last):\n  File "a.py", line 1, in <module>\n    x = {}[1]\n        ~~^^^\n'
            "KeyError: 1\n",
            "KeyError: 1",
        ),
        ("algo.truncation=30 is invalid\n", "algo.truncation=30 is invalid"),
        (
            "some log line\nneuroevo_bench.config.ConfigError: bad\nmore\n",
            "neuroevo_bench.config.ConfigError: bad",
        ),
        ("\n\n", None),
    ],
)
def test_first_error_line_names_the_exception(text: str, line: str | None) -> None:
    assert first_error_line(text) == line


def test_format_duration() -> None:
    assert [format_duration(s) for s in (None, -3, 0, 59.6, 60, 754, 3600, 11_040, 86_400 * 2 + 3 * 3600)] == [
        "—", "0s", "0s", "1m00s", "1m00s", "12m34s", "1h00m", "3h04m", "2d03h"
    ]  # fmt: skip


# --- the multirun callback ----------------------------------------------------------------------------------


def test_callback_exits_1_for_failed_jobs_of_this_sweep_only(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sweep_dir = tmp_path / "sweep"
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}})
    # an earlier sweep into the same directory left a failed run: not this sweep's business
    _run(sweep_dir / "CartPole/ga/seed9", "failed", algo="ga", seed=9, frames=None, age_s=7200,
         error="Traceback (most recent call last):\n  File \"x\", line 1\nValueError: old\n")  # fmt: skip
    callback = AnalyzeOnMultirunEnd(n_resamples=100, formats=[])
    callback.on_multirun_start(config)
    assert list(sweep_dir.iterdir()) == [sweep_dir / "CartPole"]  # the clock probe leaves nothing behind
    callback.on_multirun_end(config)  # nothing of this sweep failed
    err = capsys.readouterr().err
    assert "failed:" not in err and "1 failed run(s) under" in err and "earlier sweep" in err

    callback.on_multirun_start(config)
    _run(sweep_dir / "CartPole/ga/seed0", "ok", algo="ga", seed=0, frames=1000, wall=1.0, score=10.0,
         curve=[(0, 0.0, 9.0), (1000, 1.0, 10.0)], age_s=None)  # fmt: skip
    failed = _run(sweep_dir / "CartPole/ga/seed1", "failed", algo="ga", seed=1, frames=None, age_s=None,
                  error=TRACEBACK)  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        callback.on_multirun_end(config)
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert (sweep_dir / "analysis" / "summary.csv").exists()  # the analysis was written first
    assert "| CartPole-v1 | GA" in captured.out
    assert f"failed: {failed}: RuntimeError: evaluation failed:" in captured.err
    assert not [line for line in captured.err.splitlines() if line.startswith("failed: ") and "seed9" in line]
    assert "1 of 2 jobs failed" in captured.err

    AnalyzeOnMultirunEnd(formats=[], fail_on_failed_jobs=False).on_multirun_end(config)  # opted out: returns


def test_a_multirun_with_a_failed_job_exits_1_after_its_analysis(tmp_path: Path) -> None:
    """A real sweep (basic launcher, the app's callback): truncation 30 > population 8 fails two of four jobs."""
    cmd = [
        sys.executable, "-m", "neuroevo_bench", "-m",
        "algo=ga,random", "env=gym", "env.id=CartPole-v1", "budget.frames=2000", "eval.every_frames=2000",
        "algo.population=8", "algo.truncation=2,30", "algo.elite_candidates=2", "algo.elite_episodes=1",
        "algo.episodes_per_fitness=1", "algo.slots=8", "algo.network.hidden=[8]", "algo.noise_table_size=4096",
        "progress_every_s=1000", "name=x", f"hydra.sweep.dir={tmp_path}",
        "hydra.sweep.subdir=${algo.name}/t${algo.truncation}",
        "+hydra.callbacks.analyze.formats=[png]", "+hydra.callbacks.analyze.dpi=40",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert (tmp_path / "analysis" / "summary.md").exists()  # written before the exit
    failed = sorted(line for line in proc.stderr.splitlines() if line.startswith("failed: "))
    assert [line.split(": ")[1] for line in failed] == [
        str(tmp_path / "ga/t30"),
        str(tmp_path / "random/t30"),
    ]
    assert all("ConfigError: algo.truncation=30 is invalid" in line for line in failed)
    assert "2 of 4 jobs failed" in proc.stderr
    for ok in ("ga/t2", "random/t2"):
        assert json.loads((tmp_path / ok / "run.json").read_text())["status"] == "ok"
