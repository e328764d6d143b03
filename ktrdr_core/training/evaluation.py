"""Test-set metrics and permutation feature importance.

- ``precision``, ``recall``, ``f1``: per class, then averaged weighted by each
  class's share of the test set (scikit-learn's ``average="weighted"`` with
  ``zero_division=0``).
- ``baseline_accuracy``: the share of the test set's most common class, i.e.
  what always predicting that class scores. A model must beat it to be useful.
- Permutation importance of a feature: the mean drop in test accuracy when that
  one column is shuffled (seeded, ``repeats`` shuffles), the model unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ktrdr_core.training.labels import LABEL_NAMES
from ktrdr_core.training.model import NUM_CLASSES

__all__ = ["classification_metrics", "evaluate_model", "permutation_importance", "predict_logits"]

_CHUNK = 65536


@torch.no_grad()
def predict_logits(
    model: nn.Module, X: np.ndarray | torch.Tensor, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """The model's logits for every row of ``X`` (eval mode, in chunks), on CPU."""
    model.eval()
    X_t = torch.as_tensor(X, dtype=torch.float32)
    outputs = [model(X_t[i : i + _CHUNK].to(device)).cpu() for i in range(0, len(X_t), _CHUNK)]
    return torch.cat(outputs) if outputs else torch.empty((0, NUM_CLASSES))


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = NUM_CLASSES
) -> dict[str, Any]:
    """Accuracy, weighted precision/recall/F1, baseline accuracy, confusion matrix."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    n = len(y_true)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    tp = np.diag(confusion).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    weights = support / n if n else np.zeros(num_classes)
    return {
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "precision": float((precision * weights).sum()),
        "recall": float((recall * weights).sum()),
        "f1": float((f1 * weights).sum()),
        "baseline_accuracy": float(support.max() / n) if n else 0.0,
        "confusion_matrix": confusion.tolist(),
        "class_distribution": {LABEL_NAMES[i]: int(support[i]) for i in range(num_classes)},
    }


def evaluate_model(
    model: nn.Module, X_test: np.ndarray, y_test: np.ndarray, device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """The result's ``test_metrics`` (docs/contract.md): accuracy, loss, precision, recall, f1, baseline."""
    logits = predict_logits(model, X_test, device)
    y = torch.as_tensor(y_test, dtype=torch.long)
    loss = float(nn.functional.cross_entropy(logits, y)) if len(y) else 0.0
    metrics = classification_metrics(np.asarray(y_test), logits.argmax(1).numpy())
    accuracy = metrics.pop("accuracy")
    return {"test_accuracy": accuracy, "test_loss": loss, **metrics, "test_samples": int(len(y_test))}


def permutation_importance(
    model: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    feature_names: Sequence[str],
    *,
    seed: int = 42,
    repeats: int = 3,
    device: torch.device | str = "cpu",
    check: Callable[[], None] | None = None,
) -> dict[str, float]:
    """``{feature: mean accuracy drop when shuffled}``, in feature order.

    ``check`` is called before each feature (the pipeline passes a cancellation check).
    """
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    if X.shape[1] != len(feature_names):
        raise ValueError("feature_names must name every column of X")
    rng = np.random.default_rng(seed)
    base = float((predict_logits(model, X, device).argmax(1).numpy() == y).mean())
    importance: dict[str, float] = {}
    work = X.copy()
    for column, name in enumerate(feature_names):
        if check is not None:
            check()
        original = work[:, column].copy()
        drops = []
        for _ in range(repeats):
            work[:, column] = original[rng.permutation(len(original))]
            accuracy = float((predict_logits(model, work, device).argmax(1).numpy() == y).mean())
            drops.append(base - accuracy)
        work[:, column] = original
        importance[name] = float(np.mean(drops))
    return importance
