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
        ([10, 50, 90], 70, 200.0, 30.0),  # crossed between eval points 1 and 2: reported at 2, not 150
        ([10, 50, 90], 90, 200.0, 30.0),  # reached exactly at an eval point
        ([10, 50, 90], 10, 0.0, 0.0),  # the untrained policy already reaches it
        ([10, 50, 90], 91, np.nan, np.nan),  # never reached
        ([0, 80, 40], 70, 100.0, 10.0),  # the first eval point at or above counts, not the last value
        ([10, np.nan, 90], 70, 200.0, 30.0),  # a missing eval point counts as not reached
    ],
)
def test_threshold_crossing_is_the_first_eval_point_at_or_above(scores, threshold, frames, wall) -> None:
    np.testing.assert_array_equal(stats.value_at_first_crossing(CURVE_FRAMES, scores, threshold), frames)
    np.testing.assert_array_equal(stats.value_at_first_crossing(CURVE_WALL, scores, threshold), wall)


def test_first_crossing_index() -> None:
    assert stats.first_crossing([10, 50, 90], 50) == 1
    assert stats.first_crossing([10, 50, 90], 95) is None
    assert stats.first_crossing([1.0, 2.0], float("nan")) is None


def test_censored_median_counts_failures_as_never() -> None:
    frames = np.array([100.0, 300.0, 200.0, np.nan, np.nan])
    reached = np.array([True, True, True, False, False])
    budget = np.array([500.0, 500.0, 500.0, 480.0, 500.0])
    # Sorted with failures last: 100, 200, 300, never, never -> the median is the third seed's 300.
    assert stats.censored_median(frames, reached, budget) == (300.0, False)
    # Two of five reached: the median seed never did; it needed more than the shortest failing run (480).
    reached_two = np.array([True, True, False, False, False])
    assert stats.censored_median(frames, reached_two, budget) == (480.0, True)
    # Even n: the mean of the middle two while both reached it; once the upper one did not, the median is more
    # than the mean of the lower one's time and the upper one's run length: "> (2 + 9) / 2".
    assert stats.censored_median([1.0, 2.0, 3.0, 4.0], [True] * 4, [9.0] * 4) == (2.5, False)
    assert stats.censored_median([1.0, 2.0, 3.0, 4.0], [True, True, False, False], [9.0] * 4) == (5.5, True)
    # A failing seed whose run ended early (wall-clock) may still sort below the middle: the median is then
    # only known to lie above what its run length allows.
    assert stats.censored_median([10.0, 20.0, np.nan], [True, True, False], [9.0, 9.0, 5.0]) == (10.0, True)
    value, bound = stats.censored_median([], [], [])
    assert np.isnan(value) and not bound


def test_interpolate_curve_step_and_linear_hold_the_final_score() -> None:
    x, y, grid = [0.0, 10.0, 20.0], [0.0, 1.0, 3.0], [-5.0, 0.0, 5.0, 10.0, 15.0, 20.0, 25.0]
    np.testing.assert_array_equal(stats.interpolate_curve(x, y, grid, "step"), [np.nan, 0, 0, 1, 1, 3, 3])
    np.testing.assert_allclose(stats.interpolate_curve(x, y, grid, "linear"), [np.nan, 0, 0.5, 1, 2, 3, 3])
    ended = stats.interpolate_curve(x, y, grid, "step", hold_final=False)
    np.testing.assert_array_equal(ended, [np.nan, 0, 0, 1, 1, 3, np.nan])
    with pytest.raises(ValueError, match="unknown interpolation"):
        stats.interpolate_curve(x, y, grid, "cubic")


def test_mean_ci_is_the_student_t_interval() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    low, high = stats.mean_ci(x)
    half = 2.7764451051977987 * np.std(x, ddof=1) / np.sqrt(5)  # t_{0.975, 4}
    assert (low, high) == (pytest.approx(4.0 - half), pytest.approx(4.0 + half))
    rows = np.stack([x, np.full(5, 500.0)])  # (2, 5) -> 2 x (2,); tied seeds: zero width
    low, high = stats.mean_ci(rows)
    np.testing.assert_allclose([low[1], high[1]], [500.0, 500.0])
    assert low[0] == pytest.approx(4.0 - half)
    assert all(np.isnan(stats.mean_ci([3.0])))  # one seed: no spread to estimate
    low, high = stats.mean_ci(rows.T, axis=0)  # seeds on another axis
    assert low[0] == pytest.approx(4.0 - half)


def test_curve_band_is_the_mean_ci_at_every_grid_point() -> None:
    curves = np.array([[0.0, 1.0, 2.0], [0.0, 3.0, 4.0], [0.0, 2.0, 9.0]])  # (seeds, grid)
    mean, low, high = stats.curve_band(curves)
    np.testing.assert_allclose(mean, [0.0, 2.0, 5.0])
    assert low[0] == high[0] == 0.0  # all seeds agree at the start
    expected = stats.mean_ci(curves.T)
    np.testing.assert_array_equal(low, expected[0])
    np.testing.assert_array_equal(high, expected[1])
    _, low, high = stats.curve_band(curves[:1])
    assert np.isnan(low).all() and np.isnan(high).all()


# --- coverage of intervals for the mean ---------------------------------------------------------------------

COVERAGE_TOLERANCE = 0.06  # on bounded score distributions, n = 5 and 10 seeds


@pytest.fixture(scope="module")
def coverage() -> dict[tuple[str, int, str], float]:
    """The simulation the tables' interval was chosen by (2,000 draws per cell, seed 0), without the slow
    bootstrap-t."""
    return stats.coverage_table((5, 10), ("student-t", "percentile", "BCa"))


def test_chosen_mean_interval_covers_close_to_nominal(coverage) -> None:
    for scenario in ("beta(5,1)", "capped mixture"):  # bounded, like RL returns
        for n in (5, 10):
            measured = coverage[scenario, n, stats.MEAN_CI_METHOD]
            assert abs(measured - 0.95) <= COVERAGE_TOLERANCE, (scenario, n, measured)


def test_chosen_mean_interval_is_at_least_as_close_as_percentile_bootstrap(coverage) -> None:
    for scenario in stats.COVERAGE_SCENARIOS:
        for n in (5, 10):
            chosen = abs(coverage[scenario, n, stats.MEAN_CI_METHOD] - 0.95)
            assert chosen <= abs(coverage[scenario, n, "percentile"] - 0.95), (scenario, n)
    assert stats.closest_to_nominal(coverage) == stats.MEAN_CI_METHOD


def test_interval_coverage_on_a_known_case() -> None:
    """Normal data: the t interval is exact, so its coverage is 95 % up to Monte Carlo error (0.5 points)."""
    samples = stats.rng_for(0, "normal").normal(size=(4000, 5))
    measured = stats.interval_coverage(samples, 0.0, "student-t", stats.rng_for(0, "unused"))
    assert measured == pytest.approx(0.95, abs=0.015)
    bootstrap_t = stats.interval_coverage(
        samples[:200], 0.0, "bootstrap-t", stats.rng_for(0, "b"), n_resamples=500
    )
    assert 0.85 <= bootstrap_t <= 1.0
    with pytest.raises(ValueError, match="unknown interval method"):
        stats.interval_coverage(samples, 0.0, "jackknife", stats.rng_for(0, "t"))
