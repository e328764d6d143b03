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
- that every accepted training reached a terminal state, and their durations;
- ``--hostile`` (20) hostile requests sent meanwhile — 13 MB bodies, slow
  headers, slow bodies, NaN — and what each got;
- the restart: a server SIGKILLed with ``--stale-rows`` (3) trainings open,
  and the seconds from starting the next one to every stale row reconciled.

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


def send_hostile(port: int, n: int, codes: dict[str, int]) -> None:
    """``n`` hostile requests in turn: a 13 MB body, slow headers, a slow body, NaN (recorded by answer)."""
    url = f"http://127.0.0.1:{port}/api/v1/trainings"
    json_header = {"Content-Type": "application/json"}
    lock = threading.Lock()

    def one(i: int) -> None:
        kind = ("huge", "slow-headers", "slow-body", "nan")[i % 4]
        try:
            if kind == "huge":
                answer = str(
                    httpx.post(
                        url, content=b"{" + b" " * 13_000_000 + b"}", headers=json_header, timeout=30
                    ).status_code
                )
            elif kind == "nan":
                answer = str(
                    httpx.post(
                        url, content=b'{"strategy": "x", "seed": NaN}', headers=json_header, timeout=30
                    ).status_code
                )
            else:
                with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                    if kind == "slow-headers":
                        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                    else:
                        sock.sendall(
                            b"POST /api/v1/trainings HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
                        )
                    first = sock.recv(64)
                    answer = first.split(b" ")[1].decode() if first else "closed"
        except (httpx.HTTPError, OSError) as exc:
            answer = type(exc).__name__
        key = f"{kind}: {answer}"
        with lock:
            codes[key] = codes.get(key, 0) + 1

    clients = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for client in clients:  # all at once, a few milliseconds apart
        client.start()
        time.sleep(0.05)
    for client in clients:
        client.join(60)


def wait_until_serving(proc: subprocess.Popen[bytes], url: str, timeout: float = 60.0) -> bool:
    """True once ``url``'s health answers; False if the server exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            httpx.get(url + "/api/v1/health", timeout=1)
            return True
        except httpx.TransportError:
            time.sleep(0.1)
    return False


def time_reconciliation(stale: int, env: dict[str, str]) -> dict[str, Any]:
    """SIGKILL a server with ``stale`` open trainings; seconds from restart to every row interrupted."""
    import sqlite3

    home = Path(tempfile.mkdtemp(prefix="ktrdr-bench-restart-"))
    env = {**env, "KTRDR_HOME": str(home)}

    def serve() -> tuple[subprocess.Popen[bytes], str]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ktrdr_core.cli.main",
                "serve",
                "--port",
                str(port),
                "--max-concurrent",
                "1",
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return proc, f"http://127.0.0.1:{port}"

    def open_rows() -> int:
        with sqlite3.connect(home / "ledger.sqlite3") as db:
            return int(
                db.execute("SELECT count(*) FROM runs WHERE status IN ('queued', 'running')").fetchone()[0]
            )

    proc, url = serve()
    if not wait_until_serving(proc, url):
        proc.kill()
        return {"error": "the server did not start"}
    for n in range(stale):
        httpx.post(
            url + "/api/v1/trainings",
            json={"strategy": "neuro_mean_reversion", "user_id": f"s{n}", "overrides": {"epochs": 500}},
            timeout=30,
        )
    time.sleep(1.0)
    proc.kill()
    proc.wait()
    before = open_rows()
    t0 = time.monotonic()
    proc, url = serve()
    try:
        while open_rows() and time.monotonic() - t0 < 120:
            time.sleep(0.01)
        seconds = time.monotonic() - t0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    return {"stale_rows": before, "left_open": open_rows(), "seconds_to_reconciled": round(seconds, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trainings", type=int, default=8)
    parser.add_argument("--max-concurrent", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--end-date", default="2023-03-31", help="sample data from 2023-01-02 to this")
    parser.add_argument("--poll", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument(
        "--hostile",
        type=int,
        default=20,
        help="hostile requests sent while the trainings run (huge bodies, slow clients)",
    )
    parser.add_argument(
        "--stale-rows",
        type=int,
        default=3,
        help="trainings left open by a SIGKILL, to time the restart's reconciliation",
    )
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="ktrdr-bench-service-"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KTRDR_", "USE_UNIFIED", "UNIFIED_TRAINING", "ROLLBACK"))
    }
    env.update(
        KTRDR_HOME=str(home),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        USE_UNIFIED_TRAINING="true",
        UNIFIED_TRAINING_ROLLOUT_PERCENTAGE="50",
    )
    log = open(home / "server.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ktrdr_core.cli.main",
            "serve",
            "--port",
            str(port),
            "--max-concurrent",
            str(args.max_concurrent),
            "--queue-size",
            str(args.trainings),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        if not wait_until_serving(proc, url):
            raise SystemExit(f"server did not start: {(home / 'server.log').read_text()}")

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
        hostile_codes: dict[str, int] = {}
        hostile_thread = threading.Thread(
            target=send_hostile, args=(port, args.hostile, hostile_codes), daemon=True
        )
        with httpx.Client(base_url=url, timeout=30) as c:
            hostile_thread.start()
            for user in users(args.trainings):
                response = c.post(
                    "/api/v1/trainings",
                    json={
                        "strategy": "neuro_mean_reversion",
                        "user_id": user,
                        "start_date": "2023-01-02",
                        "end_date": args.end_date,
                        "overrides": {"epochs": args.epochs, "seed": 1},
                    },
                )
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
            hostile_thread.join(60)
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

    reconcile = time_reconciliation(args.stale_rows, env)
    durations = [
        f["result"]["metadata"].get("duration_seconds", 0.0) for f in final.values() if f.get("result")
    ]
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
        "trainings": {
            "submitted": args.trainings,
            "accepted": len(ids),
            "terminal": len(final),
            "all_terminal": len(final) == len(ids),
            "statuses": statuses,
            "modes": modes,
            "wall_seconds": round(wall, 2),
            "duration_median_seconds": round(statistics.median(durations), 2) if durations else None,
        },
        "health": {
            "polls": len(latencies),
            "codes": codes,
            "p50_ms": round(pct(latencies, 50) * 1000, 2),
            "p95_ms": round(pct(latencies, 95) * 1000, 2),
            "p99_ms": round(pct(latencies, 99) * 1000, 2),
            "max_ms": round(max(latencies) * 1000, 2),
        },
        "event_loop_lag": {
            "max_seen_ms": round(worst_lag * 1000, 2),
            "samples": lag_count,
            "samples_over_100ms": lag_over_100ms,
        },
        "hostile": {"sent": args.hostile, "answers": hostile_codes},
        "restart": reconcile,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench_service-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    t, h, lag = report["trainings"], report["health"], report["event_loop_lag"]
    print(
        "| N | max-concurrent | all terminal | statuses | wall s | health polls | p50 ms | p99 ms | "
        "max ms | max loop lag ms | lag samples > 100 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {t['accepted']} | {args.max_concurrent} | {t['all_terminal']} | {t['statuses']} | "
        f"{t['wall_seconds']} | {h['polls']} | {h['p50_ms']} | {h['p99_ms']} | {h['max_ms']} | "
        f"{lag['max_seen_ms']} | {int(lag['samples_over_100ms'])} of {int(lag['samples'])} |"
    )
    print(f"hostile requests: {hostile_codes}; restart after SIGKILL: {reconcile}")
    print(f"written to {out}")
    return 0 if t["all_terminal"] and t["accepted"] == args.trainings else 1


if __name__ == "__main__":
    sys.exit(main())
