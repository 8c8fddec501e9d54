"""Random search: the GA's machinery with zero parents (DESIGN §2).

Every generation samples `population` fresh networks; the top `elite_candidates` of them and the best network
so far are re-evaluated on `elite_episodes` episodes and the best becomes the new best so far (the test
policy). It is the GA with `truncation = 0`, so both share every line of evaluation and bookkeeping code.
"""

from __future__ import annotations

from typing import Any

from neuroevo_bench.algorithms import RunContext
from neuroevo_bench.algorithms.ga import GeneticAlgorithm, load_policy

__all__ = ["RandomSearch", "load_policy"]


class RandomSearch(GeneticAlgorithm):
    def __init__(self, ctx: RunContext, **kwargs: Any) -> None:
        kwargs["truncation"] = 0
        super().__init__(ctx, **kwargs)
