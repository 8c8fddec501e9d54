"""Pure statistics on arrays: no pandas, no plotting, no I/O.

Everything random takes a ``np.random.Generator`` built by the caller (see :func:`rng_for`), so a report is
reproducible bit for bit for a fixed seed. Confidence intervals are percentile bootstrap intervals from
``scipy.stats.bootstrap``: with the 3-10 seeds typical of RL experiments BCa intervals are unstable (and
undefined when all seeds tie, e.g. every CartPole run at 500), while percentile intervals are always defined.

Conventions: observations (seeds / runs) lie on the *last* axis; a statistic reduces the last axis and keeps
any leading axes, which is the shape contract ``scipy.stats.bootstrap(vectorized=True)`` expects. Where fewer
than two observations exist a confidence interval is ``nan`` (no spread can be estimated from one seed).
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Callable, Sequence

import numpy as np
import scipy.stats
from numpy.typing import ArrayLike

__all__ = [
    "DEFAULT_CONFIDENCE",
    "DEFAULT_RESAMPLES",
    "bootstrap_ci",
    "crossing_index",
    "curve_band",
    "interpolate_curve",
    "iqm",
    "mean",
    "median",
    "optimality_gap",
    "performance_profile",
    "probability_of_improvement",
    "rng_for",
    "stratified_bootstrap_ci",
    "value_at_crossing",
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


def crossing_index(scores: ArrayLike, threshold: float) -> float:
    """Fractional eval index at which ``scores`` (T,) first reaches ``threshold``; ``nan`` if it never does.

    Between the last eval point below the threshold and the first at or above it the score is taken as linear,
    so ``1.25`` means a quarter of the way from eval point 1 to eval point 2. Returning an index rather than a
    frame count lets one crossing give both frames- and wall-clock-to-threshold (:func:`value_at_crossing`). A
    first eval point already at the threshold gives 0; a ``nan`` score counts as not reached.
    """
    scores = np.asarray(scores, dtype=float)
    if np.isnan(threshold):
        return float("nan")
    hits = np.flatnonzero(scores >= threshold)
    if hits.size == 0:
        return float("nan")
    i = int(hits[0])
    if i == 0 or np.isnan(scores[i - 1]):
        return float(i)
    before, after = scores[i - 1], scores[i]
    return float(i - 1 + (threshold - before) / (after - before))


def value_at_crossing(x: ArrayLike, scores: ArrayLike, threshold: float) -> float:
    """``x`` (T,) (e.g. frames or train_wall_s of each eval point) linearly interpolated at the crossing.

    ``nan`` when ``scores`` (T,) never reach ``threshold``.
    """
    index = crossing_index(scores, threshold)
    if np.isnan(index):
        return float("nan")
    x = np.asarray(x, dtype=float)
    return float(np.interp(index, np.arange(x.size), x))


def interpolate_curve(x: ArrayLike, y: ArrayLike, grid: ArrayLike, kind: str = "step") -> np.ndarray:
    """Values of one learning curve (x (T,), y (T,), x ascending) on a common ``grid`` (G,) -> (G,).

    Runs evaluate at slightly different frames (a GA generation overshoots the eval point) and very different
    wall-clock times, so averaging over seeds needs a common grid. ``kind="step"`` (default) holds the latest
    test evaluation at or before each grid point: the score is only known where it was measured, and it is
    what the policy had demonstrated by then. ``kind="linear"`` interpolates between eval points. Grid points
    before the first or after the last eval point are ``nan`` (no extrapolation).
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
    return np.where((grid < x[0]) | (grid > x[-1]), np.nan, values)


def curve_band(
    curves: ArrayLike,
    rng: np.random.Generator,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence_level: float = DEFAULT_CONFIDENCE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds with a percentile bootstrap CI band, for curves (S seeds, G grid points) -> 3 x (G,).

    Whole curves are resampled (the same seeds at every grid point), so the band is that of a mean of S
    runs. The band is ``nan`` where fewer than two seeds exist.
    """
    curves = np.asarray(curves, dtype=float)
    point = curves.mean(axis=0)
    if curves.shape[0] < 2:
        return point, np.full_like(point, np.nan), np.full_like(point, np.nan)
    result = scipy.stats.bootstrap(
        (curves.T,),
        np.mean,
        n_resamples=n_resamples,
        confidence_level=confidence_level,
        method="percentile",
        vectorized=True,
        axis=-1,
        batch=max(1, min(n_resamples, 2_000_000 // max(curves.size, 1))),
        rng=rng,
    )
    ci = result.confidence_interval
    return point, np.asarray(ci.low, dtype=float), np.asarray(ci.high, dtype=float)
