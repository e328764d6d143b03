"""``TrainingExecutor``: the new composed pipeline (the unified mode's engine room).

It runs the engine's :func:`~ktrdr_core.training.pipeline.run_training` —
the same step functions and the same ``ModelTrainer`` as the legacy flow —
with two differences that are the point of the migration:

- **progress** goes through a :class:`~ktrdr_unified.progress_bridge.ProgressBridge`
  (about one update every 300 ms instead of one per batch);
- **logging** is a separate channel: one numbered line per step
  (``step 3/13: indicators``) and one summary line at the end, never a line
  per batch. Step timings are logged at DEBUG.

Cancellation: the engine checks the token between every two steps, between
the units of set-up work (each file, series, indicator) and before every
batch, so a cancel lands within one batch or one unit of work; the executor
then raises :class:`~ktrdr_core.CancellationError`, and the engine's storage
guarantees that no model folder is left behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from ktrdr_core import (
    CancellationError,
    CancellationToken,
    ProgressCallback,
    TrainingRequest,
    TrainingResult,
)
from ktrdr_unified.progress_bridge import ProgressBridge

__all__ = ["TrainingExecutor"]

logger = logging.getLogger(__name__)


class TrainingExecutor:
    """Runs one request through the engine's steps with throttled progress.

    ``clock`` feeds the progress bridge (tests pass a fake one); ``environ``
    and ``home`` go to the engine (default: ``os.environ`` and ``KTRDR_HOME``).
    After :meth:`execute`, ``last_bridge`` is the bridge that ran (or ``None``).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        environ: Mapping[str, str] | None = None,
        home: Path | None = None,
    ) -> None:
        self._clock = clock
        self._environ = environ
        self._home = home
        self.last_bridge: ProgressBridge | None = None

    def execute(
        self,
        request: TrainingRequest,
        progress_callback: ProgressCallback | None = None,
        cancellation_token: CancellationToken | None = None,
    ) -> TrainingResult:
        """Train ``request``; returns the result or raises (see the module docstring)."""
        from ktrdr_core.training.pipeline import run_training

        bridge = ProgressBridge(progress_callback, clock=self._clock) if progress_callback else None
        self.last_bridge = bridge
        started = time.perf_counter()
        current: list[tuple[int, int, str, float]] = []

        def on_step(index: int, total: int, name: str) -> None:
            now = time.perf_counter()
            if current:
                done_index, done_total, done_name, done_at = current[-1]
                logger.debug(
                    "step %d/%d: %s done in %.3f s", done_index, done_total, done_name, now - done_at
                )
            current.append((index, total, name, now))
            logger.info("step %d/%d: %s", index, total, name)
            if name == "evaluate" and bridge is not None:
                bridge.flush()  # training is over: nothing may stay folded

        logger.info(
            "unified: training %s for user %s (request %s)",
            request.strategy,
            request.user_id,
            request.request_id,
        )
        try:
            result = run_training(
                request, bridge, cancellation_token, on_step=on_step, environ=self._environ, home=self._home
            )
        except CancellationError as exc:
            where = f"step {current[-1][0]}/{current[-1][1]} ({current[-1][2]})" if current else "start"
            logger.info(
                "unified: cancelled at %s after %.2f s: %s", where, time.perf_counter() - started, exc.reason
            )
            raise
        finally:
            if bridge is not None:
                try:
                    bridge.flush()
                except CancellationError:
                    pass  # a sink asking to stop now: the run is over anyway
                except Exception:  # noqa: BLE001 - a sink failing at the end must not mask the outcome
                    logger.exception("progress sink failed while flushing the last epoch")
        duration = time.perf_counter() - started
        progress_summary = bridge.summary() if bridge is not None else {}
        logger.info(
            "unified: finished in %.2f s (%s epochs, val_loss %.4f, val_accuracy %.3f); "
            "progress: %d updates in, %d delivered, %d epochs folded",
            duration,
            result.training_metrics.get("epochs_trained"),
            float(result.training_metrics.get("val_loss", float("nan"))),
            float(result.training_metrics.get("val_accuracy", float("nan"))),
            progress_summary.get("received", 0),
            progress_summary.get("delivered", 0),
            progress_summary.get("folded_epochs", 0),
        )
        return result.with_metadata(implementation="unified", progress=progress_summary)
