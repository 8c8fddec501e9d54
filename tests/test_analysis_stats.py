"""Exact values of the analysis statistics on hand-sized inputs (neuroevo_bench.analysis.stats)."""

from __future__ import annotations

import numpy as np
import pytest

from neuroevo_bench.analysis import stats


def test_iqm_trims_a_quarter_at_each_end() -> None:
    assert stats.iqm([1, 2, 3, 4, 100]) == pytest.approx(3.0)  # int(0.25 * 5) = 1 cut per end: mean(2, 3, 4)
    assert stats.iqm(np.arange(1, 9)) == pytest.approx(4.5)  # 2 cut per end: mean(3, 4, 5, 6)
    assert stats.iqm([1, 2, 9]) == pytest.approx(4.0)  # n < 4: nothing cut, the mean
    rows = stats.iqm(np.array([[1, 2, 3, 4, 100], [0, 0, 5, 10, 10]]))  # (2, 5) -> (2,)
    np.testing.assert_allclose(rows, [3.0, 5.0])


def test_optimality_gap_ignores_scores_above_target() -> None:
    assert stats.optimality_gap([0.5, 1.2, 0.8]) == pytest.approx((0.5 + 0.0 + 0.2) / 3)


def test_probability_of_improvement_counts_ties_half() -> None:
    assert stats.probability_of_improvement([1, 2, 3], [0, 0, 0]) == 1.0
    assert stats.probability_of_improvement([0, 0], [1, 2, 3]) == 0.0
    assert stats.probability_of_improvement([1, 1], [1, 1]) == 0.5
    assert stats.probability_of_improvement([1, 3], [2]) == 0.5
    assert stats.probability_of_improvement([500, 480, 120], [500, 499, 498]) == pytest.approx(2.5 / 9)


def test_probability_of_improvement_matches_pairwise_count_and_vectorises() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 5, size=(4, 7)).astype(float)  # ties on purpose
    y = rng.integers(0, 5, size=(4, 6)).astype(float)
    pairwise = [np.mean((a[:, None] > b) + 0.5 * (a[:, None] == b)) for a, b in zip(x, y, strict=True)]
    np.testing.assert_allclose(stats.probability_of_improvement(x, y), pairwise)


def test_performance_profile_is_strictly_greater() -> None:
    np.testing.assert_allclose(stats.performance_profile([0.1, 0.5, 0.9], [0.0, 0.5, 1.0]), [1.0, 1 / 3, 0.0])
    # (runs on the last axis) -> (taus, leading...)
    assert stats.performance_profile(np.zeros((6, 3)), [0.0, 1.0]).shape == (2, 6)


def test_bootstrap_ci_of_two_points_is_exactly_their_range() -> None:
    # Resampled means of [0, 1] are 0, 0.5, 1 with probability 1/4, 1/2, 1/4: the 2.5 % and 97.5 % percentiles
    # are exactly 0 and 1 whatever the draws.
    low, high = stats.bootstrap_ci([0.0, 1.0], stats.mean, stats.rng_for(0, "t"), n_resamples=2000)
    assert (low, high) == (0.0, 1.0)


def test_bootstrap_ci_is_reproducible_for_a_seed() -> None:
    x = [120.0, 480.0, 500.0, 310.0, 455.0]
    first = stats.bootstrap_ci(x, stats.iqm, stats.rng_for(7, "final", "CartPole", "ga"), n_resamples=500)
    again = stats.bootstrap_ci(x, stats.iqm, stats.rng_for(7, "final", "CartPole", "ga"), n_resamples=500)
    other = stats.bootstrap_ci(x, stats.iqm, stats.rng_for(8, "final", "CartPole", "ga"), n_resamples=500)
    assert first == again  # bit for bit
    assert first != other
    assert min(x) <= first[0] <= stats.iqm(x) <= first[1] <= max(x)


def test_bootstrap_ci_degenerate_inputs() -> None:
    rng = stats.rng_for(0, "t")
    assert all(np.isnan(stats.bootstrap_ci([3.0], stats.mean, rng)))  # one seed: no spread to estimate
    assert stats.bootstrap_ci([500.0, 500.0, 500.0], stats.mean, rng, n_resamples=100) == (500.0, 500.0)


