"""ES (Salimans et al. 2017) on the GA's machinery: its update is the antithetic estimate with centred ranks and
Adam, its normaliser learns from exactly the observations acted on, and, like the GA, its results do not
depend on the layout and its saved policy scores what the run reported."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import ClassVar

import gymnasium as gym
import numpy as np
import pytest
import torch

from neuroevo_bench.algorithms import RunContext
from neuroevo_bench.algorithms.es import ADAM_EPS, EvolutionStrategies, centred_ranks, load_theta
from neuroevo_bench.envs import Ledger
from neuroevo_bench.evaluation import unfinished
from neuroevo_bench.runner import replay_score, run
from tests.conftest import TOY, TOY_LENGTH
from tests.test_ga_variants import FakeEvaluator

TINY_ES = ("algo=es", "algo.population=4", "algo.episodes_per_fitness=2", "algo.slots=8")
TINY_ES += ("algo.noise_table_size=4096", "algo.network.hidden=[8]")


class CountingEnv(gym.Env):
    """Observation (t, 1, -1) at step t = 0..9 of a 10-step episode: each episode's sums are known by hand."""

    metadata: ClassVar[dict] = {"render_modes": []}

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-100.0, 100.0, (3,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.t = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.t, 1.0, -1.0], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), 1.0, self.t >= TOY_LENGTH, False, {}


if "Counting-v0" not in gym.registry:
    gym.register("Counting-v0", entry_point=CountingEnv)


def test_centred_ranks_span_minus_half_to_half():
    ranks = centred_ranks(np.array([3.0, -1.0, 10.0, 0.0]))
    np.testing.assert_allclose(ranks, [1 / 6, -0.5, 0.5, -1 / 6], rtol=1e-12)


def test_frame_accounting_on_toy_env(make_cfg, tmp_path):
    """4 individuals (2 pairs) x 2 episodes x 10 frames = 80 a generation: 3 generations by 240; the 4th is cut
    short by the 250-frame cap after one step of its 8 slots (248), and its update is not made."""
    info = run(make_cfg(*TINY_ES, *TOY, "budget.frames=250", "eval.every_frames=80"), tmp_path)
    assert (info["status"], info["train_frames"], info["agent_steps"]) == ("ok", 248, 248)
    with open(tmp_path / "curve.csv") as f:
        curve = list(csv.DictReader(f))
    assert [int(r["frames"]) for r in curve] == [0, 80, 160, 240, 248]
    assert [int(r["generation"]) for r in curve] == [0, 1, 2, 3, 3]
    assert curve[-1]["generation_complete"] == "False"
    assert float(curve[-1]["score_mean"]) == TOY_LENGTH  # unclipped return of the toy's 10 steps


def test_one_generation_is_an_adam_step_on_the_antithetic_estimate(make_cfg):
    """g = sum_i (c+_i - c-_i) eps_i / (2 n sigma) from centred ranks c; Adam's first step is then
    theta - lr * u / (|u| + eps) for u = -g + l2 * theta (bias corrections cancel)."""
    cfg = make_cfg(*TINY_ES, *TOY, "algo.population=6", "algo.obs_norm=false")
    ctx = RunContext(env_cfg=cfg.env, ledger=Ledger(), seed=5, resources=cfg.resources)
    es = EvolutionStrategies(ctx, **{k: v for k, v in cfg.algo.items() if k != "_target_"})
    returns = np.array([5.0, 1.0, 2.0, 9.0, 7.0, 7.5])  # pairs (+, -): (5, 1), (2, 9), (7, 7.5)
    es.evaluator = FakeEvaluator()  # each individual scores its entry of `returns`
    es.evaluator.score = dict(zip(es.population, returns, strict=True)).__getitem__
    theta = es.store.center.double().numpy()
    eps = np.stack([es.noise.windows[g[1]].double().numpy() for g in es.population[0::2]])
    assert [g[1] for g in es.population[0::2]] == [g[1] for g in es.population[1::2]]  # antithetic pairs
    c = centred_ranks(returns).reshape(3, 2)
    g = ((c[:, 0] - c[:, 1])[:, None] * eps).sum(axis=0) / (2 * 3 * es.sigma)
    u = -g + es.l2 * theta
    expected = theta - es.lr * u / (np.abs(u) + ADAM_EPS)
    assert es.step_generation()
    np.testing.assert_allclose(es.store.center.double().numpy(), expected, rtol=1e-5, atol=1e-7)
    assert es.generation == 1 and es.last["fitness_max"] == 9.0


