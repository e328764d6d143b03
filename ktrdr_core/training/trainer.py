"""``ModelTrainer``: the battle-tested training loop every mode runs unchanged.

Its progress contract (docs/contract.md, "Progress updates") is exactly
``progress_callback(epoch, total_epochs, metrics)``:

- ``epoch`` is 1-based, ``total_epochs`` the configured maximum (early stopping
  may end sooner; the last epoch update says so with ``stopped_early``).
- after every batch: ``metrics = {"progress_type": "batch", "epoch", "batch"
  (1-based), "total_batches_per_epoch", "train_loss", "train_accuracy"}``, the
  loss and accuracy being the running means over the epoch so far (a
  :class:`BatchMetrics` mapping that computes them when read: by default the
  batches' numbers wait on the device, :class:`DeferredSums`, so the loop never
  waits for the device to hand a number to an update nobody reads);
- after every epoch: ``{"progress_type": "epoch", "epoch", "total_batches_per_epoch",
  "train_loss", "train_accuracy", "val_loss", "val_accuracy", "best_epoch",
  "stopped_early"}``.

A callback that raises does not stop the training: the first failure is logged
with its traceback, later ones are ignored (the callback keeps being called).
Only a :class:`CancellationError` raised by the callback propagates: that is
an explicit request to stop.

Cancellation is checked before every batch; a fired token raises
``CancellationError(token.reason)``.

Options (``model.training``): ``loss`` (cross_entropy or focal, with
``focal_gamma``), ``class_weights``, ``gradient_clip`` (``clip_grad_norm_``
before each step) and ``lr_scheduler`` (stepped once per epoch, after
validation; reduce_on_plateau watches ``val_loss``). ``val_loss`` is the
training loss on the validation set, so early stopping and the scheduler
watch what is being optimised.

The loop slices pre-made tensors with a seeded permutation instead of using a
DataLoader: for the small MLPs here the DataLoader's per-batch Python work
would cost more than the step itself.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import numpy as np
import torch
from torch import nn

from ktrdr_core.cancellation import CancellationToken
from ktrdr_core.errors import BadInputError, CancellationError
from ktrdr_core.progress import ProgressCallback
from ktrdr_core.progress_accuracy import count_batch, restart_count
from ktrdr_core.training.losses import Loss
from ktrdr_core.training.model import NUM_CLASSES, select_device
from ktrdr_core.training.strategy import LR_SCHEDULERS, lr_scheduler_shorthand

__all__ = ["BatchMetrics", "DeferredSums", "ModelTrainer", "trainer_config"]

logger = logging.getLogger(__name__)

_DEFAULTS: dict[str, Any] = {
    "learning_rate": 0.001,
    "batch_size": 32,
    "epochs": 100,
    "optimizer": "adam",
    "early_stopping": {"enabled": True, "patience": 10, "monitor": "val_loss", "min_delta": 0.0},
    "seed": 42,
    "device": "auto",
    "lr_scheduler": None,
    "gradient_clip": 0.0,
    "loss": "cross_entropy",
    "focal_gamma": 2.0,
    "class_weights": None,
}
_EVAL_CHUNK = 65536


def trainer_config(config: Any) -> dict[str, Any]:
    """Normalise a config: a mapping (the ``model.training`` section plus optional
    ``seed`` and ``device``), or a :class:`~ktrdr_core.training.strategy.TrainingParams`."""
    if attrs.has(type(config)):
        config = attrs.asdict(config)
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise TypeError(f"ModelTrainer config must be a mapping, got {type(config).__name__}")
    merged = {**_DEFAULTS, **config}
    early = config.get("early_stopping", {})
    if isinstance(early, bool):
        early = {"enabled": early}
    merged["early_stopping"] = {**_DEFAULTS["early_stopping"], **(early or {})}
    if str(merged["optimizer"]).lower() != "adam":
        raise BadInputError(f"optimizer {merged['optimizer']!r} is not supported (use adam)")
    if merged["early_stopping"]["monitor"] not in ("val_loss", "val_accuracy"):
        raise BadInputError("early_stopping.monitor must be val_loss or val_accuracy")
    for key in ("batch_size", "epochs"):
        if int(merged[key]) < 1:
            raise BadInputError(f"{key} must be at least 1, got {merged[key]}")
    merged["lr_scheduler"] = _scheduler_settings(merged["lr_scheduler"])
    if float(merged["gradient_clip"] or 0.0) < 0:
        raise BadInputError(f"gradient_clip must be ≥ 0, got {merged['gradient_clip']}")
    return merged


def _scheduler_settings(raw: Any) -> dict[str, Any] | None:
    """The scheduler settings with the strategy schema's defaults filled in (or ``None``)."""
    raw = lr_scheduler_shorthand(raw)
    if raw is None:
        return None
    kind = str(raw.get("type", "reduce_on_plateau")).lower()
    if kind not in LR_SCHEDULERS:
        raise BadInputError(f"lr_scheduler type {kind!r} is not supported (use {', '.join(LR_SCHEDULERS)})")
    return {**LR_SCHEDULERS[kind], **raw, "type": kind}


