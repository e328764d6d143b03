"""ModelTrainer: the progress contract, cancellation, early stopping, determinism."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
import torch

from ktrdr_core.cancellation import ThreadingCancellationToken
from ktrdr_core.errors import CancellationError
from ktrdr_core.training.model import build_mlp
from ktrdr_core.training.trainer import ModelTrainer

BATCH_KEYS = {"progress_type", "epoch", "batch", "total_batches_per_epoch", "train_loss", "train_accuracy"}
EPOCH_KEYS = {
    "progress_type",
    "epoch",
    "total_batches_per_epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
}


def data(
    n: int = 200, seed: int = 0, learnable: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    y = (np.digitize(X[:, 0], [-0.5, 0.5]) if learnable else rng.integers(0, 3, n)).astype(np.int64)
    cut = int(n * 0.75)
    return X[:cut], y[:cut], X[cut:], y[cut:]


def model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_mlp(4, [16], "relu", 0.1)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int, dict[str, Any]]] = []

    def __call__(self, epoch: int, total: int, metrics: Mapping[str, Any]) -> None:
        self.calls.append((epoch, total, dict(metrics)))


def test_progress_contract() -> None:
    record = Recorder()
    config = {"epochs": 3, "batch_size": 32, "learning_rate": 0.05, "early_stopping": {"enabled": False}}
    result = ModelTrainer(config, record, None).train(model(), *data())
    batches = [c for c in record.calls if c[2]["progress_type"] == "batch"]
    epochs = [c for c in record.calls if c[2]["progress_type"] == "epoch"]
    assert len(batches) == 3 * 5  # 150 samples / 32 -> 5 batches per epoch
    assert [c[0] for c in epochs] == [1, 2, 3] and all(c[1] == 3 for c in record.calls)
    assert all(set(c[2]) >= BATCH_KEYS for c in batches)
    assert all(set(c[2]) >= EPOCH_KEYS for c in epochs)
    assert [c[2]["batch"] for c in batches[:5]] == [1, 2, 3, 4, 5]
    assert batches[0][2]["total_batches_per_epoch"] == 5
    # the epoch update carries the same numbers as the history
    assert epochs[-1][2]["val_loss"] == result["history"]["val_loss"][-1]
    assert result["epochs_trained"] == 3 and len(result["history"]["train_loss"]) == 3
    assert result["val_accuracy"] > 0.6  # the data is learnable


def test_learns_and_restores_the_best_epoch() -> None:
    X, y, Xv, yv = data(600, learnable=False)
    config = {
        "epochs": 40,
        "batch_size": 16,
        "learning_rate": 0.05,
        "early_stopping": {"enabled": True, "patience": 3},
    }
    net = model()
    trainer = ModelTrainer(config, None, None)
    result = trainer.train(net, X, y, Xv, yv)
    assert result["stopped_early"] and result["epochs_trained"] < 40
    assert result["epochs_trained"] == result["best_epoch"] + 3
    history = result["history"]["val_loss"]
    assert result["val_loss"] == min(history) == history[result["best_epoch"] - 1]
    # the model holds the best epoch's weights, not the last epoch's
    loss, _ = trainer.evaluate(net, torch.as_tensor(Xv), torch.as_tensor(yv))
    assert loss == pytest.approx(result["val_loss"], rel=1e-5)


def test_same_seed_same_numbers_and_other_seed_differs() -> None:
    config = {"epochs": 2, "batch_size": 16, "seed": 7}
    one = ModelTrainer(config).train(model(), *data())
    two = ModelTrainer(config).train(model(), *data())
    three = ModelTrainer({**config, "seed": 8}).train(model(), *data())
    assert one["history"] == two["history"]
    assert one["history"] != three["history"]


def test_cancel_from_the_callback_stops_at_the_next_batch() -> None:
    token = ThreadingCancellationToken()
    seen: list[int] = []

    def progress(epoch: int, total: int, metrics: Mapping[str, Any]) -> None:
        if metrics["progress_type"] == "batch":
            seen.append(metrics["batch"])
            if metrics["batch"] == 3:
                token.cancel(reason="user pressed stop")

    with pytest.raises(CancellationError, match="user pressed stop") as err:
        ModelTrainer({"epochs": 5, "batch_size": 16}, progress, token).train(model(), *data())
    assert err.value.reason == "user pressed stop"
    assert seen == [1, 2, 3]


def test_already_cancelled_token_runs_no_batch() -> None:
    token = ThreadingCancellationToken()
    token.cancel("early")
    record = Recorder()
    with pytest.raises(CancellationError):
        ModelTrainer({"epochs": 1}, record, token).train(model(), *data())
    assert record.calls == []


def test_a_raising_callback_does_not_kill_training(caplog: pytest.LogCaptureFixture) -> None:
    calls = []

    def broken(epoch: int, total: int, metrics: Mapping[str, Any]) -> None:
        calls.append(metrics["progress_type"])
        raise ValueError("sink bug")

    with caplog.at_level(logging.ERROR, logger="ktrdr_core.training.trainer"):
        result = ModelTrainer({"epochs": 2, "batch_size": 50}, broken).train(model(), *data())
    assert result["epochs_trained"] == 2
    assert calls.count("epoch") == 2 and calls.count("batch") == 6  # kept being called
    logged = [r for r in caplog.records if "progress callback" in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None


def test_a_callback_raising_cancellation_stops() -> None:
    def stop(epoch: int, total: int, metrics: Mapping[str, Any]) -> None:
        raise CancellationError("stop now")

    with pytest.raises(CancellationError, match="stop now"):
        ModelTrainer({"epochs": 2}, stop).train(model(), *data())


def test_accepts_attrs_training_params() -> None:
    from ktrdr_core.training.strategy import TrainingParams

    trainer = ModelTrainer(TrainingParams(epochs=1, batch_size=64))
    assert trainer.config["batch_size"] == 64 and trainer.config["seed"] == 42
    assert trainer.train(model(), *data())["batches_per_epoch"] == 3


def test_deferred_sums_give_the_per_batch_numbers_read_late_or_early() -> None:
    """The numbers left on the device say exactly what a per-batch ``.item()`` loop says."""
    config = {"epochs": 2, "batch_size": 32, "early_stopping": {"enabled": False}}
    per_batch = Recorder()
    eager = ModelTrainer(config, per_batch, deferred_metrics=False).train(model(), *data())
    late: list[tuple[int, int, Mapping[str, Any]]] = []
    early: list[tuple[int, int, dict[str, Any]]] = []

    def keep(epoch: int, total: int, metrics: Mapping[str, Any]) -> None:
        late.append((epoch, total, metrics))  # read only after the training: late reads
        if metrics["progress_type"] == "epoch" or metrics["batch"] % 2:
            early.append((epoch, total, dict(metrics)))  # every other batch read at once

    deferred = ModelTrainer(config, keep).train(model(), *data())
    assert deferred["history"] == eager["history"]
    assert [(e, t, dict(m)) for e, t, m in late] == per_batch.calls
    assert early == [c for c in per_batch.calls if c[2]["progress_type"] == "epoch" or c[2]["batch"] % 2]
    batch = [m for _, _, m in late if m["progress_type"] == "batch"]
    assert isinstance(batch[0]["train_loss"], float) and set(batch[0]) == BATCH_KEYS


#: Tensor methods that hand a value to the host: on a GPU each waits for the device.
HOST_READS = {"item", "tolist", "__float__", "__int__", "__bool__", "__index__", "numpy", "cpu"}


class HostReads(torch.overrides.TorchFunctionMode):
    """Counts the host reads of tensors made by one module's own code (not torch's)."""

    def __init__(self, module_file: str) -> None:
        super().__init__()
        self.module_file = module_file
        self.count = 0

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if getattr(func, "__name__", "") in HOST_READS:
            caller = sys._getframe(1).f_code.co_filename
            self.count += caller == self.module_file
        return func(*args, **(kwargs or {}))


def host_reads(samples: int, callback: Any, *, deferred: bool = True) -> int:
    from ktrdr_core.training import trainer as trainer_module

    config = {"epochs": 2, "batch_size": 8, "early_stopping": {"enabled": False}}
    trainer = ModelTrainer(config, callback, deferred_metrics=deferred)
    with HostReads(trainer_module.__file__) as probe:
        trainer.train(model(), *data(samples))
    return probe.count


def test_no_host_read_per_batch_unless_an_update_is_read() -> None:
    """Unified/cloud's loop reads nothing back per batch: the count does not grow with the
    batches (on a GPU each read would stall the loop), only with the updates that are read."""

    def ignore(epoch: int, total: int, metrics: Mapping[str, Any]) -> None:
        pass

    def read_every_tenth(epoch: int, total: int, metrics: Mapping[str, Any]) -> None:
        if metrics["progress_type"] == "batch" and metrics["batch"] % 10 == 0:
            assert 0 <= metrics["train_accuracy"] <= 1 and metrics["train_loss"] > 0

    few, many = host_reads(160, ignore), host_reads(640, ignore)  # 15 vs 60 batches per epoch
    assert few == many
    # the probe sees the per-batch path's reads (two per batch), so it would see a regression
    assert host_reads(640, ignore, deferred=False) - host_reads(160, ignore, deferred=False) == 2 * 2 * 45
    # each read update costs at most two reads (its losses and its hit counts), whatever it covers
    reads = 2 * (60 // 10)
    assert many < host_reads(640, read_every_tenth) <= many + 2 * reads
