"""Compact genomes (Such et al. 2017's seed chains) and the parameter store that rebuilds them.

A genome is a tuple of offsets into one shared, seeded noise table: `(init, m1, m2, ...)`. Its parameters are

    theta = init_scale * noise[init : init + P] + sigma * noise[m1 : m1 + P] + sigma * noise[m2 : m2 + P] + ...

evaluated left to right in float32. A genome is a few bytes per generation, so checkpoints and the messages
sent to remote workers stay tiny, and any individual can be rebuilt exactly. The store caches the parameters
of the genomes the next generation will copy or mutate (the parents and the elite), so a child costs one
fused multiply-add over P floats instead of a walk down its whole chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from neuroevo_bench.config import ConfigError

Genome = tuple[int, ...]


class NoiseTable:
    """`size` standard-normal float32 values from `seed`; a slice of length P starts at any offset."""

    def __init__(self, seed: int, size: int, n_params: int) -> None:
        if size < 2 * n_params:
            raise ConfigError(
                f"algo.noise_table_size={size} is too small for a network of {n_params} parameters; "
                f"valid: >= {2 * n_params} (a power of two above it is customary)"
            )
        self.seed, self.size, self.n_params = int(seed), int(size), int(n_params)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0x5EED]))
        self.data = torch.from_numpy(rng.standard_normal(self.size, dtype=np.float32))
        # Every window of P consecutive values as a row, without copying.
        self.windows = self.data.as_strided((self.size - self.n_params + 1, self.n_params), (1, 1))

    @property
    def max_offset(self) -> int:
        return self.size - self.n_params

    def sample_offsets(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.integers(0, self.max_offset + 1, size=n)


@dataclass
class Plan:
    """How to build each genome of an evaluation: `params[i] = base[base_row[i]] + mult[kind[i]] * noise[offset[i]]`.

    kind 0 = copy of a cached genome, 1 = child of a cached genome (sigma), 2 = fresh initialisation.
    """

    base_row: torch.Tensor  # (N,) int64
    kind: torch.Tensor  # (N,) int64
    offset: torch.Tensor  # (N,) int64


def build_planned(
    noise: NoiseTable, mult: torch.Tensor, rows: torch.Tensor, plan: Plan, idx: np.ndarray | torch.Tensor
) -> torch.Tensor:
    """Parameters (k, P) of the planned genomes `idx`: `rows[base_row] + mult[kind] * noise` per genome, over
    contiguous slices of the table (gathering rows of its overlapping `windows` view is ~10x slower for a
    large P)."""
    idx = torch.as_tensor(idx, dtype=torch.int64).reshape(-1)
    p = noise.n_params
    out = torch.empty(len(idx), p)
    for j, i in enumerate(idx.tolist()):
        offset = int(plan.offset[i])
        torch.mul(mult[int(plan.kind[i])], noise.data[offset : offset + p], out=out[j])
        out[j] += rows[int(plan.base_row[i])]
    return out


class ParamStore:
    """Rebuilds parameters from genomes in float32, caching the genomes that others copy or extend."""

    def __init__(self, noise: NoiseTable, init_scale: torch.Tensor, sigma: float) -> None:
        self.noise = noise
        self.sigma = float(sigma)
        p = noise.n_params
        # Rows of multipliers indexed by Plan.kind.
        self.mult = torch.stack([torch.zeros(p), torch.full((p,), self.sigma), init_scale.float()])
        self.keys: list[Genome] = []
        self.rows = torch.zeros(0, p)
        self._index: dict[Genome, int] = {}
        self._last_needed: list[Genome] = []
        self.slow_rebuilds = 0  # genomes rebuilt from their whole chain (cache misses)

    def rebuild(self, genome: Genome) -> torch.Tensor:
        """Parameters of one genome from scratch (the reference the cached path must equal bit for bit)."""
        theta = self.mult[2] * self.noise.windows[genome[0]]
        for off in genome[1:]:
            theta = theta + self.mult[1] * self.noise.windows[off]
        return theta

    def plan(self, genomes: Sequence[Genome]) -> Plan:
        """Resolve genomes against the cache.

        The cache then holds the genomes this plan reads plus those the previous plan read: a GA generation
        plans the population (reading the last parents), then the elite candidates (reading a few of them),
        and the next generation's parents are children of the last parents, so both plans are kept.
        """
        needed: dict[Genome, None] = {}
        kinds = np.empty(len(genomes), dtype=np.int64)
        offsets = np.zeros(len(genomes), dtype=np.int64)
        bases: list[Genome] = []
        for i, g in enumerate(genomes):
            if g in self._index:
                kinds[i], base = 0, g
            elif len(g) == 1:
                kinds[i], offsets[i], base = 2, g[0], ()
            else:
                kinds[i], offsets[i], base = 1, g[-1], g[:-1]
            bases.append(base)
            needed[base] = None
        keys = list(needed) + [k for k in self._last_needed if k not in needed]
        self._last_needed = list(needed)
        self._retain(keys)
        base_row = torch.tensor([self._index[b] for b in bases], dtype=torch.int64)
        return Plan(base_row=base_row, kind=torch.from_numpy(kinds), offset=torch.from_numpy(offsets))

    def build(self, plan: Plan, idx: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Parameters (k, P) of the planned genomes `idx`."""
        return build_planned(self.noise, self.mult, self.rows, plan, idx)

    def _retain(self, keys: list[Genome]) -> None:
        """Make the cache hold exactly `keys` (the empty genome () is the zero vector)."""
        p = self.noise.n_params
        new_rows = torch.empty(len(keys), p)
        for j, key in enumerate(keys):
            if key in self._index:
                new_rows[j] = self.rows[self._index[key]]
            elif key == ():
                new_rows[j] = 0.0
            elif len(key) == 1:
                new_rows[j] = self.rebuild(key)  # a fresh initialisation: one multiply, not a chain walk
            elif len(key) > 1 and key[:-1] in self._index:
                new_rows[j] = self.rows[self._index[key[:-1]]] + self.mult[1] * self.noise.windows[key[-1]]
            else:
                new_rows[j] = self.rebuild(key)
                self.slow_rebuilds += 1
        self.keys, self.rows = keys, new_rows
        self._index = {k: j for j, k in enumerate(keys)}


