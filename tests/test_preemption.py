"""A run killed in the middle of a generation loses at most `checkpoint_every_s` of work, and its resume finishes
the generation with exactly the result an uninterrupted run gets (SIGKILL: from the last time-based
checkpoint; SIGTERM / SIGUSR2, SLURM's preemption and submitit's time-limit warning: from the checkpoint written
at once on the signal)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from neuroevo_bench import records
from neuroevo_bench.algorithms.es import load_theta
from tests.conftest import ROOT, process_tree

# CartPole with 4 slots (GA unless an override names the algo): generations of several seconds, checkpoints twice a second inside them
RUN = (
    "env=CartPole",
    "algo.slots=4",
    "budget.frames=250000",
    "eval.every_frames=50000",
    "checkpoint_every_s=0.5",
    "progress_every_s=0.2",
    "~hydra.callbacks.analyze",
)
COMPARED = ["frames", "agent_steps", "eval_frames", "score_mean", "generation", "fitness_max", "elite_score"]


class App:
    """The app in a subprocess, its output collected line by line."""

    def __init__(self, run_dir: Path, *overrides: str) -> None:
        algo = () if any(o.startswith("algo=") for o in overrides) else ("algo=ga",)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "neuroevo_bench", *algo, *RUN, *overrides, f"hydra.run.dir={run_dir}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(text in line for line in self.lines):
                return
            if self.proc.poll() is not None:
                pytest.fail("run ended first:\n" + "".join(self.lines))
            time.sleep(0.05)
        pytest.fail(f"never printed {text!r}:\n" + "".join(self.lines))

    def finish(self, timeout: float = 300) -> tuple[int, str]:
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return code, "".join(self.lines)


def outcome(run_dir: Path) -> tuple[list[list[str]], list[int] | list[float]]:
    """The curve's search columns and the final policy (GA: the champion's genome; ES: theta)."""
    with open(run_dir / "curve.csv") as f:
        rows = [[row.get(k, "") for k in COMPARED] for row in csv.DictReader(f)]
    if (run_dir / "policy.npz").exists():
        return rows, load_theta(run_dir)[1].tolist()
    return rows, json.loads((run_dir / "champion.json").read_text())["genome"]


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def wait_for_checkpoint_inside_a_generation(run_dir: Path, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if records.load_pickle(run_dir / records.CHECKPOINT)["algo"]["current"] is not None:
                return
        except (OSError, EOFError, KeyError):
            pass
        time.sleep(0.05)
    pytest.fail("no checkpoint inside a generation")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[list[list[str]], list[int]]:
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    code, out = App(run_dir).finish()
    assert code == 0, out
    return outcome(run_dir)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGUSR2])
def test_killed_mid_generation_then_resumed_equals_uninterrupted(uninterrupted, tmp_path, sig):
    app = App(tmp_path)
    app.wait_for("2 running")  # inside the second generation, which the first eval point does not end
    if sig == signal.SIGKILL:
        wait_for_checkpoint_inside_a_generation(tmp_path)
    sent = time.time()
    app.proc.send_signal(sig)
    code, out = app.finish()
    ckpt = records.load_pickle(tmp_path / records.CHECKPOINT)
    assert ckpt["algo"]["current"] is not None  # the checkpoint holds a generation in progress
    assert ckpt["algo"]["current"].population.lengths.sum() > 0  # with episodes it had finished
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
        assert sent - (tmp_path / records.CHECKPOINT).stat().st_mtime < 0.5 + 0.5  # lost < checkpoint_every_s
    else:
        assert code == 130, out
        assert "checkpointing now" in out
        assert json.loads((tmp_path / records.RUN_JSON).read_text())["status"] == "interrupted"
        assert (
            tmp_path / records.CHECKPOINT
        ).stat().st_mtime - sent < 5  # written at once, not after the generation

    code, out = App(tmp_path, "resume=true").finish()
    assert code == 0, out
    assert "resuming at" in out
    assert outcome(tmp_path) == uninterrupted


@pytest.mark.slow
def test_a_submitit_job_warned_by_sigusr2_is_requeued_and_resumes_by_itself(uninterrupted, tmp_path):
    """The SLURM path on this machine (`hydra/launcher=slurm_local`, submitit's local executor): SIGUSR2 to the
    job in the middle of a generation -> the run checkpoints -> submitit requeues the job -> the job resumes
    the run (the local executor sets no SLURM_RESTART_COUNT, so the sweep carries resume=true, as the README
    says) -> the same result as an uninterrupted run."""
    sweep = tmp_path / "sweep"
    command = [
        sys.executable,
        "-m",
        "neuroevo_bench",
        "-m",
        "hydra/launcher=slurm_local",
        "algo=ga",
        *RUN,
        "resume=true",
    ]
    launcher = subprocess.Popen(
        [*command, f"hydra.sweep.dir={sweep}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    run_dir = sweep / "CartPole/ga/seed0"
    wait_for_checkpoint_inside_a_generation(run_dir)
    jobs = [
        pid for pid in process_tree(launcher.pid) if b"submitit.core._submit" in cmdline(pid)
    ]  # this one's
    assert jobs, "no submitit job process"
    for pid in jobs:
        os.kill(pid, signal.SIGUSR2)
    out, _ = launcher.communicate(timeout=300)
    assert launcher.returncode == 0, out
    log = "".join(p.read_text() for p in (sweep / ".submitit").glob("*/*_0_log.out"))
    assert "interrupted" in log and "preempted" in log and "resuming at" in log
    assert json.loads((run_dir / records.RUN_JSON).read_text())["status"] == "ok"
    assert outcome(run_dir) == uninterrupted


ES_RUN = ("algo=es", "algo.population=40", "algo.obs_norm=true")


@pytest.mark.slow
def test_es_stopped_mid_generation_then_resumed_equals_uninterrupted(tmp_path):
    """ES resumes as the GA does: theta, Adam's moments, the normaliser and the generation in progress."""
    code, out = App(tmp_path / "whole", *ES_RUN).finish()
    assert code == 0, out
    app = App(tmp_path / "cut", *ES_RUN)
    app.wait_for("running")  # inside a generation
    app.proc.send_signal(signal.SIGTERM)
    code, out = app.finish()
    assert code == 130, out
    assert records.load_pickle(tmp_path / "cut" / records.CHECKPOINT)["algo"]["current"] is not None
    code, out = App(tmp_path / "cut", *ES_RUN, "resume=true").finish()
    assert code == 0, out
    assert outcome(tmp_path / "cut") == outcome(tmp_path / "whole")
