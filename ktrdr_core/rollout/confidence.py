"""Confidence bounds for the quality gates, from scipy.stats.

A gate must not read "1 error in 30 runs" and "0 in 30" as different facts
when the noise cannot tell them apart. Each judgement here returns an
estimate, a one-sided 95 % interval and a three-way verdict:

- PASS only when the bound on the *bad* side clears the threshold;
- FAIL only when the bound on the *good* side is past it (clearly broken);
- otherwise UNDECIDED, with an estimate of how many more samples would decide.

Rates use the Wilson score interval (``binomtest(...).proportion_ci``); ratios
of medians and medians of paired differences use a percentile bootstrap
(``scipy.stats.bootstrap``) with a fixed seed, so one ledger always gives one
verdict. A two-sided 90 % interval is used: each end is a one-sided 95 % bound.

scipy is imported inside the functions: ``ktrdr --help`` stays fast.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import attrs

CONFIDENCE = 0.95
"""One-sided confidence of every bound."""
TWO_SIDED_LEVEL = 1 - 2 * (1 - CONFIDENCE)
"""The two-sided level whose ends are the one-sided bounds (0.90)."""
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20240501
MAX_RUNS_NEEDED = 10_000_000
"""Searches for "runs needed" stop here: beyond it the answer is "practically never"."""

PASS = "PASS"
FAIL = "FAIL"
UNDECIDED = "UNDECIDED"


@attrs.frozen(kw_only=True)
class Judgement:
    """An estimate, its one-sided 95 % bounds, and what they say about a threshold."""

    estimate: float
    low: float
    high: float
    verdict: str
    samples: int
    more_needed: int | None = None
    """For UNDECIDED: about how many more samples (per side) would decide; ``None`` if never."""

    @property
    def interval(self) -> tuple[float, float]:
        return (self.low, self.high)


def wilson_bounds(successes: int, trials: int) -> tuple[float, float]:
    """One-sided 95 % lower and upper Wilson bounds of ``successes / trials``."""
    from scipy.stats import binomtest

    ci = binomtest(successes, trials).proportion_ci(confidence_level=TWO_SIDED_LEVEL, method="wilson")
    return float(ci.low), float(ci.high)


def _strictly_below(count: int, trials: int, limit: float) -> bool:
    return Fraction(count, trials) < Fraction(str(limit))


def _search(decides: Callable[[int], bool], start: int) -> int | None:
    """The smallest ``n >= start`` with ``decides(n)``, assuming it stays true once true."""
    if decides(start):
        return start
    low, high = start, start * 2
    while not decides(high):
        low, high = high, high * 2
        if high > MAX_RUNS_NEEDED:
            return None
    while high - low > 1:
        middle = (low + high) // 2
        if decides(middle):
            high = middle
        else:
            low = middle
    return high


def judge_rate(count: int, trials: int, limit: float) -> Judgement:
    """Judge the rate ``count / trials`` (0..1), which must stay strictly below ``limit``.

    PASS: the upper bound is below ``limit``; FAIL: the lower bound is above
    it. When undecided, ``more_needed`` assumes the observed rate continues
    (with no event seen yet: that none follow).
    """
    if trials <= 0:
        return Judgement(
            estimate=math.nan,
            low=0.0,
            high=1.0,
            verdict=UNDECIDED,
            samples=0,
            more_needed=runs_to_pass_rate(0, limit),
        )
    low, high = wilson_bounds(count, trials)
    estimate = count / trials
    if high < limit:
        return Judgement(estimate=estimate, low=low, high=high, verdict=PASS, samples=trials)
    if low > limit:
        return Judgement(estimate=estimate, low=low, high=high, verdict=FAIL, samples=trials)
    total: int | None
    if _strictly_below(count, trials, limit):
        total = _search(lambda n: wilson_bounds(round(estimate * n), n)[1] < limit, trials + 1)
    elif estimate > limit:
        total = _search(lambda n: wilson_bounds(round(estimate * n), n)[0] > limit, trials + 1)
    else:
        total = None  # exactly at the limit: more of the same never decides
    return Judgement(
        estimate=estimate,
        low=low,
        high=high,
        verdict=UNDECIDED,
        samples=trials,
        more_needed=None if total is None else total - trials,
    )


def runs_to_pass_rate(rate: float, limit: float) -> int | None:
    """Trials needed for a true ``rate`` (observed exactly) to PASS against ``limit``."""
    if rate >= limit:
        return None
    return _search(lambda n: wilson_bounds(round(rate * n), n)[1] < limit, 1)


def runs_to_fail_rate(rate: float, limit: float) -> int | None:
    """Trials needed for a true ``rate`` (observed exactly) to FAIL against ``limit``."""
    if rate <= limit:
        return None
    return _search(lambda n: wilson_bounds(round(rate * n), n)[0] > limit, 1)


def _bootstrap_bounds(
    samples: Sequence[Sequence[float]], statistic: Callable[..., Any]
) -> tuple[float, float]:
    import numpy as np
    from scipy.stats import bootstrap

    arrays = tuple(np.asarray(s, dtype=float) for s in samples)
    if all(np.ptp(a) == 0 for a in arrays):  # no spread: the bootstrap distribution is one point
        value = float(statistic(*arrays, axis=-1))
        return value, value
    result = bootstrap(
        arrays,
        statistic,
        confidence_level=TWO_SIDED_LEVEL,
        n_resamples=BOOTSTRAP_RESAMPLES,
        method="percentile",
        vectorized=True,
        paired=False,
        rng=np.random.default_rng(BOOTSTRAP_SEED),
    )
    ci = result.confidence_interval
    return float(ci.low), float(ci.high)


def _median_ratio(candidate: Any, control: Any, axis: int = -1) -> Any:
    import numpy as np

    return np.median(candidate, axis=axis) / np.median(control, axis=axis)


def _median(values: Any, axis: int = -1) -> Any:
    import numpy as np

    return np.median(values, axis=axis)


def _more_for_width(samples: int, estimate: float, bound: float, limit: float) -> int | None:
    """More samples for the interval to shrink from ``bound`` to ``limit`` (width ~ 1/sqrt(n))."""
    have = abs(bound - estimate)
    room = abs(limit - estimate)
    if room == 0:
        return None
    if have == 0:
        return 1
    total = math.ceil(samples * (have / room) ** 2)
    return max(1, total - samples) if total <= MAX_RUNS_NEEDED else None


def _judge_at_most(estimate: float, low: float, high: float, limit: float, samples: int) -> Judgement:
    if high <= limit:
        return Judgement(estimate=estimate, low=low, high=high, verdict=PASS, samples=samples)
    if low > limit:
        return Judgement(estimate=estimate, low=low, high=high, verdict=FAIL, samples=samples)
    bound = high if estimate <= limit else low
    return Judgement(
        estimate=estimate,
        low=low,
        high=high,
        verdict=UNDECIDED,
        samples=samples,
        more_needed=None if estimate == limit else _more_for_width(samples, estimate, bound, limit),
    )


def judge_median_ratio(candidate: Sequence[float], control: Sequence[float], limit: float) -> Judgement:
    """Judge median(candidate) / median(control), which must be at most ``limit``.

    Both samples are resampled independently (they are different runs), so the
    interval covers the noise of both medians.
    """
    estimate = float(_median_ratio(candidate, control))
    low, high = _bootstrap_bounds((candidate, control), _median_ratio)
    return _judge_at_most(estimate, low, high, limit, min(len(candidate), len(control)))


def judge_median(values: Sequence[float], limit: float) -> Judgement:
    """Judge the median of ``values`` (e.g. paired differences), which must be at most ``limit``."""
    estimate = float(_median(values))
    low, high = _bootstrap_bounds((values,), _median)
    return _judge_at_most(estimate, low, high, limit, len(values))
