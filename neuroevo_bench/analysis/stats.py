"""Pure statistics on arrays: no pandas, no plotting, no I/O.

Everything random takes a ``np.random.Generator`` built by the caller (see :func:`rng_for`), so a report is
reproducible bit for bit for a fixed seed.

Confidence intervals of a *mean over seeds* are Student-t intervals (:func:`mean_ci`). With the 3-10 seeds
typical of RL experiments a percentile bootstrap of the mean covers far less than its nominal level (its
resampled means spread like the plug-in variance of a handful of seeds, with normal-like tails instead of the
wider t quantiles), and BCa helps little; the measured
coverages are in :func:`coverage_table` (``python -m neuroevo_bench.analysis.stats`` prints them). Statistics
without a closed-form interval (IQM, median, aggregates over envs, probabilities of improvement) keep the
(stratified) percentile bootstrap of ``scipy.stats.bootstrap``, which is always defined, also when every seed
ties (e.g. every CartPole run at 500), where BCa is not.

Conventions: observations (seeds / runs) lie on the *last* axis; a statistic reduces the last axis and keeps
any leading axes, which is the shape contract ``scipy.stats.bootstrap(vectorized=True)`` expects. Where fewer
than two observations exist a confidence interval is ``nan`` (no spread can be estimated from one seed).
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.stats
from numpy.typing import ArrayLike

__all__ = [
    "COVERAGE_DRAWS",
    "COVERAGE_SCENARIOS",
    "DEFAULT_CONFIDENCE",
    "DEFAULT_RESAMPLES",
    "INTERVAL_METHODS",
    "MEAN_CI_METHOD",
    "CoverageScenario",
    "bootstrap_ci",
    "censored_median",
    "closest_to_nominal",
    "coverage_table",
    "curve_band",
    "first_crossing",
    "interpolate_curve",
    "interval_coverage",
    "iqm",
    "mean",
    "mean_ci",
    "median",
    "optimality_gap",
    "performance_profile",
    "probability_of_improvement",
    "rng_for",
    "stratified_bootstrap_ci",
    "value_at_first_crossing",
]

DEFAULT_RESAMPLES = 10_000
DEFAULT_CONFIDENCE = 0.95

# A statistic maps arrays with observations on the last axis to an array with that axis reduced.
Statistic = Callable[..., np.ndarray]


def rng_for(seed: int, *keys: object) -> np.random.Generator:
    """A generator for one named quantity, e.g. ``rng_for(0, "final_mean", "CartPole", "ga")``.

    Each quantity gets its own stream derived from (seed, keys) instead of sharing one generator, so a CI does
    not change when another algorithm or env is added to the tree or the report computes things in another
    order. ``crc32`` is used instead of ``hash()`` because string hashing is salted per process.
    """
    key = zlib.crc32("\x1f".join(str(k) for k in keys).encode())
    return np.random.default_rng([int(seed), key])


# --- point statistics (observations on the last axis) -------------------------------------------------------


def mean(x: ArrayLike, axis: int = -1) -> np.ndarray:
    """Arithmetic mean over ``axis``; ``x`` (..., n) -> (...)."""
    return np.mean(np.asarray(x, dtype=float), axis=axis)


def median(x: ArrayLike, axis: int = -1) -> np.ndarray:
    """Median over ``axis``; ``x`` (..., n) -> (...)."""
    return np.median(np.asarray(x, dtype=float), axis=axis)


def iqm(x: ArrayLike, axis: int = -1) -> np.ndarray:
    """Interquartile mean (mean of the middle 50 %): robust to one lucky or crashed seed, yet less noisy than
    the median.

    ``x`` (..., n) -> (...). ``scipy.stats.trim_mean(x, 0.25)`` cuts ``int(0.25 * n)`` values at each end, so
    for n < 4 it equals the mean (as in rliable, Agarwal et al. 2021).
    """
    return np.asarray(scipy.stats.trim_mean(np.asarray(x, dtype=float), 0.25, axis=axis))


def optimality_gap(x: ArrayLike, axis: int = -1, gamma: float = 1.0) -> np.ndarray:
    """Mean shortfall below ``gamma`` of normalised scores: ``mean(gamma - min(x, gamma))``; lower is better.

    Unlike the mean it gives no credit for exceeding the target, so one env with huge scores cannot hide
    failures. ``x`` (..., n) -> (...).
    """
    x = np.asarray(x, dtype=float)
    return np.mean(gamma - np.minimum(x, gamma), axis=axis)


def probability_of_improvement(x: ArrayLike, y: ArrayLike, axis: int = -1) -> np.ndarray:
    """P(X > Y) + 0.5 P(X = Y) for one run X of algorithm x against one run Y of algorithm y.

    It is the Mann-Whitney U statistic of x divided by ``n * m``: rank based, so it needs no score
    normalisation and says how often x beats y rather than by how much. ``x`` (..., n), ``y`` (..., m) ->
    (...); leading axes broadcast. The asymptotic method is used only to avoid computing an exact p-value
    distribution we do not need; the U statistic itself is exact either way.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    with warnings.catch_warnings():
        # Ties everywhere (e.g. all runs at 500) make the p-value's variance zero; U is still right.
        warnings.simplefilter("ignore", RuntimeWarning)
        u = scipy.stats.mannwhitneyu(x, y, axis=axis, method="asymptotic").statistic
    return np.asarray(u) / (x.shape[axis] * y.shape[axis])


