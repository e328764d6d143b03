"""Execution modes broken on purpose, one way each, to show the contract suite catches them.

Each starts from :class:`QuickMode` (which passes the whole suite) and breaks
one promise in a way real modes have broken it.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Mapping
from typing import Any

import attrs

from ktrdr_core import BadInputError, ModeHealth, TrainingResult
from ktrdr_core.home import ktrdr_home
from ktrdr_core.testing import QuickMode


class IgnoresCancellation(QuickMode):
    """Never looks at its token: runs to the end whatever happens."""

    def check(self, cancel: Any) -> None:
        pass


class SlowToCancel(QuickMode):
    """Notices a cancel at once, but tidies up for a quarter of a second before stopping."""

    def check(self, cancel: Any) -> None:
        if cancel.is_cancelled():
            time.sleep(0.25)  # e.g. uploads a checkpoint first
        super().check(cancel)


class TwoArgumentProgress(QuickMode):
    """Calls ``progress(epoch, metrics)``: the old signature some ports drift to."""

    def report(self, progress: Any, epoch: int, total: int, metrics: Mapping[str, Any]) -> None:
        with contextlib.suppress(Exception):  # it does survive a raising callback, at least
            progress(epoch, metrics)


class BackwardsEpochs(QuickMode):
    """Counts epochs down (total … 1) instead of up."""

    def report(self, progress: Any, epoch: int, total: int, metrics: Mapping[str, Any]) -> None:
        super().report(progress, total - epoch + 1, total, metrics)


class DropsTheFinalUpdate(QuickMode):
    """A throttle that swallows the final epoch-end update, so progress stops mid-epoch."""

    def report(self, progress: Any, epoch: int, total: int, metrics: Mapping[str, Any]) -> None:
        if not (epoch == total and metrics.get("progress_type") == "epoch"):
            super().report(progress, epoch, total, metrics)


class EpochUpdatesWithoutValMetrics(QuickMode):
    """A transport that rebuilds each update from the batch keys only, so epoch updates lose val_loss/val_accuracy."""

    KEPT = ("progress_type", "epoch", "batch", "total_batches_per_epoch", "train_loss", "train_accuracy")

    def report(self, progress: Any, epoch: int, total: int, metrics: Mapping[str, Any]) -> None:
        super().report(progress, epoch, total, {key: metrics[key] for key in self.KEPT if key in metrics})


class LetsCallbackErrorsEscape(QuickMode):
    """Calls the progress callback bare: a sink's bug kills the training."""

    def report(self, progress: Any, epoch: int, total: int, metrics: Mapping[str, Any]) -> None:
        progress(epoch, total, metrics)


class PartialResult(QuickMode):
    """Returns a result with only some of the result keys (docs/contract.md) filled in."""

    def execute(self, request: Any, progress: Any, cancel: Any) -> TrainingResult:
        full = super().execute(request, progress, cancel)
        return attrs.evolve(
            full,
            training_metrics={"val_loss": full.training_metrics["val_loss"]},
            test_metrics={"test_accuracy": full.test_metrics["test_accuracy"]},
            metadata={"duration_seconds": full.metadata["duration_seconds"]},
        )


class HalfWrittenModel(QuickMode):
    """Writes its model folder in place as it trains, so a cancel leaves half of it behind."""

    def execute(self, request: Any, progress: Any, cancel: Any) -> TrainingResult:
        folder = ktrdr_home() / "models" / request.strategy / "in_progress_v1"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.partial").write_text("{}")
        return super().execute(request, progress, cancel)

    def save(self, request: Any, symbols: tuple[str, ...], payload: Mapping[str, Any]) -> tuple[str, str]:
        folder = ktrdr_home() / "models" / request.strategy / "in_progress_v1"
        (folder / "model.json").write_text(json.dumps(payload))
        return str(folder), f"{request.strategy}/{folder.name}"


class CrashesOnBadInput(QuickMode):
    """Lets a lookup error through instead of saying which strategy is unknown."""

    def validate(self, request: Any) -> Any:
        try:
            return super().validate(request)
        except BadInputError:
            raise KeyError("name") from None


class IgnoresTheSeed(QuickMode):
    """Seeds nothing: every run differs."""

    def execute(self, request: Any, progress: Any, cancel: Any) -> TrainingResult:
        result = super().execute(request, progress, cancel)
        noise = random.random()
        return attrs.evolve(
            result,
            training_metrics={
                **result.training_metrics,
                "val_loss": result.training_metrics["val_loss"] + noise,
            },
        )


class SlowHealth(QuickMode):
    """Probes something remote in health(), unbounded."""

    def health(self) -> ModeHealth:
        time.sleep(0.6)
        return ModeHealth.ok()


class ReturnsCancelledResult(QuickMode):
    """Stops on cancel but returns a result instead of raising CancellationError."""

    def execute(self, request: Any, progress: Any, cancel: Any) -> TrainingResult:
        from ktrdr_core import CancellationError

        try:
            return super().execute(request, progress, cancel)
        except CancellationError as exc:
            return TrainingResult.cancelled(exc.reason)


class FailingMode(QuickMode):
    """Fails every training with an unexpected exception (for the manager state machine)."""

    def execute(self, request: Any, progress: Any, cancel: Any) -> TrainingResult:
        raise RuntimeError("the GPU driver went away")


class SlowToCancelOnce(QuickMode):
    """Tidies up for a quarter of a second on its first cancel only: one slow cancel in several."""

    def __init__(self) -> None:
        super().__init__()
        self.slow_cancels_left = 1

    def check(self, cancel: Any) -> None:
        if cancel.is_cancelled() and self.slow_cancels_left > 0:
            self.slow_cancels_left -= 1
            time.sleep(0.25)
        super().check(cancel)


class WorksBeforeLookingAtTheToken(QuickMode):
    """Sends a progress update before its first token check: a pre-cancelled run still starts."""

    def execute(self, request: Any, progress: Any, cancel: Any) -> TrainingResult:
        self.report(progress, 1, 1, {"progress_type": "batch", "batch": 1, "total_batches_per_epoch": 1,
                                     "train_loss": 1.0, "train_accuracy": 0.0})  # fmt: skip
        return super().execute(request, progress, cancel)


class ForgetsTheModel(QuickMode):
    """Trains and reports success, but never saves the model it was asked to save."""

    def save(self, request: Any, symbols: tuple[str, ...], payload: Mapping[str, Any]) -> tuple[str, str]:
        return "", ""

    def execute(self, request: Any, progress: Any, cancel: Any) -> TrainingResult:
        return attrs.evolve(super().execute(request, progress, cancel), model_path=None, model_id=None)


class SlowSetUp(QuickMode):
    """Parses its data in one unchecked piece (a third of a second) before the first token check."""

    def validate(self, request: Any) -> Any:
        time.sleep(0.3)  # e.g. reads and parses every file at once
        return super().validate(request)
