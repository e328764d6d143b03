"""Real prices for tests: the CSVs bundled in the ``backtesting`` wheel, and resampling.

The ``backtesting`` package bundles real prices for its own tests; we fetch its
wheel with pip (no install, no dependencies) and read the CSVs out of it, so
no price file is committed here. ``resample`` makes 4h and 1d bars from the
hourly ones for multi-timeframe tests.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

from ktrdr_core.training.data import OHLCV, load_ohlcv

BACKTESTING_WHEEL = "backtesting==0.6.6"
REAL_FILES = {"EURUSD.csv": "EURUSD_1h.csv", "GOOG.csv": "GOOG_1d.csv"}


def fetch_real_prices(wheels: Path, folder: Path) -> Path:
    """``folder`` with EURUSD_1h.csv and GOOG_1d.csv; the wheel is cached in ``wheels``."""
    if not list(wheels.glob("backtesting-*.whl")):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--dest",
                str(wheels),
                BACKTESTING_WHEEL,
            ],
            check=True,
            timeout=300,
        )
    wheel = sorted(wheels.glob("backtesting-*.whl"))[-1]
    with zipfile.ZipFile(wheel) as archive:
        for name, target in REAL_FILES.items():
            (folder / target).write_bytes(archive.read(f"backtesting/test/{name}"))
    return folder


def resample(bars: OHLCV, hours: int, timeframe: str) -> OHLCV:
    """OHLCV bars of ``hours`` hours, each stamped with its bucket's start."""
    ts = bars.timestamps.astype("datetime64[s]").astype(np.int64)
    bucket = ts - ts % (hours * 3600)
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], len(ts)]
    return OHLCV(
        symbol=bars.symbol,
        timeframe=timeframe,
        timestamps=bucket[starts].astype("datetime64[s]"),
        open=bars.open[starts],
        close=bars.close[ends - 1],
        high=np.maximum.reduceat(bars.high, starts),
        low=np.minimum.reduceat(bars.low, starts),
        volume=np.add.reduceat(bars.volume, starts) if bars.volume is not None else None,
    )


def write_csv(bars: OHLCV, path: Path) -> None:
    rows = ["timestamp,open,high,low,close,volume"]
    volume = bars.volume if bars.volume is not None else np.zeros(len(bars))
    for i in range(len(bars)):
        values = ",".join(repr(float(c[i])) for c in (bars.open, bars.high, bars.low, bars.close, volume))
        rows.append(f"{np.datetime_as_string(bars.timestamps[i], unit='s')}Z,{values}")
    path.write_text("\n".join(rows) + "\n")


def add_resampled_eurusd(folder: Path) -> Path:
    """Write EURUSD_4h.csv and EURUSD_1d.csv, resampled from EURUSD_1h.csv, into ``folder``."""
    hourly = load_ohlcv("EURUSD", "1h", folder)
    write_csv(resample(hourly, 4, "4h"), folder / "EURUSD_4h.csv")
    write_csv(resample(hourly, 24, "1d"), folder / "EURUSD_1d.csv")
    return folder
