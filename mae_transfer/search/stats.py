"""Seed statistics of a table cell: mean and spread over seeds, and the difference of two cells with its
confidence interval (Welch's t: two independent samples, unequal variances, no normal approximation for
the 3-5 seeds a table affords). scipy comes with mmsegmentation (a requirement of the seg harness)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

from scipy import stats as _scipy


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (n - 1; 0 for one seed) and seed count of a cell."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary | None:
        vals = [float(v) for v in values if v is not None and math.isfinite(v)]
        if not vals:
            return None
        return cls(statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0, len(vals))


@dataclass(frozen=True)
class Difference:
    """``a - b`` with its two-sided confidence interval; ``lo``/``hi`` are None when a side has one seed."""

    delta: float
    lo: float | None
    hi: float | None
    level: float

    @property
    def within_noise(self) -> bool | None:
        """True when the interval contains 0 (None: no interval)."""
        return None if self.lo is None else self.lo <= 0.0 <= self.hi


def welch_difference(a: Summary, b: Summary, level: float = 0.95) -> Difference:
    """Difference of means ``a - b`` and its Welch-Satterthwaite t interval at ``level``."""
    delta = a.mean - b.mean
    if a.n < 2 or b.n < 2:
        return Difference(delta, None, None, level)
    va, vb = a.std**2 / a.n, b.std**2 / b.n
    se = math.sqrt(va + vb)
    if se == 0.0:  # every seed gave the same value on both sides: nothing to spread
        return Difference(delta, delta, delta, level)
    df = (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
    half = float(_scipy.t.ppf(0.5 + level / 2, df)) * se
    return Difference(delta, delta - half, delta + half, level)
