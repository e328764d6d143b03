"""Benchmark of the cloud mode on a real 2-node cluster started with ``ray start``.

The cluster is a head and a worker node, 1 CPU each, on 127.0.0.1
(``ktrdr_cloud.testing.start_cluster``; stopped by pid at the end). This
process never connects to Ray: the cloud mode's driver child does. Measures:

- submit → first progress: ``TrainingManager.train`` → the first progress
  callback, cold (the first job: driver process, connection, a new worker
  importing torch) and warm (median of later jobs);
- wall time cloud / unified on the sample strategy (``neuro_mean_reversion``,
  its own epochs and early stopping, all the sample data) on the warm
  cluster: the median of per-round ratios over ``--rounds`` interleaved
  rounds (order alternating); unified runs here with 1 torch thread, as the
  cloud task does (``KTRDR_CLOUD_TASK_CPUS=1``); goal ≤ 1.10;
- cancellation: ``token.cancel()`` → ``train()`` returned cancelled, at random
  points of ``--cancels`` running jobs, p50/p99 (goal p99 < 100 ms); every one
  must end cancelled with no model saved;
- 4 concurrent trainings on the 2×1-CPU nodes: the most that ran at once, from
  the workers' own start/end times in the results (goal: never more than 2);
- 8 cloud trainings submitted to one real ``ktrdr serve --max-concurrent 1``
  (the rollout at 100 % with ``cloud`` as candidate): all run on the cluster,
  at most 2 at once, while a poller times ``GET /api/v1/health`` (p99 goal <
  100 ms);
- bytes shipped per job for a 2-month range vs the whole files.

Writes JSON to ``benchmarks/results/bench_cloud-<time>.json`` and prints a
markdown table. Run::

    RAY_AUTH_MODE=disabled .venv/bin/python benchmarks/bench_cloud.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

RESULTS = Path(__file__).resolve().parent / "results"
LONG = "bench_cloud_long"
TWO_MONTHS = {"start_date": "2023-03-01", "end_date": "2023-04-30"}
#: epochs of the concurrency runs (all the sample data): a few seconds each
OVERLAP_EPOCHS = 6


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = (len(ordered) - 1) * q
    low, high = int(index), min(int(index) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (index - low)


def max_overlap(intervals: Sequence[tuple[float, float]]) -> int:
    """The most intervals open at one moment (an end at t closes before a start at t)."""
    events = sorted(
        [(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1])
    )
    peak = now = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


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
        self.event = threading.Event()

    def __call__(self, epoch: int, total: int, metrics: Any) -> None:
        if self.first is None:
            self.first = time.monotonic() - self.started
        self.event.set()


def timed_train(manager: Any, request: Any, mode: str) -> tuple[Any, float, FirstProgress]:
    progress = FirstProgress()
    started = time.monotonic()
    result = manager.train(request, progress, mode=mode)
    return result, time.monotonic() - started, progress


def worker_interval(result: Any) -> tuple[float, float]:
    cloud = result.metadata["cloud"]
    start = float(cloud["worker_started_at"])
    return start, start + float(cloud["worker_seconds"])


def measure_first_progress(manager: Any, request: Any, warm_runs: int) -> dict[str, Any]:
    result, wall, progress = timed_train(manager, request, "cloud")
    assert result.success, result.error
    warm = []
    for _ in range(warm_runs):
        again, _, later = timed_train(manager, request, "cloud")
        assert again.success, again.error
        assert later.first is not None
        warm.append(later.first)
    return {"cold_seconds": progress.first, "cold_wall_seconds": wall, "warm_seconds": warm}


def measure_wall(manager: Any, rounds: int) -> dict[str, Any]:
    import torch

    from ktrdr_core import TrainingRequest

    sample = TrainingRequest(strategy="neuro_mean_reversion", overrides={"seed": 42})
    threads = torch.get_num_threads()
    ratios, runs = [], []
    for index in range(rounds):
        order = ("cloud", "unified") if index % 2 == 0 else ("unified", "cloud")
        walls: dict[str, float] = {}
        for mode in order:
            torch.set_num_threads(1)
            result, wall, _ = timed_train(manager, sample, mode)
            assert result.success, result.error
            walls[mode] = wall
            runs.append({"mode": mode, "wall": wall, "val_loss": result.training_metrics["val_loss"]})
        ratios.append(walls["cloud"] / walls["unified"])
    torch.set_num_threads(threads)
    same = len({round(r["val_loss"], 6) for r in runs}) == 1
    return {"ratios": ratios, "median_ratio": statistics.median(ratios), "runs": runs, "same_val_loss": same}


def measure_cancels(manager: Any, n: int, rng: random.Random, home: Path) -> dict[str, Any]:
    from ktrdr_core import ThreadingCancellationToken, TrainingRequest

    latencies, statuses = [], []
    for index in range(n):
        token = ThreadingCancellationToken()
        progress = FirstProgress()
        request = TrainingRequest(strategy=LONG, overrides={"seed": index}, **TWO_MONTHS)
        box: dict[str, Any] = {}

        def run(request: Any = request, progress: Any = progress, token: Any = token, box: Any = box) -> None:
            box["result"] = manager.train(request, progress, token, mode="cloud")
            box["ended"] = time.monotonic()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        if not progress.event.wait(120):
            raise SystemExit("a long job reported no progress within 120 s")
        time.sleep(rng.uniform(0.0, 1.0))
        cancelled = time.monotonic()
        token.cancel(reason="benchmark")
        thread.join(60)
        if thread.is_alive():
            raise SystemExit("a cancelled job did not end within 60 s")
        latencies.append((box["ended"] - cancelled) * 1000)
        statuses.append(box["result"].status)
    no_model = not (home / "models" / LONG).exists()
    return {
        "n": n,
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies),
        "all_ms": latencies,
        "all_cancelled_without_model": all(s == "cancelled" for s in statuses) and no_model,
    }


def measure_concurrent(manager: Any, n: int) -> dict[str, Any]:
    from ktrdr_core import TrainingRequest

    results: list[Any] = [None] * n

    def one(i: int) -> None:
        # all the sample data: long enough (seconds) that the jobs overlap if the cluster lets them
        request = TrainingRequest(
            strategy="neuro_mean_reversion", overrides={"seed": i, "epochs": OVERLAP_EPOCHS}
        )
        results[i] = manager.train(request, mode="cloud")

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    assert all(r is not None and r.success for r in results), [r and r.error for r in results]
    intervals = [worker_interval(r) for r in results]
    return {"n": n, "max_at_once": max_overlap(intervals), "intervals": intervals}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(method: str, url: str, body: dict[str, Any] | None = None, timeout: float = 30) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def measure_serve(address: str, home: Path, n: int) -> dict[str, Any]:
    """``n`` cloud trainings through one ``ktrdr serve --max-concurrent 1``; health timed meanwhile."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("USE_UNIFIED", "UNIFIED_", "ROLLBACK_"))}
    env.update(
        KTRDR_HOME=str(home / "serve"),
        USE_UNIFIED_TRAINING="true",
        UNIFIED_TRAINING_ROLLOUT_PERCENTAGE="100",
        KTRDR_ROLLOUT_CANDIDATE="cloud",
        KTRDR_RAY_ADDRESS=address,
        RAY_AUTH_MODE="disabled",
    )
    log = (home / "serve.log").open("w")
    ktrdr = str(Path(sys.executable).with_name("ktrdr"))
    server = subprocess.Popen(
        [ktrdr, "serve", "--port", str(port), "--max-concurrent", "1"], env=env, stdout=log, stderr=log
    )
    health_ms: list[float] = []
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if http("GET", f"{base}/api/v1/health", timeout=2)[0] in (200, 503):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"ktrdr serve did not start: {(home / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.2)

        def poll() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                http("GET", f"{base}/api/v1/health", timeout=10)
                health_ms.append((time.perf_counter() - started) * 1000)
                stop.wait(0.05)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        ids, refused = [], 0
        pending = list(range(n))
        submit_deadline = time.monotonic() + 600
        while pending and time.monotonic() < submit_deadline:
            i = pending[0]
            body = {
                "strategy": "neuro_mean_reversion",
                "user_id": f"bench-user-{i}",
                "overrides": {"epochs": OVERLAP_EPOCHS, "seed": i},
            }
            code, answer = http("POST", f"{base}/api/v1/trainings", body)
            if code == 202:
                ids.append(answer["id"])
                pending.pop(0)
            elif code == 429:
                refused += 1
                time.sleep(0.5)
            else:
                raise SystemExit(f"POST /trainings answered {code}: {answer}")
        finished: dict[str, Any] = {}
        end_deadline = time.monotonic() + 900
        while len(finished) < len(ids) and time.monotonic() < end_deadline:
            for training_id in ids:
                if training_id in finished:
                    continue
                code, answer = http("GET", f"{base}/api/v1/trainings/{training_id}")
                if code == 200 and answer.get("status") not in ("queued", "running"):
                    finished[training_id] = answer
            time.sleep(0.5)
        stop.set()
        poller.join(15)
    finally:
        stop.set()
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    results = [finished[i].get("result") or {} for i in ids if i in finished]
    modes = [r.get("metadata", {}).get("mode") for r in results]
    intervals = []
    for r in results:
        cloud = r.get("metadata", {}).get("cloud") or {}
        if cloud.get("worker_started_at") is not None:
            start = float(cloud["worker_started_at"])
            intervals.append((start, start + float(cloud["worker_seconds"])))
    return {
        "n": n,
        "submitted": len(ids),
        "refused_429": refused,
        "finished": len(finished),
        "statuses": [finished[i].get("status") for i in ids if i in finished],
        "all_cloud": modes.count("cloud") == n,
        "max_at_once": max_overlap(intervals) if intervals else None,
        "health_n": len(health_ms),
        "health_p50_ms": percentile(health_ms, 0.5),
        "health_p99_ms": percentile(health_ms, 0.99),
        "health_max_ms": max(health_ms) if health_ms else None,
    }


