"""OHLCV data: ``{SYMBOL}_{timeframe}.csv`` files, checked before anything trains on them.

The data folder is, in order: ``request.overrides["data_dir"]``, the
environment variable ``KTRDR_DATA_DIR``, else the embedded SYNTHETIC sample set
in ``ktrdr_core/training/sample_data/`` (see its README). A file may be plain
(``.csv``) or gzip-compressed (``.csv.gz``); the plain one wins when both exist.

Format: a header row with ``timestamp, open, high, low, close`` and, optionally,
``volume`` (any order and any case, extra columns ignored; only a strategy with
an indicator that reads volume needs it). The time column may also be called
``date``, ``datetime`` or ``time``, or be the unnamed first column that
``pandas.DataFrame.to_csv`` writes for an index. Timestamps are ISO 8601 (``2023-01-02T00:00:00Z``,
``2023-01-02 00:00:00``, ``2023-01-02T01:00:00+01:00``; no offset means UTC) or
Unix epoch seconds, or Unix epoch milliseconds: a first value above 1e11 (too
large to be seconds, the year 5138) makes the whole column milliseconds, and a
row in another unit is refused. The file is UTF-8, with or without a byte-order
mark. Rows must be strictly increasing in time, with no missing
values, positive prices and ``high >= low``.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from ktrdr_core.cancellation import CancelCheck, no_cancel_check
from ktrdr_core.errors import BadInputError
from ktrdr_core.times import parse_iso, try_parse_iso

__all__ = [
    "COLUMNS",
    "SAMPLE_DATA_DIR",
    "OHLCV",
    "data_file",
    "load_ohlcv",
    "parse_date_bound",
    "read_records",
    "resolve_data_dir",
]

SAMPLE_DATA_DIR = Path(__file__).resolve().parent / "sample_data"
COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")
OPTIONAL_COLUMNS = ("volume",)
#: Other names of the time column, in the order they are looked for.
TIME_COLUMNS = ("timestamp", "date", "datetime", "time")


@attrs.frozen(eq=False)
class OHLCV:
    """One symbol's bars: ``timestamps`` (datetime64[s], UTC) and float64 columns.

    ``volume`` is ``None`` when the file has no volume column.
    """

    symbol: str
    timeframe: str
    timestamps: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray | None
    path: str = ""

    def __len__(self) -> int:
        return len(self.timestamps)

    def columns(self) -> dict[str, np.ndarray | None]:
        return {
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
        }

    def first(self) -> str:
        return _iso(self.timestamps[0]) if len(self) else ""

    def last(self) -> str:
        return _iso(self.timestamps[-1]) if len(self) else ""


def _iso(ts: np.datetime64) -> str:
    return str(np.datetime_as_string(ts, unit="s")) + "Z"


def resolve_data_dir(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> tuple[Path, str]:
    """``(folder, where it came from)``: override, ``KTRDR_DATA_DIR``, or the sample set."""
    env = os.environ if environ is None else environ
    override = (overrides or {}).get("data_dir")
    if override not in (None, ""):
        return Path(str(override)).expanduser(), "overrides.data_dir"
    configured = env.get("KTRDR_DATA_DIR", "").strip()
    if configured:
        return Path(configured).expanduser(), "KTRDR_DATA_DIR"
    return SAMPLE_DATA_DIR, "embedded synthetic sample data"


def data_file(data_dir: Path, symbol: str, timeframe: str) -> Path:
    """The file for one symbol and timeframe; raises a clear error when there is none."""
    base = f"{symbol}_{timeframe}.csv"
    for candidate in (data_dir / base, data_dir / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    if not data_dir.is_dir():
        raise BadInputError(f"data folder {data_dir} does not exist (looking for {base})")
    available = sorted(p.name for p in data_dir.glob("*.csv*"))
    hint = (
        f"; it has {', '.join(available[:8])}{' ...' if len(available) > 8 else ''}"
        if available
        else "; it has no CSV files"
    )
    raise BadInputError(f"no data file {base} (or {base}.gz) for {symbol} {timeframe} in {data_dir}{hint}")


def parse_date_bound(value: str | None, *, end: bool = False, what: str = "date") -> np.datetime64 | None:
    """A start/end bound in UTC seconds; a bare date as an end bound includes that whole day."""
    if value in (None, ""):
        return None
    moment = parse_iso(value, what=what, end_of_day=end)
    return np.datetime64(int(moment.timestamp()), "s")


def _parse_datetime(text: str) -> datetime:
    moment = try_parse_iso(text)
    if moment is None:
        raise ValueError(text)
    return moment


#: Epoch numbers above this are too large to be seconds (it is the year 5138) and
#: are read as milliseconds; above ``_MAX_EPOCH_MS`` (the year 5138 in
#: milliseconds: microseconds or nanoseconds) they are refused.
_MAX_EPOCH_SECONDS = 1e11
_MAX_EPOCH_MS = 1e14


def _parse_timestamps(raw: list[str], path: Path) -> np.ndarray:
    """ISO 8601 times, or epoch seconds, or epoch milliseconds (the unit decided by the
    first row: 1e11 or more means milliseconds); every row must use that unit."""
    out = np.empty(len(raw), dtype="datetime64[s]")
    numeric = bool(raw) and raw[0].replace(".", "", 1).isdigit()
    millis = False
    if numeric:
        with contextlib.suppress(ValueError):  # "²" is a digit to isdigit(): the loop reports it
            millis = float(raw[0]) >= _MAX_EPOCH_SECONDS
    unit = "epoch milliseconds" if millis else "epoch seconds"
    low = _MAX_EPOCH_SECONDS if millis else 0
    high = _MAX_EPOCH_MS if millis else _MAX_EPOCH_SECONDS
    for i, text in enumerate(raw):
        try:
            if numeric:
                number = float(text)
                if not low <= number < high:
                    raise BadInputError(
                        f"{path}: row {i + 2}: timestamp {text!r} is out of range for "
                        f"{unit} (the unit the first row uses; expected {low:g} to {high:g}); "
                        "use one unit: epoch seconds, epoch milliseconds, or ISO 8601"
                    )
                out[i] = np.datetime64(int(number // 1000 if millis else number), "s")
            else:
                out[i] = np.datetime64(int(_parse_datetime(text).timestamp()), "s")
        except (ValueError, OverflowError):
            raise BadInputError(
                f"{path}: row {i + 2}: timestamp {text!r} is not an ISO 8601 "
                "time, epoch seconds or epoch milliseconds"
            ) from None
    return out


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    # utf-8-sig: a byte-order mark (as Excel writes) is dropped, not read into the header
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8-sig", newline="") as handle:
                text = handle.read()
        else:
            text = path.read_text(encoding="utf-8-sig")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{path}: cannot read data file: {exc}") from exc
    reader = csv.reader(io.StringIO(text))
    records = 0
    try:
        header = next(reader, None)
        if header is None:
            raise BadInputError(
                f"{path}: the file is empty (expected a header row with {', '.join(COLUMNS)})"
            )
        records = 1
        rows = []
        for row in reader:
            records += 1
            if row:
                rows.append(row)
    except csv.Error as exc:
        raise BadInputError(
            f"{path}: row {records + 1} (line {reader.line_num}): malformed CSV: {' '.join(str(exc).split())}"
        ) from None
    return [h.strip().lower() for h in header], rows


def load_ohlcv(
    symbol: str,
    timeframe: str,
    data_dir: Path,
    *,
    start: np.datetime64 | None = None,
    end: np.datetime64 | None = None,
    check: CancelCheck = no_cancel_check,
) -> OHLCV:
    """Read, check and date-filter one file (``start``/``end`` inclusive, UTC).

    ``check`` runs after reading, after the timestamps and after each column:
    parsing a large file is the longest part of set-up, and a cancel should
    not wait for all of it.
    """
    path = data_file(Path(data_dir), symbol, timeframe)
    header, rows = _read_rows(path)
    check()
    time_column = _time_column(header)
    present = [c for c in COLUMNS[1:] if c in header]
    missing = ([] if time_column is not None else ["timestamp"]) + [
        c for c in COLUMNS[1:] if c not in header and c not in OPTIONAL_COLUMNS
    ]
    if missing:
        raise BadInputError(
            f"{path}: missing column(s) {', '.join(missing)} "
            f"(the header has {', '.join(h or '(unnamed)' for h in header) or 'nothing'})"
        )
    assert time_column is not None
    index = {"timestamp": time_column, **{name: header.index(name) for name in present}}
    width = max(index.values()) + 1
    for i, row in enumerate(rows):
        if len(row) < width:
            raise BadInputError(f"{path}: row {i + 2} has {len(row)} fields, expected {len(header)}")
    if not rows:
        raise BadInputError(f"{path}: the file has a header but no rows")
    timestamps = _parse_timestamps([row[index["timestamp"]].strip() for row in rows], path)
    values: dict[str, np.ndarray | None] = dict.fromkeys(OPTIONAL_COLUMNS)
    for name in present:
        check()
        column = [row[index[name]].strip() for row in rows]
        try:
            array = np.array([float(v) if v else np.nan for v in column])
        except ValueError:
            row_index = next(i for i, v in enumerate(column) if not _is_float(v))
            raise BadInputError(
                f"{path}: row {row_index + 2}: {name} {column[row_index]!r} is not a number"
            ) from None
        values[name] = array
        nan_rows = np.flatnonzero(~np.isfinite(array))
        if len(nan_rows):
            raise BadInputError(
                f"{path}: {len(nan_rows)} missing or NaN value(s) in column "
                f"{name} (first at row {nan_rows[0] + 2})"
            )
    steps = np.diff(timestamps.astype(np.int64))
    if len(steps) and (steps <= 0).any():
        first = int(np.flatnonzero(steps <= 0)[0])
        kind = "duplicate" if steps[first] == 0 else "unsorted"
        raise BadInputError(
            f"{path}: {kind} timestamps at rows {first + 2} and {first + 3} "
            f"({_iso(timestamps[first])}, {_iso(timestamps[first + 1])}); "
            "rows must be strictly increasing in time"
        )
    prices = {name: np.asarray(values[name]) for name in PRICE_COLUMNS}
    for name, price in prices.items():
        bad = np.flatnonzero(price <= 0)
        if len(bad):
            raise BadInputError(f"{path}: row {bad[0] + 2}: {name} must be positive, got {price[bad[0]]}")
    bad = np.flatnonzero(prices["high"] < prices["low"])
    if len(bad):
        raise BadInputError(f"{path}: row {bad[0] + 2}: high is below low")
    keep = np.ones(len(timestamps), dtype=bool)
    if start is not None:
        keep &= timestamps >= start
    if end is not None:
        keep &= timestamps <= end
    if not keep.any():
        bounds = f"{_iso(start) if start is not None else '...'} to {_iso(end) if end is not None else '...'}"
        raise BadInputError(
            f"{path}: no rows between {bounds} (the file covers "
            f"{_iso(timestamps[0])} to {_iso(timestamps[-1])})"
        )
    volume = values["volume"]
    return OHLCV(
        symbol=symbol,
        timeframe=timeframe,
        timestamps=timestamps[keep],
        open=prices["open"][keep],
        high=prices["high"][keep],
        low=prices["low"][keep],
        close=prices["close"][keep],
        volume=None if volume is None else volume[keep],
        path=str(path),
    )


def read_records(path: Path) -> tuple[list[str], list[list[str]]]:
    """The header (stripped, lower case) and the non-empty rows of a data file, as the loader reads them.

    For tools that copy part of a file (the cloud mode ships only the rows a
    date range needs): the rows are the fields as written, so a copy parses to
    exactly the same values.
    """
    return _read_rows(Path(path))


def _time_column(header: list[str]) -> int | None:
    """Index of the time column: by name, else an unnamed first column (a pandas index)."""
    for name in TIME_COLUMNS:
        if name in header:
            return header.index(name)
    return 0 if header and header[0] == "" else None


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