def performance_profile(x: ArrayLike, taus: ArrayLike) -> np.ndarray:
    """Fraction of runs whose (normalised) score is strictly greater than each tau.

    Shows the whole score distribution instead of one summary number (Dolan & Moré 2002; Agarwal et al. 2021).
    ``x`` (..., n), ``taus`` (k,) -> (k, ...): the tau axis comes first so the function is a vectorised
    statistic for ``scipy.stats.bootstrap``.
    """
    x = np.asarray(x, dtype=float)
    taus = np.asarray(taus, dtype=float)
    return np.mean(x[np.newaxis] > taus.reshape(-1, *([1] * x.ndim)), axis=-1)


# --- the interval of a mean over seeds ----------------------------------------------------------------------

# The interval the tables use for a mean over seeds; chosen by coverage_table() (see the module docstring).
MEAN_CI_METHOD = "student-t"


def mean_ci(
    x: ArrayLike, confidence_level: float = DEFAULT_CONFIDENCE, axis: int = -1
) -> tuple[np.ndarray, np.ndarray]:
    """Student-t confidence interval of the mean over ``axis``; ``x`` (..., n) -> ``(low, high)``, each (...).

    Closed form (no resampling, so no seed): ``mean -+ t_{n-1} * std / sqrt(n)``. Its t quantile widens the
    interval for the few seeds of RL experiments, which is why it covers the true mean far more often than a
    percentile bootstrap at n = 3-10 (:func:`coverage_table`). Seeds that all tie give a zero-width interval
    (as every interval built from the sample spread does); fewer than two seeds give ``nan``.
    """
    x = np.moveaxis(np.asarray(x, dtype=float), axis, -1)
    n = x.shape[-1]
    centre = np.mean(x, axis=-1) if n else np.full(x.shape[:-1], np.nan)
    if n < 2:
        nan = np.full(np.shape(centre), np.nan)
        return nan, nan.copy()
    half = scipy.stats.t.ppf(0.5 + confidence_level / 2, n - 1) * np.std(x, axis=-1, ddof=1) / math.sqrt(n)
    return np.asarray(centre - half), np.asarray(centre + half)


# --- bootstrap confidence intervals -------------------------------------------------------------------------


