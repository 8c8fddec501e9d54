"""Random search: the GA's machinery with zero parents (README "The algorithms").

Every generation samples fresh networks (`such2017`: N-1 beside the best so far; `chopra`: N); the best so
far and the top of the new ones (C candidates in all under `such2017`, the top C plus the best so far under
`chopra`) are re-evaluated on `elite_episodes` episodes and the best becomes the new best so far (the test
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
