"""Data loading + indicators + features + labels at scale, and how the cost grows with bars.

    python benchmarks/bench_features.py                     # 10 symbols x 25k/50k/100k 1h bars
    python benchmarks/bench_features.py --symbols 4 --sizes 10000 20000

For each size, a fresh child process (so peak memory is its own) runs the
engine's own steps on ``--symbols`` CSV files of that many 1h bars, with a
strategy of 10 indicators (31 fuzzy inputs by reference, 2 lags): read and
check the CSVs (``pipeline.load_data``), compute the indicators, the fuzzy
memberships, the feature matrix and the zigzag labels. It reports seconds per
step and in total, microseconds per bar, and peak resident memory (and the
child's resident memory before the first step: Python, numpy, torch). Cost is
linear when the per-bar time stays flat across sizes: the table gives each
size's time divided by the smallest size's, next to the ratio of bars.

The CSVs are synthetic random walks (written once per size, not timed); the
data volume, not the prices, decides the cost. Writes
``benchmarks/results/bench_features-<time>.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

STRATEGY: dict[str, Any] = {
    "name": "bench_features",
    "training_data": {"symbols": ["S0"], "timeframes": ["1h"]},
    "indicators": [
        {"name": "rsi", "feature_id": "rsi_14", "period": 14},
        {"name": "macd", "feature_id": "macd", "params": {"relative": True}},
        {"name": "bollinger_bands", "feature_id": "bb", "period": 20},
        {"name": "adx", "feature_id": "adx_14", "period": 14},
        {"name": "atr", "feature_id": "atr_14", "params": {"relative": True}},
        {"name": "stochastic", "feature_id": "stoch"},
        {"name": "ema", "feature_id": "ema_50", "period": 50, "params": {"relative": True}},
        {"name": "cci", "feature_id": "cci_20"},
        {"name": "mfi", "feature_id": "mfi_14"},
        {"name": "supertrend", "feature_id": "st"},
    ],
    "model": {"type": "mlp", "features": {"lookback_periods": 2}},
    "training": {"labels": {"zigzag_threshold": 0.01, "label_lookahead": 24}},
}
THREE = {
    "low": {"type": "trapezoidal", "parameters": [-1e9, -1e9, 30, 45]},
    "mid": {"type": "triangular", "parameters": [35, 50, 65]},
    "high": {"type": "trapezoidal", "parameters": [55, 70, 1e9, 1e9]},
}
SIGNED = {
    "neg": {"type": "trapezoidal", "parameters": [-1e9, -1e9, -0.2, 0.0]},
    "zero": {"type": "gaussian", "parameters": [0.0, 0.1]},
    "pos": {"type": "trapezoidal", "parameters": [0.0, 0.2, 1e9, 1e9]},
}
FUZZY = {
    "rsi_14": THREE,
    "macd": SIGNED,
    "macd.signal": SIGNED,
    "macd.line": SIGNED,
    "bb.percent_b": {"in": {"type": "triangular", "parameters": [0.0, 0.5, 1.0]}},
    "bb.width": {"narrow": {"type": "gaussian", "parameters": [0.01, 0.01]}},
    "adx_14": THREE,
    "adx_14.plus_di": THREE,
    "adx_14.minus_di": THREE,
    "atr_14": {"calm": {"type": "gaussian", "parameters": [0.5, 0.3]}},
    "stoch.k": THREE,
    "stoch.d": THREE,
    "ema_50": SIGNED,
    "cci_20": {"mid": {"type": "gaussian", "parameters": [0, 100]}},
    "mfi_14": THREE,
    "st.direction": {"up": {"type": "gaussian", "parameters": [1, 0.5]}},
}


def write_data(folder: Path, symbols: int, bars: int) -> None:
    """``S0_1h.csv`` ... : random walks with epoch-second timestamps."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(symbols):
        rng = np.random.default_rng(i)
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, bars)))
        spread = close * rng.uniform(0.0005, 0.004, bars)
        open_ = np.concatenate(([close[0]], close[:-1]))
        high = np.maximum(open_, close) + spread
        low = np.minimum(open_, close) - spread
        stamps = 1_600_000_000 + 3600 * np.arange(bars)
        volume = rng.integers(100, 10_000, bars)
        rows = np.column_stack([stamps, open_, high, low, close, volume])
        np.savetxt(
            folder / f"S{i}_1h.csv",
            rows,
            delimiter=",",
            comments="",
            header="timestamp,open,high,low,close,volume",
            fmt="%d,%.6f,%.6f,%.6f,%.6f,%d",
        )


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(folder: Path, symbols: int) -> dict[str, Any]:
    """The measured steps, in this process."""
    from ktrdr_core.training import pipeline
    from ktrdr_core.training.indicators import default_registry
    from ktrdr_core.training.strategy import parse_strategy

    strategy = parse_strategy({**STRATEGY, "fuzzy_sets": FUZZY}, "bench_features")
    default_registry()
    names = [f"S{i}" for i in range(symbols)]
    baseline = max_rss_mb()
    steps: dict[str, float] = {}
    start = time.perf_counter()
    t = start
    data = pipeline.load_data(names, ["1h"], folder)
    steps["load"], t = time.perf_counter() - t, time.perf_counter()
    values = pipeline.compute_indicators(strategy, data)
    steps["indicators"], t = time.perf_counter() - t, time.perf_counter()
    memberships = pipeline.compute_memberships(strategy, values)
    steps["fuzzy"], t = time.perf_counter() - t, time.perf_counter()
    matrices, columns = pipeline.build_features(strategy, memberships)
    steps["features"], t = time.perf_counter() - t, time.perf_counter()
    samples = pipeline.build_labels(strategy, data, matrices)
    steps["labels"] = time.perf_counter() - t
    total = time.perf_counter() - start
    return {
        "steps_s": steps,
        "total_s": total,
        "bars": sum(len(s) for s in data),
        "samples": sum(len(s.y) for s in samples),
        "columns": len(columns),
        "rss_before_mb": baseline,
        "peak_rss_mb": max_rss_mb(),
    }