def bootstrap_ci(
    x: ArrayLike,
    statistic: Statistic,
    rng: np.random.Generator,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence_level: float = DEFAULT_CONFIDENCE,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``statistic`` over the seeds in ``x`` (n,); ``(nan, nan)`` when n < 2."""
    low, high = stratified_bootstrap_ci(
        [x], statistic, rng, n_resamples=n_resamples, confidence_level=confidence_level
    )
    return float(low), float(high)


def stratified_bootstrap_ci(
    strata: Sequence[ArrayLike],
    statistic: Statistic,
    rng: np.random.Generator,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence_level: float = DEFAULT_CONFIDENCE,
    batch: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap CI where each stratum (e.g. the runs of one env) is resampled on its own.

    Stratifying keeps the mix of envs fixed, which is what an aggregate over envs means (rliable's stratified
    bootstrap). ``strata``: sequence of 1-D arrays (n_k,); ``statistic(*strata)`` gets arrays (..., n_k) and
    returns an array with the last axis reduced, possibly with leading output axes (k, ...). A stratum with a
    single observation cannot be resampled and enters every resample unchanged (the CI then ignores its
    noise). Returns ``(low, high)`` shaped like ``statistic(*strata)``; all ``nan`` when no stratum has two
    observations. ``batch`` bounds how many resamples are evaluated at once (memory), as in scipy.
    """
    arrays = [np.asarray(s, dtype=float).ravel() for s in strata]
    point = np.asarray(statistic(*arrays))
    live = [i for i, a in enumerate(arrays) if a.size >= 2]
    if not live:
        return np.full(point.shape, np.nan), np.full(point.shape, np.nan)

    def resampled_statistic(*resampled: np.ndarray, axis: int = -1) -> np.ndarray:
        batch_shape = resampled[0].shape[:-1]
        full = [np.broadcast_to(a, (*batch_shape, a.size)) for a in arrays]
        for i, r in zip(live, resampled, strict=True):
            full[i] = r
        return np.asarray(statistic(*full))

    result = scipy.stats.bootstrap(
        tuple(arrays[i] for i in live),
        resampled_statistic,
        n_resamples=n_resamples,
        confidence_level=confidence_level,
        method="percentile",
        vectorized=True,
        batch=batch,
        rng=rng,
    )
    ci = result.confidence_interval
    return np.asarray(ci.low, dtype=float), np.asarray(ci.high, dtype=float)


# --- learning curves ----------------------------------------------------------------------------------------


def first_crossing(scores: ArrayLike, threshold: float) -> int | None:
    """Index of the first eval point whose score (T,) is at or above ``threshold``; ``None`` if none is.

    No interpolation between eval points: the policy is only measured at eval points, and between two of them
    nothing says when it got good, so the first *measured* success is the only honest crossing. It is late by
    at most one eval interval (the measurement resolution: one generation for GA / RS, ``eval.every_frames``
    for SB3). A ``nan`` score counts as not reached, as does a ``nan`` threshold.
    """
    scores = np.asarray(scores, dtype=float)
    if np.isnan(threshold):
        return None
    hits = np.flatnonzero(scores >= threshold)
    return int(hits[0]) if hits.size else None


def value_at_first_crossing(x: ArrayLike, scores: ArrayLike, threshold: float) -> float:
    """``x`` (T,) (e.g. frames or train_wall_s of each eval point) at :func:`first_crossing` of ``scores``
    (T,); ``nan`` when the threshold is never reached. Frames and wall-clock come from the same eval point."""
    index = first_crossing(scores, threshold)
    return float("nan") if index is None else float(np.asarray(x, dtype=float)[index])


def censored_median(values: ArrayLike, reached: ArrayLike, censor: ArrayLike) -> tuple[float, bool]:
    """Median time-to-threshold over *all* seeds, a seed that never reached it counting as "later than its end".

    ``values`` (n,): time (frames or seconds) at which each seed reached the threshold (ignored where
    ``reached`` (n,) is False); ``censor`` (n,): how long each seed ran (its frames or train wall-clock), the
    time we know a non-reaching seed exceeds. The median is monotone in every seed's time, so putting each
    non-reaching seed at its run's end gives a lower bound, and putting it at +inf an upper one. When the two
    agree the median is a measured time: ``(median, False)``. Otherwise it depends on times nobody measured and
    ``(lower bound, True)`` is returned: the median is "> bound" (with an even n, e.g., the mean of the middle
    seed's time and the next seed's run length). Failures are never dropped, as a mean over the successes
    would. ``(nan, False)`` for no seeds.
    """
    values = np.asarray(values, dtype=float)
    reached = np.asarray(reached, dtype=bool)
    censor = np.asarray(censor, dtype=float)
    if values.size == 0:
        return float("nan"), False
    low = float(np.median(np.where(reached, values, censor)))
    high = float(np.median(np.where(reached, values, np.inf)))
    return (low, False) if low == high else (low, True)


def interpolate_curve(
    x: ArrayLike, y: ArrayLike, grid: ArrayLike, kind: str = "step", hold_final: bool = True
) -> np.ndarray:
    """Values of one learning curve (x (T,), y (T,), x ascending) on a common ``grid`` (G,) -> (G,).

    Runs evaluate at slightly different frames (a GA generation overshoots the eval point) and very different
    wall-clock times, so averaging over seeds needs a common grid. ``kind="step"`` (default) holds the latest
    test evaluation at or before each grid point: a score is only known where it was measured (GA's elite does
    not change between generations; SB3's model does, but is only scored at evals), so it is what the policy
    had demonstrated by then.
    ``kind="linear"`` interpolates between eval points. Grid points before the first eval point are ``nan``
    (no extrapolation backwards). After the last eval point the run has finished and its policy is final:
    ``hold_final=True`` holds its final score there (so a curve averaged over seeds spans the slowest seed and
    ends at the mean final score of the tables); ``hold_final=False`` gives ``nan``.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    grid = np.asarray(grid, dtype=float)
    if kind == "linear":
        values = np.interp(grid, x, y)
    elif kind == "step":
        # side="right" - 1: the last eval point whose x <= grid point.
        index = np.searchsorted(x, grid, side="right") - 1
        values = y[np.clip(index, 0, x.size - 1)]
    else:
        raise ValueError(f"unknown interpolation {kind!r}; expected 'step' or 'linear'")
    values = np.where(grid > x[-1], y[-1] if hold_final else np.nan, values)
    return np.where(grid < x[0], np.nan, values)


def curve_band(
    curves: ArrayLike, *, confidence_level: float = DEFAULT_CONFIDENCE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds with its Student-t CI band (:func:`mean_ci`) at every grid point, for curves
    (S seeds, G grid points) -> 3 x (G,).

    The same interval as the summary table's final-score CI, so the band at a curve's right end (where every
    seed holds its final score) is exactly the table's interval. The band is ``nan`` where fewer than two
    seeds exist.
    """
    curves = np.asarray(curves, dtype=float)
    low, high = mean_ci(curves, confidence_level, axis=0)
    return curves.mean(axis=0), low, high


# --- how well intervals of a mean cover it (simulation) ------------------------------------------------------


@dataclass(frozen=True)
class CoverageScenario:
    """A known score distribution to draw seeds from: ``sample(rng, shape)`` -> array, and its true mean."""

    description: str
    sample: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]
    mean: float


