"""ModelTrainer: the progress contract, cancellation, early stopping, determinism."""

from __future__ import annotations

import logging
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


def test_device_accumulation_gives_the_same_numbers_read_lazily() -> None:
    """The running sums kept as tensors (what a GPU run does) say exactly what floats say."""
    config = {"epochs": 2, "batch_size": 32, "early_stopping": {"enabled": False}}
    plain, lazy = Recorder(), []
    default = ModelTrainer(config, plain).train(model(), *data())

    def keep(epoch: int, total: int, metrics: Mapping[str, Any]) -> None:
        lazy.append((epoch, total, metrics))  # read only after the training: late reads

    trainer = ModelTrainer(config, keep)
    trainer.device_accumulation = True
    tensors = trainer.train(model(), *data())
    assert tensors["history"] == default["history"]
    batch = [m for _, _, m in lazy if m["progress_type"] == "batch"]
    assert isinstance(batch[0]["train_loss"], float) and set(batch[0]) == BATCH_KEYS
    assert [(e, t, dict(m)) for e, t, m in lazy] == plain.calls
