"""Indicators on real prices: TA-Lib agreement, features by reference, and no look-ahead.

The prices are the EURUSD hourly and GOOG daily series the ``backtesting``
package ships (fetched by the ``real_prices`` fixture).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
import talib
from numpy.testing import assert_allclose, assert_array_equal

from ktrdr_core.errors import BadInputError
from ktrdr_core.training import features, pipeline
from ktrdr_core.training.data import OHLCV, load_ohlcv
from ktrdr_core.training.indicators import default_registry
from ktrdr_core.training.strategy import StrategyConfig, parse_strategy

LOOKBACK = 2


def raw_strategy(indicators: list[dict[str, Any]], fuzzy_sets: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "every_indicator",
        "training_data": {"symbols": ["EURUSD"], "timeframes": ["1h"]},
        "indicators": indicators,
        "fuzzy_sets": fuzzy_sets,
        "model": {"type": "mlp", "features": {"lookback_periods": LOOKBACK}},
    }


def every_indicator_strategy(series: OHLCV) -> StrategyConfig:
    """One indicator of every registered type, a fuzzy set on its bare id and on every output.

    Each set is a gaussian centred on the output's median with its spread, so no
    membership column is all zeros (an all-zero column could not show a change).
    """
    registry = default_registry()
    indicators = [{"name": name, "feature_id": f"{name}_x"} for name in registry.names()]
    placeholder = {"m": {"type": "gaussian", "parameters": [0.0, 1.0]}}
    draft = parse_strategy(
        raw_strategy(indicators, {f"{name}_x": placeholder for name in registry.names()}), "draft"
    )
    values = features.indicator_values(draft, series.columns())
    fuzzy: dict[str, Any] = {}
    for reference, column in values.items():
        finite = column[np.isfinite(column)]
        sigma = float(np.std(finite)) or 1.0
        fuzzy[reference] = {"m": {"type": "gaussian", "parameters": [float(np.median(finite)), sigma]}}
    return parse_strategy(raw_strategy(indicators, fuzzy), "every_indicator")


def feature_rows(strategy: StrategyConfig, series: OHLCV) -> tuple[np.ndarray, list[str]]:
    values = pipeline.compute_indicators(strategy, [series])
    memberships = pipeline.compute_memberships(strategy, values)
    matrices, names = pipeline.build_features(strategy, memberships)
    return matrices[0], names


def perturbed_after(series: OHLCV, t: int, seed: int) -> OHLCV:
    """The same bars up to ``t``; every bar after it scaled by its own random factor."""
    rng = np.random.default_rng(seed)
    factor = np.ones(len(series))
    factor[t + 1 :] = rng.uniform(0.6, 1.6, len(series) - t - 1)
    volume = series.volume.copy() if series.volume is not None else None
    if volume is not None:
        volume[t + 1 :] *= rng.uniform(0.1, 5.0, len(series) - t - 1)
    return attrs.evolve(
        series,
        open=series.open * factor,
        high=series.high * factor,
        low=series.low * factor,
        close=series.close * factor,
        volume=volume,
    )


@pytest.fixture(scope="module")
def eurusd(real_prices: Path) -> OHLCV:
    return load_ohlcv("EURUSD", "1h", real_prices)


def test_real_files_load_with_the_pandas_header(real_prices: Path, eurusd: OHLCV) -> None:
    assert len(eurusd) == 5000 and eurusd.volume is not None
    assert eurusd.first() == "2017-04-19T09:00:00Z"
    goog = load_ohlcv("GOOG", "1d", real_prices)
    assert len(goog) == 2148 and goog.first() == "2004-08-19T00:00:00Z"


def test_talib_types_match_talib_on_real_prices(eurusd: OHLCV) -> None:
    registry = default_registry()
    h, lo, c, v = eurusd.high, eurusd.low, eurusd.close, eurusd.volume
    assert v is not None
    expected = {
        "rsi": {"rsi": talib.RSI(c, 14)},
        "sma": {"sma": talib.SMA(c, 20)},
        "ema": {"ema": talib.EMA(c, 20)},
        "wma": {"wma": talib.WMA(c, 20)},
        "macd": dict(zip(("line", "signal", "histogram"), talib.MACD(c, 12, 26, 9), strict=True)),
        "momentum": {"momentum": talib.MOM(c, 10)},
        "roc": {"roc": talib.ROC(c, 10)},
        "cci": {"cci": talib.CCI(h, lo, c, 20)},
        "williams_r": {"williams_r": talib.WILLR(h, lo, c, 14)},
        "stochastic": dict(zip(("k", "d"), talib.STOCH(h, lo, c, 14, 3, 0, 3, 0), strict=True)),
        "aroon": dict(zip(("down", "up"), talib.AROON(h, lo, 14), strict=True)),
        "adx": {
            "adx": talib.ADX(h, lo, c, 14),
            "plus_di": talib.PLUS_DI(h, lo, c, 14),
            "minus_di": talib.MINUS_DI(h, lo, c, 14),
        },
        "atr": {"atr": talib.ATR(h, lo, c, 14)},
        "bollinger_bands": dict(
            zip(("upper", "middle", "lower"), talib.BBANDS(c, 20, 2.0, 2.0, 0), strict=True)
        ),
        "parabolic_sar": {"sar": talib.SAR(h, lo, 0.02, 0.2)},
        "obv": {"obv": talib.OBV(c, v)},
        "mfi": {"mfi": talib.MFI(h, lo, c, v, 14)},
        "ad_line": {"ad_line": talib.AD(h, lo, c, v)},
    }
    data = eurusd.columns()
    for name, outputs in expected.items():
        got = registry.get(name).compute(data, {})  # type: ignore[union-attr]
        for output, values in outputs.items():
            assert_allclose(got[output], values, rtol=1e-12, equal_nan=True, err_msg=f"{name}.{output}")


def test_features_expose_every_output_by_reference(eurusd: OHLCV) -> None:
    strategy = every_indicator_strategy(eurusd)
    values = features.indicator_values(strategy, eurusd.columns())
    registry = default_registry()
    for ind in strategy.indicators:
        spec = registry.get(ind.name)
        assert spec is not None
        name = ind.name
        # a bare id is the primary output; the native schema's macd keeps meaning its histogram
        bare = "histogram" if name == "macd" else spec.primary
        assert ind.output == (None if bare == spec.primary else bare)
        assert_array_equal(values[f"{name}_x"], values[f"{name}_x.{bare}"])
        for output in spec.outputs:
            assert values[f"{name}_x.{output}"].shape == (5000,)
    matrix, names = feature_rows(strategy, eurusd)
    assert names[0] == "ad_line_x_m" and "adx_x.plus_di_m" in names and "adx_x.plus_di_m_lag_2" in names
    assert matrix.shape == (5000, len(names))
    usable = matrix[np.isfinite(matrix).all(axis=1)]
    assert len(usable) > 4000
    assert (usable.max(axis=0) > 0).all(), "every membership column is non-zero somewhere"


@pytest.mark.parametrize("t", [300, 2500, 4200])
def test_no_feature_up_to_t_depends_on_bars_after_t(eurusd: OHLCV, t: int) -> None:
    """Change every price and volume after bar t: every feature column up to t is unchanged."""
    strategy = every_indicator_strategy(eurusd)
    before, names = feature_rows(strategy, eurusd)
    after, _ = feature_rows(strategy, perturbed_after(eurusd, t, seed=t))
    assert_array_equal(after[: t + 1], before[: t + 1])
    # the perturbation is real: the bars after t do change (so the check above could fail)
    changed = ~np.isclose(after[t + 1 :], before[t + 1 :], equal_nan=True)
    changed_columns = {names[j] for j in np.flatnonzero(changed.any(axis=0))}
    assert len(changed_columns) > 0.9 * len(names)


def test_an_indicator_that_needs_volume_names_itself_and_the_file(tmp_path: Path, eurusd: OHLCV) -> None:
    lines = [",Open,High,Low,Close"] + [
        f"{np.datetime_as_string(ts)},{o},{h},{lo},{c}"
        for ts, o, h, lo, c in zip(
            eurusd.timestamps[:200], eurusd.open, eurusd.high, eurusd.low, eurusd.close, strict=False
        )
    ]
    path = tmp_path / "NOVOL_1h.csv"
    path.write_text("\n".join(lines) + "\n")
    series = load_ohlcv("NOVOL", "1h", tmp_path)
    assert series.volume is None
    gauss = {"m": {"type": "gaussian", "parameters": [0.0, 1.0]}}
    price_only = parse_strategy(
        raw_strategy([{"name": "rsi", "feature_id": "rsi"}], {"rsi": gauss}), "price_only"
    )
    assert np.isfinite(pipeline.compute_indicators(price_only, [series])[0]["rsi"][20:]).all()
    needs_volume = parse_strategy(
        raw_strategy(
            [{"name": "rsi", "feature_id": "rsi"}, {"name": "OBV", "feature_id": "obv_flow"}],
            {"rsi": gauss, "obv_flow": gauss},
        ),
        "needs_volume",
    )
    with pytest.raises(BadInputError) as err:
        pipeline.compute_indicators(needs_volume, [series])
    assert str(err.value) == (
        f"indicator 'obv_flow' (obv) needs the volume column, which {path} does not have"
    )
