"""Progress accuracy: does the progress a user sees match the work actually done?

Definition. At each update delivered to the sinks, the **reported** fraction
is what the update says: ``((epoch - 1) * batches_per_epoch + batch) /
(total_epochs * batches_per_epoch)`` (an epoch update counts its epoch as
done). The **actual** fraction is the number of batches the training engine
has really finished at that moment, over the same planned total. The run's
progress accuracy is the largest ``|reported - actual|`` over its updates.

Early stopping is accounted for: an update that says ``stopped_early`` ends
the run, so for it both fractions are taken over the batches the run
actually needed (the bar jumps to full, and that jump is not an error).

The engine counts its batches on the thread that runs it
(:func:`count_batch`, called by ``ModelTrainer``); :class:`ProgressAccuracy`
arms that counter when it is created on the training's thread. A mode whose
engine runs elsewhere (cloud, on a Ray worker) never moves the counter, and
its accuracy is ``None``: not measured, rather than wrong.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

_local = threading.local()


def count_batch() -> None:
    """One more batch finished on this thread (a no-op unless a measurement is armed)."""
    done = getattr(_local, "batches", None)
    if done is not None:
        _local.batches = done + 1


def restart_count() -> None:
    """The engine starts a training: its batch count starts at 0 (if armed)."""
    if getattr(_local, "batches", None) is not None:
        _local.batches = 0
        _local.started = True


def _batches_done() -> tuple[int | None, bool]:
    return getattr(_local, "batches", None), bool(getattr(_local, "started", False))


class ProgressAccuracy:
    """A progress sink measuring |reported - actual| at each delivered update of one run."""

    def __init__(self) -> None:
        _local.batches = 0
        _local.started = False
        self.max_deviation: float | None = None
        self.updates = 0

    def __call__(self, epoch: int, total_epochs: int, metrics: Mapping[str, Any]) -> None:
        done, started = _batches_done()
        if done is None or not started:
            return  # the engine does not run on this thread: nothing to compare with
        per_epoch = _whole(metrics.get("total_batches_per_epoch"))
        if per_epoch is None or total_epochs < 1:
            return
        if metrics.get("progress_type") == "epoch":
            reported = epoch * per_epoch
        else:
            batch = _whole(metrics.get("batch"))
            if batch is None:
                return
            reported = (epoch - 1) * per_epoch + batch
        planned = total_epochs * per_epoch
        if metrics.get("stopped_early"):
            planned = epoch * per_epoch
        deviation = abs(reported - done) / planned
        self.updates += 1
        if self.max_deviation is None or deviation > self.max_deviation:
            self.max_deviation = deviation

    def close(self) -> None:
        """Disarm this thread's counter (the thread may run other work next)."""
        _local.batches = None
        _local.started = False


def _whole(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1:
        return None
    return int(value)
