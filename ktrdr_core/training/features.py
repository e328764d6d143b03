"""Features: indicator values → fuzzy memberships → a matrix with lag columns.

Each indicator is computed once; its outputs are exposed by reference:
``{feature_id: primary, f"{feature_id}.{output}": ..., ...}``, and the fuzzy
sets read those references (``adx_14.plus_di``).

Column order: every fuzzy membership in strategy order (``{key}_{set}``, the
key being the ``fuzzy_sets`` key), then, for each of those columns in the same
order, its lags ``{col}_lag_1 .. {col}_lag_{lookback}`` (the value ``n`` bars
earlier).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ktrdr_core.cancellation import CancelCheck, no_cancel_check
from ktrdr_core.errors import BadInputError
from ktrdr_core.training.fuzzy import fuzzify
from ktrdr_core.training.indicators import IndicatorSpec, default_registry
from ktrdr_core.training.strategy import IndicatorConfig, StrategyConfig

__all__ = [
    "add_lags",
    "check_columns",
    "feature_matrix",
    "indicator_values",
    "lag_name",
    "memberships",
    "spec_of",
    "warmup_bars",
]


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


def spec_of(indicator: IndicatorConfig) -> IndicatorSpec:
    """The registry spec of a parsed indicator (its plugin may have gone since parsing)."""
    registry = default_registry()
    spec = registry.get(indicator.name)
    if spec is None:
        raise BadInputError(f"indicator {indicator.feature_id!r}: {registry.unknown_message(indicator.name)}")
    return spec


def check_columns(
    strategy: StrategyConfig, ohlcv: Mapping[str, np.ndarray | None], where: str = "the data"
) -> None:
    """One clear error when an indicator needs a column (volume) that ``where`` lacks."""
    for ind in strategy.indicators:
        missing = [c for c in spec_of(ind).columns(ind.params) if ohlcv.get(c) is None]
        if missing:
            raise BadInputError(
                f"indicator {ind.feature_id!r} ({ind.name}) needs the "
                f"{', '.join(missing)} column, which {where} does not have"
            )


def indicator_values(
    strategy: StrategyConfig,
    ohlcv: Mapping[str, np.ndarray | None],
    where: str = "the data",
    check: CancelCheck = no_cancel_check,
) -> dict[str, np.ndarray]:
    """Every indicator computed once, by reference: ``{ID: selected output, "ID.OUT": ...}``.

    ``check`` runs before each indicator (one may be slow on a long series).
    """
    check_columns(strategy, ohlcv, where)
    present = {k: v for k, v in ohlcv.items() if v is not None}
    values: dict[str, np.ndarray] = {}
    for ind in strategy.indicators:
        check()
        spec = spec_of(ind)
        outputs = spec.compute(present, ind.params)
        for reference, output in ind.references(spec.outputs).items():
            values[reference] = outputs[output]
    return values


def warmup_bars(strategy: StrategyConfig) -> int:
    """The longest indicator warm-up of the strategy, in bars (before lags)."""
    return max((spec_of(ind).warmup(ind.params) for ind in strategy.indicators), default=0)


def memberships(
    strategy: StrategyConfig, values: Mapping[str, np.ndarray], check: CancelCheck = no_cancel_check
) -> dict[str, np.ndarray]:
    """The fuzzy membership columns of the strategy, each set reading its reference."""
    inputs = {key: values[strategy.reference_of(key)] for key in strategy.fuzzy_sets}
    return fuzzify(inputs, strategy.fuzzy_sets, check)


def feature_matrix(columns: Mapping[str, np.ndarray], lookback: int) -> tuple[np.ndarray, list[str]]:
    """``(X, names)`` with lags; rows still hold NaN during warm-up (callers drop them).

    The float32 matrix is filled column by column in a column-major buffer
    (contiguous writes; a row-major fill strides across every row and is ~3x
    slower at 100k bars), then copied to the row-major layout callers expect.
    The values and order are those of :func:`add_lags`.
    """
    if lookback < 0:
        raise ValueError("lookback must not be negative")
    plain = list(columns)
    names = plain + [lag_name(name, lag) for name in plain for lag in range(1, lookback + 1)]
    rows = len(next(iter(columns.values()))) if plain else 0
    by_column = np.empty((len(names), rows), dtype=np.float32)
    for j, name in enumerate(plain):
        by_column[j] = columns[name]
    j = len(plain)
    for i in range(len(plain)):
        for lag in range(1, lookback + 1):
            by_column[j, :lag] = np.nan
            if lag < rows:
                by_column[j, lag:] = by_column[i, : rows - lag]
            j += 1
    return np.ascontiguousarray(by_column.T), names
