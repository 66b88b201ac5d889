"""Small, dependency-free statistics for the KPIs: proportions with 95% intervals, histograms, quantiles."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Rate:
    """A proportion ``successes / trials`` with its Wilson 95% interval (None when there are no trials)."""

    successes: int
    trials: int

    @property
    def value(self) -> float | None:
        return self.successes / self.trials if self.trials else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.successes, self.trials)

    @property
    def low(self) -> float | None:
        return self.interval[0] if self.trials else None

    @property
    def high(self) -> float | None:
        return self.interval[1] if self.trials else None


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float] | None:
    """Return the Wilson score interval of a binomial proportion (good at small counts and near 0 or 1)."""
    if trials <= 0:
        return None
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Difference:
    """``a - b`` of two proportions with Newcombe's 95% interval (hybrid score, from the Wilson intervals)."""

    a: Rate
    b: Rate

    @property
    def value(self) -> float | None:
        if self.a.value is None or self.b.value is None:
            return None
        return self.a.value - self.b.value

    @property
    def interval(self) -> tuple[float, float] | None:
        if self.value is None:
            return None
        (l1, u1), (l2, u2) = self.a.interval, self.b.interval
        p1, p2 = self.a.value, self.b.value
        d = p1 - p2
        low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
        high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
        return max(-1.0, low), min(1.0, high)

    @property
    def significant(self) -> bool:
        """Whether the interval excludes 0 (the arms differ at the 95% level)."""
        interval = self.interval
        return interval is not None and (interval[0] > 0 or interval[1] < 0)


def quantile(sorted_values: Sequence[float], q: float) -> float | None:
    """Return the ``q`` quantile of already sorted values by linear interpolation (None if empty)."""
    if not sorted_values:
        return None
    position = (len(sorted_values) - 1) * q
    lower = math.floor(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    return sorted_values[lower] + (sorted_values[upper] - sorted_values[lower]) * (position - lower)


@dataclass(frozen=True)
class Bin:
    low: float
    high: float
    count: int

    @property
    def label(self) -> str:
        digits = 1 if self.high - self.low >= 0.1 - 1e-9 else 2
        return f"{self.low:.{digits}f}–{self.high:.{digits}f}"


def histogram_bins(counts: dict[int, int], *, low: float, high: float, bins: int) -> list[Bin]:
    """Turn {bucket number (1..bins): count} from SQL ``width_bucket`` into bins (values at ``high`` go last)."""
    width = (high - low) / bins
    out = []
    for i in range(1, bins + 1):
        count = counts.get(i, 0)
        if i == 1:
            count += counts.get(0, 0)  # below the range: clamp into the first bin
        if i == bins:
            count += counts.get(bins + 1, 0)  # the upper edge belongs to the last bin
        out.append(Bin(low + (i - 1) * width, low + i * width, count))
    return out
