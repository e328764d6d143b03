"""The indicator registry and the built-in types: names, outputs, parameters, values.

Values are compared against TA-Lib called directly where the type is TA-Lib's,
and against values computed by hand (plain loops written here) where it is
our own code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import talib
from numpy.testing import assert_allclose

from ktrdr_core.training.indicators import (
    IndicatorRegistry,
    IndicatorSpec,
    ParamSpec,
    default_registry,
    parse_reference,
)
from ktrdr_core.training.indicators.registry import collect_indicators

#: Every type upstream ktrdr registers, with the outputs its strategy files use.
EXPECTED_OUTPUTS = {
    "rsi": ("rsi",),
    "sma": ("sma",),
    "ema": ("ema",),
    "wma": ("wma",),
    "macd": ("line", "signal", "histogram"),
    "momentum": ("momentum",),
    "roc": ("roc",),
    "cci": ("cci",),
    "williams_r": ("williams_r",),
    "stochastic": ("k", "d"),
    "rvi": ("rvi", "signal"),
    "fisher_transform": ("fisher", "signal"),
    "aroon": ("up", "down", "oscillator"),
    "adx": ("adx", "plus_di", "minus_di"),
    "atr": ("atr",),
    "bollinger_bands": ("middle", "upper", "lower", "percent_b", "width"),
    "bollinger_band_width": ("width",),
    "keltner": ("middle", "upper", "lower"),
    "donchian": ("middle", "upper", "lower", "width", "position"),
    "supertrend": ("trend", "direction"),
    "parabolic_sar": ("sar",),
    "ichimoku": ("tenkan", "kijun", "senkou_a", "senkou_b", "chikou"),
    "obv": ("obv",),
    "vwap": ("vwap",),
    "mfi": ("mfi",),
    "cmf": ("cmf",),
    "ad_line": ("ad_line",),
    "volume_ratio": ("volume_ratio",),
    "distance_from_ma": ("distance_from_ma",),
    "squeeze_intensity": ("squeeze_intensity",),
    "zigzag": ("zigzag", "direction"),
}


def bars(n: int = 600, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate(([close[0]], close[:-1])) * (1 + rng.normal(0, 0.002, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.006, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.006, n))
    return {
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": rng.uniform(100, 1000, n).round(),
    }


@pytest.fixture(scope="module")
def registry() -> IndicatorRegistry:
    return default_registry()


@pytest.fixture(scope="module")
def ohlcv() -> dict[str, np.ndarray]:
    return bars()


def compute(
    registry: IndicatorRegistry, name: str, data: dict[str, np.ndarray], **params: Any
) -> dict[str, np.ndarray]:
    spec = registry.get(name)
    assert spec is not None, name
    return spec.compute(data, params)


# --------------------------------------------------------------------------- registry


def test_every_upstream_type_is_registered_with_its_outputs(registry: IndicatorRegistry) -> None:
    assert set(EXPECTED_OUTPUTS) <= set(registry.names())
    for name, outputs in EXPECTED_OUTPUTS.items():
        assert registry.get(name).outputs == outputs, name  # type: ignore[union-attr]
    assert registry.names() == sorted(registry.names())


def test_builtins_register_through_the_hook(registry: IndicatorRegistry) -> None:
    from ktrdr_core.plugins import get_plugin_manager

    infos = {info.name: info for info in get_plugin_manager().plugin_infos()}
    assert "register_indicators" in infos["ktrdr-indicators"].hooks
    assert registry.plugin_of("rsi") == "ktrdr-indicators"
    assert registry.errors == {}


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("RSI", "rsi"),
        ("RSIIndicator", "rsi"),
        ("BollingerBands", "bollinger_bands"),
        ("bbands", "bollinger_bands"),
        ("BollingerBandWidth", "bollinger_band_width"),
        ("WilliamsR", "williams_r"),
        ("ParabolicSAR", "parabolic_sar"),
        ("psar", "parabolic_sar"),
        ("DonchianChannels", "donchian"),
        ("KeltnerChannels", "keltner"),
        ("ADLine", "ad_line"),
        ("AccumulationDistribution", "ad_line"),
        ("CMF", "cmf"),
        ("ChaikinMoneyFlow", "cmf"),
        ("AverageDirectionalIndex", "adx"),
        ("SuperTrend", "supertrend"),
        ("FisherTransform", "fisher_transform"),
        ("VolumeRatio", "volume_ratio"),
        ("SqueezeIntensity", "squeeze_intensity"),
        ("DistanceFromMA", "distance_from_ma"),
        ("ZigZag", "zigzag"),
        ("stoch", "stochastic"),
        ("StochasticIndicator", "stochastic"),
        ("SimpleMovingAverage", "sma"),
        ("ExponentialMovingAverage", "ema"),
        ("Ichimoku", "ichimoku"),
        ("MACD", "macd"),
        ("Momentum", "momentum"),
        ("OBV", "obv"),
        ("VWAP", "vwap"),
        ("MFI", "mfi"),
        ("RVI", "rvi"),
        ("Aroon", "aroon"),
        ("ATR", "atr"),
        ("CCI", "cci"),
        ("ROC", "roc"),
    ],
)
def test_upstream_spellings_resolve(registry: IndicatorRegistry, spelling: str, canonical: str) -> None:
    spec = registry.get(spelling)
    assert spec is not None and spec.type == canonical


def test_unknown_names(registry: IndicatorRegistry) -> None:
    assert registry.get("no_such_indicator") is None
    assert registry.get("") is None
    assert "no_such" not in registry
    message = registry.unknown_message("nope")
    assert "unknown indicator type 'nope'" in message and "rsi" in message


def _spec(name: str, aliases: tuple[str, ...] = ()) -> IndicatorSpec:
    return IndicatorSpec(
        name,
        ("value",),
        (ParamSpec("period", "int", 3, minimum=1),),
        ("close",),
        aliases,
        compute_fn=lambda a, p: {"value": a["close"] * 2},
        lookback_fn=lambda p: 0,
    )


def test_duplicate_type_or_alias_names_both() -> None:
    registry = IndicatorRegistry()
    registry.register(_spec("double", aliases=("twice",)), plugin="first-plugin")
    with pytest.raises(ValueError, match=r"'double'.*already registered.*first-plugin"):
        registry.register(_spec("double"))
    with pytest.raises(
        ValueError,
        match=r"'Twice' of 'other' is already taken by 'double' by "
        r"first-plugin",
    ):
        registry.register(_spec("other", aliases=("Twice",)))
    assert registry.names() == ["double"]


def test_a_broken_plugin_is_isolated() -> None:
    from ktrdr_core import hookimpl
    from ktrdr_core.plugins import KtrdrPluginManager
    from ktrdr_core.training.indicators import plugin as builtin_plugin

    class Good:
        @hookimpl
        def register_indicators(self, registry: Any) -> None:
            registry.register(_spec("double"))

    class Raises:
        @hookimpl
        def register_indicators(self, registry: Any) -> None:
            registry.register(_spec("half"))  # kept out: the hook fails after it
            raise RuntimeError("boom")

    class TakesABuiltinName:
        @hookimpl
        def register_indicators(self, registry: Any) -> None:
            registry.register(_spec("my_rsi", aliases=("rsi",)))

    pm = KtrdrPluginManager()
    pm.register(Raises(), name="raises")
    pm.register(Good(), name="good")
    pm.register(TakesABuiltinName(), name="greedy")
    pm.register(builtin_plugin, name="ktrdr-indicators")
    registry = collect_indicators(pm)
    assert "double" in registry and registry.plugin_of("double") == "good"
    assert "half" not in registry and "my_rsi" not in registry
    assert registry.get("rsi").type == "rsi"  # type: ignore[union-attr]
    assert registry.errors["raises"] == "RuntimeError: boom"
    assert "'rsi' of 'my_rsi' is already taken by 'rsi' by ktrdr-indicators" in registry.errors["greedy"]
    assert "raises: RuntimeError: boom" in registry.unknown_message("half")


@pytest.mark.parametrize(
    ("ref", "parsed"),
    [
        ("adx_14.plus_di", ("adx_14", "plus_di")),
        ("rsi_14", ("rsi_14", None)),
        ("macd_12_26_9.histogram", ("macd_12_26_9", "histogram")),
    ],
)
def test_parse_reference(ref: str, parsed: tuple[str, str | None]) -> None:
    assert parse_reference(ref) == parsed


@pytest.mark.parametrize("ref", ["", ".x", "a.", "a.b.c"])
def test_parse_reference_refuses(ref: str) -> None:
    with pytest.raises(ValueError, match="reference"):
        parse_reference(ref)


# --------------------------------------------------------------------------- parameters


def test_validate_fills_defaults(registry: IndicatorRegistry) -> None:
    clean, problems = registry.get("macd").validate({"fast_period": 8})  # type: ignore[union-attr]
    assert problems == []
    assert clean == {
        "fast_period": 8,
        "slow_period": 26,
        "signal_period": 9,
        "source": "close",
        "relative": False,
    }


def test_validate_reports_every_problem(registry: IndicatorRegistry) -> None:
    spec = registry.get("bollinger_bands")
    assert spec is not None
    _, problems = spec.validate({"period": 1, "multiplier": "two", "source": "vwap", "colour": 1})
    assert problems == [
        "period must be at least 2, got 1",
        "multiplier must be a number, got 'two'",
        "source must be one of open, high, low, close, got 'vwap'",
        "colour is not a parameter of bollinger_bands (parameters: period, multiplier, source)",
    ]


@pytest.mark.parametrize(
    ("name", "params", "problem"),
    [
        ("rsi", {"period": 2.5}, "period must be an integer, got 2.5"),
        ("rsi", {"period": True}, "period must be an integer, got True"),
        ("macd", {"fast_period": 30}, "fast_period must be less than slow_period (30 >= 26)"),
        ("zigzag", {"threshold": 0}, "threshold must be between 0 and 1"),
        ("parabolic_sar", {"acceleration": 0.5, "maximum": 0.2}, "acceleration must not exceed maximum"),
        ("aroon", {"include_oscillator": "yes"}, "include_oscillator must be true or false"),
        ("distance_from_ma", {"ma_type": "WMA"}, "ma_type must be one of SMA, EMA, got 'WMA'"),
        ("atr", {"source": "open"}, "source is not a parameter of atr (it reads high, low, close)"),
        ("sma", {"period": 10, "length": 3}, "length is not a parameter of sma"),
        ("bollinger_bands", {"multiplier": 2, "num_std": 3}, "num_std and multiplier are the same"),
        ("ema", {"period": float("nan")}, "period must be an integer"),
        ("keltner", {"multiplier": float("inf")}, "multiplier must be a finite number"),
    ],
)
def test_validate_problems(
    registry: IndicatorRegistry, name: str, params: dict[str, Any], problem: str
) -> None:
    _, problems = registry.get(name).validate(params)  # type: ignore[union-attr]
    assert len(problems) == 1 and problems[0].startswith(problem), problems


def test_other_tools_spellings_of_parameters(registry: IndicatorRegistry) -> None:
    clean, problems = registry.get("bollinger_bands").validate({"num_std": 2.5})  # type: ignore[union-attr]
    assert problems == [] and clean["multiplier"] == 2.5
    clean, problems = registry.get("atr").validate({"source": "close"})  # type: ignore[union-attr]
    assert problems == [] and "source" not in clean  # reads close anyway
    clean, problems = registry.get("distance_from_ma").validate({"ma_type": "ema"})  # type: ignore[union-attr]
    assert problems == [] and clean["ma_type"] == "EMA"
    assert registry.get("rsi").validate({"period": 14.0})[0]["period"] == 14  # type: ignore[union-attr]


def test_compute_refuses_bad_params_and_missing_columns(
    registry: IndicatorRegistry, ohlcv: dict[str, np.ndarray]
) -> None:
    with pytest.raises(ValueError, match=r"rsi: period must be at least 2"):
        compute(registry, "rsi", ohlcv, period=1)
    without_volume = {k: v for k, v in ohlcv.items() if k != "volume"}
    with pytest.raises(ValueError, match="obv needs the column"):
        compute(registry, "obv", without_volume)
    assert registry.get("obv").columns({}) == ("close", "volume")  # type: ignore[union-attr]
    assert registry.get("sma").columns({"source": "high"}) == ("high",)  # type: ignore[union-attr]


# --------------------------------------------------------------------------- every spec


@pytest.mark.parametrize("name", sorted(EXPECTED_OUTPUTS))
def test_warmup_is_the_first_defined_bar(
    registry: IndicatorRegistry, ohlcv: dict[str, np.ndarray], name: str
) -> None:
    spec = registry.get(name)
    assert spec is not None
    out = spec.compute(ohlcv, {})
    warmup = spec.warmup({})
    assert set(out) == set(spec.outputs)
    for output, values in out.items():
        assert values.dtype == np.float64 and values.shape == (600,)
        assert np.isnan(values[:warmup]).all() or output in (
            "chikou",
            "plus_di",
            "minus_di",
            "tenkan",
            "kijun",
            "senkou_a",
            "rvi",
            "fisher",
        ), output
    first_full = min(i for i in range(600) if all(np.isfinite(v[i:]).all() for v in out.values()))
    if name == "zigzag":
        assert first_full >= warmup  # depends on the data: a lower bound
    else:
        assert first_full == warmup


@pytest.mark.parametrize("name", sorted(EXPECTED_OUTPUTS))
def test_no_value_depends_on_later_bars(
    registry: IndicatorRegistry, ohlcv: dict[str, np.ndarray], name: str
) -> None:
    """The value at bar t is the same whether or not the bars after t exist."""
    spec = registry.get(name)
    assert spec is not None
    full = spec.compute(ohlcv, {})
    for t in (90, 200, 417):
        prefix = spec.compute({k: v[: t + 1] for k, v in ohlcv.items()}, {})
        for output in spec.outputs:
            assert_allclose(
                prefix[output],
                full[output][: t + 1],
                rtol=1e-9,
                atol=1e-12,
                equal_nan=True,
                err_msg=f"{name}.{output} at t={t}",
            )


def test_short_input_is_all_nan(registry: IndicatorRegistry, ohlcv: dict[str, np.ndarray]) -> None:
    out = compute(registry, "adx", {k: v[:10] for k, v in ohlcv.items()})
    assert all(np.isnan(v).all() and len(v) == 10 for v in out.values())


# --------------------------------------------------------------------------- TA-Lib's types


TALIB_CASES: list[tuple[str, dict[str, Any], Callable[[dict[str, np.ndarray]], dict[str, Any]]]] = [
    ("rsi", {"period": 9}, lambda d: {"rsi": talib.RSI(d["close"], 9)}),
    ("sma", {"period": 7, "source": "high"}, lambda d: {"sma": talib.SMA(d["high"], 7)}),
    ("ema", {"period": 12}, lambda d: {"ema": talib.EMA(d["close"], 12)}),
    ("wma", {"period": 10}, lambda d: {"wma": talib.WMA(d["close"], 10)}),
    (
        "macd",
        {"fast_period": 8, "slow_period": 21, "signal_period": 5},
        lambda d: dict(zip(("line", "signal", "histogram"), talib.MACD(d["close"], 8, 21, 5), strict=True)),
    ),
    ("momentum", {"period": 5}, lambda d: {"momentum": talib.MOM(d["close"], 5)}),
    ("roc", {"period": 12}, lambda d: {"roc": talib.ROC(d["close"], 12)}),
    ("cci", {"period": 20}, lambda d: {"cci": talib.CCI(d["high"], d["low"], d["close"], 20)}),
    (
        "williams_r",
        {"period": 14},
        lambda d: {"williams_r": talib.WILLR(d["high"], d["low"], d["close"], 14)},
    ),
    (
        "stochastic",
        {"k_period": 14, "d_period": 3, "smooth_k": 3},
        lambda d: dict(
            zip(("k", "d"), talib.STOCH(d["high"], d["low"], d["close"], 14, 3, 0, 3, 0), strict=True)
        ),
    ),
    (
        "aroon",
        {"period": 25},
        lambda d: {
            "down": talib.AROON(d["high"], d["low"], 25)[0],
            "up": talib.AROON(d["high"], d["low"], 25)[1],
            "oscillator": talib.AROONOSC(d["high"], d["low"], 25),
        },
    ),
    (
        "adx",
        {"period": 14},
        lambda d: {
            "adx": talib.ADX(d["high"], d["low"], d["close"], 14),
            "plus_di": talib.PLUS_DI(d["high"], d["low"], d["close"], 14),
            "minus_di": talib.MINUS_DI(d["high"], d["low"], d["close"], 14),
        },
    ),
    ("atr", {"period": 10}, lambda d: {"atr": talib.ATR(d["high"], d["low"], d["close"], 10)}),
    (
        "bollinger_bands",
        {"period": 20, "multiplier": 2.5},
        lambda d: dict(
            zip(("upper", "middle", "lower"), talib.BBANDS(d["close"], 20, 2.5, 2.5, 0), strict=True)
        ),
    ),
    (
        "donchian",
        {"period": 20},
        lambda d: {
            "upper": talib.MAX(d["high"], 20),
            "lower": talib.MIN(d["low"], 20),
            "middle": talib.MIDPRICE(d["high"], d["low"], 20),
        },
    ),
    (
        "parabolic_sar",
        {"acceleration": 0.03, "maximum": 0.25},
        lambda d: {"sar": talib.SAR(d["high"], d["low"], 0.03, 0.25)},
    ),
    (
        "ichimoku",
        {"displacement": 0},
        lambda d: {
            "tenkan": talib.MIDPRICE(d["high"], d["low"], 9),
            "kijun": talib.MIDPRICE(d["high"], d["low"], 26),
            "senkou_b": talib.MIDPRICE(d["high"], d["low"], 52),
        },
    ),
    ("obv", {}, lambda d: {"obv": talib.OBV(d["close"], d["volume"])}),
    ("mfi", {"period": 14}, lambda d: {"mfi": talib.MFI(d["high"], d["low"], d["close"], d["volume"], 14)}),
    ("ad_line", {}, lambda d: {"ad_line": talib.AD(d["high"], d["low"], d["close"], d["volume"])}),
]


@pytest.mark.parametrize(("name", "params", "expected"), TALIB_CASES, ids=[c[0] for c in TALIB_CASES])
def test_matches_talib(
    registry: IndicatorRegistry,
    ohlcv: dict[str, np.ndarray],
    name: str,
    params: dict[str, Any],
    expected: Callable[..., dict[str, Any]],
) -> None:
    out = compute(registry, name, ohlcv, **params)
    for output, values in expected(ohlcv).items():
        assert_allclose(out[output], values, rtol=1e-12, equal_nan=True, err_msg=f"{name}.{output}")


def test_relative_variants(registry: IndicatorRegistry, ohlcv: dict[str, np.ndarray]) -> None:
    close = ohlcv["close"]
    ema = talib.EMA(close, 20)
    assert_allclose(
        compute(registry, "ema", ohlcv, relative=True)["ema"], (close / ema - 1) * 100, equal_nan=True
    )
    line = talib.MACD(close, 12, 26, 9)[0]
    assert_allclose(
        compute(registry, "macd", ohlcv, relative=True)["line"], line / close * 100, equal_nan=True
    )
    atr = talib.ATR(ohlcv["high"], ohlcv["low"], close, 14)
    assert_allclose(compute(registry, "atr", ohlcv, relative=True)["atr"], atr / close * 100, equal_nan=True)


def test_bollinger_percent_b_and_width(registry: IndicatorRegistry, ohlcv: dict[str, np.ndarray]) -> None:
    out = compute(registry, "bollinger_bands", ohlcv)
    upper, middle, lower = talib.BBANDS(ohlcv["close"], 20, 2.0, 2.0, 0)
    assert_allclose(out["percent_b"], (ohlcv["close"] - lower) / (upper - lower), equal_nan=True)
    assert_allclose(out["width"], (upper - lower) / middle, equal_nan=True)
    assert_allclose(compute(registry, "bollinger_band_width", ohlcv)["width"], out["width"], equal_nan=True)
    flat = {k: np.full(40, 5.0) for k in ("open", "high", "low", "close", "volume")}
    assert compute(registry, "bollinger_bands", flat)["percent_b"][19:].tolist() == [0.5] * 21


# --------------------------------------------------------------------------- own code, by hand


def sma_loop(x: list[float], n: int) -> list[float]:
    return [
        float("nan") if i < n - 1 or any(np.isnan(x[i - n + 1 : i + 1])) else sum(x[i - n + 1 : i + 1]) / n
        for i in range(len(x))
    ]


def test_rvi_by_hand(registry: IndicatorRegistry, ohlcv: dict[str, np.ndarray]) -> None:
    o, h, lo, c = (ohlcv[k].tolist() for k in ("open", "high", "low", "close"))
    n = len(c)

    def weighted(v: list[float]) -> list[float]:
        return [
            float("nan") if i < 3 else (v[i - 3] + 2 * v[i - 2] + 2 * v[i - 1] + v[i]) / 6 for i in range(n)
        ]

    num = sma_loop(weighted([c[i] - o[i] for i in range(n)]), 10)
    den = sma_loop(weighted([h[i] - lo[i] for i in range(n)]), 10)
    rvi = [a / b for a, b in zip(num, den, strict=True)]
    out = compute(registry, "rvi", ohlcv)
    assert_allclose(out["rvi"], rvi, rtol=1e-9, equal_nan=True)
    assert_allclose(out["signal"], sma_loop(rvi, 4), rtol=1e-9, equal_nan=True)


def test_fisher_by_hand(registry: IndicatorRegistry, ohlcv: dict[str, np.ndarray]) -> None:
    h, lo = ohlcv["high"].tolist(), ohlcv["low"].tolist()
    raw = []
    for i in range(len(h)):
        if i < 9:
            raw.append(float("nan"))
            continue
        hh, ll = max(h[i - 9 : i + 1]), min(lo[i - 9 : i + 1])
        x = min(max(2 * (((h[i] + lo[i]) / 2) - ll) / (hh - ll) - 1, -0.999), 0.999)
        raw.append(0.5 * np.log((1 + x) / (1 - x)))
    out = compute(registry, "fisher_transform", ohlcv, smoothing=1)
    assert_allclose(out["fisher"], raw, rtol=1e-9, equal_nan=True)
    assert_allclose(out["signal"][1:], raw[:-1], rtol=1e-9, equal_nan=True)
    smoothed = compute(registry, "fisher_transform", ohlcv)["fisher"]
    assert_allclose(smoothed, talib.EMA(np.array(raw), 3), rtol=1e-9, equal_nan=True)


def test_keltner_and_squeeze_by_hand(registry: IndicatorRegistry, ohlcv: dict[str, np.ndarray]) -> None:
    h, lo, c = ohlcv["high"], ohlcv["low"], ohlcv["close"]
    middle = talib.EMA(c, 20)
    atr = talib.ATR(h, lo, c, 10)
    out = compute(registry, "keltner", ohlcv)
    assert_allclose(out["upper"], middle + 2 * atr, equal_nan=True)
    assert_allclose(out["lower"], middle - 2 * atr, equal_nan=True)
    bb_upper, _, bb_lower = talib.BBANDS(c, 20, 2.0, 2.0, 0)
    squeeze = compute(registry, "squeeze_intensity", ohlcv)["squeeze_intensity"]
    for i in (30, 200, 599):
        kc_u, kc_l = middle[i] + 2 * atr[i], middle[i] - 2 * atr[i]
        expected = max(0.0, min((kc_u - bb_upper[i]) / (kc_u - kc_l), (bb_lower[i] - kc_l) / (kc_u - kc_l)))
        assert squeeze[i] == pytest.approx(expected)
    assert np.nanmin(squeeze) >= 0 and np.nanmax(squeeze) <= 1


def test_volume_indicators_by_hand(registry: IndicatorRegistry, ohlcv: dict[str, np.ndarray]) -> None:
    h, lo, c, v = (ohlcv[k].tolist() for k in ("high", "low", "close", "volume"))
    i = 321
    typical = [(h[j] + lo[j] + c[j]) / 3 for j in range(i - 19, i + 1)]
    vwap = sum(p * q for p, q in zip(typical, v[i - 19 : i + 1], strict=True)) / sum(v[i - 19 : i + 1])
    assert compute(registry, "vwap", ohlcv)["vwap"][i] == pytest.approx(vwap)
    cumulative = compute(registry, "vwap", ohlcv, period=0, use_typical_price=False)["vwap"]
    assert cumulative[i] == pytest.approx(sum(c[j] * v[j] for j in range(i + 1)) / sum(v[: i + 1]))
    mfm = [((c[j] - lo[j]) - (h[j] - c[j])) / (h[j] - lo[j]) for j in range(i - 19, i + 1)]
    cmf = sum(m * q for m, q in zip(mfm, v[i - 19 : i + 1], strict=True)) / sum(v[i - 19 : i + 1])
    assert compute(registry, "cmf", ohlcv)["cmf"][i] == pytest.approx(cmf)
    ratio = v[i] / (sum(v[i - 19 : i + 1]) / 20)
    assert compute(registry, "volume_ratio", ohlcv)["volume_ratio"][i] == pytest.approx(ratio)


def test_distance_from_ma_and_donchian_position(
    registry: IndicatorRegistry, ohlcv: dict[str, np.ndarray]
) -> None:
    c, h, lo = ohlcv["close"].tolist(), ohlcv["high"].tolist(), ohlcv["low"].tolist()
    i = 100
    sma = sum(c[i - 19 : i + 1]) / 20
    assert compute(registry, "distance_from_ma", ohlcv)["distance_from_ma"][i] == pytest.approx(
        (c[i] - sma) / sma * 100
    )
    ema = talib.EMA(ohlcv["close"], 20)[i]
    assert compute(registry, "distance_from_ma", ohlcv, ma_type="EMA")["distance_from_ma"][
        i
    ] == pytest.approx((c[i] - ema) / ema * 100)
    top, bottom = max(h[i - 19 : i + 1]), min(lo[i - 19 : i + 1])
    out = compute(registry, "donchian", ohlcv)
    assert out["position"][i] == pytest.approx((c[i] - bottom) / (top - bottom))
    assert out["width"][i] == pytest.approx(top - bottom)


def test_ichimoku_spans_are_the_ones_computed_displacement_bars_ago(
    registry: IndicatorRegistry, ohlcv: dict[str, np.ndarray]
) -> None:
    shifted = compute(registry, "ichimoku", ohlcv)
    now = compute(registry, "ichimoku", ohlcv, displacement=0)
    assert_allclose(shifted["senkou_a"][26:], now["senkou_a"][:-26], equal_nan=True)
    assert_allclose(shifted["senkou_b"][26:], now["senkou_b"][:-26], equal_nan=True)
    assert_allclose(now["senkou_a"], (now["tenkan"] + now["kijun"]) / 2, equal_nan=True)
    assert_allclose(shifted["chikou"], ohlcv["close"])


def test_supertrend_by_hand(registry: IndicatorRegistry) -> None:
    close = np.array([10, 10, 10, 10, 11, 12, 13, 12, 9, 7, 6, 6.5, 8, 11, 12], dtype=float)
    data = {
        "open": close,
        "high": close + 0.5,
        "low": close - 0.5,
        "close": close,
        "volume": np.ones(len(close)),
    }
    out = compute(registry, "supertrend", data, period=3, multiplier=1.0)
    atr = talib.ATR(data["high"], data["low"], close, 3)
    mid = close  # (high + low) / 2
    # by hand: final bands ratchet, the trend flips when the close crosses the band in force
    up_band, low_band, up = mid[3] + atr[3], mid[3] - atr[3], close[3] > mid[3] - atr[3]
    expected_dir = [1.0 if up else -1.0]
    for t in range(4, len(close)):
        ub, lb = mid[t] + atr[t], mid[t] - atr[t]
        up_band = ub if ub < up_band or close[t - 1] > up_band else up_band
        low_band = lb if lb > low_band or close[t - 1] < low_band else low_band
        if up and close[t] < low_band:
            up = False
        elif not up and close[t] > up_band:
            up = True
        expected_dir.append(1.0 if up else -1.0)
        assert out["trend"][t] == pytest.approx(low_band if up else up_band)
    assert out["direction"][3:].tolist() == expected_dir
    assert -1.0 in expected_dir and 1.0 in expected_dir
    assert np.isnan(out["trend"][:3]).all()


def test_zigzag_confirms_pivots_only_after_the_reversal(registry: IndicatorRegistry) -> None:
    close = np.array([100, 104, 111, 108, 99, 97, 103, 106, 104], dtype=float)
    data = {"open": close, "high": close, "low": close, "close": close, "volume": np.ones(9)}
    out = compute(registry, "zigzag", data, threshold=0.05)
    nan = float("nan")
    # +5 % at bar 2 confirms the low 100; 99 is -10.8 % from 111 (confirms the high at bar 4);
    # 103 is +6.2 % from 97 (confirms the low at bar 6)
    assert_allclose(out["zigzag"], [nan, nan, 100, 100, 111, 111, 97, 97, 97], equal_nan=True)
    assert_allclose(out["direction"], [nan, nan, 1, 1, -1, -1, 1, 1, 1], equal_nan=True)


def test_docs_table_is_generated_from_the_registry(registry: IndicatorRegistry) -> None:
    from pathlib import Path

    from ktrdr_core.training.indicators.doc import BEGIN, END, markdown_table

    text = (Path(__file__).resolve().parents[2] / "docs" / "engine.md").read_text()
    table = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert table == markdown_table(registry), (
        "docs/engine.md's indicator table is stale: run "
        "python -m ktrdr_core.training.indicators.doc docs/engine.md"
    )
    for name in EXPECTED_OUTPUTS:
        assert f"| `{name}`" in table


def test_macd_accepts_the_short_parameter_names_upstream_files_use() -> None:
    spec = default_registry().get("macd")
    assert spec is not None
    short, problems = spec.validate({"fast": 5, "slow": 13, "signal": 4})
    assert problems == []
    long, _ = spec.validate({"fast_period": 5, "slow_period": 13, "signal_period": 4})
    assert short == long
    _, problems = spec.validate({"fast": 5, "fast_period": 6})
    assert problems and "same parameter" in problems[0]
