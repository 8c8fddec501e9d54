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

from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuroevo_bench.algorithms import ActFn, RunContext
from neuroevo_bench.algorithms.population import PopulationMethod
from neuroevo_bench.config import GA_VARIANTS
from neuroevo_bench.evaluation import unfinished
from neuroevo_bench.genome import Genome, NoiseTable, ParamStore
from neuroevo_bench.policies import Network, flat_policy, make_network, network_from_spec, network_spec
from neuroevo_bench.records import read_json, write_json

CHAMPION_JSON = "champion.json"


class GeneticAlgorithm(PopulationMethod):
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
        self.name = name
        self.paper = variant == "such2017"
        self.n, self.t = int(population), int(truncation)
        self.sigma = float(mutation_power)
        self.episodes, self.n_candidates, self.val_episodes = (
            int(episodes_per_fitness),
            int(elite_candidates),
            int(elite_episodes),
        )
        # The individuals evaluated each generation: N-1 new ones (such2017; the elite makes N), or all N.
        self.n_new = self.n - 1 if self.paper else self.n
        net = make_network(network, ctx.env_info.observation_space, ctx.env_info.action_space)
        self.noise_seed = int(ctx.seed if noise_seed is None else noise_seed)
        self.noise = NoiseTable(self.noise_seed, int(noise_table_size), net.n_params)
        self._start(
            ctx, net, ParamStore(self.noise, net.init_scale(), self.sigma), slots, shards, fitness_max_frames
        )
        self.rng = np.random.default_rng(np.random.SeedSequence([int(ctx.seed), 0x6A]))
        self.population: list[Genome] = self._fresh(self.n_new)
        self.elite: Genome | None = None
        self.elite_score = float("nan")

    # --- one generation -------------------------------------------------------------------------------
    def _fresh(self, k: int) -> list[Genome]:
        return [(int(o),) for o in self.noise.sample_offsets(self.rng, k)]

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
        seeds = (self._env_seed(self.rng), self._env_seed(self.rng)) if self.current is None else (0, 0)
        g = self._begin(seeds, unfinished(self.n_new, self.episodes))  # population evaluation, validation
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
        fields = ("fitness_max", "fitness_mean", "fitness_median", "elite_score", "generation_frames")
        self._end(
            {k: self.last[k] for k in fields},
            {
                "fit max": self.last["fitness_max"],
                "fit mean": self.last["fitness_mean"],
                "elite": self.elite_score,
            },
        )
        return True

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
        super()._cut_short(frames0, where)
        self.last["elite_score"] = self.elite_score  # the elite (the test policy) is unchanged

    # --- Algorithm protocol -----------------------------------------------------------------------------
    def champion(self) -> Genome:
        """The elite; before the first generation completes, the first individual (an untrained network)."""
        return self.elite if self.elite is not None else self.population[0]

    def policy(self) -> ActFn:
        return flat_policy(self.net, self.store.rebuild(self.champion()))

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
        return {**self._search_state(), "elite": self.elite, "elite_score": self.elite_score}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._load_search_state(state)
        self.elite = state["elite"]
        self.elite_score = state["elite_score"]


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
