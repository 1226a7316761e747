"""Confidence intervals for the figures a suite reports, sized for small samples.

A CI-sized run answers 5 questions; a full run a few hundred. A bare mean would make both look
equally certain, and `bastion eval compare` would flag noise as a regression. Proportions get the
Wilson interval (sound at n=5 and at p=0 or 1, where the normal one collapses to a point); other
means get a seeded percentile bootstrap, so the same data always gives the same interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from evals._result import Metric

Z95 = 1.959964
BOOTSTRAP_RESAMPLES = 2000


def wilson(successes: int, n: int) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap(values: Sequence[float], *, seed: int = 0) -> tuple[float, float]:
    if len(values) < 2:
        return (values[0], values[0]) if values else (0.0, 0.0)
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(BOOTSTRAP_RESAMPLES, len(data)))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return float(low), float(high)


def mean_metric(
    name: str,
    values: Sequence[float],
    *,
    higher_is_better: bool | None = True,
    unit: str = "",
    proportion: bool = True,
) -> Metric:
    """The mean of per-item scores with its 95 % interval: Wilson when every score is 0 or 1 and the
    scores are hits (`proportion`); a seeded bootstrap otherwise. A paired difference is never a
    proportion, even when every difference happens to be 0 or 1 (all zeros is no gain, with no spread)."""
    if not values:
        return Metric(name=name, value=float("nan"), n=0, higher_is_better=higher_is_better, unit=unit)
    mean = sum(values) / len(values)
    if proportion and all(v in (0.0, 1.0) for v in values):
        low, high = wilson(int(sum(values)), len(values))
    else:
        low, high = bootstrap(values)
    return Metric(
        name=name,
        value=round(mean, 4),
        n=len(values),
        ci_low=round(low, 4),
        ci_high=round(high, 4),
        higher_is_better=higher_is_better,
        unit=unit,
    )


def figure(name: str, value: float, *, higher_is_better: bool | None = None, unit: str = "") -> Metric:
    """A measured figure that is not a sample mean (a token count, a ratio of totals): no interval."""
    return Metric(name=name, value=round(value, 4), n=0, higher_is_better=higher_is_better, unit=unit)
