"""Benchmark of the legacy and unified modes, side by side.

Measures, on the built-in sample strategy (``neuro_mean_reversion``, all the
sample data):

- wall time of one training per mode, ``--runs`` runs each, interleaved
  (legacy, unified, legacy, ...) after one untimed warm-up run per mode; the
  median of each and the unified/legacy ratio;
- progress updates as a sink sees them: count, and the intervals between
  them (p50/p95/min/max), per mode;
- cancellation latency: ``token.cancel()`` (from another thread, at a random
  time mid-training) → ``execute`` returned, ``--cancels`` cancels per mode
  (p50/p95/p99), on a short training (a third of the data, many epochs, so
  the cancel always lands while it runs); each must raise CancellationError
  and leave no model folder.

The modes are called directly (``mode.execute(request, sink, token)``), as
the TrainingManager would, without its other sinks. torch runs with
``--threads`` threads (default 1, like the tests). Writes JSON to
``benchmarks/results/bench_modes-<time>.json`` and prints a markdown table.
Run::

    python benchmarks/bench_modes.py                      # ~2-3 min on 2 shared cores
    python benchmarks/bench_modes.py --runs 5 --cancels 50 --epochs 0   # 0: the strategy's epochs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
STRATEGY = "neuro_mean_reversion"
MODES = ("legacy", "unified")
SHORT = {"start_date": "2023-01-01", "end_date": "2023-04-15"}


def pct(values: list[float], p: float) -> float | None:
    from ktrdr_core.report import percentile

    return percentile(values, p)


class TimingSink:
    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, epoch: int, total_epochs: int, metrics: Any) -> None:
        self.times.append(time.perf_counter())

    def intervals(self) -> list[float]:
        return [b - a for a, b in zip(self.times, self.times[1:], strict=False)]


def summary(values: list[float]) -> dict[str, float | None]:
    return {
        "p50": statistics.median(values) if values else None,
        "p95": pct(values, 95),
        "min": min(values, default=None),
        "max": max(values, default=None),
    }


def training_run(mode: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    from ktrdr_core import ThreadingCancellationToken, TrainingRequest

    sink = TimingSink()
    request = TrainingRequest(strategy=STRATEGY, overrides=overrides)
    started = time.perf_counter()
    result = mode.execute(request, sink, ThreadingCancellationToken())
    wall = time.perf_counter() - started
    intervals = sink.intervals()
    return {
        "wall_seconds": wall,
        "updates": len(sink.times),
        "intervals": intervals,
        "epochs_trained": result.training_metrics["epochs_trained"],
        "val_loss": result.training_metrics["val_loss"],
        "val_accuracy": result.training_metrics["val_accuracy"],
    }


def model_dirs(home: Path) -> set[Path]:
    """Model folders (versions and hidden temporaries) under ``home/models/<strategy>/``."""
    root = home / "models"
    return {p for p in root.glob("*/*") if p.is_dir()} if root.is_dir() else set()


def cancel_run(mode: Any, rng: random.Random, low: float, high: float, home: Path) -> dict[str, Any]:
    from ktrdr_core import CancellationError, ThreadingCancellationToken, TrainingRequest

    token = ThreadingCancellationToken()
    delay = rng.uniform(low, high)
    fired: list[float] = []

    def fire() -> None:
        fired.append(time.perf_counter())
        token.cancel(reason="benchmark")

    timer = threading.Timer(delay, fire)
    request = TrainingRequest(strategy=STRATEGY, overrides={"epochs": 1000}, **SHORT)
    outcome = "completed"
    before = model_dirs(home)
    timer.start()
    try:
        mode.execute(request, TimingSink(), token)
    except CancellationError:
        outcome = "cancelled"
    returned = time.perf_counter()
    timer.join()
    leftovers = model_dirs(home) - before
    return {
        "delay": delay,
        "outcome": outcome,
        "latency": returned - fired[0] if fired else None,
        "model_dirs_left": len(leftovers),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed trainings per mode (default 3)")
    parser.add_argument("--cancels", type=int, default=30, help="cancels per mode (default 30)")
    parser.add_argument(
        "--epochs",
        type=int,
        default=10,
        help="epochs of a timed training (default 10; 0: the strategy's own 50 with early stopping)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the cancel times")
    parser.add_argument(
        "--cancel-window",
        type=float,
        nargs=2,
        default=(0.4, 1.4),
        metavar=("LOW", "HIGH"),
        help="cancel between LOW and HIGH s after start",
    )
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="ktrdr-bench-modes-"))
    os.environ["KTRDR_HOME"] = str(home)
    import torch

    torch.set_num_threads(args.threads)
    from ktrdr_core.plugins import get_plugin_manager

    pm = get_plugin_manager()
    modes = {name: pm.get_mode(name) for name in MODES}
    overrides: dict[str, Any] = {"epochs": args.epochs} if args.epochs else {}
    bench_started = time.perf_counter()

    print(
        f"warm-up: one untimed run per mode ({STRATEGY}, {overrides or 'strategy epochs'})", file=sys.stderr
    )
    from ktrdr_core import ThreadingCancellationToken, TrainingRequest

    warm_up = TrainingRequest(strategy=STRATEGY, overrides={"epochs": 1, "save_model": False}, **SHORT)
    for mode in modes.values():
        mode.execute(warm_up, TimingSink(), ThreadingCancellationToken())

    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in MODES}
    for index in range(args.runs):
        order = MODES if index % 2 == 0 else MODES[::-1]
        for name in order:
            run = training_run(modes[name], overrides)
            runs[name].append(run)
            print(
                f"  run {index + 1} {name}: {run['wall_seconds']:.2f} s, {run['updates']} updates",
                file=sys.stderr,
            )

    rng = random.Random(args.seed)
    cancels: dict[str, list[dict[str, Any]]] = {name: [] for name in MODES}
    for index in range(args.cancels):
        for name in MODES if index % 2 == 0 else MODES[::-1]:
            cancels[name].append(cancel_run(modes[name], rng, *args.cancel_window, home))
    print(f"  {args.cancels} cancels per mode done", file=sys.stderr)

    report: dict[str, Any] = {
        "benchmark": "bench_modes",
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "strategy": STRATEGY,
        "overrides": overrides,
        "runs_per_mode": args.runs,
        "cancels_per_mode": args.cancels,
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "platform": platform.platform(),
        },
        "modes": {},
    }
    for name in MODES:
        walls = [r["wall_seconds"] for r in runs[name]]
        # the final update may come sooner than 100 ms (docs/modes.md): kept apart
        intervals = [i for r in runs[name] for i in r["intervals"][:-1]]
        finals = [r["intervals"][-1] for r in runs[name] if r["intervals"]]
        latencies = [c["latency"] for c in cancels[name] if c["outcome"] == "cancelled"]
        report["modes"][name] = {
            "wall_seconds": walls,
            "wall_median": statistics.median(walls) if walls else None,
            "updates_per_run": [r["updates"] for r in runs[name]],
            "intervals": summary(intervals),
            "final_intervals": finals,
            "epochs_trained": [r["epochs_trained"] for r in runs[name]],
            "val_loss": [r["val_loss"] for r in runs[name]],
            "val_accuracy": [r["val_accuracy"] for r in runs[name]],
            "cancellation_latency": {
                "p50": pct(latencies, 50),
                "p95": pct(latencies, 95),
                "p99": pct(latencies, 99),
                "max": max(latencies, default=None),
                "cancelled": len(latencies),
                "tried": len(cancels[name]),
                "not_cancelled": sum(c["outcome"] != "cancelled" for c in cancels[name]),
            },
            "model_dirs_left_after_cancels": sum(c["model_dirs_left"] for c in cancels[name]),
        }
    legacy, unified = report["modes"]["legacy"], report["modes"]["unified"]
    report["wall_ratio_unified_over_legacy"] = (
        unified["wall_median"] / legacy["wall_median"] if legacy["wall_median"] else None
    )
    report["bench_seconds"] = time.perf_counter() - bench_started

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench_modes-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")

    def ms(value: float | None) -> str:
        return "–" if value is None else f"{value * 1000:.1f}"

    print(
        f"\n### bench_modes — {STRATEGY}, {overrides or 'strategy epochs'}, "
        f"{args.runs} runs/mode, {args.cancels} cancels/mode, torch threads {args.threads}\n"
    )
    print(
        "| mode | wall median (s) | updates/run | interval p50 / p95 / min / max (ms, final excluded) "
        "| cancel p50 / p95 / p99 (ms) | cancelled |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for name in MODES:
        m = report["modes"][name]
        iv, cl = m["intervals"], m["cancellation_latency"]
        print(
            f"| {name} | {m['wall_median']:.2f} | {statistics.median(m['updates_per_run']):.0f} "
            f"| {ms(iv['p50'])} / {ms(iv['p95'])} / {ms(iv['min'])} / {ms(iv['max'])} "
            f"| {ms(cl['p50'])} / {ms(cl['p95'])} / {ms(cl['p99'])} "
            f"| {cl['cancelled']}/{cl['tried']} |"
        )
    print(
        f"\nunified / legacy wall time: {report['wall_ratio_unified_over_legacy']:.3f} "
        f"(median of {args.runs} interleaved runs); same val_loss: "
        f"{legacy['val_loss'][0]:.4f} vs {unified['val_loss'][0]:.4f}"
    )
    print(
        "model folders left behind by cancelled runs: "
        + ", ".join(f"{name} {report['modes'][name]['model_dirs_left_after_cancels']}" for name in MODES)
    )
    print(f"benchmark took {report['bench_seconds']:.0f} s; JSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
