"""Results do not depend on the hardware layout: every (generation, individual, episode) task starts from its own
seed, so slots, shards and Ray workers change how fast a run goes, never what it finds."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from neuroevo_bench.envs import Ledger
from neuroevo_bench.evaluation import resumed_caps, unfinished
from neuroevo_bench.runner import run

GA = (
    "algo=ga",
    "env=CartPole",
    "algo.population=60",
    "algo.episodes_per_fitness=2",
    "budget.frames=150000",
    "eval.every_frames=20000",
    "progress_every_s=1000",
)
# everything a curve row says about the search, and the frames at every generation boundary
COMPARED = ["frames", "agent_steps", "generation", "score_mean", "score_std", "fitness_max", "elite_score"]


def outcome(run_dir: Path) -> tuple[list[list[str]], list[str], list[int]]:
    """(curve rows up to the last complete generation, the last row's search columns, the champion genome).

    The last row follows a generation that the budget cut short: how far into it a layout got (its frames)
    depends on how many episodes were in flight, so only what it found is compared there."""
    with open(run_dir / "curve.csv") as f:
        rows = list(csv.DictReader(f))
    body = [[r[k] for k in COMPARED] for r in rows[:-1]]
    last = [rows[-1][k] for k in ("generation", "score_mean", "elite_score")]
    return body, last, json.loads((run_dir / "champion.json").read_text())["genome"]


def layout_run(make_cfg, run_dir: Path, *layout: str) -> tuple[list[list[str]], list[str], list[int]]:
    info = run(make_cfg(*GA, *layout), run_dir)
    assert info["status"] == "ok" and info["untrained"] is False
    return outcome(run_dir)


def test_slots_and_shards_change_nothing(make_cfg, tmp_path):
    reference = layout_run(make_cfg, tmp_path / "ref", "algo.slots=512", "algo.shards=1")
    assert len(reference[0]) >= 3  # several generations and eval points: a real comparison
    for slots, shards in ((8, 1), (64, 1), (64, 2), (8, 3)):
        layout = (f"algo.slots={slots}", f"algo.shards={shards}")
        assert layout_run(make_cfg, tmp_path / f"{slots}x{shards}", *layout) == reference, layout


@pytest.mark.slow
def test_ray_workers_change_nothing(make_cfg, tmp_path):
    pytest.importorskip("ray")
    reference = layout_run(make_cfg, tmp_path / "local", "algo.slots=64", "algo.shards=1")
    ray_run = layout_run(
        make_cfg,
        tmp_path / "ray",
        "evaluator=ray",
        "evaluator.num_workers=2",
        "algo.slots=16",
        "algo.shards=2",
    )
    assert ray_run == reference


def test_a_resumed_evaluation_gives_every_shard_its_original_cap():
    """2000 frames left when an evaluation of 2 shards starts: 1000 each. Shard 0 then finished episodes of
    60 agent steps (x 4 frames) before a checkpoint, whose ledger counts them: on resume shard 0 may use the
    760 frames it had left, shard 1 its full 1000, as in the uninterrupted run."""
    bounds = [(0, 3), (3, 6)]
    result = unfinished(6, 1)
    assert resumed_caps(Ledger(cap=10_000, frames=8_000), result, bounds, 4) == [1000, 1000]
    result.returns[:3, 0], result.lengths[:3, 0] = 1.0, [10, 20, 30]
    assert resumed_caps(Ledger(cap=10_000, frames=8_240), result, bounds, 4) == [760, 1000]
    assert resumed_caps(Ledger(), result, bounds, 4) == [None, None]  # no budget cap


def test_resume_of_a_run_stopped_before_its_first_checkpoint_starts_it_again(make_cfg, tmp_path):
    cfg = make_cfg(*GA, "budget.frames=20000", "eval.every_frames=10000")
    (tmp_path / "run.json").write_text(json.dumps({"status": "running"}))  # killed during the first test
    info = run(make_cfg(*GA, "budget.frames=20000", "eval.every_frames=10000", "resume=true"), tmp_path)
    assert info["status"] == "ok" and info["train_frames"] > 0
    assert run(cfg, tmp_path / "fresh")["final_score"] == info["final_score"]
