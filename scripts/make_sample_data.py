#!/usr/bin/env python3
"""Generate ktrdr's embedded SYNTHETIC sample data set (deterministic, seeded).

    python scripts/make_sample_data.py            # writes ktrdr_core/training/sample_data/
    python scripts/make_sample_data.py --check    # fails if the committed files differ

Each symbol's log price is a slowly drifting "fair value" (a random walk whose
drift changes at random regime shifts) plus an Ornstein-Uhlenbeck deviation
(mean-reverting, with calm and volatile regimes) plus a little bar noise. The
mean reversion is what ``neuro_mean_reversion`` learns; the drifting regimes
give ``trend_momentum`` something to follow. None of this is market data.

Only numpy is needed; the output depends on nothing but ``--seed``.
"""

from __future__ import annotations

import argparse
import gzip
import io
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

OUT_DIR = Path(__file__).resolve().parent.parent / "ktrdr_core" / "training" / "sample_data"
START = datetime(2023, 1, 2, tzinfo=timezone.utc)
BARS = 6000
TIMEFRAME = "1h"

# symbol: (start price, OU theta per bar, OU sigma calm, volatility multiplier in
#          volatile regimes, fair-value step sigma, base volume)
SYMBOLS = {
    "SYNTH_A": (100.0, 0.20, 0.0054, 1.8, 0.00056, 12_000.0),
    "SYNTH_B": (35.0, 0.14, 0.0066, 1.6, 0.00070, 40_000.0),
    "SYNTH_C": (1.25, 0.26, 0.0042, 2.0, 0.00042, 900_000.0),
}


def regimes(rng: np.random.Generator, n: int, mean_length: int) -> np.ndarray:
    """A regime id per bar; regime lengths are geometric around ``mean_length``."""
    out = np.empty(n, dtype=np.int64)
    start, regime = 0, 0
    while start < n:
        length = int(rng.geometric(1.0 / mean_length))
        out[start : start + length] = regime
        start += length
        regime += 1
    return out


def simulate(
    rng: np.random.Generator,
    start_price: float,
    theta: float,
    sigma: float,
    vol_mult: float,
    fair_sigma: float,
    base_volume: float,
    n: int = BARS,
) -> dict[str, np.ndarray]:
    # Fair value: random walk with a drift that changes at each trend regime.
    trend_id = regimes(rng, n, 700)
    drifts = rng.normal(0.0, 0.00012, trend_id.max() + 1)
    fair = np.cumsum(drifts[trend_id] + rng.normal(0.0, fair_sigma, n))
    # Volatility regimes: calm or volatile.
    vol_id = regimes(rng, n, 400)
    volatile = rng.random(vol_id.max() + 1) < 0.35
    sig = np.where(volatile[vol_id], sigma * vol_mult, sigma)
    # Ornstein-Uhlenbeck deviation from fair value.
    shocks = rng.normal(0.0, 1.0, n) * sig
    dev = np.empty(n)
    value = 0.0
    for i in range(n):
        value = value - theta * value + shocks[i]
        dev[i] = value
    noise = rng.normal(0.0, sigma * 0.25, n)
    log_close = np.log(start_price) + fair + dev + noise
    close = np.exp(log_close)
    open_ = np.empty(n)
    open_[0] = close[0] * np.exp(rng.normal(0.0, sigma * 0.2))
    open_[1:] = close[:-1] * np.exp(rng.normal(0.0, sigma * 0.1, n - 1))
    wick = np.abs(rng.normal(0.0, sig * 0.6, (2, n)))
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    ret = np.abs(np.diff(log_close, prepend=log_close[0]))
    volume = base_volume * rng.lognormal(0.0, 0.35, n) * (1.0 + 60.0 * ret)
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


def decimals_for(price: float) -> int:
    return 5 if price < 10 else 3


def render(symbol: str, bars: dict[str, np.ndarray]) -> bytes:
    places = decimals_for(SYMBOLS[symbol][0])
    lines = ["timestamp,open,high,low,close,volume"]
    for i in range(len(bars["close"])):
        stamp = (START + timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        o, h, lo, c = (round(float(bars[k][i]), places) for k in ("open", "high", "low", "close"))
        h, lo = max(h, o, c), min(lo, o, c)
        lines.append(
            f"{stamp},{o:.{places}f},{h:.{places}f},{lo:.{places}f},{c:.{places}f},"
            f"{int(round(float(bars['volume'][i])))}"
        )
    text = "\n".join(lines) + "\n"
    buffer = io.BytesIO()
    # mtime=0 and no file name: the gzip bytes depend only on the content.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as gz:
        gz.write(text.encode("ascii"))
    return buffer.getvalue()


def generate(seed: int) -> dict[str, bytes]:
    root = np.random.default_rng(seed)
    files = {}
    for symbol, params in SYMBOLS.items():
        rng = np.random.default_rng(root.integers(0, 2**63 - 1))
        files[f"{symbol}_{TIMEFRAME}.csv.gz"] = render(symbol, simulate(rng, *params))
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument(
        "--check", action="store_true", help="compare with the files in --out instead of writing"
    )
    args = parser.parse_args(argv)
    files = generate(args.seed)
    if args.check:
        # Compare the CSV text, not the gzip bytes (those depend on the zlib build).
        stale = [
            name
            for name, data in files.items()
            if not (args.out / name).is_file()
            or gzip.decompress((args.out / name).read_bytes()) != gzip.decompress(data)
        ]
        if stale:
            print(f"out of date: {', '.join(stale)}", file=sys.stderr)
            return 1
        print("sample data is up to date")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (args.out / name).write_bytes(data)
        print(f"wrote {args.out / name} ({len(data):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
