"""Evolution strategies (Salimans et al. 2017, arXiv 1703.03864) on the GA's machinery.

A generation draws n offsets into the shared noise table and evaluates the n antithetic pairs
theta + sigma * eps_i and theta - sigma * eps_i (`population` = 2n individuals, `episodes_per_fitness`
episodes each) with the same slot evaluator, Ray evaluator and frame ledger as the GA. The returns are
shaped by centred ranks (all 2n ranked together, scaled to [-0.5, 0.5]), and the gradient estimate

    g = sum_i (F+_i - F-_i) eps_i / (2 n sigma)

takes one Adam step (the paper's step size 0.01) on the loss -g + l2_coeff * theta (L2 weight decay 0.005,
as in the paper's code). The test policy is the current theta, greedy.

For vector observations the network starts with a running observation normaliser, as in the paper's code:
it sees clip((obs - mean) / std, -5, 5); mean and std are learnt from every observation the generation's
episodes acted on (the paper samples 1% of episodes), updated after each generation, and are part of theta
as the evaluators, the checkpoint and the saved policy see it, though never perturbed or updated by Adam.

Where this differs from the paper (README "The algorithms"): on Atari the paper's network had virtual
batch normalisation; here ES uses the same Nature CNN as the GA (no normalisation), so all population
methods share one network. The paper's gradient code omits the 1/sigma of the estimate; with Adam that
only rescales the gradient against the L2 term, and this file follows the estimate as the paper writes it.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuroevo_bench.algorithms import ActFn, RunContext
from neuroevo_bench.algorithms.population import PopulationMethod
from neuroevo_bench.evaluation import unfinished
from neuroevo_bench.genome import CentredStore, Genome, NoiseTable
from neuroevo_bench.policies import (
    Network,
    flat_policy,
    make_network,
    network_from_spec,
    network_spec,
    searched_mask,
)
from neuroevo_bench.records import atomic_write_bytes

POLICY_NPZ = "policy.npz"
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # the paper's code (es_distributed/optimizers.py)
STAT_EPS = 1e-2  # the normaliser's prior count and its floor on the variance, as in the paper's RunningStat
# Perturbations per product when summing the weighted noise: at most 256, and at most CHUNK_BYTES of noise rows
# at once (a 256-row chunk of the 1.7M-parameter Nature CNN would be 1.7 GB; CartPole's and MinAtar's networks
# take the full 256).
CHUNK, CHUNK_BYTES = 256, 256 * 2**20


def centred_ranks(x: np.ndarray) -> np.ndarray:
    """Fitness shaping: ranks of `x` (n,) scaled to [-0.5, 0.5] (ties broken by position, deterministically)."""
    ranks = np.empty(len(x))
    ranks[np.argsort(x, kind="stable")] = np.arange(len(x))
    return ranks / max(len(x) - 1, 1) - 0.5


class EvolutionStrategies(PopulationMethod):
    def __init__(
        self,
        ctx: RunContext,
        name: str = "es",
        population: int = 100,
        sigma: float = 0.02,
        learning_rate: float = 0.01,
        l2_coeff: float = 0.005,
        episodes_per_fitness: int = 1,
        obs_norm: bool = True,
        fitness_max_frames: int | None = None,
        slots: int = 512,
        shards: int = 1,
        noise_table_size: int = 2**22,
        noise_seed: int | None = None,
        network: Any = None,
    ) -> None:
        self.name = name
        self.n_new, self.pairs = int(population), int(population) // 2
        self.episodes = int(episodes_per_fitness)
        self.sigma, self.lr, self.l2 = float(sigma), float(learning_rate), float(l2_coeff)
        space = ctx.env_info.observation_space
        vector_obs = len(space.shape or ()) == 1
        net = make_network(network, space, ctx.env_info.action_space, obs_norm=bool(obs_norm) and vector_obs)
        self.noise_seed = int(ctx.seed if noise_seed is None else noise_seed)
        self.noise = NoiseTable(self.noise_seed, int(noise_table_size), net.n_params)
        self._start(
            ctx,
            net,
            CentredStore(self.noise, self.sigma, searched_mask(net)),
            slots,
            shards,
            fitness_max_frames,
        )
        self.rng = np.random.default_rng(np.random.SeedSequence([int(ctx.seed), 0xE5]))
        # the normaliser's statistics occupy the first 2 * obs_dim entries of theta (none on images)
        self.k = getattr(net, "norm_size", 0)
        self.obs_dim = self.k // 2 or None
        theta = net.init_scale() * self.noise.windows[int(self.noise.sample_offsets(self.rng, 1)[0])]
        self.obs_sum = np.zeros(self.k // 2)
        self.obs_sumsq = np.full(self.k // 2, STAT_EPS)
        self.obs_count = STAT_EPS
        self.adam_m = torch.zeros(net.n_params - self.k)
        self.adam_v = torch.zeros(net.n_params - self.k)
        self.adam_t = 0
        self.store.set_center(self._with_stats(theta))
        self.population: list[Genome] = self._perturbations()

    # --- one generation -------------------------------------------------------------------------------
    def _perturbations(self) -> list[Genome]:
        """The next generation's individuals: pairs (theta + sigma eps_i, theta - sigma eps_i), side by side."""
        offsets = self.noise.sample_offsets(self.rng, self.pairs)
        return [(sign, int(o)) for o in offsets for sign in (0, 1)]

    def _with_stats(self, theta: torch.Tensor) -> torch.Tensor:
        """`theta` with the normaliser's current mean and std in its first entries (float32, as evaluated)."""
        if not self.k:
            return theta
        mean = self.obs_sum / self.obs_count
        std = np.sqrt(np.maximum(self.obs_sumsq / self.obs_count - mean**2, STAT_EPS))
        theta = theta.clone()
        theta[: self.k] = torch.from_numpy(np.concatenate([mean, std]).astype(np.float32))
        return theta

    def _gradient(self, weights: np.ndarray) -> torch.Tensor:
        """sum_i weights[i] * eps_i / (2 n sigma) over the searched parameters (eps_i: pair i's noise)."""
        offsets = torch.tensor([g[1] for g in self.population[0::2]], dtype=torch.int64)
        w = torch.from_numpy(weights.astype(np.float32))
        total = torch.zeros(self.net.n_params)
        chunk = max(1, min(CHUNK, CHUNK_BYTES // (4 * self.net.n_params)))
        for i in range(0, self.pairs, chunk):
            total += w[i : i + chunk] @ self.noise.windows[offsets[i : i + chunk]]
        return total[self.k :] / (2 * self.pairs * self.sigma)

    def _adam_step(self, grad: torch.Tensor) -> None:
        """One Adam step on the loss -F + l2/2 |theta|^2, i.e. along grad - l2 * theta (the paper's code)."""
        theta = self.store.center[self.k :]
        step_grad = -grad + self.l2 * theta
        b1, b2 = ADAM_BETAS
        self.adam_t += 1
        self.adam_m = b1 * self.adam_m + (1 - b1) * step_grad
        self.adam_v = b2 * self.adam_v + (1 - b2) * step_grad * step_grad
        a = self.lr * np.sqrt(1 - b2**self.adam_t) / (1 - b1**self.adam_t)
        new = self.store.center.clone()
        new[self.k :] = theta - a * self.adam_m / (self.adam_v.sqrt() + ADAM_EPS)
        self.store.set_center(new)

    def step_generation(self) -> bool:
        """Run one generation, or finish the one in progress (resumed from a mid-generation checkpoint);
        False if the budget cap cut it short or the run was asked to stop (as the GA's)."""
        ledger = self.ctx.ledger
        seeds = (self._env_seed(self.rng), 0) if self.current is None else (0, 0)
        g = self._begin(seeds, unfinished(self.n_new, self.episodes, self.obs_dim))
        res = self.evaluator.evaluate(
            self.population, self.episodes, g.seeds[0], ledger, g.population, self._tick
        )
        if not res.complete:
            return self._incomplete("population evaluation")
        fitness = res.fitness
        shaped = centred_ranks(fitness).reshape(self.pairs, 2)
        grad = self._gradient(shaped[:, 0] - shaped[:, 1])
        self._adam_step(grad)
        if self.k:  # the normaliser learns from every observation this generation acted on
            assert res.obs_moments is not None
            sums = res.obs_moments.reshape(-1, 2, self.k // 2).sum(axis=0)
            self.obs_sum += sums[0]
            self.obs_sumsq += sums[1]
            self.obs_count += float(res.lengths.sum())
            self.store.set_center(self._with_stats(self.store.center))
        self.last = {
            "generation": self.generation,
            "generation_frames": ledger.frames - g.frames0,
            "fitness_max": float(fitness.max()),
            "fitness_mean": float(fitness.mean()),
            "fitness_median": float(np.median(fitness)),
            "theta_norm": float(self.store.center[self.k :].norm()),
            "grad_norm": float(grad.norm()),
            "generation_complete": True,
        }
        self.population = self._perturbations()
        fields = ("fitness_max", "fitness_mean", "fitness_median", "theta_norm", "generation_frames")
        self._end(
            {k: self.last[k] for k in fields},
            {"fit max": self.last["fitness_max"], "fit mean": self.last["fitness_mean"]},
        )
        return True

    # --- Algorithm protocol -----------------------------------------------------------------------------
    def policy(self) -> ActFn:
        return flat_policy(self.net, self.store.center.clone())

    def save_policy(self, run_dir: Path) -> None:
        """theta (normaliser included) and the network, in one .npz that :func:`load_policy` reads."""
        buf = io.BytesIO()
        meta = {"network": network_spec(self.net), "generation": self.generation, "sigma": self.sigma}
        np.savez(buf, theta=self.store.center.numpy(), meta=np.array(json.dumps(meta)))
        atomic_write_bytes(Path(run_dir) / POLICY_NPZ, buf.getvalue())

    def state_dict(self) -> dict[str, Any]:
        """Everything to continue bit-identically, mid-generation too (as the GA's)."""
        return {
            **self._search_state(),
            "center": self.store.center.clone(),
            "adam": (self.adam_m.clone(), self.adam_v.clone(), self.adam_t),
            "obs_stats": (self.obs_sum.copy(), self.obs_sumsq.copy(), self.obs_count),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._load_search_state(state)
        self.store.set_center(state["center"])
        self.adam_m, self.adam_v, self.adam_t = state["adam"]
        self.obs_sum, self.obs_sumsq, self.obs_count = state["obs_stats"]


def load_theta(run_dir: Path) -> tuple[Network, torch.Tensor]:
    """The saved network and theta (with its normaliser) of an ES run."""
    with np.load(Path(run_dir) / POLICY_NPZ, allow_pickle=False) as f:
        meta = json.loads(str(f["meta"]))
        theta = torch.from_numpy(f["theta"].copy())
    return network_from_spec(meta["network"]), theta


def load_policy(run_dir: Path) -> ActFn:
    net, theta = load_theta(run_dir)
    return flat_policy(net, theta)
