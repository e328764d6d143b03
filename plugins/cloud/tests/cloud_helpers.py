"""Helpers shared by the cloud tests (imported by conftest and the test modules)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

#: a strategy that trains until it is stopped (no early stopping, many epochs)
LONG_STRATEGY = "cloud_test_long"


class ProgressRecorder:
    """A progress callback that records ``(monotonic time, thread, args)`` of every update."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, int, tuple[Any, ...]]] = []
        self.first = threading.Event()
        self.hook: Callable[[int], None] | None = None

    def __call__(self, epoch: int, total_epochs: int, metrics: Mapping[str, Any]) -> None:
        self.calls.append((time.monotonic(), threading.get_ident(), (epoch, total_epochs, metrics)))
        self.first.set()
        if self.hook is not None:
            self.hook(len(self.calls))

    @property
    def intervals(self) -> list[float]:
        times = [t for t, _, _ in self.calls]
        return [b - a for a, b in zip(times, times[1:], strict=False)]
