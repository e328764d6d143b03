"""A fast, honest execution mode for tests: :class:`QuickMode`.

It honours the whole contract — validates the request like the engine does,
reports ``(epoch, total_epochs, metrics)`` batch and epoch updates, checks its
token before every batch, survives a raising progress callback, is
deterministic in the seed, and saves its "model" atomically — but simulates
the training instead of running torch, so a step takes milliseconds. The
state machine uses it as the rollout's other side; the kit's own tests use it
as the mode that passes (and break it on purpose to show the suite fails).
"""

from __future__ import annotations

import json
import logging
import os
import random
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ktrdr_core.cancellation import CancellationToken
from ktrdr_core.errors import BadInputError, CancellationError
from ktrdr_core.home import ktrdr_home
from ktrdr_core.modes import ModeHealth
from ktrdr_core.progress import ProgressCallback
from ktrdr_core.request import SYMBOL_PATTERN, TrainingRequest
from ktrdr_core.result import TrainingResult

__all__ = ["QuickMode"]

logger = logging.getLogger(__name__)


class QuickMode:
    """A simulated training: ``epochs`` × ``batches`` steps of ``batch_seconds`` each."""

    def __init__(
        self, name: str = "quick", *, batches: int = 4, batch_seconds: float = 0.002, default_epochs: int = 3
    ) -> None:
        self.name = name
        self.batches = batches
        self.batch_seconds = batch_seconds
        self.default_epochs = default_epochs

    def health(self) -> ModeHealth:
        return ModeHealth.ok(f"{self.name} simulates trainings")

    # -- the steps a real mode also has (broken modes in the kit's tests override them) --

    def validate(self, request: TrainingRequest) -> tuple[Any, tuple[str, ...], tuple[str, ...]]:
        """Resolve the strategy and the series as the engine does; BadInputError otherwise."""
        from ktrdr_core.training.data import data_file, resolve_data_dir
        from ktrdr_core.training.strategy import load_strategy

        strategy = load_strategy(request.strategy)
        symbols = request.symbols or strategy.training_data.symbols
        timeframes = request.timeframes or strategy.training_data.timeframes
        data_dir, _ = resolve_data_dir(request.overrides)
        for symbol in symbols:
            if not SYMBOL_PATTERN.fullmatch(symbol):
                raise BadInputError(
                    f"invalid symbol {symbol!r}: use letters, digits, '.', '_', '^', '=' or '-'"
                )
            for timeframe in timeframes:
                data_file(data_dir, symbol, timeframe)
        return strategy, tuple(symbols), tuple(timeframes)

    def report(self, progress: ProgressCallback, epoch: int, total: int, metrics: Mapping[str, Any]) -> None:
        """Call ``progress``; its failures are logged and never stop the training."""
        try:
            progress(epoch, total, metrics)
        except CancellationError:
            raise
        except Exception:  # noqa: BLE001 - a progress consumer's bug is not the training's
            logger.debug("progress callback raised; training goes on", exc_info=True)

    def check(self, cancel: CancellationToken) -> None:
        if cancel.is_cancelled():
            raise CancellationError(cancel.reason or "cancelled")

    def save(
        self, request: TrainingRequest, symbols: tuple[str, ...], payload: Mapping[str, Any]
    ) -> tuple[str, str]:
        """Write into a temporary folder, then rename it into place: never half a model."""
        folder = ktrdr_home() / "models" / request.strategy
        folder.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder))
        (temporary / "model.json").write_text(json.dumps(payload))
        version = 1
        while True:
            target = folder / f"{'-'.join(symbols)}_v{version}"
            try:
                os.rename(temporary, target)
            except OSError:
                if not target.exists():
                    raise
                version += 1
                continue
            return str(target), f"{request.strategy}/{target.name}"

    # -- the mode ----------------------------------------------------------------------------

    def execute(
        self, request: TrainingRequest, progress: ProgressCallback, cancel: CancellationToken
    ) -> TrainingResult:
        started = time.monotonic()
        self.check(cancel)
        strategy, symbols, timeframes = self.validate(request)
        seed = int(request.overrides.get("seed", 42))
        epochs = int(request.overrides.get("epochs", self.default_epochs))
        rng = random.Random(seed)
        history: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "val_accuracy": []}
        loss = 1.1 + rng.random() / 10
        for epoch in range(1, epochs + 1):
            for batch in range(1, self.batches + 1):
                self.check(cancel)
                time.sleep(self.batch_seconds)
                loss *= 0.99
                self.report(
                    progress,
                    epoch,
                    epochs,
                    {
                        "progress_type": "batch",
                        "epoch": epoch,
                        "batch": batch,
                        "total_batches_per_epoch": self.batches,
                        "train_loss": loss,
                        "train_accuracy": 0.4,
                    },
                )
            val_loss, val_accuracy = loss + rng.random() / 20, 0.35 + rng.random() / 10
            for key, value in (("train_loss", loss), ("val_loss", val_loss), ("val_accuracy", val_accuracy)):
                history[key].append(value)
            self.report(
                progress,
                epoch,
                epochs,
                {
                    "progress_type": "epoch",
                    "epoch": epoch,
                    "total_batches_per_epoch": self.batches,
                    "train_loss": loss,
                    "train_accuracy": 0.4,
                    "val_loss": val_loss,
                    "val_accuracy": val_accuracy,
                },
            )
        self.check(cancel)
        features = [f"{indicator.feature_id}_level" for indicator in strategy.indicators]
        training_metrics = {
            "val_loss": history["val_loss"][-1],
            "val_accuracy": history["val_accuracy"][-1],
            "epochs_trained": epochs,
            "total_epochs": epochs,
            "history": history,
        }
        test_metrics = {
            "test_accuracy": 0.4,
            "test_loss": loss,
            "precision": 0.4,
            "recall": 0.4,
            "f1": 0.4,
            "baseline_accuracy": 0.34,
        }
        model_path = model_id = None
        if str(request.overrides.get("save_model", True)).lower() not in ("false", "0", "no"):
            model_path, model_id = self.save(request, symbols, {"seed": seed, **training_metrics})
        return TrainingResult(
            success=True,
            model_path=model_path,
            model_id=model_id,
            training_metrics=training_metrics,
            test_metrics=test_metrics,
            feature_names=features,
            feature_importance={name: 0.0 for name in features},
            config=strategy.to_dict(),
            metadata={
                "seed": seed,
                "duration_seconds": time.monotonic() - started,
                "symbols": list(symbols),
                "timeframes": list(timeframes),
            },
            data_summary={"simulated": True},
        )
