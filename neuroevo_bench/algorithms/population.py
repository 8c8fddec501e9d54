"""What the population methods (GA, random search, ES) share: generations of compact individuals evaluated
by one population evaluator, charged to the training ledger, checkpointable mid-generation.

Each method decides what a generation evaluates and what it learns from the returns; this class runs the
bookkeeping around that: the generation in progress (so a checkpoint can finish it exactly after a resume),
progress lines and time-based checkpoints inside a long generation, a generation cut short by the budget
cap, and the frames that count as done.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from neuroevo_bench.algorithms import RunContext
from neuroevo_bench.config import TRAIN_SEED_LIMIT
from neuroevo_bench.envs import atari_episode_cap
from neuroevo_bench.evaluation import LocalEvaluator, PopulationEvaluator, PopulationResult
from neuroevo_bench.genome import Genome, Store
from neuroevo_bench.policies import Network

TICK_S = 0.25  # how often an evaluation's per-step callback does more than check for a stop request


@dataclass
class Generation:
    """A generation in progress: what a mid-generation checkpoint holds to finish it exactly after a resume."""

    seeds: tuple[int, int]  # env seeds of the population evaluation and of the elite validation (GA/RS)
    frames0: int  # the training ledger when the generation started
    steps0: int
    population: PopulationResult  # filled in place as episodes finish (NaN: not finished)
    validation: PopulationResult | None = None


def episode_frames_cap(env_cfg: Any, fitness_max_frames: int | None) -> int | None:
    """The most frames one fitness episode can last: the env's episode cap or the fitness cap, whichever is
    shorter; None when neither caps it."""
    if env_cfg.kind == "atari":
        return atari_episode_cap(env_cfg, fitness_max_frames)
    steps = (env_cfg.kwargs or {}).get("max_episode_steps", gym.registry[env_cfg.id].max_episode_steps)
    caps = [int(c) for c in (fitness_max_frames, None if steps is None else steps * env_cfg.frame_skip) if c]
    return min(caps) if caps else None


def make_evaluator(
    ctx: RunContext, net: Network, store: Store, slots: int, max_frames: int | None, shards: int = 1
) -> PopulationEvaluator:
    """The population evaluator named by the `evaluator` config group (local by default).

    Both evaluate the population as `shards` contiguous shards in the same way, so for one config they give
    identical results (see :mod:`neuroevo_bench.ray_evaluator`).
    """
    kind = (ctx.evaluator_cfg or {}).get("kind", "local")
    if kind == "ray":
        from neuroevo_bench.ray_evaluator import RayEvaluator

        return RayEvaluator(ctx.evaluator_cfg, ctx.env_cfg, net, store, slots, max_frames, shards)
    return LocalEvaluator(
        ctx.env_cfg,
        net,
        store,
        slots,
        max_frames,
        ctx.resources.env_threads,
        shards,
        str(ctx.resources.device),
        bool(ctx.resources.get("overlap", True)),
    )


class PopulationMethod:
    """The shared machinery; a subclass sets `net`, `store` and the sizes, then calls :meth:`_start`.

    Sizes: `n_new` individuals x `episodes` episodes are evaluated each generation, then (GA/RS) up to
    `n_candidates` elite candidates x `val_episodes` validation episodes.
    """

    name: str
    network: str
    n_new: int
    episodes: int
    n_candidates: int = 0
    val_episodes: int = 0
    rng: np.random.Generator  # the search's own generator (seeded from the run's seed by the subclass)
    population: list[Genome]  # the individuals the next (or running) generation evaluates

    def _start(
        self,
        ctx: RunContext,
        net: Network,
        store: Store,
        slots: int,
        shards: int,
        fitness_max_frames: int | None,
    ) -> None:
        self.ctx = ctx
        self.net, self.store = net, store
        self.network = net.describe()
        slots = min(int(slots), self.n_new * self.episodes)
        self.evaluator: PopulationEvaluator = make_evaluator(
            ctx, net, store, slots, fitness_max_frames, int(shards)
        )
        self.generation = 0
        self.last: dict[str, Any] = {}
        self.exhausted = False
        self.current: Generation | None = None  # the generation in progress, if any
        self.frame_skip = int(ctx.env_cfg.frame_skip)
        self._last_tick = time.perf_counter()
        self._since = (0, self._last_tick)  # (frames, time) the running generation's frames/s count from
        self._warn_if_budget_below_one_generation(fitness_max_frames)

    @property
    def untrained(self) -> bool:
        """True while no generation has completed: the test policy is then an untrained network."""
        return self.generation == 0

    def _warn_if_budget_below_one_generation(self, fitness_max_frames: int | None) -> None:
        """Say at the start when the budget holds one generation only if episodes end before their cap."""
        episode_cap = episode_frames_cap(self.ctx.env_cfg, fitness_max_frames)
        budget = self.ctx.ledger.cap
        episodes = self.n_new * self.episodes + self.n_candidates * self.val_episodes
        if episode_cap is None or budget is None or budget >= episodes * episode_cap:
            return
        validation = (
            f" + {self.n_candidates} elite candidates x {self.val_episodes}" if self.n_candidates else ""
        )
        print(
            f"note: one {self.name} generation takes up to {episodes * episode_cap:,} frames ({self.n_new} "
            f"individuals x {self.episodes} episodes{validation}, each up to {episode_cap:,} frames); "
            f"budget.frames={budget:,} completes one only if episodes end sooner. A run that completes none "
            "reports an untrained network (run.json: untrained=true).",
            flush=True,
        )

    def _env_seed(self, rng: np.random.Generator) -> int:
        return int(rng.integers(0, TRAIN_SEED_LIMIT))

    def _begin(self, seeds: tuple[int, int], population: PopulationResult) -> Generation:
        """The generation in progress: a new one with these seeds, or the one a checkpoint brought back."""
        if self.current is None:
            ledger = self.ctx.ledger
            self.current = Generation(seeds, ledger.frames, ledger.agent_steps, population)
        self._since = (self.frames_done()[0], time.perf_counter())
        return self.current

    def _end(self, fields: dict[str, float], shown: dict[str, float]) -> None:
        """A generation completed: count it, log `fields` against frames and print `shown` on a progress line."""
        ledger = self.ctx.ledger
        frames_start, t0 = self._since
        fps = (ledger.frames - frames_start) / max(time.perf_counter() - t0, 1e-9)
        self.generation += 1
        self.current = None
        self.ctx.log(
            ledger.frames, {f"generation/{k}": v for k, v in fields.items()} | {"generation/fps": fps}
        )
        self.ctx.progress(ledger.frames, **{"gen": self.generation, "fps": fps, **shown})

    def frames_done(self) -> tuple[int, int]:
        """Training (frames, agent steps) up to the last finished episode: the ledger as a checkpoint keeps it.

        Within a generation the ledger also holds the frames of episodes still running (or, for the local
        evaluator, nothing of the generation until an evaluation ends); an episode cut off by an interruption
        is played again from its start after a resume, so only finished episodes count.
        """
        g = self.current
        if g is None:
            return self.ctx.ledger.frames, self.ctx.ledger.agent_steps
        steps = int(g.population.lengths.sum()) + (
            0 if g.validation is None else int(g.validation.lengths.sum())
        )
        return g.frames0 + steps * self.frame_skip, g.steps0 + steps

    def _tick(self) -> bool:
        """Called at every env step of an evaluation: progress lines and time-based checkpoints inside a long
        generation (both throttled), and whether to stop (SIGINT/SIGTERM/SIGUSR2)."""
        now = time.perf_counter()
        if now - self._last_tick >= TICK_S:
            self._last_tick = now
            g = self.current
            assert g is not None
            done = [r for r in (g.population, g.validation) if r is not None]
            finished = sum(int(np.isfinite(r.returns).sum()) for r in done)
            candidates = self.n_candidates if g.validation is None else len(g.validation.returns)
            total = g.population.returns.size + candidates * self.val_episodes
            fitness = g.population.returns.mean(axis=1)  # NaN until an individual's episodes all finished
            best = float(np.nanmax(fitness)) if np.isfinite(fitness).any() else float("nan")
            frames, _ = self.frames_done()
            frames_start, t_start = self._since  # this process's share of the generation
            self.ctx.progress(
                frames,
                **{
                    "gen": f"{self.generation + 1} running",
                    "episodes": f"{finished}/{total}",
                    "fps": (frames - frames_start) / max(now - t_start, 1e-9),
                    "best fit so far": best,
                },
            )
            self.ctx.checkpoint_if_due()
        return self.ctx.stop.is_set()

    def _incomplete(self, where: str) -> bool:
        """An evaluation returned unfinished: stopped on request (keep the generation for the checkpoint), or
        cut short by the budget cap."""
        assert self.current is not None
        if not self.ctx.stop.is_set():
            self._cut_short(self.current.frames0, where)
            self.current = None
        return False

    def _cut_short(self, frames0: int, where: str) -> None:
        """Record that the budget cap stopped generation `self.generation` (0-based) before it completed.

        `generation` in the curve counts completed generations, so this row keeps that count; its population
        statistics are left empty rather than repeating the previous generation's; the test policy is
        unchanged.
        """
        self.exhausted = True
        self.last = {
            "generation_complete": False,
            "cut_short_generation": self.generation,
            "cut_short_in": where,
            "cut_short_frames": self.ctx.ledger.frames - frames0,
        }

    def step_generation(self) -> bool:
        raise NotImplementedError

    def _search_state(self) -> dict[str, Any]:
        """What every population method's checkpoint holds (a subclass adds what it learns): the generator, the
        individuals of the next or running generation, and that generation's finished episodes."""
        return {
            "rng": self.rng.bit_generator.state,
            "generation": self.generation,
            "population": self.population,
            "last": self.last,
            "exhausted": self.exhausted,
            "current": copy.deepcopy(self.current),
        }

    def _load_search_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.generation = state["generation"]
        self.population = state["population"]
        self.last = state["last"]
        self.exhausted = state["exhausted"]
        self.current = state["current"]

    # --- Algorithm protocol (the parts every population method shares) ---------------------------------------
    def train_until(self, frames: int) -> bool:
        while self.ctx.ledger.frames < frames and not self.exhausted and not self.ctx.stop.is_set():
            self.step_generation()
        return not self.exhausted

    def curve_stats(self) -> dict[str, Any]:
        return {"generation": self.generation, **{k: v for k, v in self.last.items() if k != "generation"}}

    def close(self) -> None:
        self.evaluator.close()
