"""Only the bars a date range needs are shipped, and the worker's features equal a local run's.

No Ray here: the payload is built on the driver side and its (sliced) files
are fed through the engine's own steps, next to the whole files.
"""

from __future__ import annotations

import gzip
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from ktrdr_cloud.payload import build_payload
from ktrdr_cloud.slicing import slice_data_file, warmup_rows
from ktrdr_core import BadInputError, TrainingRequest
from ktrdr_core.training import pipeline
from ktrdr_core.training.data import SAMPLE_DATA_DIR, load_ohlcv, parse_date_bound
from ktrdr_core.training.strategy import load_strategy

REPO = Path(__file__).resolve().parents[3]


def _real_prices_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("real_prices", REPO / "tests" / "real_prices.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def real_prices(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Path:
    """EURUSD 1h (real prices from the ``backtesting`` wheel) and its 4h resampling."""
    module = _real_prices_module()
    cache = getattr(pytestconfig, "cache", None)
    wheels = cache.mkdir("backtesting-wheel") if cache is not None else tmp_path_factory.mktemp("wheel")
    folder = module.fetch_real_prices(wheels, tmp_path_factory.mktemp("real-prices"))
    return module.add_resampled_eurusd(folder)


def _features(
    request: TrainingRequest, data_dir: Path
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """The engine's own steps up to the labels: (timestamps, feature matrices, labels) per symbol."""
    strategy = load_strategy(request.strategy)
    symbols, timeframes = pipeline.select_series(request, strategy)
    start, end = pipeline.date_range(request, strategy)
    data = pipeline.load_data(symbols, timeframes, data_dir, start_date=start, end_date=end)
    values = pipeline.compute_indicators(strategy, data)
    memberships = pipeline.compute_memberships(strategy, values)
    matrices, _ = pipeline.build_features(strategy, memberships, data)
    labelled = pipeline.build_labels(strategy, data, matrices)
    bases = pipeline.base_series(strategy, data)
    return [b.timestamps for b in bases], matrices, [s.y for s in labelled]


def _ship(request: TrainingRequest, folder: Path) -> Path:
    """Write what the driver would ship for ``request`` into ``folder`` (the worker's data dir)."""
    payload = build_payload(request)
    for name, content in payload.data_files.items():
        (folder / name).write_bytes(content)
    return folder


def _assert_same(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.shape == y.shape
        assert np.array_equal(x, y, equal_nan=True)


@pytest.mark.parametrize(
    ("start", "end"),
    [("2023-03-01", "2023-04-30"), ("2023-01-01", "2023-02-01"), (None, "2023-02-15"), ("2023-06-01", None)],
)
def test_sample_data_range_gives_the_same_features_as_the_whole_files(
    tmp_path: Path, start: str | None, end: str | None
) -> None:
    request = TrainingRequest(strategy="neuro_mean_reversion", start_date=start, end_date=end)
    shipped = _ship(request, tmp_path)
    whole = _features(request, SAMPLE_DATA_DIR)
    sliced = _features(request, shipped)
    for part in range(3):
        _assert_same(whole[part], sliced[part])
    assert len(whole[1][0]) > 100  # a real range, not an empty one


def test_a_two_month_range_ships_a_fraction_of_the_bytes_with_the_warm_up_before_it(tmp_path: Path) -> None:
    request = TrainingRequest(strategy="neuro_mean_reversion", start_date="2023-03-01", end_date="2023-04-30")
    payload = build_payload(request)
    assert payload.data_bytes < 0.4 * sum(payload.whole_bytes.values())
    strategy = load_strategy("neuro_mean_reversion")
    warm = warmup_rows(strategy)
    assert warm >= strategy.model.lookback_periods + 26  # MACD's slow EMA at least
    start = parse_date_bound("2023-03-01")
    end = parse_date_bound("2023-04-30", end=True)
    for name, content in payload.data_files.items():
        assert name.endswith(".csv.gz")  # same name (and compression) as the driver's file
        (tmp_path / name).write_bytes(content)
        symbol = name.rsplit("_", 1)[0]
        shipped = load_ohlcv(symbol, "1h", tmp_path)
        full = load_ohlcv(symbol, "1h", SAMPLE_DATA_DIR)
        first_in_range = int(np.searchsorted(full.timestamps, start))
        assert shipped.timestamps[0] == full.timestamps[first_in_range - warm]
        assert shipped.timestamps[-1] == full.timestamps[full.timestamps <= end][-1]
        assert np.array_equal(
            shipped.close, full.close[first_in_range - warm : first_in_range - warm + len(shipped)]
        )


def test_no_range_ships_the_files_untouched() -> None:
    payload = build_payload(TrainingRequest(strategy="neuro_mean_reversion"))
    for name, content in payload.data_files.items():
        assert content == (SAMPLE_DATA_DIR / name).read_bytes()
    assert payload.data_bytes == sum(payload.whole_bytes.values())


def test_slices_are_byte_for_byte_repeatable(tmp_path: Path) -> None:
    """The data store keys objects by content: the same range must give the same bytes."""
    request = TrainingRequest(strategy="neuro_mean_reversion", start_date="2023-03-01", end_date="2023-03-20")
    first, second = build_payload(request), build_payload(request)
    assert first.data_files == second.data_files
    other = build_payload(
        TrainingRequest(strategy="neuro_mean_reversion", start_date="2023-03-02", end_date="2023-03-20")
    )
    assert other.data_files != first.data_files
    text = gzip.decompress(next(iter(first.data_files.values()))).decode()
    assert text.splitlines()[0] == "timestamp,open,high,low,close,volume"


def test_real_prices_multi_timeframe_range_gives_the_same_features(real_prices: Path, tmp_path: Path) -> None:
    request = TrainingRequest(
        strategy="neuro_mean_reversion",
        symbols=["EURUSD"],
        timeframes=["1h", "4h"],
        start_date="2017-10-01",
        end_date="2017-11-30",
        overrides={"data_dir": str(real_prices)},
    )
    payload = build_payload(request)
    assert set(payload.data_files) == {"EURUSD_1h.csv", "EURUSD_4h.csv"}
    assert payload.data_bytes < 0.5 * sum(payload.whole_bytes.values())
    for name, content in payload.data_files.items():
        (tmp_path / name).write_bytes(content)
    whole = _features(request, real_prices)
    sliced = _features(request, tmp_path)
    for part in range(3):
        _assert_same(whole[part], sliced[part])
    assert np.isfinite(whole[1][0]).all(axis=1).sum() > 100
    # per timeframe: each file keeps its own warm-up bars before the range
    warm = warmup_rows(load_strategy("neuro_mean_reversion"))
    start = parse_date_bound("2017-10-01")
    for timeframe in ("1h", "4h"):
        full = load_ohlcv("EURUSD", timeframe, real_prices)
        part = load_ohlcv("EURUSD", timeframe, tmp_path)
        assert part.timestamps[0] == full.timestamps[int(np.searchsorted(full.timestamps, start)) - warm]


def test_bad_rows_outside_the_range_are_refused_as_unified_refuses_them(tmp_path: Path) -> None:
    rows = ["timestamp,open,high,low,close"]
    for i in range(200):
        day, hour = divmod(i, 24)
        rows.append(f"2023-01-{day + 1:02d}T{hour:02d}:00:00Z,1.0,1.1,0.9,1.0")
    rows[-1] = rows[-1].replace(",0.9,", ",2.0,")  # high below low, after the range
    (tmp_path / "BAD_1h.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(BadInputError, match=r"BAD_1h\.csv: row 201: high is below low"):
        slice_data_file(
            "BAD",
            "1h",
            tmp_path,
            start=parse_date_bound("2023-01-02"),
            end=parse_date_bound("2023-01-03", end=True),
            warmup=10,
        )


def test_a_range_without_bars_and_reversed_dates_are_bad_input_before_anything_ships() -> None:
    with pytest.raises(BadInputError, match="no rows between"):
        build_payload(TrainingRequest(strategy="neuro_mean_reversion", start_date="2031-01-01"))
    with pytest.raises(BadInputError, match="is before start_date"):
        build_payload(
            TrainingRequest(strategy="neuro_mean_reversion", start_date="2023-03-01", end_date="2023-02-01")
        )
