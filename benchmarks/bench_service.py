"""Load test of ``ktrdr serve``: concurrent trainings while a poller hammers the health endpoint.

Starts a real server (a subprocess on a free loopback port, its own
KTRDR_HOME, torch on one thread per training), submits ``--trainings`` (N)
short trainings at once — half routed to legacy, half to unified (rollout
enabled at 50 %, users chosen per bucket) — with ``--max-concurrent``
running and the rest queued, while a poller GETs ``/api/v1/health`` every
``--poll`` seconds. Reports:

- health latency (client-side, p50/p95/p99/max) and non-200 answers;
- event-loop lag: the worst ``max_recent_seconds`` any health answer saw
  (the monitor samples every 50 ms, so nothing between polls is missed), and
  the ``ktrdr_event_loop_lag_seconds`` histogram count above 100 ms;
- that every accepted training reached a terminal state, and their durations.

Not a CI timing assertion: it prints a table and writes JSON to
``benchmarks/results/bench_service-<time>.json``. Run::

    python benchmarks/bench_service.py                     # N=8, 2 at a time: ~1 min on 2 cores
    python benchmarks/bench_service.py --trainings 16 --max-concurrent 4
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

RESULTS = Path(__file__).resolve().parent / "results"
TERMINAL = {"completed", "failed", "cancelled"}


def bucket(user: str) -> int:
    return int(hashlib.md5(user.encode()).hexdigest(), 16) % 100


def users(n: int) -> list[str]:
    """n user ids alternating between the candidate half (bucket < 50) and the control half."""
    low = (f"bench-{i}" for i in range(10_000) if bucket(f"bench-{i}") < 50)
    high = (f"bench-{i}" for i in range(10_000) if bucket(f"bench-{i}") >= 50)
    return [next(low) if k % 2 == 0 else next(high) for k in range(n)]


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trainings", type=int, default=8)
    parser.add_argument("--max-concurrent", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--end-date", default="2023-03-31", help="sample data from 2023-01-02 to this")
    parser.add_argument("--poll", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="ktrdr-bench-service-"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KTRDR_", "USE_UNIFIED",
                                                                   "UNIFIED_TRAINING", "ROLLBACK"))}
    env.update(KTRDR_HOME=str(home), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               USE_UNIFIED_TRAINING="true", UNIFIED_TRAINING_ROLLOUT_PERCENTAGE="50")
    log = open(home / "server.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "ktrdr_core.cli.main", "serve", "--port", str(port),
                             "--max-concurrent", str(args.max_concurrent),
                             "--queue-size", str(args.trainings), "--log-level", "warning"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url + "/api/v1/health", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"server did not start: {(home / 'server.log').read_text()}") from None
                time.sleep(0.1)

        latencies: list[float] = []
        codes: dict[int, int] = {}
        worst_lag = 0.0
        stop = threading.Event()

        def poller() -> None:
            nonlocal worst_lag
            with httpx.Client(base_url=url, timeout=10) as c:
                while not stop.is_set():
                    t0 = time.perf_counter()
                    response = c.get("/api/v1/health")
                    latencies.append(time.perf_counter() - t0)
                    codes[response.status_code] = codes.get(response.status_code, 0) + 1
                    worst_lag = max(worst_lag, response.json()["event_loop_lag"]["max_recent_seconds"])
                    stop.wait(args.poll)

        thread = threading.Thread(target=poller, daemon=True)
        thread.start()
        time.sleep(0.5)
        started = time.monotonic()
        ids: dict[str, str] = {}
        with httpx.Client(base_url=url, timeout=30) as c:
            for user in users(args.trainings):
                response = c.post("/api/v1/trainings", json={
                    "strategy": "neuro_mean_reversion", "user_id": user, "start_date": "2023-01-02",
                    "end_date": args.end_date, "overrides": {"epochs": args.epochs, "seed": 1}})
                if response.status_code == 202:
                    ids[response.json()["id"]] = response.json()["decision"]["mode"]
                else:
                    print(f"refused: {response.status_code} {response.text}", file=sys.stderr)
            final: dict[str, dict[str, Any]] = {}
            while len(final) < len(ids) and time.monotonic() - started < args.timeout:
                for training_id in ids:
                    if training_id not in final:
                        body = c.get(f"/api/v1/trainings/{training_id}").json()
                        if body["status"] in TERMINAL:
                            final[training_id] = body
                time.sleep(0.25)
            wall = time.monotonic() - started
            time.sleep(0.3)
            stop.set()
            thread.join(10)
            metrics = c.get("/metrics").text
        lag_over_100ms = 0.0
        lag_count = 0.0
        for line in metrics.splitlines():
            if line.startswith('ktrdr_event_loop_lag_seconds_bucket{le="0.1"}'):
                below = float(line.rsplit(" ", 1)[1])
            elif line.startswith("ktrdr_event_loop_lag_seconds_count"):
                lag_count = float(line.rsplit(" ", 1)[1])
        lag_over_100ms = lag_count - below
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()

    durations = [f["result"]["metadata"].get("duration_seconds", 0.0) for f in final.values()
                 if f.get("result")]
    statuses: dict[str, int] = {}
    for body in final.values():
        statuses[body["status"]] = statuses.get(body["status"], 0) + 1
    modes: dict[str, int] = {}
    for mode in ids.values():
        modes[mode] = modes.get(mode, 0) + 1
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "host": {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine()},
        "config": vars(args),
        "trainings": {"submitted": args.trainings, "accepted": len(ids), "terminal": len(final),
                      "all_terminal": len(final) == len(ids), "statuses": statuses, "modes": modes,
                      "wall_seconds": round(wall, 2),
                      "duration_median_seconds":
                          round(statistics.median(durations), 2) if durations else None},
        "health": {"polls": len(latencies), "codes": codes,
                   "p50_ms": round(pct(latencies, 50) * 1000, 2),
                   "p95_ms": round(pct(latencies, 95) * 1000, 2),
                   "p99_ms": round(pct(latencies, 99) * 1000, 2), "max_ms": round(max(latencies) * 1000, 2)},
        "event_loop_lag": {"max_seen_ms": round(worst_lag * 1000, 2), "samples": lag_count,
                           "samples_over_100ms": lag_over_100ms},
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench_service-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    t, h, lag = report["trainings"], report["health"], report["event_loop_lag"]
    print("| N | max-concurrent | all terminal | statuses | wall s | health polls | p50 ms | p99 ms | "
          "max ms | max loop lag ms | lag samples > 100 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {t['accepted']} | {args.max_concurrent} | {t['all_terminal']} | {t['statuses']} | "
          f"{t['wall_seconds']} | {h['polls']} | {h['p50_ms']} | {h['p99_ms']} | {h['max_ms']} | "
          f"{lag['max_seen_ms']} | {int(lag['samples_over_100ms'])} of {int(lag['samples'])} |")
    print(f"written to {out}")
    return 0 if t["all_terminal"] and t["accepted"] == args.trainings else 1


if __name__ == "__main__":
    sys.exit(main())
