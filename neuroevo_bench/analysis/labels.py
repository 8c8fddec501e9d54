"""Display names, ordering and number formats shared by tables and figures.

One place decides how an algorithm is named, where it sorts and how a number is printed, so a table row and a
figure legend never disagree, and GA is listed first (and drawn in the same colour) in every report.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = [
    "ALGO_LABELS",
    "ALGO_ORDER",
    "algo_label",
    "format_count",
    "format_score",
    "format_seconds",
    "order_algos",
    "score_decimals",
]

# Known algorithms first, in this order (the subject of the study first, then its baselines); others by name.
ALGO_ORDER = ("ga", "random", "es", "a2c", "ppo", "dqn")
ALGO_LABELS = {"ga": "GA", "random": "Random search", "es": "ES", "a2c": "A2C", "ppo": "PPO", "dqn": "DQN"}


def order_algos(algos: Iterable[str]) -> list[str]:
    """Unique algorithm names in report order: :data:`ALGO_ORDER`, then any others alphabetically."""
    algos = set(algos)
    known = [a for a in ALGO_ORDER if a in algos]
    return known + sorted(algos - set(ALGO_ORDER))


def algo_label(algo: str) -> str:
    """Name for tables and legends (``ga`` -> ``GA``); unknown names are shown as they are."""
    return ALGO_LABELS.get(algo, algo)


def score_decimals(*values: float) -> int:
    """Decimals for returns of this magnitude: one from 10 up, two below, none from 10,000 (nan ignored).

    Taking the largest magnitude of a row's values prints a mean and its CI bounds alike ("254.7 [9.3, 500.0]",
    not "254.7 [9.30, 500.0]").
    """
    finite = [abs(v) for v in values if v is not None and not math.isnan(v)]
    largest = max(finite, default=0.0)
    return 0 if largest >= 10_000 else 1 if largest >= 10 else 2


def format_score(value: float, decimals: int | None = None) -> str:
    """A return with ``decimals`` (default: :func:`score_decimals` of the value); ``nan`` -> ``n/a``."""
    if value is None or math.isnan(value):
        return "n/a"
    decimals = score_decimals(value) if decimals is None else decimals
    return f"{value:,.{decimals}f}"


def format_count(value: float) -> str:
    """Frame counts and rates in k / M / G with three significant digits (``1234567`` -> ``1.23M``)."""
    if value is None or math.isnan(value):
        return "n/a"
    value = float(f"{value:.3g}")  # round first so 999,999 prints as 1M, not 1e+03k
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{suffix}"
    return f"{value:.3g}"


def format_seconds(value: float) -> str:
    """Wall-clock seconds: no decimals from 100 s up, one below (``n/a`` for nan)."""
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}"
