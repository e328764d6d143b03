"""Features: indicator values → fuzzy memberships → a matrix with lag columns.

Column order: every fuzzy membership in strategy order (``{feature_id}_{set}``),
then, for each of those columns in the same order, its lags
``{col}_lag_1 .. {col}_lag_{lookback}`` (the value ``n`` bars earlier).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ktrdr_core.training.fuzzy import fuzzify
from ktrdr_core.training.indicators import compute_indicator
from ktrdr_core.training.strategy import StrategyConfig

__all__ = ["add_lags", "feature_matrix", "indicator_values", "lag_name", "memberships"]


def lag_name(column: str, lag: int) -> str:
    """``{col}_lag_{n}``."""
    return f"{column}_lag_{lag}"


def shift(values: np.ndarray, lag: int) -> np.ndarray:
    """``values`` moved ``lag`` bars later (the first ``lag`` become NaN)."""
    out = np.full(values.shape, np.nan)
    if lag < len(values):
        out[lag:] = values[: len(values) - lag]
    return out


def add_lags(columns: Mapping[str, np.ndarray], lookback: int) -> dict[str, np.ndarray]:
    """The columns, followed by ``lookback`` lagged copies of each."""
    if lookback < 0:
        raise ValueError("lookback must not be negative")
    out = dict(columns)
    for name, values in columns.items():
        for lag in range(1, lookback + 1):
            out[lag_name(name, lag)] = shift(np.asarray(values, dtype=np.float64), lag)
    return out


def indicator_values(strategy: StrategyConfig, ohlcv: Mapping[str, np.ndarray]
                     ) -> dict[str, np.ndarray]:
    """``{feature_id: series}`` for each of the strategy's indicators."""
    return {
        ind.feature_id: compute_indicator(ind.name, ind.period, ind.params, ind.source, ohlcv)
        for ind in strategy.indicators
    }


def memberships(strategy: StrategyConfig, values: Mapping[str, np.ndarray]
                ) -> dict[str, np.ndarray]:
    """The fuzzy membership columns of the strategy."""
    return fuzzify(values, strategy.fuzzy_sets)


def feature_matrix(columns: Mapping[str, np.ndarray], lookback: int
                   ) -> tuple[np.ndarray, list[str]]:
    """``(X, names)`` with lags; rows still hold NaN during warm-up (callers drop them)."""
    full = add_lags(columns, lookback)
    names: Sequence[str] = list(full)
    matrix = np.column_stack([full[name] for name in names]).astype(np.float32)
    return matrix, list(names)