def test_rng_for_streams_depend_only_on_seed_and_keys() -> None:
    a = stats.rng_for(0, "curve", "CartPole", "ga").random(3)
    stats.rng_for(0, "something else").random(10)  # another stream used in between changes nothing
    b = stats.rng_for(0, "curve", "CartPole", "ga").random(3)
    c = stats.rng_for(0, "curve", "CartPole", "ppo").random(3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_stratified_bootstrap_keeps_single_run_strata_fixed() -> None:
    def pooled_mean(*strata: np.ndarray) -> np.ndarray:
        return np.concatenate(strata, axis=-1).mean(axis=-1)

    strata = [np.array([1.0, 2.0, 3.0]), np.array([10.0])]
    low, high = stats.stratified_bootstrap_ci(strata, pooled_mean, stats.rng_for(0, "t"), n_resamples=1000)
    # The single-run stratum enters every resample: bounds lie between (1+1+1+10)/4 and (3+3+3+10)/4.
    assert 13 / 4 <= low < pooled_mean(*strata) < high <= 19 / 4
    low, high = stats.stratified_bootstrap_ci([[1.0], [2.0]], pooled_mean, stats.rng_for(0, "t"))
    assert np.isnan(low) and np.isnan(high)


def test_stratified_bootstrap_vector_statistic() -> None:
    taus = np.array([0.0, 0.5])
    low, high = stats.stratified_bootstrap_ci(
        [[0.2, 0.6, 0.9]],
        lambda x: stats.performance_profile(x, taus),
        stats.rng_for(0, "t"),
        n_resamples=500,
    )
    assert low.shape == high.shape == (2,)
    np.testing.assert_allclose([low[0], high[0]], [1.0, 1.0])  # every resample has all runs > 0


CURVE_FRAMES = [0.0, 100.0, 200.0]
CURVE_WALL = [0.0, 10.0, 30.0]


@pytest.mark.parametrize(
    ("scores", "threshold", "frames", "wall"),
    [
        ([10, 50, 90], 70, 150.0, 20.0),  # halfway between eval points 1 and 2
        ([10, 50, 90], 90, 200.0, 30.0),  # reached exactly at an eval point
        ([10, 50, 90], 10, 0.0, 0.0),  # the untrained policy already reaches it
        ([10, 50, 90], 91, np.nan, np.nan),  # never reached
        ([0, 80, 40], 70, 87.5, 8.75),  # first crossing counts, not the last value
        ([10, np.nan, 90], 70, 200.0, 30.0),  # a missing eval point is not interpolated through
    ],
)
def test_threshold_crossing_interpolates_linearly(scores, threshold, frames, wall) -> None:
    np.testing.assert_allclose(stats.value_at_crossing(CURVE_FRAMES, scores, threshold), frames)
    np.testing.assert_allclose(stats.value_at_crossing(CURVE_WALL, scores, threshold), wall)


def test_threshold_crossing_without_threshold() -> None:
    assert np.isnan(stats.crossing_index([1.0, 2.0], float("nan")))


def test_interpolate_curve_step_and_linear() -> None:
    x, y, grid = [0.0, 10.0, 20.0], [0.0, 1.0, 3.0], [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]
    np.testing.assert_allclose(stats.interpolate_curve(x, y, grid, "step"), [0, 0, 1, 1, 3, np.nan])
    np.testing.assert_allclose(stats.interpolate_curve(x, y, grid, "linear"), [0, 0.5, 1, 2, 3, np.nan])
    with pytest.raises(ValueError, match="unknown interpolation"):
        stats.interpolate_curve(x, y, grid, "cubic")


def test_curve_band() -> None:
    curves = np.array([[0.0, 1.0, 2.0], [0.0, 3.0, 4.0], [0.0, 2.0, 9.0]])  # (seeds, grid)
    mean, low, high = stats.curve_band(curves, stats.rng_for(0, "t"), n_resamples=500)
    np.testing.assert_allclose(mean, [0.0, 2.0, 5.0])
    assert low[0] == high[0] == 0.0  # all seeds agree at the start
    assert np.all(low <= mean) and np.all(mean <= high)
    again = stats.curve_band(curves, stats.rng_for(0, "t"), n_resamples=500)
    np.testing.assert_array_equal(low, again[1])
    _, low, high = stats.curve_band(curves[:1], stats.rng_for(0, "t"))
    assert np.isnan(low).all() and np.isnan(high).all()
