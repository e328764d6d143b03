"""The migration's cancellation acceptance test, written against the public API.

What differs from the original sketch, and why:
- ``TrainingExecutor.execute`` is synchronous (the manager runs modes off the
  event loop), so the test runs it with ``asyncio.to_thread`` instead of
  ``asyncio.create_task(executor.execute(...))``;
- it waits for the first progress update instead of ``asyncio.sleep(1)``, so
  the cancel lands mid-training on a slow machine too;
- one cancel on a shared, loaded machine is a noisy sample: it cancels three
  trainings and judges the median against the 100 ms bound (every one must
  still end within the sketch's 1 s ``wait_for``); the benchmarks report the
  percentiles.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from pathlib import Path

from unified_support import SHORT

from ktrdr_core import CancellationError, TrainingRequest, create_cancellation_token
from ktrdr_unified import TrainingExecutor

CANCEL_BOUND_S = 0.1
RUNS = 3


async def one_cancellation_latency() -> float:
    executor = TrainingExecutor()
    token = create_cancellation_token()
    started = threading.Event()
    request = TrainingRequest(
        strategy="neuro_mean_reversion", overrides={"epochs": 200, "seed": 1, "save_model": False}, **SHORT
    )

    task = asyncio.create_task(asyncio.to_thread(executor.execute, request, lambda *_: started.set(), token))
    for _ in range(600):  # let it start: at most 60 s, on the busiest machine
        if started.is_set() or task.done():
            break
        await asyncio.sleep(0.1)
    assert started.is_set(), "the training never reported progress"

    start = time.monotonic()
    token.cancel()
    try:
        await asyncio.wait_for(task, timeout=1.0)
    except CancellationError:
        return time.monotonic() - start
    raise AssertionError("execute() returned instead of raising CancellationError")


def test_cancellation_latency(ktrdr_home: Path) -> None:
    """Ensure cancellation latency < 100 ms (the median of several cancels)."""
    latencies = [asyncio.run(one_cancellation_latency()) for _ in range(RUNS)]
    latency = statistics.median(latencies)
    assert latency < CANCEL_BOUND_S, (
        f"Cancellation took {latency * 1000:.0f}ms (target <100ms); all: "
        f"{', '.join(f'{x * 1000:.0f}' for x in latencies)} ms"
    )
