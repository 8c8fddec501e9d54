"""The harness protocol on a toy env of known episode length, and GA/RS end to end on CartPole."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from neuroevo_bench.genome import NoiseTable, ParamStore
from neuroevo_bench.runner import replay_score, run
from tests.conftest import TINY_GA, TOY, TOY_LENGTH


def read_curve(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "curve.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize(
    ("algo", "variant", "budget", "eval_frames", "generations"),
    [
        ("ga", "such2017", 1030, [0, 300, 500, 800, 1000, 1030], [0, 3, 5, 8, 10, 10]),
        ("random", "such2017", 1030, [0, 300, 500, 800, 1000, 1030], [0, 3, 5, 8, 10, 10]),
        ("ga", "chopra", 1000, [0, 240, 480, 720, 960, 1000], [0, 2, 4, 6, 8, 8]),
        ("random", "chopra", 1000, [0, 260, 540, 820, 960, 1000], [0, 2, 4, 6, 7, 7]),
    ],
)
def test_exact_frame_accounting_on_toy_env(
    make_cfg, tmp_path, algo, variant, budget, eval_frames, generations
):
    """Every episode is 10 frames; N=4, 2 episodes per fitness, C=2 candidates, 2 validation episodes.

    such2017 (GA and random search alike): N-1=3 new individuals x 2 episodes = 60 frames, plus exactly C=2
    candidates x 2 episodes = 40: 100 a generation, 10 = 1000. The 11th is cut short at 1030 exactly: its 6
    slots (3 x 2 tasks) of 1 frame per step fit 5 more steps, a 6th would exceed the cap.
    chopra: N=4 x 2 episodes = 80, plus validation of the top 2 and the elite / best so far (GA: the elite is
    individual 0, already among the top 2 on this flat fitness, so 2 x 2 x 10 = 40; random search: the best so
    far comes on top from the second generation, 3 x 2 x 10 = 60). GA: 120 a generation, 8 = 960; random: 120
    + 6 x 140 = 960; cut short at 1000 by 8 slots. Next-step auto-resets and idle slots are not charged, or
    the counts would be higher."""
    cfg = make_cfg(
        f"algo={algo}",
        *TOY,
        *TINY_GA,
        f"algo.variant={variant}",
        f"budget.frames={budget}",
        "eval.every_frames=240",
    )
    info = run(cfg, tmp_path)
    assert info["status"] == "ok"
    assert info["train_frames"] == budget
    assert info["agent_steps"] == budget
    assert info["untrained"] is False
    curve = read_curve(tmp_path)
    frames = [int(r["frames"]) for r in curve]
    assert frames == eval_frames  # eval at 0, at each generation boundary past every 240 frames, at the end
    assert [int(r["generation"]) for r in curve] == generations
    assert curve[-1]["generation_complete"] == "False"
    # test evaluation: 3 episodes x 10 frames per eval point, charged separately
    assert info["eval_frames"] == len(curve) * 3 * TOY_LENGTH
    assert [int(r["eval_frames"]) for r in curve] == [30 * (i + 1) for i in range(len(curve))]
    assert float(curve[-1]["score_mean"]) == TOY_LENGTH
    saved = json.loads((tmp_path / "run.json").read_text())
    assert saved["train_frames"] <= saved["budget_frames"] == budget


def test_a_budget_below_one_generation_is_said_and_recorded(make_cfg, tmp_path, capsys):
    """One generation here needs 100 frames (3 x 2 + 2 x 2 episodes of 10): a 90-frame budget trains nothing.
    (The toy env has no episode cap of its own; the fitness cap states the episodes' length.)"""
    cfg = make_cfg(
        "algo=ga", *TOY, *TINY_GA, "algo.fitness_max_frames=10", "budget.frames=90", "eval.every_frames=90"
    )
    info = run(cfg, tmp_path)
    out = capsys.readouterr().out
    assert "one ga generation takes up to 100 frames" in out  # said at the start
    assert "no ga generation completed" in out  # and at the end
    assert info["status"] == "ok" and info["untrained"] is True
    assert json.loads((tmp_path / "run.json").read_text())["untrained"] is True


@pytest.mark.parametrize("budget", [119, 120, 121, 537])
def test_budget_never_exceeded(make_cfg, tmp_path, budget):
    cfg = make_cfg("algo=ga", *TOY, *TINY_GA, f"budget.frames={budget}", f"eval.every_frames={budget}")
    info = run(cfg, tmp_path)
    assert info["train_frames"] <= budget
    assert budget - info["train_frames"] < 8  # stops less than one vector step (8 slots) short


def test_determinism_and_seed_dependence(make_cfg, tmp_path):
    common = (
        "algo=ga",
        "algo.population=40",
        "algo.slots=32",
        "budget.frames=40000",
        "eval.every_frames=10000",
    )
    a = run(make_cfg(*common, "seed=3"), tmp_path / "a")
    b = run(make_cfg(*common, "seed=3"), tmp_path / "b")
    c = run(make_cfg(*common, "seed=4"), tmp_path / "c")
    cols = ["frames", "score_mean", "score_std", "fitness_max", "fitness_mean", "elite_score", "generation"]

    def key(d):
        return [[r[k] for k in cols] for r in read_curve(d)]

    assert key(tmp_path / "a") == key(tmp_path / "b")
    champ = [json.loads((tmp_path / d / "champion.json").read_text())["genome"] for d in "abc"]
    assert champ[0] == champ[1] != champ[2]
    assert key(tmp_path / "a") != key(tmp_path / "c")
    assert a["train_frames"] == b["train_frames"]
    del c


def test_genome_round_trip_is_bit_identical():
    """Parameters built through the parent cache during evaluation equal a rebuild from the seed chain."""
    noise = NoiseTable(seed=7, size=1 << 16, n_params=300)
    store = ParamStore(noise, torch.rand(300), sigma=0.05)
    rng = np.random.default_rng(0)
    pop = [(int(o),) for o in noise.sample_offsets(rng, 6)]
    for _ in range(5):
        plan = store.plan(pop)
        built = store.build(plan, np.arange(len(pop)))
        for i, g in enumerate(pop):
            assert torch.equal(built[i], store.rebuild(g))
        candidates = [pop[4], pop[1]]  # elite validation plans a few of them in between, as the GA does
        assert torch.equal(store.build(store.plan(candidates), np.arange(2))[0], store.rebuild(pop[4]))
        parents = pop[:3]
        pop = [pop[0]] + [(*parents[rng.integers(3)], int(o)) for o in noise.sample_offsets(rng, 5)]
    assert store.slow_rebuilds == 0  # every parent came from the cache


def test_champion_reloads_and_scores_the_same(make_cfg, tmp_path):
    cfg = make_cfg("algo=ga", "algo.population=50", "budget.frames=60000", "eval.every_frames=30000")
    info = run(cfg, tmp_path)
    assert replay_score(tmp_path).mean() == pytest.approx(info["final_score"])


@pytest.mark.slow
def test_ga_solves_cartpole_and_random_search_is_recorded(make_cfg, tmp_path):
    """README: the GA reaches a test mean >= 475 on CartPole-v1 within the default 500k-frame budget."""
    ga = run(make_cfg("algo=ga", "seed=0"), tmp_path / "ga")
    assert ga["final_score"] >= 475, ga["final_score"]
    rs = run(make_cfg("algo=random", "seed=0"), tmp_path / "random")
    assert rs["status"] == "ok" and rs["train_frames"] <= rs["budget_frames"]
    print(f"\nGA final {ga['final_score']:.1f}; random search final {rs['final_score']:.1f} (500k frames)")


def test_torch_forward_path_matches_numpy_path():
    """resources.device=cuda takes the torch path of the rows forward; on a CPU both paths must agree."""
    import gymnasium as gym
    from omegaconf import OmegaConf

    from neuroevo_bench.policies import RowWeights, make_network

    net = make_network(
        OmegaConf.create({"hidden": [64, 64], "activation": "relu"}),
        gym.spaces.Box(-np.inf, np.inf, (4,), np.float32),
        gym.spaces.Discrete(2),
    )
    store = ParamStore(NoiseTable(1, 1 << 16, net.n_params), net.init_scale(), 0.02)
    rng = np.random.default_rng(0)
    pop = [(int(o),) for o in store.noise.sample_offsets(rng, 9)]
    flat = store.build(store.plan(pop), np.arange(9))
    fast, slow = RowWeights(net, 10), RowWeights(net, 10, "cpu", numpy_forward=False)
    assert fast.numpy_layers is not None and slow.numpy_layers is None
    for w in (fast, slow):
        w.load(np.arange(9), flat)
    x = rng.standard_normal((9, 3, 4)).astype(np.float32)
    row, lane = np.repeat(np.arange(9), 3), np.tile(np.arange(3), 9)
    np.testing.assert_array_equal(fast.act(x, 9, row, lane), slow.act(x, 9, row, lane))
