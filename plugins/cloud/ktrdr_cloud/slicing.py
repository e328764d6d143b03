"""Only the bars a date range needs: the part of a data file the cloud mode ships.

A request with a date range (``--start``/``--end``, or the strategy's
``training_data`` dates) trains on that range only, yet its data files may
hold years of bars. The driver ships, per file, the rows from ``warm-up``
bars before the first bar of the range to the last bar of the range, where
the warm-up is the strategy's longest indicator look-back plus its lag
columns, counted in that file's own bars (so per timeframe, and gaps such
as week-ends cost nothing).

The worker's engine filters by the same dates again, so what it trains on is
row for row what a local run on the whole file trains on; the warm-up rows
keep that true for an engine that reads bars before the range for its
indicators. The whole file is still checked on the driver first, exactly as
the engine checks it, so a bad row outside the range is refused as it is by
``unified`` and the error names the driver's file.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import numpy as np

if TYPE_CHECKING:
    from ktrdr_core.training.strategy import StrategyConfig

__all__ = ["DataSlice", "slice_data_file", "warmup_rows"]


@attrs.frozen
class DataSlice:
    """The bytes to ship for one file, and how many of its rows they hold."""

    content: bytes
    rows: int
    total_rows: int
    whole_bytes: int

    @property
    def whole(self) -> bool:
        return self.rows == self.total_rows


def warmup_rows(strategy: StrategyConfig) -> int:
    """Bars before a range's first bar that its features may read: indicator warm-up + lags."""
    from ktrdr_core.training.features import warmup_bars

    return warmup_bars(strategy) + strategy.model.lookback_periods


def _encode(header: list[str], rows: list[list[str]], gzipped: bool) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    data = buffer.getvalue().encode("utf-8")
    # mtime=0: the same rows give the same bytes, hence the same content hash in the data store
    return gzip.compress(data, compresslevel=6, mtime=0) if gzipped else data


def slice_data_file(
    symbol: str,
    timeframe: str,
    data_dir: Path,
    *,
    start: np.datetime64 | None,
    end: np.datetime64 | None,
    warmup: int,
) -> DataSlice:
    """The rows of ``{symbol}_{timeframe}`` from ``warmup`` bars before ``start`` to ``end``.

    Bad input (a malformed file, no rows in the range) is the engine's own
    :class:`~ktrdr_core.errors.BadInputError`. A range that covers the whole
    file ships the file's bytes untouched.
    """
    from ktrdr_core.training.data import data_file, load_ohlcv, read_records

    path = data_file(Path(data_dir), symbol, timeframe)
    whole = path.read_bytes()
    bars = load_ohlcv(symbol, timeframe, Path(data_dir))  # the whole file, checked as the engine does
    stamps = bars.timestamps
    first = int(np.searchsorted(stamps, start, side="left")) if start is not None else 0
    last = int(np.searchsorted(stamps, end, side="right")) if end is not None else len(stamps)
    if first >= last:  # no bar in the range: the engine's own message
        load_ohlcv(symbol, timeframe, Path(data_dir), start=start, end=end)
    first = max(0, first - max(0, warmup))
    if first == 0 and last == len(stamps):
        return DataSlice(whole, len(stamps), len(stamps), len(whole))
    header, rows = read_records(path)
    content = _encode(header, rows[first:last], gzipped=path.suffix == ".gz")
    return DataSlice(content, last - first, len(stamps), len(whole))
