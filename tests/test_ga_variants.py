"""The GA's selection rules, pinned on a tiny population with a deterministic fitness.

`such2017` is Such et al. (2017), Algorithm 1: N-1 new individuals a generation, exactly C validations (the
top C, then the previous elite + the top C-1), the elite always a parent and carried over unmutated. `chopra`
is the notebook's variant: all N evaluated, the top C plus the elite validated, the parents the top T.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest

from neuroevo_bench.algorithms import RunContext
from neuroevo_bench.algorithms.ga import GeneticAlgorithm
from neuroevo_bench.envs import Ledger
from neuroevo_bench.evaluation import PopulationResult
from neuroevo_bench.genome import Genome
from tests.conftest import TOY

N, T, C = 12, 4, 3


def score(genome: Genome) -> float:
    """A fixed fitness per genome (no noise), so the ranking, and every selection, is known in advance."""
    return float(hash(genome) % 1000)


class FakeEvaluator:
    """Scores genomes with `self.score` and records every call: (genomes, episodes)."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[Genome], int]] = []
        self.score = score

    def evaluate(
        self,
        genomes: Sequence[Genome],
        episodes: int,
        seed: int,
        ledger: Ledger,
        partial: PopulationResult,
        stop: Callable[[], bool],
    ) -> PopulationResult:
        self.calls.append((list(genomes), episodes))
        fitness = np.array([self.score(g) for g in genomes])
        partial.returns[:] = np.repeat(
            fitness[:, None], episodes, axis=1
        )  # filled in place, as evaluators do
        partial.lengths[:] = 1
        return PopulationResult(partial.returns, partial.lengths, 0, 0, True)

    def close(self) -> None:
        pass


def make_ga(make_cfg, variant: str, truncation: int = T) -> tuple[GeneticAlgorithm, FakeEvaluator]:
    cfg = make_cfg(*TOY, "algo.network.hidden=[4]", "algo.noise_table_size=4096")
    ctx = RunContext(env_cfg=cfg.env, ledger=Ledger(), seed=3, resources=cfg.resources)
    ga = GeneticAlgorithm(
        ctx,
        variant=variant,
        population=N,
        truncation=truncation,
        episodes_per_fitness=2,
        elite_candidates=C,
        elite_episodes=5,
        slots=8,
        noise_table_size=4096,
        network=cfg.algo.network,
    )
    fake = FakeEvaluator()
    ga.evaluator.close()
    ga.evaluator = fake
    return ga, fake


def top(genomes: list[Genome], k: int) -> list[Genome]:
    return sorted(genomes, key=score, reverse=True)[:k]


@pytest.mark.parametrize("truncation", [T, 0], ids=["ga", "random"])
def test_such2017_validates_exactly_c_and_carries_the_elite_unmutated(make_cfg, truncation):
    ga, fake = make_ga(make_cfg, "such2017", truncation)
    previous_elite: Genome | None = None
    for generation in range(5):
        population = list(ga.population)
        fake.calls.clear()
        assert ga.step_generation()
        (evaluated, episodes), (validated, val_episodes) = fake.calls  # one population pass, one validation
        assert evaluated == population and (episodes, val_episodes) == (2, 5)
        assert len(evaluated) == N - 1  # the elite is not re-evaluated with the population
        assert previous_elite not in evaluated
        assert len(validated) == C  # exactly C validations, every generation
        if generation == 0:
            assert validated == top(evaluated, C)
        else:
            assert validated == [previous_elite, *top(evaluated, C - 1)]
        assert ga.elite == max(validated, key=score)
        assert ga.elite_score == score(ga.elite)
        # the next generation: N-1 new individuals beside the elite, which carries over as it is
        assert len(ga.population) == N - 1 and ga.elite not in ga.population
        if truncation:
            # the T parents: the elite, always, then the best others by fitness
            parents = [ga.elite, *[g for g in top(evaluated, N) if g != ga.elite][: T - 1]]
            chosen = [child[:-1] for child in ga.population]  # each child is one mutation of its parent
            assert set(chosen) <= set(parents)
            assert ga.elite in chosen  # 11 draws from 4 parents: the elite is picked (this seed)
        else:
            assert all(len(g) == 1 for g in ga.population)  # random search: fresh networks only
        previous_elite = ga.elite


def test_such2017_elite_survives_when_it_validates_best(make_cfg):
    """An elite that keeps the best validation score stays the elite, unmutated, generation after generation."""
    ga, fake = make_ga(make_cfg, "such2017")
    assert ga.step_generation()
    champion = ga.elite
    assert champion is not None
    fake.score = lambda g: 1e6 if g == champion else score(g)  # from now on it validates above all others
    for _ in range(3):
        assert ga.step_generation()
        assert ga.elite == champion  # the same genome, so the same parameters: carried over unmutated
        assert fake.calls[-1][0][0] == champion
        # the elite is not among the evaluated individuals, and is still the first parent
        assert champion not in ga.population
        order = np.argsort([-score(g) for g in ga.population], kind="stable")
        assert ga.parents(order, elite_index=-1) == [champion, *top(list(ga.population), T - 1)]
        assert any(child[:-1] == champion for child in ga.population)  # and it has children


def test_chopra_variant_evaluates_all_n_and_validates_top_c_plus_elite(make_cfg):
    ga, fake = make_ga(make_cfg, "chopra")
    previous_elite: Genome | None = None
    for _ in range(4):
        population = list(ga.population)
        fake.calls.clear()
        assert ga.step_generation()
        (evaluated, _), (validated, _) = fake.calls
        assert evaluated == population and len(evaluated) == N  # the elite is evaluated with the others
        if previous_elite is not None:
            assert evaluated[0] == previous_elite
        best_c = top(evaluated, C)
        expected = best_c if previous_elite is None or previous_elite in best_c else [*best_c, previous_elite]
        assert validated == expected  # C, or C+1 when the elite is not among the top C
        # parents: the top T by fitness alone; the next population is the elite followed by N-1 children
        assert ga.population[0] == ga.elite and len(ga.population) == N
        parents = top(evaluated, T)
        assert all(child[:-1] in parents for child in ga.population[1:])
        previous_elite = ga.elite