def measure_bytes() -> dict[str, Any]:
    from ktrdr_cloud.payload import build_payload
    from ktrdr_core import TrainingRequest

    payload = build_payload(TrainingRequest(strategy="neuro_mean_reversion", **TWO_MONTHS))
    return {"range": TWO_MONTHS, "shipped": payload.data_bytes, "whole": sum(payload.whole_bytes.values())}


def table(out: dict[str, Any]) -> str:
    fp, wall, c, conc, serve, data = (
        out["first_progress"],
        out["wall"],
        out["cancel"],
        out["concurrent"],
        out["serve"],
        out["bytes"],
    )
    warm = fp["warm_seconds"]
    rows = [
        (
            "cluster start (`ray start`, head + 1 node, 1 CPU each)",
            f"{out['cluster_start_seconds']:.1f} s",
            "–",
        ),
        (
            "submit → first progress, cold (driver process, connect, new worker)",
            f"{fp['cold_seconds']:.2f} s",
            "–",
        ),
        (
            f"submit → first progress, warm (median of {len(warm)})",
            f"{statistics.median(warm) * 1000:.0f} ms",
            "–",
        ),
        (
            f"wall cloud / unified, sample strategy, warm cluster "
            f"(median of {len(wall['ratios'])} interleaved rounds)",
            f"{wall['median_ratio']:.3f} (ratios {', '.join(f'{r:.2f}' for r in wall['ratios'])}; "
            f"same val_loss: {wall['same_val_loss']})",
            "≤ 1.10",
        ),
        (
            f"cancel → cancelled, p50 / p99 (n={c['n']}, all cancelled, no model: "
            f"{c['all_cancelled_without_model']})",
            f"{c['p50_ms']:.0f} / {c['p99_ms']:.0f} ms (max {c['max_ms']:.0f})",
            "p99 < 100 ms",
        ),
        (f"{conc['n']} concurrent trainings on 2×1-CPU nodes: most at once", str(conc["max_at_once"]), "≤ 2"),
        (
            f"{serve['n']} trainings via `ktrdr serve --max-concurrent 1`: ran on cloud / most at once",
            f"{serve['all_cloud']} / {serve['max_at_once']} ({serve['finished']} finished, "
            f"{serve['refused_429']} × 429)",
            "all cloud, 2 at once",
        ),
        (
            f"… health during them p50 / p99 (n={serve['health_n']})",
            f"{serve['health_p50_ms']:.1f} / {serve['health_p99_ms']:.1f} ms",
            "p99 < 100 ms",
        ),
        (
            "bytes shipped per job, 2 months vs whole files",
            f"{data['shipped']:,} vs {data['whole']:,} ({data['shipped'] / data['whole']:.0%})",
            "–",
        ),
    ]
    lines = ["| measure | value | goal |", "| --- | --- | --- |"]
    lines += [f"| {a} | {b} | {g} |" for a, b, g in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cancels", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warm", type=int, default=5)
    parser.add_argument("--serve-trainings", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    work = Path(tempfile.mkdtemp(prefix="bench-cloud-"))
    home = work / "home"
    os.environ["KTRDR_HOME"] = str(home)
    (work / "strategies").mkdir()
    long_strategy(work / "strategies")
    os.environ["KTRDR_STRATEGIES_DIR"] = str(work / "strategies")

    import ray
    import torch

    from ktrdr_cloud.testing import start_cluster
    from ktrdr_core import TrainingManager, TrainingRequest

    out: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "python": platform.python_version(),
        "ray": ray.__version__,
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "load_average_start": os.getloadavg(),
        "args": vars(args),
        "command": " ".join([sys.executable, *sys.argv]),
    }
    started = time.monotonic()
    cluster = start_cluster(nodes=2, cpus_per_node=1)
    out["cluster_start_seconds"] = time.monotonic() - started
    os.environ["KTRDR_RAY_ADDRESS"] = cluster.address
    try:
        manager = TrainingManager()
        short = TrainingRequest(
            strategy="neuro_mean_reversion", overrides={"seed": 42, "epochs": 2}, **TWO_MONTHS
        )
        out["first_progress"] = measure_first_progress(manager, short, args.warm)
        out["wall"] = measure_wall(manager, args.rounds)
        out["cancel"] = measure_cancels(manager, args.cancels, rng, home)
        out["concurrent"] = measure_concurrent(manager, 4)
        out["serve"] = measure_serve(cluster.address, work, args.serve_trainings)
        out["bytes"] = measure_bytes()
    finally:
        cluster.stop()
    out["load_average_end"] = os.getloadavg()

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"bench_cloud-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(table(out))
    print(f"\n{out['date']}, load average {out['load_average_start']} → {out['load_average_end']}")
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
