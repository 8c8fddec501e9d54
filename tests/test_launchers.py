"""Hydra launcher presets (conf/hydra/launcher): they compose, resolve, and really launch sweeps.

The multiruns start real processes (`python -m neuroevo_bench -m ...`), as a user would, with tiny budgets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from neuroevo_bench.config import register_configs

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
TINY_RUN = (
    "algo=random",
    "env=CartPole",
    "budget.frames=3000",
    "eval.every_frames=1500",
    "eval.episodes=2",
    "algo.population=20",
    "algo.slots=32",
    "progress_every_s=1000",
    "~hydra.callbacks.analyze",  # the sweep's comparison is another test's business
)


def hydra_launcher(*overrides: str) -> dict:
    """The resolved `hydra.launcher` node for `python -m neuroevo_bench <overrides>`."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
    cfg.hydra.sweep.dir = "/tmp/sweep"  # the default one interpolates hydra.runtime, unset under compose()
    out = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert isinstance(out, dict)
    return out


def multirun(tmp_path: Path, *overrides: str, timeout: float = 240) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "neuroevo_bench", "-m", *overrides, *TINY_RUN, f"hydra.sweep.dir={tmp_path}"]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def finished_runs(sweep_dir: Path) -> dict[int, dict]:
    runs = [json.loads(p.read_text()) for p in sweep_dir.glob("CartPole/random/seed*/run.json")]
    return {r["seed"]: r for r in runs}


@pytest.mark.parametrize(
    ("launcher", "target"),
    [
        ("joblib", "JoblibLauncher"),
        ("local_parallel", "JoblibLauncher"),
        ("submitit_slurm", "SlurmLauncher"),
        ("slurm", "SlurmLauncher"),
        ("submitit_local", "LocalLauncher"),
        ("slurm_local", "LocalLauncher"),
    ],
)
def test_launcher_choices_compose(launcher, target):
    assert hydra_launcher(f"hydra/launcher={launcher}")["_target_"].endswith(target)


def test_presets_follow_resources_threads():
    slurm = hydra_launcher("hydra/launcher=slurm", "resources.threads=3", "name=abc")
    assert slurm["cpus_per_task"] == 3
    assert slurm["setup"] == ["export OMP_NUM_THREADS=3 MKL_NUM_THREADS=3"]
    assert (slurm["timeout_min"], slurm["array_parallelism"], slurm["name"]) == (
        720,
        32,
        "neuroevo_bench_abc",
    )
    assert hydra_launcher("hydra/launcher=slurm_local", "resources.threads=2")["cpus_per_task"] == 2
    joblib = hydra_launcher("hydra/launcher=local_parallel", "hydra.launcher.n_jobs=4")
    assert (joblib["n_jobs"], joblib["prefer"]) == (4, "processes")


def test_slurm_preset_gives_a_valid_sbatch_script(tmp_path, monkeypatch):
    """submitit turns the preset into the sbatch script it would submit (a stand-in `srun` satisfies its
    cluster check; nothing is submitted)."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/sh\nexit 1\n")
    (fake / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    params = hydra_launcher("hydra/launcher=slurm", "resources.threads=2")
    # As the submitit launcher plugin maps its config onto submitit's parameters.
    params.pop("_target_")
    executor = submitit.AutoExecutor(folder=tmp_path / "sub", cluster="slurm", slurm_max_num_timeout=0)
    generic = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(
        **{
            k if k in generic else f"slurm_{k}": v
            for k, v in params.items()
            if k not in ("submitit_folder", "max_num_timeout")
        }
    )
    script = executor._executor._make_submission_file_text("python -m neuroevo_bench", "uid")
    for line in ("--cpus-per-task=2", "--time=720", "--mem=8GB", "--signal=USR2@120"):
        assert f"#SBATCH {line}" in script
    assert "export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2" in script
    assert executor._executor.parameters["array_parallelism"] == 32


@pytest.mark.slow
def test_joblib_multirun_of_two_jobs_writes_both_records(tmp_path):
    proc = multirun(tmp_path, "hydra/launcher=local_parallel", "hydra.launcher.n_jobs=2", "seed=0,1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in proc.stdout + proc.stderr
    runs = finished_runs(tmp_path)
    assert sorted(runs) == [0, 1]
    for r in runs.values():
        assert r["status"] == "ok" and 0 < r["train_frames"] <= 3000
        assert r["config"]["resources"]["threads"] == 1


@pytest.mark.slow
def test_submitit_local_multirun_in_batches(tmp_path):
    proc = multirun(tmp_path, "hydra/launcher=slurm_local", "hydra.sweeper.max_batch_size=1", "seed=0,1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = finished_runs(tmp_path)
    assert sorted(runs) == [0, 1] and all(r["status"] == "ok" for r in runs.values())
