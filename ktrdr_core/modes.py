"""The execution-mode protocol every mode plugin implements.

A mode is one way of running the training engine: ``legacy`` (the old
monolithic flow), ``unified`` (the new composed pipeline), ``cloud`` (on Ray),
or a third party's. The core knows modes only through this protocol.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import attrs

from ktrdr_core.cancellation import CancellationToken
from ktrdr_core.progress import ProgressCallback
from ktrdr_core.request import TrainingRequest
from ktrdr_core.result import TrainingResult


@attrs.frozen
class ModeHealth:
    """Whether a mode can take work now, and a sentence saying why not."""

    healthy: bool
    detail: str = "ok"

    @classmethod
    def ok(cls, detail: str = "ok") -> ModeHealth:
        return cls(True, detail)

    @classmethod
    def unhealthy(cls, detail: str) -> ModeHealth:
        return cls(False, detail)

    @classmethod
    def if_importable(cls, mode: str, modules: Iterable[str]) -> ModeHealth:
        """Healthy when every module can be imported, checked without importing any.

        Keeps ``health()`` fast and torch-free (the selector asks before every
        decision; ``ktrdr plugins`` asks too).
        """
        for module in modules:
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                return cls.unhealthy(f"the {mode} mode cannot run: {module} is not installed")
        return cls.ok()


@runtime_checkable
class ExecutionMode(Protocol):
    """One way of running a training.

    ``execute`` is synchronous and may take minutes; the manager runs it off
    the event loop. It calls ``progress(epoch, total_epochs, metrics)`` as it
    goes, checks ``cancel.is_cancelled()`` often enough to stop within 100 ms,
    and raises :class:`~ktrdr_core.errors.CancellationError` when it stops
    early. It must leave no half-written model behind.

    Optional: ``capacity() -> int | None``, for a mode whose trainings run
    elsewhere (a cluster): how many fit at once now (a cached number, answered
    at once). ``ktrdr serve`` then admits that many of this mode's trainings
    besides its local ``--max-concurrent``; None (or no method) means "local".
    """

    name: str

    def health(self) -> ModeHealth:
        """Answer quickly (the selector asks before every decision)."""

    def execute(
        self,
        request: TrainingRequest,
        progress: ProgressCallback,
        cancel: CancellationToken,
    ) -> TrainingResult:
        """Run the training and return its result."""


def safe_health(mode: ExecutionMode) -> ModeHealth:
    """``mode.health()``, with a raising health check counted as unhealthy.

    It lives beside the protocol (not in the loader) so that the selector can
    use it without importing the loader that registers the selector.
    """
    try:
        health = mode.health()
    except Exception as exc:  # noqa: BLE001 - a health check must not take callers down
        return ModeHealth.unhealthy(f"health check raised {type(exc).__name__}: {exc}")
    if not isinstance(health, ModeHealth):
        return ModeHealth.unhealthy(f"health() returned {health!r}, not a ModeHealth")
    return health