def measure(size: int, symbols: int, workdir: Path) -> dict[str, Any]:
    folder = workdir / f"bars-{size}"
    write_data(folder, symbols, size)
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(folder), "--symbols", str(symbols)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    result: dict[str, Any] = json.loads(proc.stdout)
    result["bars_per_symbol"] = size
    return result


def render(report: dict[str, Any]) -> str:
    runs = report["runs"]
    first = runs[0]
    lines = [
        "| bars per symbol | total bars | seconds (load / indicators / fuzzy / features / labels) "
        "| µs per bar | time vs smallest (bars ratio) | peak RSS MB (before) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        s = run["steps_s"]
        parts = " / ".join(f"{s[k]:.2f}" for k in ("load", "indicators", "fuzzy", "features", "labels"))
        lines.append(
            f"| {run['bars_per_symbol']:,} | {run['bars']:,} | **{run['total_s']:.2f}** ({parts}) "
            f"| {run['total_s'] / run['bars'] * 1e6:.2f} | {run['total_s'] / first['total_s']:.2f} "
            f"({run['bars'] / first['bars']:.0f}) | {run['peak_rss_mb']:.0f} "
            f"({run['rss_before_mb']:.0f}) |"
        )
    return "\n".join(lines)


#: Linear growth: the per-bar time at the largest size at most this many times the smallest's.
LINEAR_TOLERANCE = 1.25


def run(sizes: list[int], symbols: int) -> dict[str, Any]:
    """Every size in its own child process, smallest first; with the linearity verdict."""
    with tempfile.TemporaryDirectory(prefix="ktrdr-bench-features-") as tmp:
        runs = [measure(size, symbols, Path(tmp)) for size in sorted(sizes)]
    per_bar = [r["total_s"] / r["bars"] for r in runs]
    growth = per_bar[-1] / per_bar[0]
    return {
        "runs": runs,
        "symbols": symbols,
        "indicators": len(STRATEGY["indicators"]),
        "per_bar_growth": growth,
        "linear": growth <= LINEAR_TOLERANCE,
        "linear_tolerance": LINEAR_TOLERANCE,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--sizes", type=int, nargs="+", default=[25_000, 50_000, 100_000])
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.symbols)))
        return 0
    load_start = [round(v, 2) for v in os.getloadavg()]
    report = run(args.sizes, args.symbols)
    report.update(
        load_average_start=load_start,
        load_average_end=[round(v, 2) for v in os.getloadavg()],
        cpus=os.cpu_count(),
        python=platform.python_version(),
        when=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    )
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    (RESULTS / f"bench_features-{stamp}.json").write_text(json.dumps(report, indent=2))
    print(render(report))
    print(
        f"\n{args.symbols} symbols, {report['indicators']} indicators; per-bar time grows "
        f"{report['per_bar_growth']:.2f}x from the smallest to the largest size (linear: "
        f"<= {LINEAR_TOLERANCE}); load average {load_start} at the start, "
        f"{report['load_average_end']} at the end; {report['cpus']} CPUs, Python "
        f"{report['python']}."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
