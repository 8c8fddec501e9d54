"""The analysis reads records only: on a machine where the training stack cannot even be imported, it loads a
results tree and writes the whole report (tables and figures) and a regression comparison."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

TRAINING_STACK = ("torch", "gymnasium", "stable_baselines3", "ale_py", "ray")
REFERENCE = ROOT / "results" / "reference"  # committed real runs: 4 algorithms x 5 seeds on CartPole

# Installed as sitecustomize, so the block is in place before any other import, as on a machine without them.
BLOCK = f"""
import sys

BLOCKED = {TRAINING_STACK!r}


class TrainingStackNotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
        return None


sys.meta_path.insert(0, TrainingStackNotInstalled())
"""

ANALYSE = """
import sys

import neuroevo_bench.analysis as analysis
import neuroevo_bench.analysis.callback  # the Hydra callback a multirun ends with
from neuroevo_bench.analysis.__main__ import main

tree, out = sys.argv[1], sys.argv[2]
report = analysis.analyze([tree], out, n_resamples=200, formats=["png", "pdf"], dpi=40)
print("files", len(report.files))
assert main(["compare", tree, "--baseline", tree, "--no-history"]) == 0
"""


def test_analysis_runs_without_the_training_stack(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCK)
    out = tmp_path / "analysis"
    path = os.pathsep.join([str(site), str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, "-c", ANALYSE, str(REFERENCE), str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    blocked = subprocess.run(
        [sys.executable, "-c", "import torch"], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert "blocked by the test" in blocked.stderr  # the block was in force
    for table in ("summary.md", "summary.csv", "summary.tex", "runs.csv", "curves.csv"):
        assert (out / table).stat().st_size > 0, table
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert "score_vs_frames_CartPole.png" in figures and "score_vs_frames_CartPole.pdf" in figures
    assert len(figures) >= 10
    assert "| CartPole" in proc.stdout and "verdict" in proc.stdout.lower()
