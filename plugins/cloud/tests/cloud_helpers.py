"""Helpers shared by the cloud tests (imported by conftest and the test modules)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ktrdr_core import ThreadingCancellationToken, TrainingManager, TrainingRequest, TrainingResult

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


# -- processes and waiting (the fault, health and training tests) ------------------------------


def children(pid: int) -> list[int]:
    """The pids of ``pid``'s direct children (Linux ``/proc``); none once it is gone."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, poll: float = 0.02) -> Any:
    """``predicate()``'s first truthy value, polled for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Background:
    """``manager.train`` on a thread, so the test can act while it runs (the training and fault tests)."""

    def __init__(
        self,
        request: TrainingRequest,
        progress: Any = None,
        token: ThreadingCancellationToken | None = None,
        mode: str = "cloud",
    ) -> None:
        self.token = token or ThreadingCancellationToken()
        self.result: TrainingResult | None = None
        self.ended_at: float | None = None
        self._thread = threading.Thread(target=self._run, args=(request, progress, mode), daemon=True)
        self._thread.start()

    def _run(self, request: TrainingRequest, progress: Any, mode: str) -> None:
        try:
            self.result = TrainingManager().train(request, progress, self.token, mode=mode)
        finally:
            self.ended_at = time.monotonic()

    def join(self, timeout: float) -> TrainingResult:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the training did not end within {timeout} s"
        assert self.result is not None
        return self.result
