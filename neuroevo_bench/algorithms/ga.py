"""Deep-neuroevolution genetic algorithm (Such et al. 2017, arXiv 1712.06567), vectorised over the population.

Two variants, chosen by `variant` (`algo.variant`); both charge every episode, validation ones included, to
the training budget, and both carry the elite into the next generation unchanged.

`such2017` (default): the paper's Algorithm 1 and its GPU code (uber-research/deep-neuroevolution,
`gpu_implementation/ga.py`). A generation evaluates N-1 new individuals (`episodes_per_fitness` episodes
each); the elite candidates are the top C of them in the first generation, then the previous elite plus the
top C-1 (C in all), re-evaluated on `elite_episodes` extra episodes, the best becoming the elite; the T
parents are the elite plus the best others by fitness; the next N-1 children are a uniformly chosen parent
plus sigma * N(0, I), and the elite (not re-evaluated in the population) makes the population N.

`chopra`: P. Chopra's notebook (paraschopra/deepneuroevolution, 2019), what this harness did before. All N
individuals are evaluated, the elite among them; the candidates are the top C plus the previous elite when it
is not among them (C+1 validations); the T parents are the top T by fitness alone.

Individuals are compact genomes (see :mod:`neuroevo_bench.genome`). With `truncation: 0` there are no
parents: every generation samples fresh networks and the best so far is kept and re-validated like the
elite, which is random search (:mod:`neuroevo_bench.algorithms.random_search`).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from neuroevo_bench.algorithms import ActFn, RunContext
from neuroevo_bench.config import GA_VARIANTS, TRAIN_SEED_LIMIT
from neuroevo_bench.envs import atari_episode_cap
from neuroevo_bench.evaluation import LocalEvaluator, PopulationEvaluator, PopulationResult, unfinished
from neuroevo_bench.genome import Genome, NoiseTable, ParamStore
from neuroevo_bench.policies import Network, flat_policy, make_network, network_from_spec, network_spec
from neuroevo_bench.records import read_json, write_json

CHAMPION_JSON = "champion.json"


TICK_S = 0.25  # how often an evaluation's per-step callback does more than check for a stop request


@dataclass
class Generation:
    """A generation in progress: what a mid-generation checkpoint holds to finish it exactly after a resume."""

    seeds: tuple[int, int]  # env seeds of the population evaluation and of the elite validation
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
    ctx: RunContext, net: Network, store: ParamStore, slots: int, max_frames: int | None, shards: int = 1
):
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
    )


class GeneticAlgorithm:
    def __init__(
        self,
        ctx: RunContext,
        name: str = "ga",
        variant: str = "such2017",
        population: int = 500,
        truncation: int = 20,
        mutation_power: float = 0.02,
        episodes_per_fitness: int = 3,
        elite_candidates: int = 10,
        elite_episodes: int = 5,
        fitness_max_frames: int | None = None,
        slots: int = 512,
        shards: int = 1,
        noise_table_size: int = 2**22,
        noise_seed: int | None = None,
        network: Any = None,
    ) -> None:
        if variant not in GA_VARIANTS:
            raise ValueError(f"algo.variant={variant!r} is invalid; valid: {', '.join(GA_VARIANTS)}")
        self.ctx = ctx
        self.name = name
        self.paper = variant == "such2017"
        self.n, self.t = int(population), int(truncation)
        self.sigma = float(mutation_power)
        self.episodes, self.n_candidates, self.val_episodes = (
            int(episodes_per_fitness),
            int(elite_candidates),
            int(elite_episodes),
        )
        self.net = make_network(network, ctx.env_info.observation_space, ctx.env_info.action_space)
        self.network = self.net.describe()
        self.noise_seed = int(ctx.seed if noise_seed is None else noise_seed)
        self.noise = NoiseTable(self.noise_seed, int(noise_table_size), self.net.n_params)
        self.store = ParamStore(self.noise, self.net.init_scale(), self.sigma)
        # The individuals evaluated each generation: N-1 new ones (such2017; the elite makes N), or all N.
        self.n_new = self.n - 1 if self.paper else self.n
        slots = min(int(slots), self.n_new * self.episodes)
        self.evaluator: PopulationEvaluator = make_evaluator(
            ctx, self.net, self.store, slots, fitness_max_frames, int(shards)
        )
        self.rng = np.random.default_rng(np.random.SeedSequence([int(ctx.seed), 0x6A]))
        self.generation = 0
        self.population: list[Genome] = self._fresh(self.n_new)
        self.elite: Genome | None = None
        self.elite_score = float("nan")
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
        print(
            f"note: one {self.name} generation takes up to {episodes * episode_cap:,} frames ({self.n_new} "
            f"individuals x {self.episodes} episodes + {self.n_candidates} elite candidates x "
            f"{self.val_episodes}, each up to {episode_cap:,} frames); budget.frames={budget:,} completes one "
            "only if episodes end sooner. A run that completes none reports an untrained network "
            "(run.json: untrained=true).",
            flush=True,
        )

    # --- one generation -------------------------------------------------------------------------------
    def _fresh(self, k: int) -> list[Genome]:
        return [(int(o),) for o in self.noise.sample_offsets(self.rng, k)]

    def _env_seed(self) -> int:
        return int(self.rng.integers(0, TRAIN_SEED_LIMIT))

    def _candidates(self, order: np.ndarray) -> list[int]:
        """Elite candidates as indices into the population, -1 standing for the previous elite."""
        top = [int(i) for i in order[: self.n_candidates]]
        if self.elite is None:
            return top  # first generation (both variants): the top C
        if self.paper:
            return [-1, *top[: self.n_candidates - 1]]  # the previous elite plus the top C-1
        in_population = [i for i in top if self.population[i] == self.elite]
        return top if in_population else [*top, -1]  # chopra: the top C, plus the elite if not among them

    def step_generation(self) -> bool:
        """Run one generation, or finish the one in progress (resumed from a mid-generation checkpoint).

        False if it did not complete: the budget cap cut it short (then nothing is updated and training ends),
        or the run was asked to stop (then `self.current` keeps every finished episode, for the checkpoint).
        """
        ledger = self.ctx.ledger
        if self.current is None:
            seeds = (self._env_seed(), self._env_seed())  # population evaluation, elite validation
            self.current = Generation(
                seeds, ledger.frames, ledger.agent_steps, unfinished(self.n_new, self.episodes)
            )
        g = self.current
        t0, frames_start = time.perf_counter(), self.frames_done()[0]
        self._since = (frames_start, t0)
        res = self.evaluator.evaluate(
            self.population, self.episodes, g.seeds[0], ledger, g.population, self._tick
        )
        if not res.complete:
            return self._incomplete("population evaluation")
        fitness = res.fitness
        order = np.argsort(-fitness, kind="stable")
        candidates = self._candidates(order)
        genomes = [self.elite if i < 0 else self.population[i] for i in candidates]
        if g.validation is None:
            g.validation = unfinished(len(genomes), self.val_episodes)
        val = self.evaluator.evaluate(
            genomes, self.val_episodes, g.seeds[1], ledger, g.validation, self._tick
        )
        if not val.complete:
            return self._incomplete("elite validation")
        best = int(np.argmax(val.fitness))  # ties go to the first (such2017: the previous elite)
        assert genomes[best] is not None
        self.elite, self.elite_score = genomes[best], float(val.fitness[best])
        self.last = {
            "generation": self.generation,
            "generation_frames": ledger.frames - g.frames0,
            "fitness_max": float(fitness.max()),
            "fitness_mean": float(fitness.mean()),
            "fitness_median": float(np.median(fitness)),
            "elite_score": self.elite_score,
            "elite_candidates": len(candidates),
            "generation_complete": True,
        }
        self.population = self._next_population(order, elite_index=candidates[best])
        self.generation += 1
        self.current = None
        fps = (ledger.frames - frames_start) / max(time.perf_counter() - t0, 1e-9)
        fields = ("fitness_max", "fitness_mean", "fitness_median", "elite_score", "generation_frames")
        self.ctx.log(
            ledger.frames, {f"generation/{k}": self.last[k] for k in fields} | {"generation/fps": fps}
        )
        self.ctx.progress(
            ledger.frames,
            **{
                "gen": self.generation,
                "fps": fps,
                "fit max": self.last["fitness_max"],
                "fit mean": self.last["fitness_mean"],
                "elite": self.elite_score,
            },
        )
        return True

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

    def parents(self, order: np.ndarray, elite_index: int) -> list[Genome]:
        """The T parents of the next generation.

        such2017: `[elite] + (the population by fitness, without the elite)`, cut to T, so the elite is always
        a parent (`elite_index` is its place in the population, -1 when the previous elite stayed elite).
        chopra: the top T by fitness, with or without the elite.
        """
        if not self.paper:
            return [self.population[i] for i in order[: self.t]]
        assert self.elite is not None
        others = [self.population[i] for i in order if i != elite_index]
        return [self.elite, *others[: self.t - 1]]

    def _next_population(self, order: np.ndarray, elite_index: int) -> list[Genome]:
        """The individuals the next generation evaluates: such2017 N-1 new ones (the elite carries over beside
        them, unevaluated); chopra the unchanged elite followed by N-1 new ones."""
        k = self.n - 1
        if self.t == 0:  # random search: fresh networks; the best so far is kept as self.elite
            return self._fresh(self.n_new)
        parents = self.parents(order, elite_index)
        choice = self.rng.integers(0, len(parents), size=k)
        offsets = self.noise.sample_offsets(self.rng, k)
        children = [(*parents[p], int(o)) for p, o in zip(choice, offsets, strict=True)]
        assert self.elite is not None
        return children if self.paper else [self.elite, *children]

    def _cut_short(self, frames0: int, where: str) -> None:
        """Record that the budget cap stopped generation `self.generation` (0-based) before it completed.

        `generation` in the curve counts completed generations, so this row keeps that count; its population
        statistics are left empty rather than repeating the previous generation's; the elite (the test
        policy) is unchanged.
        """
        self.exhausted = True
        self.last = {
            "elite_score": self.elite_score,
            "generation_complete": False,
            "cut_short_generation": self.generation,
            "cut_short_in": where,
            "cut_short_frames": self.ctx.ledger.frames - frames0,
        }

    # --- Algorithm protocol -----------------------------------------------------------------------------
    def train_until(self, frames: int) -> bool:
        while self.ctx.ledger.frames < frames and not self.exhausted and not self.ctx.stop.is_set():
            self.step_generation()
        return not self.exhausted

    def champion(self) -> Genome:
        """The elite; before the first generation completes, the first individual (an untrained network)."""
        return self.elite if self.elite is not None else self.population[0]

    def policy(self) -> ActFn:
        return flat_policy(self.net, self.store.rebuild(self.champion()))

    def curve_stats(self) -> dict[str, Any]:
        return {"generation": self.generation, **{k: v for k, v in self.last.items() if k != "generation"}}

    def save_policy(self, run_dir: Path) -> None:
        write_json(
            Path(run_dir) / CHAMPION_JSON,
            {
                "genome": list(self.champion()),
                "elite_score": self.elite_score,
                "generation": self.generation,
                "noise_seed": self.noise_seed,
                "noise_table_size": self.noise.size,
                "mutation_power": self.sigma,
                "network": network_spec(self.net),
            },
        )

    def state_dict(self) -> dict[str, Any]:
        """Everything to continue bit-identically, mid-generation too: the generation in progress keeps its
        seeds and its finished episodes (the runner's checkpoint counts only those: :meth:`frames_done`)."""
        return {
            "rng": self.rng.bit_generator.state,
            "generation": self.generation,
            "population": self.population,
            "elite": self.elite,
            "elite_score": self.elite_score,
            "last": self.last,
            "exhausted": self.exhausted,
            "current": copy.deepcopy(self.current),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.generation = state["generation"]
        self.population = state["population"]
        self.elite = state["elite"]
        self.elite_score = state["elite_score"]
        self.last = state["last"]
        self.exhausted = state["exhausted"]
        self.current = state["current"]

    def close(self) -> None:
        self.evaluator.close()


def load_champion(run_dir: Path) -> tuple[Network, torch.Tensor]:
    """Rebuild the saved champion's network and parameters from its compact genome."""
    c = read_json(Path(run_dir) / CHAMPION_JSON)
    net = network_from_spec(c["network"])
    store = ParamStore(
        NoiseTable(c["noise_seed"], c["noise_table_size"], net.n_params),
        net.init_scale(),
        c["mutation_power"],
    )
    return net, store.rebuild(tuple(c["genome"]))


def load_policy(run_dir: Path) -> ActFn:
    net, theta = load_champion(run_dir)
    return flat_policy(net, theta)