class CentredStore:
    """ES (Salimans et al. 2017): every individual is the current centre theta plus or minus a perturbation.

    A genome is `(sign, offset)`: `params = theta + sigma * noise[offset : offset + P] * mask` for sign 0 and
    `theta - ...` for sign 1 (an antithetic pair shares its offset). `mask` is 0 on parameters that are not
    searched (the observation normaliser's statistics), 1 elsewhere. It answers :meth:`plan` / :meth:`build`
    as :class:`ParamStore` does, so the population evaluators serve both; `version` counts centre changes (a
    Ray worker is sent the centre once per change).
    """

    def __init__(self, noise: NoiseTable, sigma: float, mask: torch.Tensor) -> None:
        self.noise = noise
        self.sigma = float(sigma)
        step = self.sigma * mask.float()
        self.mult = torch.stack([step, -step])  # rows indexed by Plan.kind (the sign)
        self.center = torch.zeros(noise.n_params)
        self.version = 0

    def set_center(self, theta: torch.Tensor) -> None:
        self.center = theta.detach().clone().float()
        self.version += 1

    def plan(self, genomes: Sequence[Genome]) -> Plan:
        arr = np.asarray(genomes, dtype=np.int64).reshape(len(genomes), 2)
        kind, offset = torch.from_numpy(arr[:, 0].copy()), torch.from_numpy(arr[:, 1].copy())
        return Plan(base_row=torch.zeros(len(genomes), dtype=torch.int64), kind=kind, offset=offset)

    def build(self, plan: Plan, idx: np.ndarray | torch.Tensor) -> torch.Tensor:
        """`center +- sigma * noise` (k, P) for the planned genomes `idx` (every base row is the centre)."""
        return build_planned(self.noise, self.mult, self.center.unsqueeze(0), plan, idx)


Store = ParamStore | CentredStore  # what a population evaluator builds parameters from
