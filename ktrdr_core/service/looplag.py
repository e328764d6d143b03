"""Event-loop lag monitor: a blocked event loop makes the service look hung.

A task sleeps ``interval`` seconds in a loop and records how much later than
asked it woke up. A blocked loop shows up as lag at once; the service exposes
it in ``/api/v1/health`` and as a metric, and tests assert on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable

from ktrdr_core.report import percentile

logger = logging.getLogger(__name__)


class EventLoopLagMonitor:
    """Measures event-loop lag while running; keep one per loop."""

    def __init__(
        self,
        interval: float = 0.05,
        *,
        warn_above: float = 0.1,
        keep: int = 10_000,
        on_sample: Callable[[float], None] | None = None,
    ) -> None:
        self.interval = interval
        self.warn_above = warn_above
        self.samples: deque[float] = deque(maxlen=keep)
        self._on_sample = on_sample
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.interval)
            lag = max(0.0, time.monotonic() - before - self.interval)
            self.samples.append(lag)
            if self._on_sample is not None:
                self._on_sample(lag)
            if lag > self.warn_above:
                logger.warning("event loop lag: %.0f ms", lag * 1000)

    def start(self) -> None:
        """Start sampling on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def __aenter__(self) -> EventLoopLagMonitor:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def max_lag(self) -> float:
        return max(self.samples, default=0.0)

    @property
    def last_lag(self) -> float:
        return self.samples[-1] if self.samples else 0.0

    def lag_percentile(self, pct: float) -> float:
        return percentile(list(self.samples), pct) or 0.0