def _scheduler(optimizer: torch.optim.Optimizer, settings: Mapping[str, Any] | None) -> Any:
    """The torch scheduler for ``settings`` (see :func:`_scheduler_settings`), or ``None``."""
    if not settings:
        return None
    schedulers = torch.optim.lr_scheduler
    kind = settings["type"]
    if kind == "reduce_on_plateau":
        return schedulers.ReduceLROnPlateau(
            optimizer,
            mode="min",
            factor=float(settings["factor"]),
            patience=int(settings["patience"]),
            min_lr=float(settings["min_lr"]),
        )
    if kind == "step":
        return schedulers.StepLR(
            optimizer, step_size=int(settings["step_size"]), gamma=float(settings["gamma"])
        )
    return schedulers.ExponentialLR(optimizer, gamma=float(settings["gamma"]))


class DeferredSums:
    """One epoch's running train loss and hit count, summed only when someone reads them.

    Each batch leaves its loss, logits and targets here as tensors on the
    training device (no ``.item()``, no argmax: nothing waits for the device).
    The first read of batch ``b`` folds the batches not yet summed in one go —
    one transfer of their losses, one argmax over their rows — and keeps the
    running totals per batch, so any batch can still be read later (and says
    what it said at its batch), while the folded tensors are let go. The loss
    total is summed in the same order and precision (float64 on the host) as a
    per-batch ``loss.item() * count`` loop, so the numbers are identical.
    Memory: the rows of the batches nobody has read yet (logits and targets).
    """

    __slots__ = ("_correct", "_counts", "_logits", "_losses", "_loss_sums", "_targets")

    def __init__(self) -> None:
        self._losses: list[torch.Tensor] = []
        self._logits: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []
        self._counts: list[int] = []
        self._loss_sums: list[float] = [0.0]
        self._correct: list[int] = [0]

    def add(self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor, count: int) -> None:
        """One more batch (``loss`` its mean loss over ``count`` samples)."""
        self._losses.append(loss.detach())
        self._logits.append(logits.detach())
        self._targets.append(targets)
        self._counts.append(count)

    def totals(self, batches: int) -> tuple[float, int]:
        """``(loss sum, correct)`` over the first ``batches`` batches of the epoch."""
        if batches >= len(self._loss_sums):
            self._fold(batches - len(self._loss_sums) + 1)
        return self._loss_sums[batches], self._correct[batches]

    def _fold(self, count: int) -> None:
        losses = torch.stack(self._losses[:count]).tolist()
        hits = torch.cat(self._logits[:count]).argmax(1) == torch.cat(self._targets[:count])
        counts = self._counts[:count]
        ends = np.cumsum(counts) - 1
        correct = hits.cumsum(0)[torch.as_tensor(ends, device=hits.device)].tolist()
        loss_sum, base = self._loss_sums[-1], self._correct[-1]
        for loss, samples, hits_so_far in zip(losses, counts, correct, strict=True):
            loss_sum += loss * samples
            self._loss_sums.append(loss_sum)
            self._correct.append(base + int(hits_so_far))
        del self._losses[:count], self._logits[:count], self._targets[:count], self._counts[:count]