def _capped_mixture(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return np.where(rng.random(shape) < 0.5, 1.0, rng.beta(2.0, 2.0, shape))


# Scores of a few RL seeds: bounded and bunched under a maximum; half the seeds tied at a cap (CartPole's 500,
# Pong's 21); and a heavy right tail, the textbook hard case for an interval of a mean.
COVERAGE_SCENARIOS: dict[str, CoverageScenario] = {
    "beta(5,1)": CoverageScenario(
        "bounded, bunched under the maximum (left skew)",
        lambda rng, shape: rng.beta(5.0, 1.0, shape),
        5.0 / 6.0,
    ),
    "capped mixture": CoverageScenario(
        "half the seeds tied at the cap 1, the rest Beta(2, 2) (CartPole-like: solved or stuck)",
        _capped_mixture,
        0.75,
    ),
    "lognormal(0,1)": CoverageScenario(
        "heavy right tail (skewness 6.2)",
        lambda rng, shape: rng.lognormal(0.0, 1.0, shape),
        math.exp(0.5),
    ),
}
INTERVAL_METHODS = ("student-t", "percentile", "BCa", "bootstrap-t")
COVERAGE_DRAWS = 2_000  # simulated sets of seeds per (scenario, n): Monte Carlo error ~0.5 points at 95 %


def interval_coverage(
    samples: ArrayLike,
    true_mean: float,
    method: str,
    rng: np.random.Generator,
    *,
    n_resamples: int = 2_000,
    confidence_level: float = DEFAULT_CONFIDENCE,
) -> float:
    """Fraction of the rows of ``samples`` (D draws, n seeds) whose CI of the mean contains ``true_mean``.

    ``method``: one of :data:`INTERVAL_METHODS`: ``student-t`` (:func:`mean_ci`), ``percentile`` and ``BCa``
    (``scipy.stats.bootstrap``), ``bootstrap-t`` (resampled studentised means; a resample whose seeds all tie
    has no spread and is left out). An interval that cannot be computed (``nan``, e.g. BCa on tied seeds)
    counts as a miss, as it would fail a reader.
    """
    samples = np.asarray(samples, dtype=float)
    if method == "student-t":
        low, high = mean_ci(samples, confidence_level)
    elif method in ("percentile", "BCa"):
        with warnings.catch_warnings():  # BCa on tied seeds warns and returns nan: counted as a miss
            warnings.simplefilter("ignore")
            result = scipy.stats.bootstrap(
                (samples,),
                np.mean,
                n_resamples=n_resamples,
                confidence_level=confidence_level,
                method=method,
                vectorized=True,
                axis=-1,
                batch=max(1, 20_000_000 // samples.size),
                rng=rng,
            )
        low, high = result.confidence_interval
    elif method == "bootstrap-t":
        low, high = _bootstrap_t(samples, rng, n_resamples, confidence_level)
    else:
        raise ValueError(f"unknown interval method {method!r}; expected one of {INTERVAL_METHODS}")
    return float(np.mean((np.asarray(low) <= true_mean) & (true_mean <= np.asarray(high))))


def _bootstrap_t(
    samples: np.ndarray, rng: np.random.Generator, n_resamples: int, confidence_level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap-t (studentised) intervals of the mean of each row of ``samples`` (D, n) -> 2 x (D,)."""
    d, n = samples.shape
    centre = samples.mean(axis=-1)
    se = samples.std(axis=-1, ddof=1) / math.sqrt(n)
    low, high = np.empty(d), np.empty(d)
    chunk = max(1, 5_000_000 // (n_resamples * n))
    alpha = (1 - confidence_level) / 2
    for start in range(0, d, chunk):
        rows = slice(start, start + chunk)
        part = samples[rows]
        index = rng.integers(0, n, (part.shape[0], n_resamples, n))
        resampled = np.take_along_axis(part[:, np.newaxis, :], index, axis=-1)
        resampled_se = resampled.std(axis=-1, ddof=1) / math.sqrt(n)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (resampled.mean(axis=-1) - centre[rows, np.newaxis]) / resampled_se
        t[~np.isfinite(t)] = np.nan
        with warnings.catch_warnings():  # every resample tied: no interval (nan, a miss)
            warnings.simplefilter("ignore", RuntimeWarning)
            t_low, t_high = np.nanquantile(t, [alpha, 1 - alpha], axis=-1)
        low[rows] = centre[rows] - t_high * se[rows]
        high[rows] = centre[rows] - t_low * se[rows]
    return low, high


def coverage_table(
    ns: Sequence[int] = (3, 5, 10),
    methods: Sequence[str] = INTERVAL_METHODS,
    scenarios: Mapping[str, CoverageScenario] | None = None,
    *,
    draws: int = COVERAGE_DRAWS,
    n_resamples: int = 2_000,
    confidence_level: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> dict[tuple[str, int, str], float]:
    """Measured coverage of each interval method for the mean of ``n`` seeds, per scenario:
    ``{(scenario, n, method): fraction of draws covered}``.

    Every method sees the same ``draws`` samples of each (scenario, n) (a paired comparison), drawn from
    ``rng_for(seed, "coverage", scenario, n)``; the Monte Carlo error of one coverage is about
    ``sqrt(0.95 * 0.05 / draws)`` (0.5 points for 2,000 draws). This is what chose :data:`MEAN_CI_METHOD`.
    """
    scenarios = COVERAGE_SCENARIOS if scenarios is None else scenarios
    table = {}
    for name, scenario in scenarios.items():
        for n in ns:
            samples = scenario.sample(rng_for(seed, "coverage", name, n), (draws, n))
            for method in methods:
                table[name, n, method] = interval_coverage(
                    samples,
                    scenario.mean,
                    method,
                    rng_for(seed, "coverage", name, n, method),
                    n_resamples=n_resamples,
                    confidence_level=confidence_level,
                )
    return table


def closest_to_nominal(
    table: Mapping[tuple[str, int, str], float], confidence_level: float = DEFAULT_CONFIDENCE
) -> str:
    """The method of a :func:`coverage_table` whose worst miss of the nominal level, over every scenario and
    seed count, is smallest.

    Worst case rather than average: a reader cannot tell which scenario their seeds come from, and an interval
    that is right on smooth scores but collapses when seeds tie at a cap (bootstrap-t) misleads exactly where
    RL scores live. Over-coverage counts as a miss too.
    """
    worst: dict[str, float] = {}
    for (_, _, method), coverage in table.items():
        worst[method] = max(worst.get(method, 0.0), abs(coverage - confidence_level))
    return min(worst, key=lambda method: (worst[method], method))


def _print_coverage_table() -> None:
    """``python -m neuroevo_bench.analysis.stats``: the coverage table behind :data:`MEAN_CI_METHOD`."""
    ns = (3, 5, 10)
    table = coverage_table(ns)
    print(
        f"Coverage of nominal {DEFAULT_CONFIDENCE:.0%} intervals for the mean "
        f"({COVERAGE_DRAWS:,} draws per cell, seed 0)\n"
    )
    for name, scenario in COVERAGE_SCENARIOS.items():
        print(f"{name}: {scenario.description}")
        print("  n  " + "".join(f"{m:>13}" for m in INTERVAL_METHODS))
        for n in ns:
            print(f"{n:>3}  " + "".join(f"{table[name, n, m]:>13.1%}" for m in INTERVAL_METHODS))
        print()
    print(f"closest to nominal in the worst case: {closest_to_nominal(table)} (tables use {MEAN_CI_METHOD})")


if __name__ == "__main__":
    _print_coverage_table()
