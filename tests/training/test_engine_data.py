"""The OHLCV loader: every bad file gets a clear message naming the file."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ktrdr_core.errors import BadInputError
from ktrdr_core.training.data import (
    SAMPLE_DATA_DIR,
    load_ohlcv,
    parse_date_bound,
    resolve_data_dir,
)

HEADER = "timestamp,open,high,low,close,volume"


def test_reads_a_valid_file(tmp_path: Path, write_csv: Callable[..., Path]) -> None:
    write_csv(tmp_path, "AAA", bars=30)
    data = load_ohlcv("AAA", "1h", tmp_path)
    assert len(data) == 30
    assert data.timestamps.dtype == np.dtype("datetime64[s]")
    assert data.first() == "2024-01-01T00:00:00Z" and data.last() == "2024-01-02T05:00:00Z"
    assert (data.high >= data.low).all()


def test_reads_gzip_and_epoch_seconds_and_offsets(tmp_path: Path, write_csv: Callable[..., Path]) -> None:
    text = f"{HEADER}\n1704067200,1,1,1,1,1\n1704070800,1,1,1,1,1\n"
    (tmp_path / "EPO_1h.csv.gz").write_bytes(gzip.compress(text.encode()))
    data = load_ohlcv("EPO", "1h", tmp_path)
    assert data.first() == "2024-01-01T00:00:00Z" and len(data) == 2
    write_csv(tmp_path, "OFF", rows=["2024-01-01T01:00:00+01:00,1,1,1,1,1"])
    assert load_ohlcv("OFF", "1h", tmp_path).first() == "2024-01-01T00:00:00Z"


def test_epoch_milliseconds_are_read_as_milliseconds(tmp_path: Path, write_csv: Callable[..., Path]) -> None:
    write_csv(tmp_path, "MS", rows=["1704067200000,1,1,1,1,1", "1704070800000,1,1,1,1,1"])
    data = load_ohlcv("MS", "1h", tmp_path)
    assert data.first() == "2024-01-01T00:00:00Z" and data.last() == "2024-01-01T01:00:00Z"


@pytest.mark.parametrize(
    ("rows", "pattern"),
    [
        # seconds first, then a millisecond value: not silently the year 54973
        (
            ["1704067200,1,1,1,1,1", "1704070800000,1,1,1,1,1"],
            r"row 3: timestamp '1704070800000' is out of range for epoch seconds",
        ),
        (
            ["1704067200000,1,1,1,1,1", "1704070800,1,1,1,1,1"],
            r"row 3: timestamp '1704070800' is out of range for epoch milliseconds",
        ),
        (["1704067200000000,1,1,1,1,1"], "out of range for epoch milliseconds"),  # microseconds
    ],
)
def test_epoch_units_cannot_be_mixed(
    tmp_path: Path, write_csv: Callable[..., Path], rows: list[str], pattern: str
) -> None:
    write_csv(tmp_path, "MIX", rows=rows)
    with pytest.raises(BadInputError, match=pattern):
        load_ohlcv("MIX", "1h", tmp_path)


def test_a_byte_order_mark_is_ignored(tmp_path: Path, write_csv: Callable[..., Path]) -> None:
    path = write_csv(tmp_path, "BOM", bars=5)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert len(load_ohlcv("BOM", "1h", tmp_path)) == 5
    gz = tmp_path / "GZB_1h.csv.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert len(load_ohlcv("GZB", "1h", tmp_path)) == 5


def test_malformed_csv_names_file_and_row(tmp_path: Path, write_csv: Callable[..., Path]) -> None:
    huge = '"' + "x" * (200 * 1024) + '"'
    path = write_csv(
        tmp_path, "BIG", rows=["2024-01-01T00:00:00Z,1,1,1,1,1", f"2024-01-01T01:00:00Z,1,1,1,1,{huge}"]
    )
    with pytest.raises(BadInputError, match=r"row 3 \(line 3\): malformed CSV: field larger") as err:
        load_ohlcv("BIG", "1h", tmp_path)
    assert str(err.value).startswith(f"{path}: ")


def test_date_filter_is_inclusive_and_end_date_covers_the_day(
    tmp_path: Path, write_csv: Callable[..., Path]
) -> None:
    write_csv(tmp_path, "AAA", bars=72)  # 2024-01-01 00:00 .. 2024-01-03 23:00
    data = load_ohlcv(
        "AAA",
        "1h",
        tmp_path,
        start=parse_date_bound("2024-01-02"),
        end=parse_date_bound("2024-01-02", end=True),
    )
    assert len(data) == 24
    assert data.first() == "2024-01-02T00:00:00Z" and data.last() == "2024-01-02T23:00:00Z"


def test_missing_file_names_the_file_and_the_folder(tmp_path: Path, write_csv: Callable[..., Path]) -> None:
    write_csv(tmp_path, "AAA")
    with pytest.raises(BadInputError) as err:
        load_ohlcv("ZZZ", "1h", tmp_path)
    message = str(err.value)
    assert "ZZZ_1h.csv" in message and str(tmp_path) in message and "AAA_1h.csv" in message


def test_missing_folder(tmp_path: Path, write_csv: Callable[..., Path]) -> None:
    with pytest.raises(BadInputError, match="does not exist"):
        load_ohlcv("AAA", "1h", tmp_path / "nope")


def test_missing_columns(tmp_path: Path, write_csv: Callable[..., Path]) -> None:
    path = write_csv(tmp_path, "AAA", header="timestamp,open,high,close", rows=["2024-01-01T00:00:00Z,1,1,1"])
    with pytest.raises(BadInputError, match=r"missing column\(s\) low") as err:
        load_ohlcv("AAA", "1h", tmp_path)
    assert str(path) in str(err.value)


def test_volume_is_optional(tmp_path: Path, write_csv: Callable[..., Path]) -> None:
    write_csv(
        tmp_path,
        "AAA",
        header="timestamp,open,high,low,close",
        rows=["2024-01-01T00:00:00Z,1,2,1,1.5", "2024-01-01T01:00:00Z,1.5,2,1,1"],
    )
    series = load_ohlcv("AAA", "1h", tmp_path)
    assert series.volume is None
    assert series.columns()["volume"] is None
    assert series.close.tolist() == [1.5, 1.0]


@pytest.mark.parametrize("time_header", ["timestamp", "Date", "DATETIME", "time", ""])
def test_time_column_names(tmp_path: Path, write_csv: Callable[..., Path], time_header: str) -> None:
    write_csv(
        tmp_path,
        "AAA",
        "1d",
        header=f"{time_header},Open,High,Low,Close,Volume",
        rows=["2024-01-02,1,2,1,1.5,10", "2024-01-03,1.5,2,1,1,20"],
    )
    series = load_ohlcv("AAA", "1d", tmp_path)
    assert [str(t) for t in series.timestamps] == ["2024-01-02T00:00:00", "2024-01-03T00:00:00"]
    assert series.volume is not None and series.volume.tolist() == [10.0, 20.0]


def test_no_time_column_is_named(tmp_path: Path, write_csv: Callable[..., Path]) -> None:
    write_csv(tmp_path, "AAA", "1d", header="when,open,high,low,close", rows=["2024-01-02,1,2,1,1.5"])
    with pytest.raises(BadInputError, match=r"missing column\(s\) timestamp"):
        load_ohlcv("AAA", "1d", tmp_path)


@pytest.mark.parametrize(
    ("rows", "pattern"),
    [
        (["2024-01-01T01:00:00Z,1,1,1,1,1", "2024-01-01T00:00:00Z,1,1,1,1,1"], "unsorted timestamps"),
        (["2024-01-01T00:00:00Z,1,1,1,1,1", "2024-01-01T00:00:00Z,1,1,1,1,1"], "duplicate timestamps"),
        (["2024-01-01T00:00:00Z,1,1,1,nan,1"], "NaN value.*close"),
        (["2024-01-01T00:00:00Z,1,1,1,,1"], "missing or NaN value.*close"),
        (["2024-01-01T00:00:00Z,1,1,1,abc,1"], "close 'abc' is not a number"),
        (["yesterday,1,1,1,1,1"], "timestamp 'yesterday'"),
        (["2024-01-01T00:00:00Z,1,1,2,1,1"], "high is below low"),
        (["2024-01-01T00:00:00Z,1,1,1,-1,1"], "close must be positive"),
    ],
)
def test_bad_rows(tmp_path: Path, write_csv: Callable[..., Path], rows: list[str], pattern: str) -> None:
    path = write_csv(tmp_path, "BAD", rows=rows)
    with pytest.raises(BadInputError, match=pattern) as err:
        load_ohlcv("BAD", "1h", tmp_path)
    assert str(path) in str(err.value)


def test_empty_range_after_filtering(tmp_path: Path, write_csv: Callable[..., Path]) -> None:
    write_csv(tmp_path, "AAA", bars=10)
    with pytest.raises(BadInputError, match="no rows between 2025-01-01") as err:
        load_ohlcv("AAA", "1h", tmp_path, start=parse_date_bound("2025-01-01"))
    assert "the file covers 2024-01-01T00:00:00Z" in str(err.value)


def test_empty_file(tmp_path: Path, write_csv: Callable[..., Path]) -> None:
    (tmp_path / "E_1h.csv").write_text("")
    with pytest.raises(BadInputError, match="empty"):
        load_ohlcv("E", "1h", tmp_path)


def test_bad_date_bound() -> None:
    with pytest.raises(BadInputError, match="start_date must be an ISO date or date-time.*got .soon."):
        parse_date_bound("soon", what="start_date")


def test_data_dir_resolution_order(tmp_path: Path, write_csv: Callable[..., Path]) -> None:
    assert resolve_data_dir({"data_dir": str(tmp_path)}, {"KTRDR_DATA_DIR": "/x"})[0] == tmp_path
    assert resolve_data_dir({}, {"KTRDR_DATA_DIR": str(tmp_path)}) == (tmp_path, "KTRDR_DATA_DIR")
    assert resolve_data_dir({}, {})[0] == SAMPLE_DATA_DIR


def test_sample_data_is_synthetic_and_big_enough() -> None:
    files = sorted(SAMPLE_DATA_DIR.glob("*_1h.csv.gz"))
    assert len(files) >= 3 and all("SYNTH" in f.name for f in files)
    assert "SYNTHETIC" in (SAMPLE_DATA_DIR / "README.md").read_text()
    for path in files:
        symbol = path.name.split("_1h")[0]
        data = load_ohlcv(symbol, "1h", SAMPLE_DATA_DIR)
        assert len(data) >= 5000
