"""Upstream strategy formats (v3, v1.5, v1) load, train on real prices, or are refused once.

The files in ``strategies_upstream/`` are our own, written in the upstream
shapes. Prices are the real EURUSD hourly and GOOG daily series of the
``real_prices`` fixture; EURUSD is resampled here to 4h and 1d for the
multi-timeframe strategy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from real_prices import add_resampled_eurusd

from ktrdr_core.cli.strategies import strategies
from ktrdr_core.errors import BadInputError
from ktrdr_core.request import TrainingRequest
from ktrdr_core.training import pipeline
from ktrdr_core.training.data import OHLCV, load_ohlcv
from ktrdr_core.training.strategy import StrategyProblems, load_strategy_file
from ktrdr_core.training.timeframes import align_closed

FILES = Path(__file__).parent / "strategies_upstream"
HOUR = np.timedelta64(3600, "s")


@pytest.fixture(scope="module")
def prices(real_prices: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real EURUSD 1h / GOOG 1d, plus EURUSD 4h and 1d resampled from the hourly bars."""
    folder = tmp_path_factory.mktemp("prices")
    for item in real_prices.iterdir():
        shutil.copy(item, folder / item.name)
    return add_resampled_eurusd(folder)


@pytest.fixture()
def upstream(strategies_dir: Path) -> Path:
    for path in FILES.glob("*.yaml"):
        shutil.copy(path, strategies_dir / path.name)
    return strategies_dir


@pytest.mark.parametrize(
    ("name", "fmt", "symbols", "timeframes"),
    [
        ("v3_single", "v3", ("EURUSD",), ("1h",)),
        ("eurusd_mtf", "v3", ("EURUSD",), ("1h", "4h", "1d")),
        ("v3_multi_symbol", "v3", ("EURUSD", "GOOG"), ("1d",)),
        ("goog_v1", "v1", ("GOOG",), ("1d",)),
        ("eurusd_v15", "v1.5", ("EURUSD",), ("1h",)),
    ],
)
def test_each_format_loads(
    name: str, fmt: str, symbols: tuple[str, ...], timeframes: tuple[str, ...]
) -> None:
    config = load_strategy_file(FILES / f"{name}.yaml")
    assert (config.source_format, config.training_data.symbols, config.training_data.timeframes) == (
        fmt,
        symbols,
        timeframes,
    )


def test_v3_keys_become_the_native_ones() -> None:
    config = load_strategy_file(FILES / "v3_single.yaml")
    assert [(i.feature_id, i.name) for i in config.indicators] == [
        ("rsi_14", "rsi"),
        ("macd_12_26_9", "macd"),
        ("adx_14", "adx"),
    ]
    assert config.fuzzy_inputs == {"macd_momentum": "macd_12_26_9.histogram", "di_plus": "adx_14.plus_di"}
    oversold = config.fuzzy_sets["rsi_14"][0]
    assert (oversold.name, oversold.type, oversold.parameters) == (
        "oversold",
        "triangular",
        (0.0, 30.0, 45.0),
    )
    assert sorted(config.not_used) == ["decisions", "hypothesis", "risk_management"]
    assert any(n.startswith("model.features.scale_features") for n in config.notes)
    mtf = load_strategy_file(FILES / "eurusd_mtf.yaml")
    assert mtf.training_data.base_timeframe == "1h"
    assert mtf.inputs_on("1d") == ("rsi_14",) and mtf.inputs_on("4h") == ("rsi_14", "trend")
    v15 = load_strategy_file(FILES / "eurusd_v15.yaml")
    assert (v15.training_data.start_date, v15.training_data.end_date) == ("2017-06-01", "2018-02-01")
    v1 = load_strategy_file(FILES / "goog_v1.yaml")
    assert (v1.model.dropout, v1.model.lookback_periods, v1.model.training.early_stopping.patience) == (
        0.1,
        1,
        5,
    )


