"""Resume in place, interruption (SIGINT/SIGTERM/SIGKILL), failure isolation in sweeps, existing runs kept."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from neuroevo_bench import records
from neuroevo_bench.config import ConfigError
from neuroevo_bench.runner import run
from tests.conftest import ROOT

RUN = (
    "algo=ga",
    "env=CartPole",
    "algo.population=60",
    "algo.slots=64",
    "budget.frames=600000",
    "eval.every_frames=30000",
    "progress_every_s=1000",
    "~hydra.callbacks.analyze",
)
COMPARED = [
    "frames",
    "agent_steps",
    "eval_frames",
    "score_mean",
    "score_std",
    "generation",
    "fitness_max",
    "elite_score",
]


def app(run_dir: Path, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "neuroevo_bench", *RUN, *overrides, f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def curve(run_dir: Path) -> list[list[str]]:
    with open(run_dir / "curve.csv") as f:
        return [[row[k] for k in COMPARED] for row in csv.DictReader(f)]


def status(run_dir: Path) -> str:
    return json.loads((run_dir / "run.json").read_text())["status"]


def wait_for_rows(run_dir: Path, proc: subprocess.Popen, rows: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"run ended before it could be interrupted:\n{proc.stdout.read()}")
        try:
            if len(curve(run_dir)) >= rows:
                return
        except (OSError, KeyError):
            pass
        time.sleep(0.05)
    pytest.fail("no progress")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The same run, never interrupted."""
    run_dir = tmp_path_factory.mktemp("reference")
    proc = app(run_dir)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    return run_dir


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_interrupt_then_resume_equals_uninterrupted(reference, tmp_path, sig):
    proc = app(tmp_path)
    wait_for_rows(tmp_path, proc, 3)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
        assert status(tmp_path) == "running"  # stale, but complete JSON: every write is atomic
        assert not list(tmp_path.glob(".*.tmp"))
    else:
        assert proc.returncode == 130, out
        assert status(tmp_path) == "interrupted"
    partial = curve(tmp_path)
    assert partial == curve(reference)[: len(partial)]

    again = app(tmp_path, "resume=true")
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    assert "resuming at" in out
    assert status(tmp_path) == "ok"
    assert curve(tmp_path) == curve(reference)
    champion = json.loads((tmp_path / "champion.json").read_text())["genome"]
    assert champion == json.loads((reference / "champion.json").read_text())["genome"]


def test_existing_run_is_never_overwritten(make_cfg, tmp_path):
    cfg = make_cfg("algo=ga", "algo.population=20", "budget.frames=20000", "eval.every_frames=10000")
    run(cfg, tmp_path)
    before = (tmp_path / "run.json").read_bytes()
    with pytest.raises(ConfigError, match="already holds a run"):
        run(cfg, tmp_path)
    assert (tmp_path / "run.json").read_bytes() == before


def test_resume_with_a_changed_config_is_refused(make_cfg, tmp_path):
    base = ("algo=ga", "algo.population=20", "budget.frames=20000", "eval.every_frames=10000")
    run(make_cfg(*base), tmp_path)
    before = (tmp_path / "run.json").read_bytes()
    with pytest.raises(ConfigError, match="config differs"):
        run(make_cfg(*base, "algo.mutation_power=0.05", "resume=true"), tmp_path)
    assert (tmp_path / "run.json").read_bytes() == before


def test_resume_of_a_finished_run_changes_nothing(make_cfg, tmp_path):
    base = ("algo=ga", "algo.population=20", "budget.frames=20000", "eval.every_frames=10000")
    first = run(make_cfg(*base), tmp_path)
    files = {name: (tmp_path / name).read_bytes() for name in ("run.json", "curve.csv", "champion.json")}
    again = run(make_cfg(*base, "resume=true"), tmp_path)
    assert again["train_frames"] == first["train_frames"]
    assert again["final_score"] == first["final_score"]
    assert {name: (tmp_path / name).read_bytes() for name in files} == files


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda ckpt: ckpt.write_bytes(ckpt.read_bytes()[:100]), "cannot be read .* it is damaged"),
        (
            lambda ckpt: records.save_pickle(ckpt, {**records.load_pickle(ckpt), "format": 1}),
            "has format 1, but this version of neuroevo_bench reads format 2",
        ),
    ],
    ids=["truncated", "old format"],
)
def test_a_damaged_or_foreign_checkpoint_is_refused_naming_it(make_cfg, tmp_path, damage, message):
    base = ("algo=ga", "algo.population=20", "budget.frames=20000", "eval.every_frames=10000")
    run(make_cfg(*base), tmp_path)
    ckpt = tmp_path / "checkpoint.pkl"
    damage(ckpt)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(ConfigError, match=f"checkpoint {ckpt} {message}"):
        run(make_cfg(*base, "resume=true"), tmp_path)
    assert {
        p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()
    } == before  # nothing overwritten


def test_a_refused_command_leaves_the_run_untouched(tmp_path):
    """Re-running a finished run without resume/overwrite exits 2 and changes no file of it (.hydra/ included,
    which Hydra would otherwise rewrite with the refused overrides)."""
    tiny = [
        "algo=ga",
        "algo.population=20",
        "budget.frames=20000",
        "eval.every_frames=10000",
        "progress_every_s=1000",
    ]
    command = [sys.executable, "-m", "neuroevo_bench", *tiny, f"hydra.run.dir={tmp_path}"]
    first = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert first.returncode == 0, first.stdout + first.stderr
    assert (tmp_path / ".hydra" / "overrides.yaml").exists()  # written by the runner once it accepted the run
    files = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file()}
    refused = subprocess.run([*command, "algo.mutation_power=0.05"], cwd=ROOT, capture_output=True, text=True)
    assert refused.returncode == 2 and "already holds a run" in refused.stderr
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file()} == files


def test_tensorboard_logger_writes_every_eval_point_and_generation(make_cfg, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = make_cfg(
        "algo=ga", "algo.population=20", "budget.frames=20000", "eval.every_frames=5000", "logger=tensorboard"
    )
    info = run(cfg, tmp_path)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"test/score_mean", "train/fps", "generation/fitness_max", "generation/elite_score"} <= tags
    tested = events.Scalars("test/score_mean")
    with open(tmp_path / "curve.csv") as f:
        rows = list(csv.DictReader(f))
    assert [e.step for e in tested] == [int(r["frames"]) for r in rows]  # against frames, one per eval point
    assert tested[-1].value == pytest.approx(info["final_score"])


def test_a_failing_sweep_job_does_not_stop_the_others(tmp_path):
    """algo.truncation=30 > population=20 fails its job; the population=40 job still runs."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "neuroevo_bench",
            "-m",
            "algo=ga",
            "algo.population=20,40",
            "algo.truncation=30",
            "budget.frames=20000",
            "eval.every_frames=10000",
            "progress_every_s=1000",
            f"hydra.sweep.dir={tmp_path}",
            "hydra.sweep.subdir=pop${algo.population}",
            "~hydra.callbacks.analyze",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HYDRA_FULL_ERROR": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    failed = json.loads((tmp_path / "pop20" / "run.json").read_text())
    assert failed["status"] == "failed"
    assert "algo.truncation=30 is invalid; valid: 0 <= algo.truncation <= 20" in failed["error"]
    assert (tmp_path / "pop20" / "error.txt").exists()
    assert status(tmp_path / "pop40") == "ok"
