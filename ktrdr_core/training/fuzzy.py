"""Fuzzy membership functions: how strongly a value belongs to a named set.

Each returns values in [0, 1], of the same shape as its input; NaN stays NaN
(an indicator's warm-up), so those rows are dropped later.

- ``triangular(x, a, b, c)``: 0 outside ``(a, c)``, 1 at ``b``, linear between.
  With ``a == b`` (or ``b == c``) the set is a shoulder: 1 at ``a`` (or ``c``).
- ``trapezoidal(x, a, b, c, d)``: 0 outside ``(a, d)``, 1 on ``[b, c]``, linear
  between. ``a = b = -inf`` makes a left shoulder (1 for every x <= c),
  ``c = d = inf`` a right shoulder.
- ``gaussian(x, mean, sigma)``: ``exp(-(x - mean)^2 / (2 sigma^2))``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ktrdr_core.cancellation import CancelCheck, no_cancel_check

__all__ = [
    "MEMBERSHIP_FUNCTIONS",
    "MIN_MEMBERSHIP",
    "fuzzify",
    "gaussian",
    "membership",
    "trapezoidal",
    "triangular",
]


def _rising(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """0 at ``low``, 1 at ``high`` (only used where ``low < x < high``)."""
    with np.errstate(all="ignore"):  # the values outside (low, high) are never used
        return (x - low) / (high - low)


def _falling(x: np.ndarray, low: float, high: float) -> np.ndarray:
    with np.errstate(all="ignore"):
        return (high - x) / (high - low)


def trapezoidal(x: Any, a: float, b: float, c: float, d: float) -> np.ndarray:
    """Trapezoid membership; see the module docstring for shoulders."""
    if not a <= b <= c <= d:
        raise ValueError(f"trapezoidal parameters must be ascending, got {[a, b, c, d]}")
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros(x.shape)
    out = np.where((x >= b) & (x <= c), 1.0, out)
    if a < b:
        out = np.where((x > a) & (x < b), _rising(x, a, b), out)
    if c < d:
        out = np.where((x > c) & (x < d), _falling(x, c, d), out)
    return np.where(np.isnan(x), np.nan, out)


def triangular(x: Any, a: float, b: float, c: float) -> np.ndarray:
    """Triangle membership: a trapezoid whose plateau is the single point ``b``."""
    if not a <= b <= c:
        raise ValueError(f"triangular parameters must be ascending, got {[a, b, c]}")
    return trapezoidal(x, a, b, b, c)


def gaussian(x: Any, mean: float, sigma: float) -> np.ndarray:
    """Bell membership centred on ``mean``."""
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-((x - mean) ** 2) / (2.0 * sigma * sigma))


#: Memberships below this become exactly 0 in :func:`fuzzify`. Gaussian tails
#: (1e-17 and less) otherwise breed denormal floats in the gradients and in
#: Adam's state, which makes CPU training several times slower.
MIN_MEMBERSHIP = 1e-6

MEMBERSHIP_FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "triangular": triangular,
    "trapezoidal": trapezoidal,
    "gaussian": gaussian,
}


def membership(x: Any, kind: str, parameters: Sequence[float]) -> np.ndarray:
    """Apply the membership function named ``kind``."""
    try:
        function = MEMBERSHIP_FUNCTIONS[kind]
    except KeyError:
        raise ValueError(f"unknown fuzzy set type {kind!r}") from None
    return function(x, *parameters)


def fuzzify(
    values: Mapping[str, np.ndarray],
    fuzzy_sets: Mapping[str, Sequence[Any]],
    check: CancelCheck = no_cancel_check,
) -> dict[str, np.ndarray]:
    """``{f"{feature_id}_{set}": membership}`` for every set of every indicator, in order.

    ``fuzzy_sets`` maps a feature id to objects with ``name``, ``type`` and
    ``parameters`` (:class:`~ktrdr_core.training.strategy.FuzzySetConfig`);
    ``check`` runs before each set (a cancel need not wait for all of them).
    """
    out: dict[str, np.ndarray] = {}
    for feature_id, sets in fuzzy_sets.items():
        series = values[feature_id]
        for fuzzy_set in sets:
            check()
            value = membership(series, fuzzy_set.type, fuzzy_set.parameters)
            out[f"{feature_id}_{fuzzy_set.name}"] = np.where(value < MIN_MEMBERSHIP, 0.0, value)
    return out
