"""Training and test episodes never share an env seed, also at the edges of the seed ranges.

A vector env reset with seed s seeds sub-env i with s + i. Training seeds s are drawn below TRAIN_SEED_LIMIT
and a training vector env has at most MAX_SUB_ENVS sub-envs, so every training sub-env seed is below
EVAL_SEED_MIN; test seeds are eval.seed + i in [EVAL_SEED_MIN, EVAL_SEED_END). ALE, which only takes seeds
below 2**31, gets the two halves mapped to disjoint halves of its range.
"""

from __future__ import annotations

import numpy as np
import pytest

from neuroevo_bench.config import (
    EVAL_SEED_END,
    EVAL_SEED_MIN,
    MAX_SUB_ENVS,
    TRAIN_SEED_LIMIT,
    ConfigError,
    validate,
)
from neuroevo_bench.envs import ALE_SEED_HALF, CountedVecEnv, Ledger, ale_seeds, make_vector_env
from neuroevo_bench.evaluation import shard_seed

HIGHEST_TRAINING_SEED = TRAIN_SEED_LIMIT - 1 + MAX_SUB_ENVS - 1  # the last sub-env of the last training reset


def test_the_seed_ranges_are_disjoint_uint32_halves():
    assert TRAIN_SEED_LIMIT > 0 and HIGHEST_TRAINING_SEED < EVAL_SEED_MIN < EVAL_SEED_END == 2**32


def test_shard_seeds_stay_training_seeds_at_the_edge():
    """Shard i of a GA/RS evaluation resets with seed + i: kept below TRAIN_SEED_LIMIT, wrapping if need be."""
    for seed in (0, TRAIN_SEED_LIMIT - 2, TRAIN_SEED_LIMIT - 1):
        for shard in range(4):
            assert 0 <= shard_seed(seed, shard) < TRAIN_SEED_LIMIT
            assert shard_seed(seed, shard) + MAX_SUB_ENVS - 1 < EVAL_SEED_MIN


def test_ale_maps_training_and_test_seeds_to_disjoint_halves_at_the_edges():
    train = ale_seeds(np.array([0, TRAIN_SEED_LIMIT - 1, HIGHEST_TRAINING_SEED, EVAL_SEED_MIN - 1]))
    test = ale_seeds(np.array([EVAL_SEED_MIN, EVAL_SEED_MIN + 1, EVAL_SEED_END - 1]))
    assert (train >= 0).all() and (train < ALE_SEED_HALF).all()
    assert (test >= ALE_SEED_HALF).all() and (test < 2 * ALE_SEED_HALF).all()  # ALE takes seeds below 2**31


def test_a_reset_never_seeds_training_and_test_sub_envs_together(make_cfg):
    env = CountedVecEnv(make_vector_env(make_cfg("env.vectorization=sync").env, 4), 1, Ledger())
    try:
        env.reset(seed=EVAL_SEED_MIN - 4)  # sub-envs EVAL_SEED_MIN - 4 .. EVAL_SEED_MIN - 1: all training
        env.reset(seed=EVAL_SEED_MIN)  # all test
        with pytest.raises(ValueError, match="some of them test seeds"):
            env.reset(seed=EVAL_SEED_MIN - 3)
    finally:
        env.close()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ((f"seed={TRAIN_SEED_LIMIT - 1}", f"algo.slots={MAX_SUB_ENVS}"), None),
        ((f"seed={TRAIN_SEED_LIMIT}",), f"seed={TRAIN_SEED_LIMIT} is invalid"),
        ((f"algo.slots={MAX_SUB_ENVS + 1}",), f"algo.slots={MAX_SUB_ENVS + 1} is invalid"),
        (("algo=a2c", f"algo.n_envs={MAX_SUB_ENVS + 1}"), f"algo.n_envs={MAX_SUB_ENVS + 1} is invalid"),
        ((f"eval.seed={EVAL_SEED_MIN}",), None),
        ((f"eval.seed={EVAL_SEED_MIN - 1}",), f"eval.seed={EVAL_SEED_MIN - 1} is invalid"),
        (("eval.episodes=10", f"eval.seed={EVAL_SEED_END - 10}"), None),  # the last test seed is 2**32 - 1
        (("eval.episodes=10", f"eval.seed={EVAL_SEED_END - 9}"), f"eval.seed={EVAL_SEED_END - 9} is invalid"),
    ],
)
def test_seed_settings_are_checked_at_the_edges(make_cfg, overrides, message):
    cfg = make_cfg(*overrides)
    if message is None:
        validate(cfg)
    else:
        with pytest.raises(ConfigError, match=message):
            validate(cfg)