class BatchMetrics(Mapping[str, Any]):
    """One batch update: ``train_loss`` / ``train_accuracy`` are computed when read.

    The running sums come from a :class:`DeferredSums` (read for this batch
    only when a value is asked for: a consumer that skips most updates, like
    the unified mode's throttle, costs nothing for the skipped ones) or are
    given ready (the per-batch path: floats, or device tensors off the CPU).
    Each update says what it said at its batch, however late it is read.
    """

    __slots__ = ("_batch", "_batches", "_correct", "_epoch", "_loss_sum", "_seen", "_sums")
    _KEYS = ("progress_type", "epoch", "batch", "total_batches_per_epoch", "train_loss", "train_accuracy")

    def __init__(
        self,
        epoch: int,
        batch: int,
        batches: int,
        loss_sum: Any,
        correct: Any,
        seen: int,
        sums: DeferredSums | None = None,
    ) -> None:
        self._epoch, self._batch, self._batches = epoch, batch, batches
        self._loss_sum, self._correct, self._seen, self._sums = loss_sum, correct, seen, sums

    def __getitem__(self, key: str) -> Any:
        if key == "progress_type":
            return "batch"
        if key == "epoch":
            return self._epoch
        if key == "batch":
            return self._batch
        if key == "total_batches_per_epoch":
            return self._batches
        if key == "train_loss":
            return self._read()[0] / self._seen
        if key == "train_accuracy":
            return self._read()[1] / self._seen
        raise KeyError(key)

    def _read(self) -> tuple[float, int]:
        if self._sums is not None:
            return self._sums.totals(self._batch)
        return float(self._loss_sum), int(self._correct)

    def __iter__(self) -> Iterator[str]:
        return iter(self._KEYS)

    def __len__(self) -> int:
        return len(self._KEYS)

    def __repr__(self) -> str:
        return f"BatchMetrics({dict(self)!r})"