def test_the_normaliser_learns_the_observations_acted_on(make_cfg, tmp_path):
    """CountingEnv: each 10-step episode acts on t = 0..9, (1), (-1); 4 x 2 episodes a generation, 2
    generations: count 160, mean (4.5, 1, -1), variance of t = 8.25 (std 2.87; the others hit the floor)."""
    cfg = make_cfg(
        *TINY_ES,
        "env=gym",
        "env.id=Counting-v0",
        "env.name=Counting",
        "budget.frames=160",
        "eval.every_frames=80",
    )
    run(cfg, tmp_path)
    net, theta = load_theta(tmp_path)
    assert net.obs_norm
    mean, std = theta[:3].double().numpy(), theta[3:6].double().numpy()
    prior = 1e-2  # the paper's RunningStat: a prior count and sum of squares of 0.01
    np.testing.assert_allclose(mean, np.array([720.0, 160.0, -160.0]) / (160 + prior), rtol=1e-6)
    var_t = (160 * 28.5 + prior) / (160 + prior) - mean[0] ** 2  # sum of t^2 over 0..9 is 285 per episode
    np.testing.assert_allclose(std, [np.sqrt(var_t), 0.1, 0.1], rtol=1e-5)


ES_CARTPOLE = (
    "algo=es",
    "env=CartPole",
    "algo.population=20",
    "algo.obs_norm=true",
    "budget.frames=60000",
    "eval.every_frames=15000",
    "progress_every_s=1000",
)


def es_outcome(run_dir: Path) -> tuple[list[list[str]], list[float]]:
    keys = ["frames", "agent_steps", "generation", "score_mean", "fitness_max", "theta_norm"]
    with open(run_dir / "curve.csv") as f:
        rows = [[r[k] for k in keys] for r in csv.DictReader(f)]
    return rows[:-1], load_theta(run_dir)[1].tolist()


def test_slots_and_shards_change_nothing(make_cfg, tmp_path):
    """As the GA's (tests/test_layout.py): the per-task seeds make theta, normaliser included, layout-free."""
    runs = {}
    for slots, shards in ((512, 1), (8, 1), (16, 3)):
        info = run(
            make_cfg(*ES_CARTPOLE, f"algo.slots={slots}", f"algo.shards={shards}"), tmp_path / f"{slots}"
        )
        assert info["status"] == "ok"
        runs[slots] = es_outcome(tmp_path / f"{slots}")
    assert len(runs[512][0]) >= 3
    assert runs[8] == runs[512] and runs[16] == runs[512]


def test_saved_policy_reloads_and_scores_the_same(make_cfg, tmp_path):
    info = run(make_cfg(*ES_CARTPOLE), tmp_path)
    assert replay_score(tmp_path).mean() == pytest.approx(info["final_score"])
    assert "normalised by running mean/std" in info["network"]


@pytest.mark.slow
def test_es_run_on_ray_is_identical_to_local(make_cfg, tmp_path):
    pytest.importorskip("ray")
    local = run(make_cfg(*ES_CARTPOLE, "algo.slots=16", "algo.shards=2"), tmp_path / "local")
    remote = run(
        make_cfg(
            *ES_CARTPOLE,
            "algo.slots=16",
            "algo.shards=2",
            "evaluator=ray",
            "evaluator.num_workers=2",
            "evaluator.cpus_per_worker=0.5",
        ),
        tmp_path / "ray",
    )
    assert local["final_score"] == remote["final_score"]
    assert es_outcome(tmp_path / "local") == es_outcome(tmp_path / "ray")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_es_solves_cartpole(make_cfg, tmp_path, seed):
    """README: ES reaches a test mean >= 475 on CartPole-v1 within the default 500k frames (5 of 7 seeds
    measured; seeds 0 and 1 pinned)."""
    info = run(make_cfg("algo=es", f"seed={seed}"), tmp_path)
    assert info["final_score"] >= 475, info["final_score"]


def test_the_centre_goes_to_ray_workers_once_per_generation():
    """What travels for ES: one shard task per shard (offsets only) and the centre once per change of it."""
    pytest.importorskip("ray")
    from neuroevo_bench.genome import CentredStore, NoiseTable
    from neuroevo_bench.ray_evaluator import CompactGenomes

    noise = NoiseTable(0, 4096, 100)
    store = CentredStore(noise, 0.02, torch.ones(100))
    genomes = [(s, int(o)) for o in noise.sample_offsets(np.random.default_rng(0), 50) for s in (0, 1)]
    msg = CompactGenomes.encode(genomes)
    assert msg.decode() == genomes
    assert msg.base.nbytes + msg.last.nbytes + msg.prefixes.nbytes < 13 * len(
        genomes
    )  # never a parameter vector
    plan = store.plan(genomes)
    built = store.build(plan, np.arange(4))
    assert torch.equal(built[0] + built[1], 2 * store.center.expand(100))  # theta + e and theta - e
    assert unfinished(3, 2, 4).obs_moments.shape == (3, 2, 2, 4)
