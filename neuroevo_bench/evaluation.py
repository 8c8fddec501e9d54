"""Population evaluation (slot-based, vectorised) and the one test evaluator shared by every algorithm.

Population evaluation keeps a fixed number of slots busy: each slot is one sub-env of a vector env with its
own network, fed from a queue of (individual, episode) tasks; the moment a slot's episode ends it takes the
next task. All slots act in one batched forward pass per env step, and every step goes through
:class:`~neuroevo_bench.envs.CountedVecEnv`, which charges the frames.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from neuroevo_bench.envs import CountedVecEnv, Ledger, make_vector_env
from neuroevo_bench.genome import Genome, ParamStore
from neuroevo_bench.policies import Network, SlotWeights

ActFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class PopulationResult:
    """Returns of a population evaluation.

    returns: (N, episodes) float64, NaN where the episode did not finish (budget cap reached).
    lengths: (N, episodes) int64 agent steps of each finished episode (0 if unfinished).
    """

    returns: np.ndarray
    lengths: np.ndarray
    frames: int
    agent_steps: int
    complete: bool

    @property
    def fitness(self) -> np.ndarray:
        """Mean return per individual, NaN for any individual with an unfinished episode."""
        return self.returns.mean(axis=1)


class PopulationEvaluator(Protocol):
    """What GA and random search need: fitness for a list of compact genomes, frames charged to the ledger."""

    def evaluate(
        self, genomes: Sequence[Genome], episodes: int, seed: int, ledger: Ledger
    ) -> PopulationResult: ...

    def close(self) -> None: ...


def run_slots(
    venv: CountedVecEnv,
    weights: SlotWeights,
    load: Callable[[np.ndarray, np.ndarray], None],
    n_tasks: int,
    episodes: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Play `n_tasks` individuals x `episodes` episodes through the slots of `venv`.

    Tasks are taken in order (individual-major). `load(slots, individuals)` puts the networks of `individuals`
    into `slots`. Stops before a step that could take the ledger past its cap. Returns (returns, lengths,
    complete) with shapes (n_tasks, episodes).
    """
    n_slots = venv.num_envs
    ledger = venv.ledger
    returns = np.full((n_tasks, episodes), np.nan)
    lengths = np.zeros((n_tasks, episodes), dtype=np.int64)
    total = n_tasks * episodes
    task = np.full(n_slots, -1, dtype=np.int64)  # task id = individual * episodes + episode, -1 = idle
    ret = np.zeros(n_slots)
    steps = np.zeros(n_slots, dtype=np.int64)
    next_task = 0
    done_tasks = 0

    def assign(slots: np.ndarray) -> None:
        nonlocal next_task
        k = min(len(slots), total - next_task)
        if k <= 0:
            task[slots] = -1
            return
        chosen = slots[:k]
        task[chosen] = np.arange(next_task, next_task + k)
        task[slots[k:]] = -1
        next_task += k
        ret[chosen] = 0.0
        steps[chosen] = 0
        load(chosen, task[chosen] // episodes)

    obs = venv.reset(seed=seed)
    assign(np.arange(n_slots))
    skip = venv.frame_skip
    while done_tasks < total:
        active = task >= 0
        if ledger.cap is not None and ledger.frames + int(active.sum()) * skip > ledger.cap:
            return returns, lengths, False
        actions = weights.act(obs)
        obs, reward, terminated, truncated, _, charged = venv.step(actions, active)
        ret[charged] += reward[charged]
        steps[charged] += 1
        finished = np.flatnonzero(charged & (terminated | truncated))
        if len(finished):
            t = task[finished]
            returns[t // episodes, t % episodes] = ret[finished]
            lengths[t // episodes, t % episodes] = steps[finished]
            done_tasks += len(finished)
            assign(finished)
    return returns, lengths, True


class LocalEvaluator:
    """Evaluates a population in this process on one vector env of `slots` sub-envs."""

    def __init__(
        self,
        env_cfg: Any,
        net: Network,
        store: ParamStore,
        slots: int,
        max_episode_frames: int | None = None,
        env_threads: int = 0,
    ) -> None:
        self.net, self.store = net, store
        self.slots = int(slots)
        self.env = make_vector_env(
            env_cfg, self.slots, max_episode_frames=max_episode_frames, num_threads=env_threads
        )
        self.frame_skip = int(env_cfg.frame_skip)
        self.weights = SlotWeights(net, self.slots)

    def evaluate(
        self, genomes: Sequence[Genome], episodes: int, seed: int, ledger: Ledger
    ) -> PopulationResult:
        plan = self.store.plan(genomes)
        venv = CountedVecEnv(self.env, self.frame_skip, ledger)
        frames0, steps0 = ledger.frames, ledger.agent_steps

        def load(slots: np.ndarray, individuals: np.ndarray) -> None:
            self.weights.load(slots, self.store.build(plan, individuals))

        with torch.no_grad():
            returns, lengths, complete = run_slots(venv, self.weights, load, len(genomes), episodes, seed)
        return PopulationResult(
            returns, lengths, ledger.frames - frames0, ledger.agent_steps - steps0, complete
        )

    def close(self) -> None:
        self.env.close()


@dataclass
class TestResult:
    returns: np.ndarray  # (episodes,) unclipped full-episode returns
    lengths: np.ndarray  # (episodes,) agent steps
    frames: int
    wall_s: float


class TestEvaluator:
    """The shared test evaluator: `episodes` full episodes of a greedy policy on a separate env instance.

    Every call resets with the same fixed seed, so every algorithm and every eval point is scored on the same
    episodes' initial conditions. Frames go to the evaluation ledger, never to the training budget.
    """

    def __init__(self, env_cfg: Any, episodes: int, seed: int, ledger: Ledger) -> None:
        self.episodes, self.seed, self.ledger = int(episodes), int(seed), ledger
        self.venv = CountedVecEnv(make_vector_env(env_cfg, self.episodes), int(env_cfg.frame_skip), ledger)

    def __call__(self, act: ActFn) -> TestResult:
        t0 = time.perf_counter()
        frames0 = self.ledger.frames
        n = self.episodes
        returns = np.zeros(n)
        lengths = np.zeros(n, dtype=np.int64)
        running = np.ones(n, dtype=bool)
        obs = self.venv.reset(seed=self.seed)
        while running.any():
            obs_next, reward, terminated, truncated, _, charged = self.venv.step(act(obs), running)
            returns[charged] += reward[charged]
            lengths[charged] += 1
            running &= ~(charged & (terminated | truncated))
            obs = obs_next
        return TestResult(returns, lengths, self.ledger.frames - frames0, time.perf_counter() - t0)

    def close(self) -> None:
        self.venv.close()
