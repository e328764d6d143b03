"""``ProgressBridge``: time-based adaptive throttling of ``ModelTrainer``'s progress.

``ModelTrainer`` reports after every batch — hundreds of updates a second on
the sample strategy: progress flooding. The bridge sits between the trainer
and the sinks and lets through about one update every
:data:`TARGET_INTERVAL` (300 ms), by these rules (docs/modes.md has the long
version):

1. The first update always passes, and so does the final one (the epoch
   update of the last epoch, or of the epoch where early stopping hit).
2. Batch updates: only every ``stride``-th one is looked at (a *candidate*);
   the others are dropped without reading the clock (except while an epoch
   is folded, see rule 6). The stride starts at :data:`INITIAL_STRIDE` (10).
3. At a candidate, ``dt`` = time since the last delivered update. If ``dt`` is
   under :data:`FAST_INTERVAL` (150 ms) the stride doubles (at most
   :data:`MAX_STRIDE`, 100); over :data:`SLOW_INTERVAL` (450 ms) it halves (at
   least 1).
4. A candidate is delivered when ``dt >= MIN_INTERVAL`` (100 ms) and waiting
   for the next candidate (predicted from the measured time per batch and the
   stride) would overshoot the target by at least twice as much as
   delivering now falls short of it: ``dt >= TARGET - next_gap / 3``. So
   updates land just before or after 300 ms, never closer than 100 ms.
5. Epoch updates: an epoch end is delivered when it passes the same test as
   a candidate (rule 4), ``next_gap`` being the sooner of the next candidate
   (time per batch × stride; the count restarts at an epoch end) and the next
   epoch end (guessed one epoch on). Otherwise it is *folded*: kept, and
   carried by the next delivered update (``folded_epochs``: the full epoch
   metrics, oldest first; ``epochs_completed``; and, on a batch update,
   ``val_loss``/``val_accuracy`` of the newest folded epoch). Short epochs
   thus no longer set the pace. The end of a long epoch (at least
   :data:`LONG_EPOCH`, 600 ms) needs only the 100 ms floor, as before: epoch
   ends that rare cost at most one short interval per epoch, and their
   numbers go out at once. :meth:`flush` delivers whatever is still folded
   when training ends, so no epoch's numbers are lost.
6. A folded epoch is not kept waiting: while one is folded, every batch reads
   the clock, and the first update :data:`SLOW_INTERVAL` (450 ms) after the
   last delivered one — :data:`MIN_INTERVAL` (100 ms) for a long epoch,
   folded only because of the floor — is delivered, candidate or not, even
   if the stride or the guess of ``next_gap`` was off.

The bridge is itself a :data:`~ktrdr_core.ProgressCallback` — exactly
``(epoch, total_epochs, metrics)`` — wrapping the downstream callback without
changing its signature (docs/contract.md). The clock is a parameter so that the rules
can be tested with a fake clock. One bridge serves one training, on the
training thread.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from ktrdr_core import ProgressCallback

__all__ = [
    "FAST_INTERVAL",
    "INITIAL_STRIDE",
    "LONG_EPOCH",
    "MAX_STRIDE",
    "MIN_INTERVAL",
    "MIN_STRIDE",
    "SLOW_INTERVAL",
    "TARGET_INTERVAL",
    "ProgressBridge",
]

logger = logging.getLogger(__name__)

TARGET_INTERVAL = 0.3
"""Seconds the bridge aims for between delivered updates."""
FAST_INTERVAL = TARGET_INTERVAL * 0.5
"""A candidate sooner than this after the last delivered update doubles the stride."""
SLOW_INTERVAL = TARGET_INTERVAL * 1.5
"""A candidate later than this after the last delivered update halves the stride."""
LONG_EPOCH = TARGET_INTERVAL * 2
"""An epoch at least this long ends with an update of its own (after the 100 ms floor)."""
MIN_INTERVAL = 0.1
"""No two delivered updates closer than this, except the final one."""
INITIAL_STRIDE = 10
MIN_STRIDE = 1
MAX_STRIDE = 100


class ProgressBridge:
    """Throttles ``(epoch, total_epochs, metrics)`` updates toward one per ~300 ms.

    ``downstream`` receives the delivered updates (``None``: just count them).
    The counters ``received``, ``delivered``, ``held`` (candidates not
    delivered), ``folded`` (epoch updates folded) and ``stride`` describe what
    happened, for logs and benchmarks.
    """

    def __init__(
        self,
        downstream: ProgressCallback | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        target_interval: float = TARGET_INTERVAL,
        min_interval: float = MIN_INTERVAL,
        initial_stride: int = INITIAL_STRIDE,
        max_stride: int = MAX_STRIDE,
    ) -> None:
        if not 0 < min_interval <= target_interval:
            raise ValueError("need 0 < min_interval <= target_interval")
        if not MIN_STRIDE <= initial_stride <= max_stride:
            raise ValueError(f"need {MIN_STRIDE} <= initial_stride <= max_stride")
        self._downstream = downstream
        self._clock = clock
        self.target_interval = target_interval
        self.fast_interval = target_interval * 0.5
        self.slow_interval = target_interval * 1.5
        self.long_epoch = target_interval * 2
        self.min_interval = min_interval
        self.max_stride = max_stride
        self.stride = initial_stride
        self._last_delivered: float | None = None
        self._last_look: float | None = None
        self._first_delivered: float | None = None
        self._last_epoch_end: float | None = None
        self._per_batch: float | None = None
        self._pending_due: float | None = None
        self._since_look = 0
        self._pending: list[dict[str, Any]] = []
        self._pending_total = 0
        self.finished = False
        self.received = 0
        self.delivered = 0
        self.held = 0
        self.folded = 0

    # -- the callback --------------------------------------------------------------------

    def __call__(self, epoch: int, total_epochs: int, metrics: Mapping[str, Any]) -> None:
        self.received += 1
        if metrics.get("progress_type") == "batch":
            self._on_batch(epoch, total_epochs, metrics)
        else:
            self._on_epoch(epoch, total_epochs, metrics)

    def _look(self, now: float) -> None:
        self._last_look = now
        self._since_look = 0

    def _due(self, dt: float, next_gap: float) -> bool:
        """Rule 4, for candidates and epoch ends alike: deliver now rather than wait?

        ``dt`` is the time since the last delivered update, ``next_gap`` how long
        until the next chance to deliver. Now wins unless waiting lands closer to
        the target (biased towards waiting: the overshoot may be twice the shortfall).
        """
        return dt >= max(self.min_interval, self.target_interval - next_gap / 3)

    def _on_batch(self, epoch: int, total_epochs: int, metrics: Mapping[str, Any]) -> None:
        if self._last_delivered is None:  # rule 1: the first update always passes
            now = self._clock()
            self._look(now)
            self._deliver(epoch, total_epochs, metrics)
            return
        self._since_look += 1
        if self._since_look < self.stride:  # rule 2: not a candidate
            if self._pending:  # rule 6: unless a folded epoch is due
                now = self._clock()
                if self._pending_overdue(now):
                    self._deliver(epoch, total_epochs, metrics)
            return
        now = self._clock()
        assert self._last_look is not None
        per_batch = (now - self._last_look) / self._since_look
        self._per_batch = per_batch
        self._look(now)
        dt = now - self._last_delivered
        if dt < self.fast_interval:  # rule 3
            self.stride = min(self.stride * 2, self.max_stride)
        elif dt > self.slow_interval:
            self.stride = max(self.stride // 2, MIN_STRIDE)
        if self._due(dt, per_batch * self.stride) or self._pending_overdue(now):  # rules 4, 6
            self._deliver(epoch, total_epochs, metrics)
        else:
            self.held += 1

    def _epoch_length(self, now: float) -> float:
        """How long the epoch ending now took (``inf`` when it cannot be told)."""
        if self._last_epoch_end is not None:
            return now - self._last_epoch_end
        if self._per_batch is not None and self._first_delivered is not None:
            # the first epoch: timed from the end of its first batch, plus that batch
            return now - self._first_delivered + self._per_batch
        return math.inf  # the first epoch, before any candidate: the floor only, as before

    def _pending_overdue(self, now: float) -> bool:
        return self._pending_due is not None and now >= self._pending_due

    def _on_epoch(self, epoch: int, total_epochs: int, metrics: Mapping[str, Any]) -> None:
        now = self._clock()
        self._look(now)
        final = epoch >= total_epochs or bool(metrics.get("stopped_early"))
        last = self._last_delivered
        is_epoch = metrics.get("progress_type") == "epoch"
        long_epoch = False
        if last is None:  # rule 1
            due = True
        elif is_epoch:  # rule 5
            dt = now - last
            epoch_length = self._epoch_length(now)
            long_epoch = epoch_length >= self.long_epoch
            if long_epoch:
                due = dt >= self.min_interval
            else:
                next_gap = epoch_length
                if self._per_batch is not None:
                    next_gap = min(next_gap, self._per_batch * self.stride)
                due = self._due(dt, next_gap) or self._pending_overdue(now)
        else:  # some other kind of update: only the 100 ms floor
            due = now - last >= self.min_interval
        if is_epoch:
            self._last_epoch_end = now
        if final or due:
            self._deliver(epoch, total_epochs, metrics, final=final)
            return
        if is_epoch:  # rule 5: fold it into the next update
            assert last is not None
            self._pending.append({**metrics, "epoch": epoch})
            self._pending_total = total_epochs
            wait = self.min_interval if long_epoch else self.slow_interval  # rule 6
            due_at = last + wait
            self._pending_due = due_at if self._pending_due is None else min(self._pending_due, due_at)
            self.folded += 1
        else:  # some other kind of update, too soon: dropped like a batch update
            self.held += 1

    # -- delivering ----------------------------------------------------------------------

    def _carry_folded(self, metrics: Mapping[str, Any], epoch: int) -> dict[str, Any]:
        out = dict(metrics)
        if metrics.get("progress_type") == "epoch":
            out["epochs_completed"] = epoch
        if self._pending:
            newest = self._pending[-1]
            out["folded_epochs"] = [dict(folded) for folded in self._pending]
            if metrics.get("progress_type") != "epoch":
                out["epochs_completed"] = newest["epoch"]
                for key in ("val_loss", "val_accuracy"):
                    if key in newest:
                        out[key] = newest[key]
            self._pending.clear()
            self._pending_due = None
        return out

    def _deliver(
        self, epoch: int, total_epochs: int, metrics: Mapping[str, Any], *, final: bool = False
    ) -> None:
        out = self._carry_folded(metrics, epoch)
        # Copying the update reads its numbers, which the trainer defers until now (a fold of
        # every batch since the last delivery): time the next interval from when they are
        # ready, so the sinks never see two updates closer than the floor.
        now = self._clock()
        if final:
            self.finished = True
        if self._first_delivered is None:
            self._first_delivered = now
        self._last_delivered = now
        self.delivered += 1
        if self._downstream is not None:
            self._downstream(epoch, total_epochs, out)

    def flush(self) -> bool:
        """Deliver any epoch still folded (as a final epoch update); True if one was sent.

        Call it when training has ended, however it ended: an epoch that
        finished must reach the sinks even if no later update came to carry it.
        """
        if not self._pending:
            return False
        newest = self._pending.pop()
        self._pending_due = None
        metrics = {**newest, "flushed": True}
        self._deliver(int(newest["epoch"]), self._pending_total, metrics, final=True)
        return True

    def summary(self) -> dict[str, Any]:
        """The counters, for logs and the result's metadata."""
        return {
            "received": self.received,
            "delivered": self.delivered,
            "held": self.held,
            "folded_epochs": self.folded,
            "final_stride": self.stride,
        }