def _adam(model: nn.Module, learning_rate: float) -> torch.optim.Optimizer:
    """Adam, with the fused kernel where this torch build has one (about 25 % faster
    steps for small MLPs on CPU, same results to float precision)."""
    try:
        return torch.optim.Adam(model.parameters(), lr=learning_rate, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(model.parameters(), lr=learning_rate)


class ModelTrainer:
    """Trains a classifier with Adam and cross-entropy, early stopping on validation.

    ``config`` keys: ``learning_rate``, ``batch_size``, ``epochs``, ``optimizer``
    (adam), ``early_stopping`` (``enabled``, ``patience``, ``monitor``:
    val_loss|val_accuracy, ``min_delta``), ``seed`` (default 42), ``device``
    ("auto": CUDA when available, else CPU), ``loss``, ``focal_gamma``,
    ``class_weights``, ``gradient_clip``, ``lr_scheduler``. The weights of the best validation
    epoch are restored into the model at the end. With the same seed, on CPU,
    two runs give identical weights and metrics.
    """

    def __init__(
        self,
        config: Any,
        progress_callback: ProgressCallback | None = None,
        cancellation_token: CancellationToken | None = None,
        *,
        deferred_metrics: bool = True,
    ) -> None:
        self.config = trainer_config(config)
        self.progress_callback = progress_callback
        self.cancellation_token = cancellation_token
        self.device = select_device(self.config.get("device"))
        self._callback_failed = False
        #: True: the per-batch running loss/accuracy stay on the device until an update
        #: is read (:class:`DeferredSums`). False: summed every batch (``.item()`` on CPU,
        #: device tensors elsewhere), the legacy flow's way. The numbers are the same.
        self.deferred_metrics = deferred_metrics

    # -- helpers ---------------------------------------------------------------------------

    def _emit(self, epoch: int, total: int, metrics: Mapping[str, Any]) -> None:
        callback = self.progress_callback
        if callback is None:
            return
        try:
            callback(epoch, total, metrics)
        except CancellationError:
            raise
        except Exception:  # noqa: BLE001 - a progress consumer's bug is not the training's
            if not self._callback_failed:
                self._callback_failed = True
                logger.exception(
                    "progress callback %r raised; training continues and its later errors are not logged",
                    callback,
                )

    def _check_cancelled(self) -> None:
        token = self.cancellation_token
        if token is not None and token.is_cancelled():
            raise CancellationError(token.reason or "cancelled")

    def _tensor(self, values: Any, dtype: torch.dtype) -> torch.Tensor:
        if isinstance(values, torch.Tensor):
            return values.to(device=self.device, dtype=dtype)
        return torch.as_tensor(np.asarray(values), dtype=dtype, device=self.device)

    @torch.no_grad()
    def evaluate(
        self, model: nn.Module, X: torch.Tensor, y: torch.Tensor, loss: Loss | None = None
    ) -> tuple[float, float]:
        """``(mean loss, accuracy)`` in eval mode; the loss is plain cross-entropy unless given."""
        model.eval()
        total_loss = 0.0
        total_weight = 0.0
        correct = 0
        for start in range(0, len(y), _EVAL_CHUNK):
            xb, yb = X[start : start + _EVAL_CHUNK], y[start : start + _EVAL_CHUNK]
            logits = model(xb)
            if loss is None:
                total_loss += float(nn.functional.cross_entropy(logits, yb, reduction="sum"))
                total_weight += len(yb)
            else:
                chunk_loss, chunk_weight = loss.total(logits, yb)
                total_loss += chunk_loss
                total_weight += chunk_weight
            correct += int((logits.argmax(1) == yb).sum())
        return total_loss / (total_weight or 1.0), correct / max(len(y), 1)

    # -- the loop --------------------------------------------------------------------------

    def train(self, model: nn.Module, X_train: Any, y_train: Any, X_val: Any, y_val: Any) -> dict[str, Any]:
        """Train ``model`` in place; returns the training metrics (see ``docs/engine.md``)."""
        cfg = self.config
        early = cfg["early_stopping"]
        seed = int(cfg["seed"])
        epochs = int(cfg["epochs"])
        batch_size = int(cfg["batch_size"])
        monitor = early["monitor"]
        patience = int(early["patience"]) if early["enabled"] else None
        min_delta = float(early["min_delta"])

        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        device = self.device
        model.to(device)
        X = self._tensor(X_train, torch.float32)
        y = self._tensor(y_train, torch.long)
        Xv = self._tensor(X_val, torch.float32)
        yv = self._tensor(y_val, torch.long)
        n = len(y)
        if n == 0 or len(yv) == 0:
            raise BadInputError("training needs at least one training and one validation sample")
        batches = math.ceil(n / batch_size)
        optimizer = _adam(model, float(cfg["learning_rate"]))
        scheduler = _scheduler(optimizer, cfg["lr_scheduler"])
        loss_fn = Loss(
            str(cfg["loss"]).lower(),
            gamma=float(cfg["focal_gamma"]),
            class_weights=cfg["class_weights"],
            y_train=y,
            num_classes=max(NUM_CLASSES, int(y.max()) + 1),
            device=device,
        )
        clip = float(cfg["gradient_clip"] or 0.0)
        parameters = [p for p in model.parameters() if p.requires_grad]
        emit = self._emit
        token = self.cancellation_token
        report_batches = self.progress_callback is not None
        deferred = self.deferred_metrics
        on_device = device.type != "cpu"

        history: dict[str, list[float]] = {
            "train_loss": [],
            "train_accuracy": [],
            "val_loss": [],
            "val_accuracy": [],
            "learning_rate": [],
        }
        best_value = math.inf
        best_epoch = 0
        best_state: dict[str, torch.Tensor] | None = None
        wait = 0
        stopped_early = False
        started = time.perf_counter()
        restart_count()
        epoch = 0
        for epoch in range(1, epochs + 1):
            model.train()
            order = torch.randperm(n, generator=generator)
            if device.type != "cpu":
                order = order.to(device)
            # Per-batch path: on CPU, .item() is no sync and cheaper than tensor arithmetic;
            # elsewhere the sums stay on the device (float64 there too: the same numbers).
            loss_sum: Any = torch.zeros((), dtype=torch.float64, device=device) if on_device else 0.0
            correct: Any = torch.zeros((), dtype=torch.int64, device=device) if on_device else 0
            sums = DeferredSums() if deferred else None
            seen = 0
            for batch in range(batches):
                if token is not None and token.is_cancelled():
                    raise CancellationError(token.reason or "cancelled")
                index = order[batch * batch_size : (batch + 1) * batch_size]
                xb = X[index]
                yb = y[index]
                logits = model(xb)
                loss = loss_fn(logits, yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if clip > 0:
                    nn.utils.clip_grad_norm_(parameters, clip)
                optimizer.step()
                count_batch()
                count = len(index)
                seen += count
                if sums is not None:
                    sums.add(loss, logits, yb, count)
                elif on_device:  # new tensors, never in place: earlier updates keep their sums
                    loss_sum = loss_sum + loss.detach().double() * count
                    correct = correct + (logits.argmax(1) == yb).sum()
                else:
                    loss_sum += loss.item() * count
                    correct += int((logits.argmax(1) == yb).sum())
                if report_batches:
                    emit(
                        epoch, epochs, BatchMetrics(epoch, batch + 1, batches, loss_sum, correct, seen, sums)
                    )
            self._check_cancelled()
            if sums is not None:
                loss_sum, correct = sums.totals(batches)
            train_loss, train_accuracy = float(loss_sum) / seen, int(correct) / seen
            val_loss, val_accuracy = self.evaluate(model, Xv, yv, loss_fn)
            history["train_loss"].append(train_loss)
            history["train_accuracy"].append(train_accuracy)
            history["val_loss"].append(val_loss)
            history["val_accuracy"].append(val_accuracy)
            history["learning_rate"].append(float(optimizer.param_groups[0]["lr"]))
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(val_loss)
            elif scheduler is not None:
                scheduler.step()
            value = val_loss if monitor == "val_loss" else -val_accuracy
            if value < best_value - min_delta or best_state is None:
                best_value = value
                best_epoch = epoch
                best_state = copy.deepcopy(model.state_dict())
                wait = 0
            else:
                wait += 1
            stopped_early = patience is not None and wait >= patience and epoch < epochs
            emit(
                epoch,
                epochs,
                {
                    "progress_type": "epoch",
                    "epoch": epoch,
                    "total_batches_per_epoch": batches,
                    "train_loss": train_loss,
                    "train_accuracy": train_accuracy,
                    "val_loss": val_loss,
                    "val_accuracy": val_accuracy,
                    "best_epoch": best_epoch,
                    "stopped_early": stopped_early,
                },
            )
            if stopped_early:
                break
        elapsed = time.perf_counter() - started
        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
        best = best_epoch - 1
        return {
            "epochs_trained": epoch,
            "total_epochs": epochs,
            "best_epoch": best_epoch,
            "stopped_early": stopped_early,
            "train_loss": history["train_loss"][best],
            "train_accuracy": history["train_accuracy"][best],
            "val_loss": history["val_loss"][best],
            "val_accuracy": history["val_accuracy"][best],
            "history": history,
            "training_seconds": elapsed,
            "samples_per_second": n * epoch / elapsed if elapsed > 0 else 0.0,
            "batches_per_epoch": batches,
            "device": str(device),
        }
