"""Benchmark of the cloud mode on a local Ray cluster.

Measures:

- cluster start: ``ray.init`` of a local instance (dashboard off), and the
  first cloud job on it (a cold worker imports torch);
- submit → first progress: from ``TrainingManager.train`` to the first
  progress callback, cold (the first job) and warm (later jobs);
- cancellation latency: ``token.cancel()`` → ``train()`` returned a cancelled
  result, over ``--cancels`` cancels at random points of running jobs
  (p50/p95/p99); every one must end cancelled with no model saved; and
  how long the cancel took to reach the worker (its local token fired; same
  machine, so the two clocks agree);
- wall time versus unified on the sample strategy (``neuro_mean_reversion``,
  its own epochs and early stopping, all the sample data), ``--repeats`` runs
  each; unified runs in this process with torch's default threads and with 1
  thread (the cloud task uses ``KTRDR_CLOUD_TASK_CPUS`` threads, default 1).

Writes JSON to ``benchmarks/results/bench_cloud-<time>.json`` and prints a
markdown table. Run::

    RAY_AUTH_MODE=disabled python benchmarks/bench_cloud.py --cancels 30 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import logging
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

import yaml

RESULTS = Path(__file__).resolve().parent / "results"
LONG = "bench_cloud_long"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = (len(ordered) - 1) * q
    low, high = int(index), min(int(index) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (index - low)


def long_strategy(folder: Path) -> None:
    from ktrdr_core.training.strategy import BUILTIN_STRATEGIES_DIR

    raw = yaml.safe_load((BUILTIN_STRATEGIES_DIR / "neuro_mean_reversion.yaml").read_text())
    raw["name"] = LONG
    raw["model"]["training"]["epochs"] = 100000
    raw["model"]["training"]["early_stopping"] = {"enabled": False}
    (folder / f"{LONG}.yaml").write_text(yaml.safe_dump(raw))


class FirstProgress:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.first: float | None = None
        self.count = 0
        self.event = threading.Event()
        self.times: list[float] = []

    def __call__(self, epoch: int, total: int, metrics: Any) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first = now - self.started
        self.count += 1
        self.times.append(now)
        self.event.set()


def timed_train(manager: Any, request: Any, mode: str) -> tuple[Any, float, FirstProgress]:
    progress = FirstProgress()
    started = time.monotonic()
    result = manager.train(request, progress, mode=mode)
    return result, time.monotonic() - started, progress


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cancels", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-delay", type=float, default=1.0, help="cancel after a random 0..MAX seconds of progress"
    )
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    work = Path(tempfile.mkdtemp(prefix="bench-cloud-"))
    os.environ["KTRDR_HOME"] = str(work / "home")
    (work / "strategies").mkdir()
    long_strategy(work / "strategies")
    os.environ["KTRDR_STRATEGIES_DIR"] = str(work / "strategies")

    import ray
    import torch

    from ktrdr_core import ThreadingCancellationToken, TrainingManager, TrainingRequest

    out: dict[str, Any] = {
        "python": platform.python_version(),
        "ray": ray.__version__,
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "load_average_start": os.getloadavg(),
        "args": vars(args),
        "command": " ".join([sys.executable, *sys.argv]),
    }

    started = time.monotonic()
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False, namespace="ktrdr")
    out["cluster_start_seconds"] = time.monotonic() - started

    manager = TrainingManager()
    sample = TrainingRequest(strategy="neuro_mean_reversion", overrides={"seed": 42})

    # 1. cold first job (worker start + torch import) on a short training
    short = TrainingRequest(
        strategy="neuro_mean_reversion",
        overrides={"seed": 42, "epochs": 2},
        start_date="2023-01-01",
        end_date="2023-02-28",
    )
    result, wall, progress = timed_train(manager, short, "cloud")
    assert result.success, result.error
    out["cold_job"] = {"wall_seconds": wall, "submit_to_first_progress_seconds": progress.first}

    # 2. warm submit -> first progress
    warm = []
    for _ in range(5):
        result, wall, progress = timed_train(manager, short, "cloud")
        assert result.success, result.error
        warm.append({"wall_seconds": wall, "first_progress_seconds": progress.first})
    out["warm_jobs"] = warm
    firsts = [w["first_progress_seconds"] for w in warm]
    out["warm_first_progress_p50"] = statistics.median(firsts)

    # 3. cancellation latency (the mode logs, at DEBUG, when the cancel reached the worker)
    reach: list[float] = []

    class ReachHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            value = getattr(record, "ktrdr_cancel_reach_ms", None)
            if value is not None:
                reach.append(float(value))

    mode_logger = logging.getLogger("ktrdr_cloud.mode")
    mode_logger.setLevel(logging.DEBUG)
    mode_logger.addHandler(ReachHandler())
    latencies = []
    leftovers = []
    for index in range(args.cancels):
        token = ThreadingCancellationToken()
        progress = FirstProgress()
        request = TrainingRequest(strategy=LONG, overrides={"seed": index})
        box: dict[str, Any] = {}

        def run(
            request: Any = request, progress: Any = progress, token: Any = token, box: dict[str, Any] = box
        ) -> None:
            box["result"] = manager.train(request, progress, token, mode="cloud")
            box["ended"] = time.monotonic()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        if not progress.event.wait(60):
            raise SystemExit("no progress within 60 s")
        time.sleep(rng.uniform(0.0, args.max_delay))
        cancelled = time.monotonic()
        token.cancel(reason="benchmark")
        thread.join(60)
        if thread.is_alive():
            raise SystemExit("a cancelled job did not end within 60 s")
        assert box["result"].status == "cancelled", box["result"].error
        latencies.append(box["ended"] - cancelled)
        models = Path(os.environ["KTRDR_HOME"]) / "models" / LONG
        leftovers.append(models.exists())
    out["cancellation"] = {
        "n": len(latencies),
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p95_ms": percentile(latencies, 0.95) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies) * 1000,
        "all_ms": [x * 1000 for x in latencies],
        "all_cancelled_without_model": not any(leftovers),
        "reach_worker_n": len(reach),
        "reach_worker_p50_ms": percentile(reach, 0.5),
        "reach_worker_p95_ms": percentile(reach, 0.95),
        "reach_worker_p99_ms": percentile(reach, 0.99),
        "reach_worker_max_ms": max(reach) if reach else None,
    }

    # 4. wall time: cloud vs unified on the sample strategy
    runs: dict[str, list[dict[str, Any]]] = {
        "cloud": [],
        "unified (default threads)": [],
        "unified (1 thread)": [],
    }
    default_threads = torch.get_num_threads()
    for _ in range(args.repeats):
        for label, mode, threads in (
            ("cloud", "cloud", default_threads),
            ("unified (default threads)", "unified", default_threads),
            ("unified (1 thread)", "unified", 1),
        ):
            torch.set_num_threads(threads)
            result, wall, progress = timed_train(manager, sample, mode)
            assert result.success, result.error
            gaps = [b - a for a, b in zip(progress.times, progress.times[1:], strict=False)]
            runs[label].append(
                {
                    "wall_seconds": wall,
                    "training_seconds": result.metadata.get("training_seconds"),
                    "epochs_trained": result.training_metrics.get("epochs_trained"),
                    "val_loss": result.training_metrics.get("val_loss"),
                    "val_accuracy": result.training_metrics.get("val_accuracy"),
                    "progress_updates": progress.count,
                    "min_interval_but_final_ms": min(gaps[:-1]) * 1000 if len(gaps) > 1 else None,
                }
            )
    torch.set_num_threads(default_threads)
    out["torch_default_threads"] = default_threads
    out["wall_time"] = runs
    out["load_average_end"] = os.getloadavg()
    ray.shutdown()

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"bench_cloud-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")

    c = out["cancellation"]
    lines = [
        "| measure | value |",
        "| --- | --- |",
        f"| local cluster start (`ray.init`, {args.num_cpus} CPUs, no dashboard) | "
        f"{out['cluster_start_seconds']:.2f} s |",
        f"| first cloud job, cold worker (2 epochs, 2 months) | {out['cold_job']['wall_seconds']:.2f} s |",
        f"| submit → first progress, cold | {out['cold_job']['submit_to_first_progress_seconds']:.2f} s |",
        f"| submit → first progress, warm (median of 5) | {out['warm_first_progress_p50'] * 1000:.0f} ms |",
        f"| cancellation latency p50 / p95 / p99 (n={c['n']}) | {c['p50_ms']:.0f} / "
        f"{c['p95_ms']:.0f} / {c['p99_ms']:.0f} ms (max {c['max_ms']:.0f}) |",
        f"| cancel → reaches the worker p50 / p95 / p99 (n={c['reach_worker_n']}) | "
        f"{c['reach_worker_p50_ms']:.1f} / {c['reach_worker_p95_ms']:.1f} / "
        f"{c['reach_worker_p99_ms']:.1f} ms |",
        f"| every cancel ended cancelled, no model | {c['all_cancelled_without_model']} |",
    ]
    for label, items in runs.items():
        if not items:
            continue
        walls = [r["wall_seconds"] for r in items]
        lines.append(
            f"| wall, sample strategy, {label} (median of {len(walls)}) | "
            f"{statistics.median(walls):.2f} s (val_loss "
            f"{items[0]['val_loss']:.4f}, val_acc {items[0]['val_accuracy']:.4f}, "
            f"{items[0]['epochs_trained']} epochs, {items[0]['progress_updates']} updates) |"
        )
    print("\n".join(lines))
    print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