def test_refusal_lists_every_unsupported_item() -> None:
    with pytest.raises(StrategyProblems) as info:
        load_strategy_file(FILES / "refused_v3.yaml")
    assert list(info.value.problems) == [
        "training_data.symbols.symbol: not supported: template placeholder '{{symbol}}' "
        "(fill it in before training)",
        "decisions.output_format: not supported: 'regression' (ktrdr trains BUY/HOLD/SELL "
        "classifiers only, not a regression target)",
        "training.labels.source: not supported: 'forward_return' is a regression target "
        "(ktrdr trains BUY/HOLD/SELL labels: zigzag or triple_barrier)",
        "training_data.symbols[0] is not a valid symbol: '{{symbol}}'",
        "indicators[1].name unknown indicator type 'magic_oscillator' (known: ad_line, adx, "
        "aroon, atr, bollinger_band_width, bollinger_bands, cci, cmf, distance_from_ma, "
        "donchian, ema, fisher_transform, ichimoku, keltner, macd, mfi, momentum, obv, "
        "parabolic_sar, roc, rsi, rvi, sma, squeeze_intensity, stochastic, supertrend, "
        "volume_ratio, vwap, williams_r, wma, zigzag)",
    ]
    assert "\n" not in str(info.value)


def test_unknown_key_in_a_training_section_is_still_an_error(strategies_dir: Path) -> None:
    raw = yaml.safe_load((FILES / "v3_single.yaml").read_text())
    raw["model"]["training"]["learning_rat"] = 0.1
    (strategies_dir / "v3_single.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(BadInputError, match="unknown key 'model.training.learning_rat'"):
        load_strategy_file(strategies_dir / "v3_single.yaml")


@pytest.mark.parametrize("name", ["v3_single", "v3_multi_symbol", "goog_v1", "eurusd_v15"])
def test_each_format_trains_on_real_prices(name: str, upstream: Path, prices: Path, ktrdr_home: Path) -> None:
    result = pipeline.run_training(
        TrainingRequest(strategy=name, overrides={"data_dir": str(prices), "save_model": False})
    )
    assert result.training_metrics["epochs_trained"] == 2
    assert np.isfinite(result.training_metrics["val_loss"])
    meta = result.metadata
    assert meta["strategy_format"] == load_strategy_file(upstream / f"{name}.yaml").source_format
    assert meta["not_used_for_training"]  # every file here has such a section
    if name == "eurusd_v15":
        assert (meta["start_date"], meta["end_date"]) == ("2017-06-01", "2018-02-01")
        assert result.data_summary["series"][0]["first"].startswith("2017-06-01")


def test_multi_symbol_balances_across_symbols(upstream: Path, prices: Path, ktrdr_home: Path) -> None:
    result = pipeline.run_training(
        TrainingRequest(strategy="v3_multi_symbol", overrides={"data_dir": str(prices), "save_model": False})
    )
    series = result.data_summary["series"]
    assert [s["samples_used"] for s in series] == [min(s["samples"] for s in series)] * 2
    goog = next(s for s in series if s["symbol"] == "GOOG")
    balance = [
        d
        for d in result.metadata["discarded"]
        if d["symbol"] == "GOOG" and d["reason"].startswith("balancing")
    ]
    assert balance and balance[0]["count"] == goog["samples"] - goog["samples_used"]


def test_multi_timeframe_one_sample_per_base_bar(upstream: Path, prices: Path, ktrdr_home: Path) -> None:
    request = TrainingRequest(strategy="eurusd_mtf", overrides={"data_dir": str(prices), "save_model": False})
    result = pipeline.run_training(request)
    names = list(result.feature_names)
    assert names[:2] == ["1h_rsi_14_low", "1h_rsi_14_high"]
    assert "4h_trend_weak" in names and "1d_rsi_14_high" in names
    assert not any(n.startswith("1d_trend") or n.startswith("1h_trend") for n in names)
    base = next(s for s in result.data_summary["series"] if s["timeframe"] == "1h")
    assert base["role"] == "base" and base["bars"] == 5000
    assert [s["role"] for s in result.data_summary["series"]] == ["base", "context", "context"]
    # one symbol: nothing balanced away; every lost base bar is accounted for, with why
    lost = {d["reason"].split(":")[0]: d["count"] for d in result.metadata["discarded"]}
    assert set(lost) == {"incomplete features", "no label"}
    assert base["samples"] == base["samples_used"] == base["bars"] - sum(lost.values())
    assert lost["incomplete features"] < 24 * 16  # the 1d RSI's warm-up, not 96 % of the bars


def _features(strategy_path: Path, data: list[OHLCV]) -> tuple[np.ndarray, list[str]]:
    strategy = load_strategy_file(strategy_path)
    values = pipeline.compute_indicators(strategy, data)
    members = pipeline.compute_memberships(strategy, values)
    matrices, names = pipeline.build_features(strategy, members, data)
    return matrices[0], names


def _perturbed_after(bars: OHLCV, cutoff: np.datetime64, factor: float) -> OHLCV:
    """Every bar still open at ``cutoff`` (closing after it) scaled by ``factor``."""
    length = {"1h": 1, "4h": 4, "1d": 24}[bars.timeframe] * HOUR
    later = bars.timestamps.astype("datetime64[s]") + length > cutoff
    scale = np.where(later, factor, 1.0)
    return OHLCV(
        symbol=bars.symbol,
        timeframe=bars.timeframe,
        timestamps=bars.timestamps,
        open=bars.open * scale,
        high=bars.high * scale * np.where(later, 1.001, 1.0),
        low=bars.low * scale,
        close=bars.close * scale,
        volume=bars.volume,
    )


def test_multi_timeframe_has_no_look_ahead(prices: Path) -> None:
    """Prices after base bar t, on every timeframe, change no feature up to t."""
    data = [load_ohlcv("EURUSD", tf, prices) for tf in ("1h", "4h", "1d")]
    path = FILES / "eurusd_mtf.yaml"
    before, names = _features(path, data)
    for t in (1000, 2500, 4321):
        cutoff = data[0].timestamps[t].astype("datetime64[s]") + HOUR  # base bar t's close
        after, _ = _features(path, [_perturbed_after(s, cutoff, 1.03) for s in data])
        np.testing.assert_array_equal(before[: t + 1], after[: t + 1])
        assert not np.allclose(before[t + 30 :], after[t + 30 :], equal_nan=True)
    daily = [i for i, n in enumerate(names) if n.startswith("1d_")]
    assert np.isfinite(before[-1, daily]).all()


def test_alignment_takes_the_last_closed_bar() -> None:
    hours = np.arange(0, 48, dtype=np.int64).astype("datetime64[h]").astype("datetime64[s]")
    days = np.array([0, 24], dtype=np.int64).astype("datetime64[h]").astype("datetime64[s]")
    index = align_closed(hours, "1h", days, "1d")
    assert list(index[:23]) == [-1] * 23  # day 0 is still forming
    assert list(index[23:47]) == [0] * 24  # from its last hour on, day 0 is closed
    assert index[47] == 1


def test_check_and_migrate(upstream: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(strategies, ["check", "goog_v1"])
    assert ok.exit_code == 0, ok.output
    assert "OK — goog_v1 (v1 format)" in ok.output
    assert "not used for training: decisions, orchestrator" in ok.output
    bad = runner.invoke(strategies, ["check", str(upstream / "refused_v3.yaml")])
    assert bad.exit_code == 2 and "5 problem(s)" in bad.output
    assert bad.output.count("\n  - ") == 5
    for name in ("goog_v1", "eurusd_v15"):
        out = tmp_path / f"{name}_v3.yaml"
        done = runner.invoke(strategies, ["migrate", str(upstream / f"{name}.yaml"), "-o", str(out)])
        assert done.exit_code == 0, done.output
        text = out.read_text()
        assert text.startswith("# Migrated to the v3 format") and "# Dropped or rewritten" in text
        migrated = load_strategy_file(out)
        original = load_strategy_file(upstream / f"{name}.yaml")
        assert migrated.source_format == "v3" and migrated.name == f"{name}_v3"
        assert migrated.to_dict() | {"name": name} == original.to_dict()
        assert migrated.not_used == original.not_used
    same = runner.invoke(
        strategies, ["migrate", str(upstream / "goog_v1.yaml"), "-o", str(upstream / "goog_v1.yaml")]
    )
    assert same.exit_code != 0 and "never overwrites its input" in str(same.exception or same.output)
    again = runner.invoke(strategies, ["migrate", str(upstream / "v3_single.yaml")])
    assert "already in the v3 format" in str(again.exception)
