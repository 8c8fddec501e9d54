"""Population evaluation (slot-based, vectorised) and the one test evaluator shared by every algorithm.

Population evaluation keeps a fixed number of slots busy: each slot is one sub-env of a vector env, fed
from a queue of (individual, episode) tasks; the moment a slot's episode ends it takes the next task. The
slots of a group act in one batched forward pass per env step (the episodes of one individual share its
weights); on Atari two groups take turns so that one group's emulators step (and reseed, see
:func:`run_slots`) in ale_py's C++ threads while the network computes the other's actions. Every step goes
through
:class:`~neuroevo_bench.envs.CountedVecEnv`, which charges the frames.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from neuroevo_bench.config import TRAIN_SEED_LIMIT, ConfigError
from neuroevo_bench.envs import CountedVecEnv, Ledger, make_vector_env
from neuroevo_bench.genome import Genome, Plan, Store
from neuroevo_bench.policies import Network, RowWeights

ActFn = Callable[[np.ndarray], np.ndarray]

# How long a group sits out while its sub-envs reseed, in steps of the other groups per sub-env reset: ale_py
# reloads the ROM to reseed a sub-env, ~120 ms on this project's CPU (Pong), while a group's step at the Atari
# defaults takes ~10-17 ms. A count, never a clock, so that the order of steps (and so where a budget cap
# cuts a generation) is the same on every machine; a reset still running when its group's turn comes is
# waited for.
RESET_STEPS = 8


@dataclass
class PopulationResult:
    """Returns of a population evaluation.

    returns: (N, episodes) float64, NaN where the episode did not finish (budget cap reached).
    lengths: (N, episodes) int64 agent steps of each finished episode (0 if unfinished).
    obs_moments: (N, episodes, 2, obs_dim) float64 or None: per episode, the sum of the observations acted
        on and the sum of their squares (ES's observation normaliser learns from them); None: not collected.
    """

    returns: np.ndarray
    lengths: np.ndarray
    frames: int
    agent_steps: int
    complete: bool
    obs_moments: np.ndarray | None = None

    @property
    def fitness(self) -> np.ndarray:
        """Mean return per individual, NaN for any individual with an unfinished episode."""
        return self.returns.mean(axis=1)


class PopulationEvaluator(Protocol):
    """What GA and random search need: fitness for a list of compact genomes, frames charged to the ledger.

    `partial` (an unfinished result for the same genomes, episodes and seed, e.g. from :func:`unfinished`) is
    filled in place, playing only the episodes still missing: a generation resumed from a checkpoint, and one
    whose progress can be checkpointed while it runs. `stop` is called every env step (the caller
    also uses it for progress lines and checkpoints); True interrupts the evaluation, which then returns what
    finished so far with `complete=False`.
    """

    def evaluate(
        self,
        genomes: Sequence[Genome],
        episodes: int,
        seed: int,
        ledger: Ledger,
        partial: PopulationResult | None = None,
        stop: Callable[[], bool] = ...,
    ) -> PopulationResult: ...

    def close(self) -> None: ...


def unfinished(n: int, episodes: int, obs_dim: int | None = None) -> PopulationResult:
    """A result to fill in: `n` individuals x `episodes` episodes, none played yet (NaN returns, 0 lengths);
    with `obs_dim`, the evaluation also sums each episode's observations (`obs_moments`)."""
    moments = None if obs_dim is None else np.zeros((n, episodes, 2, obs_dim))
    return PopulationResult(
        np.full((n, episodes), np.nan), np.zeros((n, episodes), dtype=np.int64), 0, 0, False, moments
    )


def task_seeds(seed: int, tasks: np.ndarray) -> np.ndarray:
    """Env seed of each task: task t (individual * episodes + episode, counted over the whole population) of an
    evaluation with seed s starts from seed s + t, below TRAIN_SEED_LIMIT, so no training episode reuses a test
    seed. It depends on the task alone, never on the slot, shard or worker that plays it."""
    return (int(seed) + np.asarray(tasks, dtype=np.int64)) % TRAIN_SEED_LIMIT


class SlotGroup:
    """Slots that step together: one vector env (its sub-envs are the slots), the weight rows of the
    individuals its slots play, and each slot's episode in progress (see :func:`run_slots`)."""

    def __init__(self, venv: CountedVecEnv, weights: RowWeights, n_individuals: int, lanes: int) -> None:
        n_slots, n_rows = venv.num_envs, weights.rows
        if n_rows < n_slots + 1:
            raise ValueError(f"need at least {n_slots + 1} weight rows for {n_slots} slots, got {n_rows}")
        self.venv, self.weights, self.lanes = venv, weights, lanes
        self.slot_task = np.full(n_slots, -1, dtype=np.int64)  # -1 = idle
        self.slot_row = np.zeros(n_slots, dtype=np.int64)
        self.ret = np.zeros(n_slots)
        self.steps = np.zeros(n_slots, dtype=np.int64)
        self.row_free = np.ones(n_rows, dtype=bool)
        self.row_users = np.zeros(n_rows, dtype=np.int64)  # slots playing the row's individual
        self.row_individual = np.full(n_rows, -1, dtype=np.int64)
        self.row_of = np.full(n_individuals, -1, dtype=np.int64)
        self.hi = 0  # rows [0, hi) hold every row in use
        # an unseeded reset of every sub-env: AtariVectorEnv takes partial (seeded) resets only after a full one
        self.obs = venv.reset()
        self.x = np.zeros((0, lanes, *self.obs.shape[1:]), dtype=self.obs.dtype)  # the network's input
        self.in_flight = 0  # agent steps sent to the env and not received yet
        self.reset: Future[np.ndarray] | None = None  # a reseeding of some sub-envs running in a thread
        self.ready_at = 0  # the step count (run_slots' `clock`) at which that reset is taken to be done

    def act(self) -> np.ndarray:
        """Actions of every slot from one batched forward pass over rows [0, hi), a row's lanes being the
        episodes of its individual (an idle slot gets row 0, lane 0's action: its step is not charged)."""
        active = self.slot_task >= 0
        if self.x.shape[0] != self.hi:
            self.x = np.zeros((self.hi, self.lanes, *self.obs.shape[1:]), dtype=self.obs.dtype)
        lane = np.where(active, self.slot_task % self.lanes, 0)
        row = np.where(active, self.slot_row, 0)
        self.x[row[active], lane[active]] = self.obs[active]
        return self.weights.act(self.x, self.hi, row, lane)


def run_slots(
    groups: Sequence[tuple[CountedVecEnv, RowWeights]],
    build: Callable[[np.ndarray], torch.Tensor],
    returns: np.ndarray,
    lengths: np.ndarray,
    seed: int,
    stop: Callable[[], bool] = lambda: False,
    moments: np.ndarray | None = None,
) -> bool:
    """Play the unfinished episodes of `returns` / `lengths` ((n_individuals, episodes), NaN / 0 where not
    played yet; filled in place) through the sub-envs ("slots") of the groups' vector envs.

    Tasks (individual, episode) are taken in order, individual-major, skipping those already finished (a
    generation resumed from a checkpoint). A slot takes the next task the moment its episode ends and starts
    it from the task's own seed (:func:`task_seeds`; `seed` is the seed of task 0 of this call), so a task's
    episode is the same whichever slot or group plays it. The network of an individual lives in one row of
    its group's weights while any of its episodes runs there, and the slots running its episodes are the
    lanes of that row: one batched forward pass over rows serves a group's slots, and the episodes of one
    individual share their weights. `build(individuals)` gives their flat parameters (k, P).

    With several groups, each group's actions are computed while the previous group's env step is in flight
    (:meth:`CountedVecEnv.send` returns at once and ale_py steps the sub-envs in its C++ threads until
    `recv`): the emulators and the network work at the same time instead of taking turns. The seeded resets
    of a group's refilled slots run in a thread too (ale_py reloads the ROM to reseed, releasing the GIL):
    the group sits out RESET_STEPS steps of the others per sub-env it reseeds, counted on `clock` (steps
    sent), and takes its observations when its turn comes after that, or at once when no other group can
    step. A task plays the same episode with the same arithmetic in any group, so the returns are those of
    one group; frames are charged when a step is received, to the one ledger all groups share.

    Stops before a step that could take the ledger past its cap (counting the steps still in flight), or
    when `stop()` (checked before every step) says so; steps in flight are then received and charged and the
    episodes they finish recorded; an episode cut off is not recorded. `moments` ((n_individuals, episodes,
    2, obs_dim) or None), if given, receives each episode's sum of observations and of their squares, in
    step order (so, like the returns, independent of the slot). Returns True when every episode finished.
    """
    n_individuals, lanes = returns.shape
    ledger, skip = groups[0][0].ledger, groups[0][0].frame_skip
    if any(venv.ledger is not ledger for venv, _ in groups):
        raise ValueError("every group must charge the same ledger")
    todo = np.flatnonzero(np.isnan(returns.ravel()))  # task = individual * lanes + episode
    undispatched = np.bincount(todo // lanes, minlength=n_individuals)  # tasks not given to a slot yet
    next_todo = 0
    clock = 0  # group steps sent so far: the (machine-independent) time of the schedule
    state = [SlotGroup(venv, weights, n_individuals, lanes) for venv, weights in groups]
    resetter = ThreadPoolExecutor(len(state)) if len(state) > 1 else None

    def release(g: SlotGroup) -> None:
        """Free the rows that no slot of `g` plays and whose individual has no task left to give out (the
        individual at the head of the queue keeps its row: its next task may come to this group)."""
        done = ~g.row_free & (g.row_users == 0)
        done[done] = undispatched[g.row_individual[done]] == 0
        if done.any():
            g.row_of[g.row_individual[done]] = -1
            g.row_individual[done] = -1
            g.row_free[done] = True
            used = np.flatnonzero(~g.row_free)
            g.hi = int(used[-1]) + 1 if len(used) else 0

    def assign(g: SlotGroup, slots: np.ndarray) -> None:
        """Give `slots` of `g` the next tasks (idle when none is left): their individuals' networks into rows,
        their sub-envs reset from the tasks' seeds."""
        nonlocal next_todo
        release(g)  # first, so that the rows of finished individuals take the new ones
        k = min(len(slots), len(todo) - next_todo)
        g.slot_task[slots[k:]] = -1
        if k <= 0:
            return
        tasks = todo[next_todo : next_todo + k]
        next_todo += k
        individuals = tasks // lanes
        np.subtract.at(undispatched, individuals, 1)
        new = np.unique(individuals[g.row_of[individuals] < 0])  # tasks come in order: each loads once
        if len(new):
            rows = np.flatnonzero(g.row_free)[: len(new)]  # lowest free rows keep [0, hi) dense
            g.row_free[rows] = False
            g.row_of[new] = rows
            g.row_individual[rows] = new
            step = g.weights.load_chunk  # a few MB at a time: the build's temporaries stay in cache
            for i in range(0, len(new), step):
                g.weights.load(rows[i : i + step], build(new[i : i + step]))
            g.hi = max(g.hi, int(rows[-1]) + 1)
        chosen = slots[:k]
        g.slot_task[chosen] = tasks
        g.slot_row[chosen] = g.row_of[individuals]
        np.add.at(g.row_users, g.slot_row[chosen], 1)
        g.ret[chosen] = 0.0
        g.steps[chosen] = 0
        if moments is not None:  # an episode cut off before a checkpoint starts again from nothing
            moments[individuals, tasks % lanes] = 0.0
        mask = np.zeros(len(g.slot_task), dtype=bool)
        mask[chosen] = True
        seeds = np.zeros(len(g.slot_task), dtype=np.int64)
        seeds[chosen] = task_seeds(seed, tasks)
        if resetter is None:
            g.obs = g.venv.reset_slots(mask, seeds)
        else:
            g.reset = resetter.submit(g.venv.reset_slots, mask, seeds)
            g.ready_at = clock + RESET_STEPS * k
        for h in state:  # the head individual's row in a group that its last task did not go to
            release(h)

    def receive(g: SlotGroup, refill: bool) -> None:
        """The group's step in flight: charged on receipt; the episodes it ended recorded, their slots
        refilled (or left idle when stopping)."""
        obs, reward, terminated, truncated, _, charged = g.venv.recv()
        g.in_flight = 0
        g.obs = obs
        g.ret[charged] += reward[charged]
        g.steps[charged] += 1
        finished = np.flatnonzero(charged & (terminated | truncated))
        if len(finished) == 0:
            return
        t = g.slot_task[finished]
        returns[t // lanes, t % lanes] = g.ret[finished]
        lengths[t // lanes, t % lanes] = g.steps[finished]
        np.subtract.at(g.row_users, g.slot_row[finished], 1)
        g.slot_task[finished] = -1
        if refill:
            assign(g, finished)

    def take_reset(g: SlotGroup) -> None:
        """The observations of `g`'s reseeded sub-envs, waiting for them if need be."""
        nonlocal clock
        assert g.reset is not None
        g.obs, g.reset = g.reset.result(), None
        clock = max(clock, g.ready_at)

    def others_can_step(g: SlotGroup) -> bool:
        return any(h is not g and h.reset is None and (h.slot_task >= 0).any() for h in state)

    try:
        for g in state:
            assign(g, np.arange(len(g.slot_task)))
        stopping = False
        i = 0
        while True:
            g = state[i]
            if g.reset is not None and (clock >= g.ready_at or not others_can_step(g)):
                take_reset(g)
            active = g.slot_task >= 0
            n_active = int(active.sum())
            if n_active and g.reset is None and not stopping:
                in_flight = sum(h.in_flight for h in state)
                if stop() or (
                    ledger.cap is not None and ledger.frames + (in_flight + n_active) * skip > ledger.cap
                ):
                    stopping = True
                else:
                    actions = g.act()
                    if moments is not None:
                        t = g.slot_task[active]
                        o = g.obs[active].astype(np.float64)
                        moments[t // lanes, t % lanes, 0] += o
                        moments[t // lanes, t % lanes, 1] += o * o
                    g.venv.send(actions, active)
                    g.in_flight = n_active
                    clock += 1
            i = (i + 1) % len(state)
            if state[i].in_flight:  # the group sent longest ago (with one group: the one just sent)
                receive(state[i], refill=not stopping)
            if not any(h.in_flight for h in state):
                if stopping:
                    return False
                if not any((h.slot_task >= 0).any() for h in state):
                    return True
    finally:
        if resetter is not None:  # a reset still running finishes before its env is used or closed
            resetter.shutdown(wait=True)


@dataclass
class ShardResult:
    """One shard's evaluation (all that a remote worker sends back); fields as in :class:`PopulationResult`.

    `frames` and `agent_steps` were counted by the shard's own :class:`~neuroevo_bench.envs.CountedVecEnv`
    on a per-shard ledger; :func:`merge_shards` adds them to the training ledger.
    """

    returns: np.ndarray
    lengths: np.ndarray
    frames: int
    agent_steps: int
    complete: bool
    obs_moments: np.ndarray | None = None


def check_shards(shards: Any) -> None:
    """The shard count both evaluators take (also checked with the config; evaluators can be built directly)."""
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise ConfigError(f"algo.shards={shards!r} is invalid: it must be a positive integer")


def shard_bounds(n: int, shards: int) -> list[tuple[int, int]]:
    """`[lo, hi)` of each of `shards` contiguous parts of a population of `n` (larger parts first).

    Contiguous, in population order, so that which individual lands in which shard depends only on (n,
    shards): the local and the Ray evaluator cut a population identically. Parts may be empty when n <
    shards (e.g. the elite candidates).
    """
    q, r = divmod(int(n), int(shards))
    bounds, lo = [], 0
    for i in range(int(shards)):
        hi = lo + q + (1 if i < r else 0)
        bounds.append((lo, hi))
        lo = hi
    return bounds


def shard_caps(remaining: int | None, shards: int) -> list[int | None]:
    """Each shard's frame cap: its share of the ledger's remaining budget, the remainder to the first shards.

    The shares sum to the remaining budget, so shards run independently (one after another here, at once on
    Ray workers) can never together take the ledger past its cap, and where each shard stops depends on
    that shard alone: a generation that the budget cuts short is cut identically on both paths.
    """
    if remaining is None:
        return [None] * int(shards)
    q, r = divmod(max(int(remaining), 0), int(shards))
    return [q + (1 if i < r else 0) for i in range(int(shards))]


def resumed_caps(
    ledger: Ledger, result: PopulationResult, bounds: Sequence[tuple[int, int]], frame_skip: int
) -> list[int | None]:
    """Each shard's frame cap for (the rest of) an evaluation: its share of the budget that remained when the
    evaluation started, less what its finished episodes used. For a fresh evaluation that is
    :func:`shard_caps` of the remaining budget; for one resumed from a checkpoint (whose ledger counts its
    finished episodes) every shard gets exactly the cap it had in the uninterrupted run."""
    used = [frame_skip * int(result.lengths[lo:hi].sum()) for lo, hi in bounds]
    remaining = ledger.remaining()
    caps = shard_caps(None if remaining is None else remaining + sum(used), len(bounds))
    return [None if cap is None else cap - u for cap, u in zip(caps, used, strict=True)]


def shard_seed(seed: int, first_task: int) -> int:
    """The seed a shard's evaluation starts from: that of its first task, so that every task keeps the seed it
    has in the unsharded evaluation (:func:`task_seeds`; a shard of individuals [lo, hi) starts at task
    lo * episodes)."""
    return int(task_seeds(seed, np.array([first_task]))[0])


def merge_shards(
    parts: Sequence[ShardResult], bounds: Sequence[tuple[int, int]], result: PopulationResult, ledger: Ledger
) -> PopulationResult:
    """Put shard results (individuals [lo, hi) each) into `result` and charge their frames to `ledger`.

    The frames were counted by each shard's CountedVecEnv on its own ledger (in this process or on a Ray
    worker); this is the one place where such counts are added to the training ledger.
    """
    for part, (lo, hi) in zip(parts, bounds, strict=True):
        result.returns[lo:hi], result.lengths[lo:hi] = part.returns, part.lengths
        if result.obs_moments is not None and part.obs_moments is not None:
            result.obs_moments[lo:hi] = part.obs_moments
    frames = sum(p.frames for p in parts)
    agent_steps = sum(p.agent_steps for p in parts)
    ledger.frames += frames
    ledger.agent_steps += agent_steps
    return PopulationResult(
        result.returns,
        result.lengths,
        frames,
        agent_steps,
        all(p.complete for p in parts),
        result.obs_moments,
    )


class LocalEvaluator:
    """Evaluates a population in this process on vector envs of `slots` sub-envs in all.

    With `shards` > 1 the population is evaluated as that many contiguous shards, one after another, each
    reset with its own seed and capped at its share of the remaining budget (see :func:`shard_caps`):
    exactly what :class:`~neuroevo_bench.ray_evaluator.RayEvaluator` does with the shards on remote
    workers, so both give bit-identical results for the same config. With 1 shard it is the plain
    evaluation of the whole population.

    With `overlap` (`resources.overlap`) on Atari the slots form two groups, each its own `AtariVectorEnv`
    with `env_threads` C++ threads, and one group's envs step while the network computes the other group's
    actions (:func:`run_slots`): same tasks, seeds and arithmetic, so the same results, sooner. Other envs
    step in this thread (gymnasium's vector envs): there is nothing to overlap, so they keep one group.
    """

    def __init__(
        self,
        env_cfg: Any,
        net: Network,
        store: Store,
        slots: int,
        max_episode_frames: int | None = None,
        env_threads: int = 0,
        shards: int = 1,
        device: str = "cpu",
        overlap: bool = True,
    ) -> None:
        check_shards(shards)
        self.net, self.store = net, store
        self.shards = shards
        self.slots = int(slots)
        groups = 2 if overlap and env_cfg.kind == "atari" and self.slots >= 2 else 1
        sizes = [len(part) for part in np.array_split(np.arange(self.slots), groups)]
        self.envs = [
            make_vector_env(env_cfg, n, max_episode_frames=max_episode_frames, num_threads=env_threads)
            for n in sizes
        ]
        self.frame_skip = int(env_cfg.frame_skip)
        self.weights = [RowWeights(net, n + 1, device) for n in sizes]

    def evaluate(
        self,
        genomes: Sequence[Genome],
        episodes: int,
        seed: int,
        ledger: Ledger,
        partial: PopulationResult | None = None,
        stop: Callable[[], bool] = lambda: False,
    ) -> PopulationResult:
        plan = self.store.plan(genomes)
        result = unfinished(len(genomes), episodes) if partial is None else partial
        bounds = shard_bounds(len(genomes), self.shards)
        caps = resumed_caps(ledger, result, bounds, self.frame_skip)
        parts = []
        for i, (lo, hi) in enumerate(bounds):
            returns, lengths = result.returns[lo:hi], result.lengths[lo:hi]  # views: filled in place
            moments = None if result.obs_moments is None else result.obs_moments[lo:hi]
            seed_i = shard_seed(seed, lo * episodes)
            parts.append(self._run(plan, lo, returns, lengths, seed_i, caps[i], stop, moments))
        return merge_shards(parts, bounds, result, ledger)

    def evaluate_shard(
        self, genomes: Sequence[Genome], episodes: int, seed: int, cap: int | None, obs_dim: int | None = None
    ) -> ShardResult:
        """One shard on its own, with its seed and frame cap given (what a Ray worker runs)."""
        r = unfinished(len(genomes), episodes, obs_dim)
        return self._run(self.store.plan(genomes), 0, r.returns, r.lengths, seed, cap, moments=r.obs_moments)

    def _run(
        self,
        plan: Plan,
        lo: int,
        returns: np.ndarray,
        lengths: np.ndarray,
        seed: int,
        cap: int | None,
        stop: Callable[[], bool] = lambda: False,
        moments: np.ndarray | None = None,
    ) -> ShardResult:
        """Individuals lo, lo+1, ... of `plan` (as many as `returns` has rows), counted on a fresh ledger capped
        at `cap`; their unfinished episodes are played into `returns` / `lengths` in place. Nothing is played
        (not even the env reset) once `stop()` says so: an interrupted evaluation starts no further shard."""
        shard_ledger = Ledger(cap=cap)
        complete = not np.isnan(returns).any()
        if not complete and not stop():
            groups = [
                (CountedVecEnv(env, self.frame_skip, shard_ledger), weights)
                for env, weights in zip(self.envs, self.weights, strict=True)
            ]

            def build(individuals: np.ndarray) -> torch.Tensor:
                return self.store.build(plan, individuals + lo)

            with torch.no_grad():
                complete = run_slots(groups, build, returns, lengths, seed, stop, moments)
        return ShardResult(returns, lengths, shard_ledger.frames, shard_ledger.agent_steps, complete, moments)

    def close(self) -> None:
        for env in self.envs:
            env.close()


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

    def __call__(self, act: ActFn, stop: Callable[[], bool] = lambda: False) -> TestResult | None:
        """The episodes' returns; None (and nothing counted) when `stop()`, checked every step, cuts it off."""
        t0 = time.perf_counter()
        frames0 = self.ledger.frames
        n = self.episodes
        returns = np.zeros(n)
        lengths = np.zeros(n, dtype=np.int64)
        running = np.ones(n, dtype=bool)
        obs = self.venv.reset(seed=self.seed)
        while running.any():
            if stop():
                self.ledger.frames = frames0
                return None
            obs_next, reward, terminated, truncated, _, charged = self.venv.step(act(obs), running)
            returns[charged] += reward[charged]
            lengths[charged] += 1
            running &= ~(charged & (terminated | truncated))
            obs = obs_next
        return TestResult(returns, lengths, self.ledger.frames - frames0, time.perf_counter() - t0)

    def close(self) -> None:
        self.venv.close()
