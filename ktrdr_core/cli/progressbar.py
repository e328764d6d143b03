"""The console progress bar of ``ktrdr train`` (rich), drawn on stderr."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class ConsoleProgressBar:
    """A progress sink showing epoch, batch, loss, accuracy and ETA.

    The bar counts batches over the whole run (epochs × batches per epoch);
    validation numbers appear as soon as an update carries them.
    """

    def __init__(self, console: Console | None = None) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[details]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )
        self._task: Any = None
        self._val = ""
        self._done = 0

    def __call__(self, epoch: int, total_epochs: int, metrics: Mapping[str, Any]) -> None:
        per_epoch = int(metrics.get("total_batches_per_epoch") or 1)
        batch = int(metrics.get("batch") or per_epoch)
        if self._task is None:
            self._progress.start()
            self._task = self._progress.add_task("training", total=total_epochs * per_epoch, details="")
        if "val_loss" in metrics:
            self._val = (
                f" val_loss {float(metrics['val_loss']):.4f}"
                f" val_acc {float(metrics.get('val_accuracy', 0.0)):.3f}"
            )
        loss = metrics.get("train_loss")
        acc = metrics.get("train_accuracy")
        details = f"epoch {epoch}/{total_epochs} batch {batch}/{per_epoch}"
        if loss is not None:
            details += f" loss {float(loss):.4f}"
        if acc is not None:
            details += f" acc {float(acc):.3f}"
        self._done = (epoch - 1) * per_epoch + batch
        self._progress.update(self._task, completed=self._done, details=details + self._val)

    def close(self) -> None:
        if self._task is not None:
            # Early stopping ends before the last epoch: show the bar as finished, not waiting.
            self._progress.update(self._task, total=self._done, completed=self._done)
            self._progress.stop()
            self._task = None
