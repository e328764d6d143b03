"""The built-in indicator types: TA-Lib wherever it has the indicator, own code otherwise.

Parameter names, defaults and output names follow the strategy files of the
upstream ktrdr project, so those files load unchanged. Where a type is
price-scaled (moving averages, MACD, ATR), ``relative: true`` makes it
scale-free: percent distance of the price from the average, or percent of
the price, so one set of fuzzy sets fits every symbol.

Warm-ups are TA-Lib's lookbacks (``talib.abstract.Function(...).lookback``
agrees; a test checks every spec against the first defined value).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import talib

from ktrdr_core.training.indicators import own
from ktrdr_core.training.indicators.registry import SOURCE_COLUMNS, IndicatorSpec, ParamSpec

__all__ = ["BUILTIN_SPECS"]

Arrays = Mapping[str, np.ndarray]
Params = Mapping[str, Any]


def _period(
    default: int,
    minimum: int = 1,
    name: str = "period",
    maximum: int = 10_000,
    description: str = "bars in the window",
    aliases: tuple[str, ...] = (),
) -> ParamSpec:
    return ParamSpec(
        name, "int", default, minimum=minimum, maximum=maximum, description=description, aliases=aliases
    )


SOURCE = ParamSpec(
    "source", "str", "close", choices=SOURCE_COLUMNS, description="price column the indicator reads"
)
RELATIVE = ParamSpec("relative", "bool", False, description="percent of the price instead of price units")


def _percent_of(value: np.ndarray, price: np.ndarray) -> np.ndarray:
    return value / price * 100.0


def _distance(price: np.ndarray, average: np.ndarray) -> np.ndarray:
    return (price / average - 1.0) * 100.0


def _moving_average(
    name: str, function: Any, library: str, aliases: tuple[str, ...], description: str
) -> IndicatorSpec:
    def compute(a: Arrays, p: Params) -> dict[str, np.ndarray]:
        price = a[p["source"]]
        average = function(price, timeperiod=p["period"])
        return {name: _distance(price, average) if p["relative"] else average}

    return IndicatorSpec(
        name,
        (name,),
        (_period(20), SOURCE, RELATIVE),
        (),
        aliases,
        compute_fn=compute,
        lookback_fn=lambda p: p["period"] - 1,
        library=library,
        description=description,
    )


def _single(
    name: str,
    function: Any,
    library: str,
    default: int,
    inputs: tuple[str, ...],
    lookback: int,
    *,
    minimum: int = 1,
    aliases: tuple[str, ...] = (),
    description: str = "",
) -> IndicatorSpec:
    """A one-output TA-Lib function of ``period`` over ``inputs`` (or ``source``)."""
    params: tuple[ParamSpec, ...] = (_period(default, minimum),)
    if not inputs:
        params += (SOURCE,)

    def compute(a: Arrays, p: Params) -> dict[str, np.ndarray]:
        columns = [a[c] for c in inputs] if inputs else [a[p["source"]]]
        return {name: function(*columns, timeperiod=p["period"])}

    return IndicatorSpec(
        name,
        (name,),
        params,
        inputs,
        aliases,
        compute_fn=compute,
        lookback_fn=lambda p: p["period"] - 1 + lookback,
        library=library,
        description=description,
    )


# --------------------------------------------------------------------------- multi-output


def _macd(a: Arrays, p: Params) -> dict[str, np.ndarray]:
    price = a[p["source"]]
    line, signal, hist = talib.MACD(
        price, fastperiod=p["fast_period"], slowperiod=p["slow_period"], signalperiod=p["signal_period"]
    )
    out = {"line": line, "signal": signal, "histogram": hist}
    if p["relative"]:
        out = {k: _percent_of(v, price) for k, v in out.items()}
    return out


def _macd_checks(p: Params) -> list[str]:
    if p["fast_period"] >= p["slow_period"]:
        return [f"fast_period must be less than slow_period ({p['fast_period']} >= {p['slow_period']})"]
    return []


def _stochastic(a: Arrays, p: Params) -> dict[str, np.ndarray]:
    k, d = talib.STOCH(
        a["high"],
        a["low"],
        a["close"],
        fastk_period=p["k_period"],
        slowk_period=p["smooth_k"],
        slowk_matype=talib.MA_Type.SMA,
        slowd_period=p["d_period"],
        slowd_matype=talib.MA_Type.SMA,
    )
    return {"k": k, "d": d}


def _rvi(a: Arrays, p: Params) -> dict[str, np.ndarray]:
    numerator = own.weighted_4(a["close"] - a["open"])
    denominator = own.weighted_4(a["high"] - a["low"])
    num = talib.SMA(numerator, timeperiod=p["period"])
    den = talib.SMA(denominator, timeperiod=p["period"])
    rvi = np.where(den != 0, num / den, 0.0)
    rvi = np.where(np.isnan(num) | np.isnan(den), np.nan, rvi)
    return {"rvi": rvi, "signal": talib.SMA(rvi, timeperiod=p["signal_period"])}


def _fisher(a: Arrays, p: Params) -> dict[str, np.ndarray]:
    high, low = a["high"], a["low"]
    median = (high + low) / 2.0
    hh = talib.MAX(high, timeperiod=p["period"])
    ll = talib.MIN(low, timeperiod=p["period"])
    span = hh - ll
    normalized = np.where(span > 0, 2.0 * (median - ll) / span - 1.0, 0.0)
    normalized = np.clip(normalized, -0.999, 0.999)
    raw = 0.5 * np.log((1.0 + normalized) / (1.0 - normalized))
    raw[np.isnan(span)] = np.nan
    fisher = talib.EMA(raw, timeperiod=p["smoothing"]) if p["smoothing"] > 1 else raw
    signal = np.concatenate(([np.nan], fisher[:-1]))
    return {"fisher": fisher, "signal": signal}


def _aroon(a: Arrays, p: Params) -> dict[str, np.ndarray]:
    down, up = talib.AROON(a["high"], a["low"], timeperiod=p["period"])
    return {"up": up, "down": down, "oscillator": up - down}


def _adx(a: Arrays, p: Params) -> dict[str, np.ndarray]:
    h, lo, c, n = a["high"], a["low"], a["close"], p["period"]
    return {
        "adx": talib.ADX(h, lo, c, timeperiod=n),
        "plus_di": talib.PLUS_DI(h, lo, c, timeperiod=n),
        "minus_di": talib.MINUS_DI(h, lo, c, timeperiod=n),
    }


def _atr(a: Arrays, p: Params) -> dict[str, np.ndarray]:
    value = talib.ATR(a["high"], a["low"], a["close"], timeperiod=p["period"])
    return {"atr": _percent_of(value, a["close"]) if p["relative"] else value}


def _bands(a: Arrays, p: Params) -> dict[str, np.ndarray]:
    price = a[p["source"]]
    upper, middle, lower = talib.BBANDS(
        price,
        timeperiod=p["period"],
        nbdevup=p["multiplier"],
        nbdevdn=p["multiplier"],
        matype=talib.MA_Type.SMA,
    )
    width = upper - lower
    percent_b = np.where(width > 0, (price - lower) / width, 0.5)
    percent_b[np.isnan(width)] = np.nan
    return {"middle": middle, "upper": upper, "lower": lower, "percent_b": percent_b, "width": width / middle}


def _band_width(a: Arrays, p: Params) -> dict[str, np.ndarray]:
    return {"width": _bands(a, p)["width"]}


def _keltner_lines(
    a: Arrays, period: int, atr_period: int, multiplier: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    middle = talib.EMA(a["close"], timeperiod=period)
    band = multiplier * talib.ATR(a["high"], a["low"], a["close"], timeperiod=atr_period)
    return middle, middle + band, middle - band


def _keltner(a: Arrays, p: Params) -> dict[str, np.ndarray]:
    middle, upper, lower = _keltner_lines(a, p["period"], p["atr_period"], p["multiplier"])
    return {"middle": middle, "upper": upper, "lower": lower}


def _donchian(a: Arrays, p: Params) -> dict[str, np.ndarray]:
    upper = talib.MAX(a["high"], timeperiod=p["period"])
    lower = talib.MIN(a["low"], timeperiod=p["period"])
    width = upper - lower
    position = np.where(width > 0, (a["close"] - lower) / width, 0.5)
    position[np.isnan(width)] = np.nan
    return {
        "middle": (upper + lower) / 2.0,
        "upper": upper,
        "lower": lower,
        "width": width,
        "position": position,
    }


def _supertrend(a: Arrays, p: Params) -> dict[str, np.ndarray]:
    atr = talib.ATR(a["high"], a["low"], a["close"], timeperiod=p["period"])
    trend, direction = own.supertrend(a["high"], a["low"], a["close"], atr, p["multiplier"])
    return {"trend": trend, "direction": direction}


def _sar(a: Arrays, p: Params) -> dict[str, np.ndarray]:
    return {"sar": talib.SAR(a["high"], a["low"], acceleration=p["acceleration"], maximum=p["maximum"])}


def _sar_checks(p: Params) -> list[str]:
    if p["acceleration"] > p["maximum"]:
        return [f"acceleration must not exceed maximum ({p['acceleration']:g} > {p['maximum']:g})"]
    return []


def _shift(x: np.ndarray, bars: int) -> np.ndarray:
    if bars == 0:
        return x
    out = np.full(x.shape, np.nan)
    out[bars:] = x[: len(x) - bars]
    return out


def _ichimoku(a: Arrays, p: Params) -> dict[str, np.ndarray]:
    h, lo = a["high"], a["low"]
    tenkan = talib.MIDPRICE(h, lo, timeperiod=p["tenkan_period"])
    kijun = talib.MIDPRICE(h, lo, timeperiod=p["kijun_period"])
    span_b = talib.MIDPRICE(h, lo, timeperiod=p["senkou_b_period"])
    shift = p["displacement"]
    return {
        "tenkan": tenkan,
        "kijun": kijun,
        "senkou_a": _shift((tenkan + kijun) / 2.0, shift),
        "senkou_b": _shift(span_b, shift),
        "chikou": a["close"].copy(),
    }


def _ichimoku_lookback(p: Params) -> int:
    longest = max(p["tenkan_period"], p["kijun_period"], p["senkou_b_period"])
    return longest - 1 + p["displacement"]


def _obv(a: Arrays, p: Params) -> dict[str, np.ndarray]:
    return {"obv": talib.OBV(a[p["source"]], a["volume"])}


def _vwap(a: Arrays, p: Params) -> dict[str, np.ndarray]:
    price = (a["high"] + a["low"] + a["close"]) / 3.0 if p["use_typical_price"] else a["close"]
    pv, volume = price * a["volume"], a["volume"]
    if p["period"] == 0:
        total_pv, total_volume = np.cumsum(pv), np.cumsum(volume)
    else:
        total_pv = talib.SUM(pv, timeperiod=p["period"])
        total_volume = talib.SUM(volume, timeperiod=p["period"])
    return {"vwap": np.where(total_volume > 0, total_pv / total_volume, np.nan)}


def _cmf(a: Arrays, p: Params) -> dict[str, np.ndarray]:
    h, lo, c, v = a["high"], a["low"], a["close"], a["volume"]
    span = h - lo
    multiplier = np.where(span > 0, ((c - lo) - (h - c)) / span, 0.0)
    flow = talib.SUM(multiplier * v, timeperiod=p["period"])
    volume = talib.SUM(v, timeperiod=p["period"])
    cmf = np.where(volume > 0, flow / volume, 0.0)
    cmf[np.isnan(volume)] = np.nan
    return {"cmf": cmf}


def _ad_line(a: Arrays, p: Params) -> dict[str, np.ndarray]:
    return {"ad_line": talib.AD(a["high"], a["low"], a["close"], a["volume"])}


def _volume_ratio(a: Arrays, p: Params) -> dict[str, np.ndarray]:
    average = talib.SMA(a["volume"], timeperiod=p["period"])
    ratio = np.where(average > 1e-10, a["volume"] / average, 1.0)
    ratio[np.isnan(average)] = np.nan
    return {"volume_ratio": ratio}


def _distance_from_ma(a: Arrays, p: Params) -> dict[str, np.ndarray]:
    price = a[p["source"]]
    function = talib.SMA if p["ma_type"] == "SMA" else talib.EMA
    return {"distance_from_ma": _distance(price, function(price, timeperiod=p["period"]))}


def _squeeze(a: Arrays, p: Params) -> dict[str, np.ndarray]:
    price = a[p["source"]]
    bb_upper, _, bb_lower = talib.BBANDS(
        price,
        timeperiod=p["bb_period"],
        nbdevup=p["bb_multiplier"],
        nbdevdn=p["bb_multiplier"],
        matype=talib.MA_Type.SMA,
    )
    _, kc_upper, kc_lower = _keltner_lines(a, p["kc_period"], p["atr_period"], p["kc_multiplier"])
    kc_range = kc_upper - kc_lower
    inside = np.minimum((kc_upper - bb_upper) / kc_range, (bb_lower - kc_lower) / kc_range)
    intensity = np.where(kc_range > 1e-10, np.maximum(0.0, inside), 0.0)
    intensity[np.isnan(kc_range) | np.isnan(bb_upper)] = np.nan
    return {"squeeze_intensity": intensity}


def _zigzag(a: Arrays, p: Params) -> dict[str, np.ndarray]:
    pivot, direction = own.causal_zigzag(a[p["source"]], p["threshold"])
    return {"zigzag": pivot, "direction": direction}


def _zigzag_checks(p: Params) -> list[str]:
    if not 0 < p["threshold"] < 1:
        return [f"threshold must be between 0 and 1 (a fraction: 0.05 is 5 %), got {p['threshold']:g}"]
    return []


MULTIPLIER = "standard deviations (or ATRs) from the middle line"

BUILTIN_SPECS: tuple[IndicatorSpec, ...] = (
    _single(
        "rsi",
        talib.RSI,
        "TA-Lib RSI",
        14,
        (),
        1,
        minimum=2,
        description="Wilder's relative strength index, 0..100",
    ),
    _moving_average("sma", talib.SMA, "TA-Lib SMA", ("simple_moving_average",), "simple moving average"),
    _moving_average(
        "ema",
        talib.EMA,
        "TA-Lib EMA",
        ("exponential_moving_average",),
        "exponential moving average, seeded with the SMA of the first period",
    ),
    _moving_average(
        "wma", talib.WMA, "TA-Lib WMA", ("weighted_moving_average",), "linearly weighted moving average"
    ),
    IndicatorSpec(
        "macd",
        ("line", "signal", "histogram"),
        (
            _period(12, name="fast_period", description="fast EMA", aliases=("fast",)),
            _period(26, name="slow_period", description="slow EMA", aliases=("slow",)),
            _period(9, name="signal_period", description="EMA of the line", aliases=("signal",)),
            SOURCE,
            RELATIVE,
        ),
        (),
        compute_fn=_macd,
        checks=_macd_checks,
        lookback_fn=lambda p: p["slow_period"] - 1 + p["signal_period"] - 1,
        library="TA-Lib MACD",
        description="MACD line, signal line and histogram",
    ),
    _single(
        "momentum",
        talib.MOM,
        "TA-Lib MOM",
        10,
        (),
        1,
        aliases=("mom",),
        description="price change over period bars",
    ),
    _single(
        "roc",
        talib.ROC,
        "TA-Lib ROC",
        10,
        (),
        1,
        aliases=("rate_of_change",),
        description="percent change over period bars",
    ),
    _single(
        "cci",
        talib.CCI,
        "TA-Lib CCI",
        20,
        ("high", "low", "close"),
        0,
        minimum=2,
        aliases=("commodity_channel_index",),
        description="commodity channel index",
    ),
    _single(
        "williams_r",
        talib.WILLR,
        "TA-Lib WILLR",
        14,
        ("high", "low", "close"),
        0,
        minimum=2,
        aliases=("willr", "williams_percent_r"),
        description="Williams %R, -100..0",
    ),
    IndicatorSpec(
        "stochastic",
        ("k", "d"),
        (
            _period(14, name="k_period", description="high/low window of %K"),
            _period(3, name="d_period", description="SMA of %K that gives %D"),
            _period(3, name="smooth_k", description="SMA smoothing of %K"),
        ),
        ("high", "low", "close"),
        ("stoch",),
        compute_fn=_stochastic,
        lookback_fn=lambda p: p["k_period"] - 1 + p["smooth_k"] - 1 + p["d_period"] - 1,
        library="TA-Lib STOCH",
        description="slow stochastic %K and %D, 0..100",
    ),
    IndicatorSpec(
        "rvi",
        ("rvi", "signal"),
        (_period(10), _period(4, name="signal_period", description="SMA of the RVI")),
        ("open", "high", "low", "close"),
        ("relative_vigor_index",),
        compute_fn=_rvi,
        lookback_fn=lambda p: 3 + p["period"] - 1 + p["signal_period"] - 1,
        library="own code (TA-Lib SMA)",
        description="relative vigor index: SMA of weighted close-open over SMA of "
        "weighted high-low; signal is its SMA",
    ),
    IndicatorSpec(
        "fisher_transform",
        ("fisher", "signal"),
        (_period(10), _period(3, name="smoothing", description="EMA of the transform")),
        ("high", "low"),
        ("fisher",),
        compute_fn=_fisher,
        lookback_fn=lambda p: p["period"] - 1 + (p["smoothing"] - 1 if p["smoothing"] > 1 else 0) + 1,
        library="own code (TA-Lib MAX/MIN/EMA)",
        description="Fisher transform of the median price's place in its range; signal is the previous value",
    ),
    IndicatorSpec(
        "aroon",
        ("up", "down", "oscillator"),
        (
            _period(14),
            ParamSpec(
                "include_oscillator",
                "bool",
                False,
                description="accepted for old files; the oscillator output is always there",
            ),
        ),
        ("high", "low"),
        (),
        compute_fn=_aroon,
        lookback_fn=lambda p: p["period"],
        library="TA-Lib AROON",
        description="Aroon up/down, 0..100, and up - down",
    ),
    IndicatorSpec(
        "adx",
        ("adx", "plus_di", "minus_di"),
        (_period(14, minimum=2),),
        ("high", "low", "close"),
        ("average_directional_index", "dmi"),
        compute_fn=_adx,
        lookback_fn=lambda p: 2 * p["period"] - 1,
        library="TA-Lib ADX, PLUS_DI, MINUS_DI",
        description="average directional index with +DI and -DI, 0..100",
    ),
    IndicatorSpec(
        "atr",
        ("atr",),
        (_period(14), RELATIVE),
        ("high", "low", "close"),
        ("average_true_range",),
        compute_fn=_atr,
        lookback_fn=lambda p: p["period"],
        library="TA-Lib ATR",
        description="Wilder's average true range",
    ),
    IndicatorSpec(
        "bollinger_bands",
        ("middle", "upper", "lower", "percent_b", "width"),
        (
            _period(20, minimum=2),
            ParamSpec(
                "multiplier",
                "float",
                2.0,
                minimum=0.01,
                maximum=100,
                description=MULTIPLIER,
                aliases=("num_std", "std_dev"),
            ),
            SOURCE,
        ),
        (),
        ("bbands", "bollinger"),
        compute_fn=_bands,
        lookback_fn=lambda p: p["period"] - 1,
        library="TA-Lib BBANDS",
        description="SMA ± multiplier population standard deviations; percent_b is "
        "(price - lower) / (upper - lower), width is (upper - lower) / middle",
    ),
    IndicatorSpec(
        "bollinger_band_width",
        ("width",),
        (
            _period(20, minimum=2),
            ParamSpec(
                "multiplier",
                "float",
                2.0,
                minimum=0.01,
                maximum=100,
                description=MULTIPLIER,
                aliases=("num_std", "std_dev"),
            ),
            SOURCE,
        ),
        (),
        ("bbwidth", "bb_width"),
        compute_fn=_band_width,
        lookback_fn=lambda p: p["period"] - 1,
        library="TA-Lib BBANDS",
        description="(upper - lower) / middle of the Bollinger bands",
    ),
    IndicatorSpec(
        "keltner",
        ("middle", "upper", "lower"),
        (
            _period(20, description="EMA of the close"),
            _period(10, name="atr_period", description="ATR window"),
            ParamSpec("multiplier", "float", 2.0, minimum=0.01, maximum=100, description=MULTIPLIER),
        ),
        ("high", "low", "close"),
        ("keltner_channels", "kc"),
        compute_fn=_keltner,
        lookback_fn=lambda p: max(p["period"] - 1, p["atr_period"]),
        library="own code (TA-Lib EMA, ATR)",
        description="EMA of the close ± multiplier Wilder ATRs",
    ),
    IndicatorSpec(
        "donchian",
        ("middle", "upper", "lower", "width", "position"),
        (
            _period(20),
            ParamSpec(
                "include_middle", "bool", True, description="accepted for old files; middle is always there"
            ),
        ),
        ("high", "low", "close"),
        ("donchian_channels", "dc"),
        compute_fn=_donchian,
        lookback_fn=lambda p: p["period"] - 1,
        library="TA-Lib MAX, MIN",
        description="highest high, lowest low, their mean, the width and where the close sits in it (0..1)",
    ),
    IndicatorSpec(
        "supertrend",
        ("trend", "direction"),
        (
            _period(10, description="ATR window"),
            ParamSpec(
                "multiplier",
                "float",
                3.0,
                minimum=0.01,
                maximum=100,
                description="ATRs from the median price",
            ),
        ),
        ("high", "low", "close"),
        ("super_trend",),
        compute_fn=_supertrend,
        lookback_fn=lambda p: p["period"],
        library="own code (TA-Lib ATR)",
        description="trailing ATR band and trend direction (+1 / -1)",
    ),
    IndicatorSpec(
        "parabolic_sar",
        ("sar",),
        (
            ParamSpec(
                "acceleration",
                "float",
                0.02,
                minimum=0.0001,
                maximum=1,
                description="acceleration factor step",
                aliases=("af", "af_step", "initial_af"),
            ),
            ParamSpec(
                "maximum",
                "float",
                0.2,
                minimum=0.0001,
                maximum=1,
                description="acceleration factor cap",
                aliases=("max_af", "af_max"),
            ),
        ),
        ("high", "low"),
        ("psar", "sar"),
        compute_fn=_sar,
        checks=_sar_checks,
        lookback_fn=lambda p: 1,
        library="TA-Lib SAR",
        description="Wilder's parabolic stop and reverse",
    ),
    IndicatorSpec(
        "ichimoku",
        ("tenkan", "kijun", "senkou_a", "senkou_b", "chikou"),
        (
            _period(9, name="tenkan_period", description="conversion line window"),
            _period(26, name="kijun_period", description="base line window"),
            _period(52, name="senkou_b_period", description="leading span B window"),
            _period(
                26, minimum=0, name="displacement", description="bars the leading spans are shifted forward"
            ),
        ),
        ("high", "low", "close"),
        ("ichimoku_cloud",),
        compute_fn=_ichimoku,
        lookback_fn=_ichimoku_lookback,
        library="TA-Lib MIDPRICE",
        description="conversion/base lines; the leading spans in force at each bar "
        "(computed displacement bars earlier); chikou is the close",
    ),
    IndicatorSpec(
        "obv",
        ("obv",),
        (SOURCE,),
        ("volume",),
        ("on_balance_volume",),
        compute_fn=_obv,
        lookback_fn=lambda p: 0,
        library="TA-Lib OBV",
        description="on-balance volume",
    ),
    IndicatorSpec(
        "vwap",
        ("vwap",),
        (
            _period(20, minimum=0, description="window; 0 means from the first bar"),
            ParamSpec(
                "use_typical_price", "bool", True, description="(high + low + close) / 3 instead of the close"
            ),
        ),
        ("high", "low", "close", "volume"),
        (),
        compute_fn=_vwap,
        lookback_fn=lambda p: max(p["period"] - 1, 0),
        library="own code (TA-Lib SUM)",
        description="volume-weighted average price over a rolling window",
    ),
    _single(
        "mfi",
        talib.MFI,
        "TA-Lib MFI",
        14,
        ("high", "low", "close", "volume"),
        1,
        aliases=("money_flow_index",),
        description="money flow index, 0..100",
    ),
    IndicatorSpec(
        "cmf",
        ("cmf",),
        (_period(20),),
        ("high", "low", "close", "volume"),
        ("chaikin_money_flow",),
        compute_fn=_cmf,
        lookback_fn=lambda p: p["period"] - 1,
        library="own code (TA-Lib SUM)",
        description="Chaikin money flow: summed money-flow volume over summed volume",
    ),
    IndicatorSpec(
        "ad_line",
        ("ad_line",),
        (),
        ("high", "low", "close", "volume"),
        ("accumulation_distribution", "ad", "adl"),
        compute_fn=_ad_line,
        lookback_fn=lambda p: 0,
        library="TA-Lib AD",
        description="Chaikin accumulation/distribution line",
    ),
    IndicatorSpec(
        "volume_ratio",
        ("volume_ratio",),
        (_period(20),),
        ("volume",),
        (),
        compute_fn=_volume_ratio,
        lookback_fn=lambda p: p["period"] - 1,
        library="own code (TA-Lib SMA)",
        description="volume over its SMA (1 when the SMA is 0)",
    ),
    IndicatorSpec(
        "distance_from_ma",
        ("distance_from_ma",),
        (
            _period(20),
            ParamSpec("ma_type", "str", "SMA", choices=("SMA", "EMA"), description="the average"),
            SOURCE,
        ),
        (),
        ("distance_from_moving_average",),
        compute_fn=_distance_from_ma,
        lookback_fn=lambda p: p["period"] - 1,
        library="own code (TA-Lib SMA/EMA)",
        description="percent distance of the price from its moving average",
    ),
    IndicatorSpec(
        "squeeze_intensity",
        ("squeeze_intensity",),
        (
            _period(20, minimum=2, name="bb_period", description="Bollinger window"),
            ParamSpec(
                "bb_multiplier",
                "float",
                2.0,
                minimum=0.01,
                maximum=100,
                description="Bollinger standard deviations",
            ),
            _period(20, name="kc_period", description="Keltner EMA window"),
            ParamSpec("kc_multiplier", "float", 2.0, minimum=0.01, maximum=100, description="Keltner ATRs"),
            _period(10, name="atr_period", description="Keltner ATR window"),
            SOURCE,
        ),
        ("high", "low", "close"),
        ("squeeze",),
        compute_fn=_squeeze,
        lookback_fn=lambda p: max(p["bb_period"] - 1, p["kc_period"] - 1, p["atr_period"]),
        library="own code (TA-Lib BBANDS, EMA, ATR)",
        description="how far the Bollinger bands sit inside the Keltner channel: 0 none, 1 fully squeezed",
    ),
    IndicatorSpec(
        "zigzag",
        ("zigzag", "direction"),
        (
            ParamSpec(
                "threshold",
                "float",
                0.05,
                minimum=0,
                maximum=1,
                description="reversal size, a fraction (0.05 is 5 %)",
            ),
            SOURCE,
        ),
        (),
        ("zig_zag",),
        compute_fn=_zigzag,
        checks=_zigzag_checks,
        lookback_fn=lambda p: 1,
        library="own code",
        description="last swing pivot price and leg direction, each as known at the "
        "bar (a pivot counts once the reversal has happened); the warm-up "
        "depends on the data",
    ),
)
