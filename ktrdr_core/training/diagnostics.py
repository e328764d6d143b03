"""Honest-result warnings: what makes a finished training's numbers mean less than they seem.

On real data a strategy can train "successfully" into a model that says one
thing always, on labels that are nearly all one class, from features that never
change. None of that is an error — the run completes and its model is saved —
but the user must be told, in words, with the numbers. Each check returns
sentences for ``metadata.warnings`` (and the CLI prints them):

- the label set is one class, or nearly (the majority at least
  :data:`NEAR_SINGLE_CLASS_SHARE`), with its distribution;
- the model predicts one class for every test sample;
- the test accuracy is no better than always predicting the majority class;
- feature columns that are all zero, or constant, in the training part (named);
- a validation or test part under :data:`MIN_EVAL_SAMPLES` samples.

No torch here: the checks read the split, the feature names and the test metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ktrdr_core.training.dataset import DatasetSplit
from ktrdr_core.training.labels import LABEL_NAMES, label_distribution

__all__ = [
    "MIN_EVAL_SAMPLES",
    "NEAR_SINGLE_CLASS_SHARE",
    "feature_warnings",
    "label_warnings",
    "model_warnings",
    "result_warnings",
    "split_warnings",
]

NEAR_SINGLE_CLASS_SHARE = 0.9
MIN_EVAL_SAMPLES = 100
_MAX_NAMED = 10


def _distribution_text(counts: Mapping[str, int]) -> str:
    total = sum(counts.values()) or 1
    return ", ".join(f"{name} {count / total:.1%}" for name, count in counts.items())


def label_warnings(labels: np.ndarray) -> list[str]:
    """One sentence when the labels are one class or nearly one class."""
    counts = label_distribution(np.asarray(labels, dtype=np.int64))
    total = sum(counts.values())
    if total == 0:
        return []
    majority = max(counts, key=lambda name: counts[name])
    share = counts[majority] / total
    if share == 1.0:
        return [
            f"every one of the {total:,} labels is {majority}: the model can learn nothing but "
            "that class; change the label settings (training.labels) or the data"
        ]
    if share >= NEAR_SINGLE_CLASS_SHARE:
        return [
            f"the labels are nearly one class ({_distribution_text(counts)} of {total:,}): "
            f"a model can score {share:.1%} by always saying {majority}; consider other "
            "label settings (training.labels)"
        ]
    return []


def model_warnings(test_metrics: Mapping[str, Any]) -> list[str]:
    """A model that predicts one class; a test accuracy no better than the majority baseline."""
    out: list[str] = []
    confusion = np.asarray(test_metrics.get("confusion_matrix") or [], dtype=np.int64)
    samples = int(confusion.sum()) if confusion.size else 0
    if samples:
        predicted = confusion.sum(axis=0)
        if np.count_nonzero(predicted) == 1:
            only = LABEL_NAMES[int(np.argmax(predicted))]
            out.append(f"the model predicts {only} for every one of the {samples:,} test samples")
    accuracy, baseline = test_metrics.get("test_accuracy"), test_metrics.get("baseline_accuracy")
    if samples and accuracy is not None and baseline is not None and accuracy <= baseline:
        distribution = test_metrics.get("class_distribution") or {}
        majority = max(distribution, key=lambda name: distribution[name]) if distribution else "?"
        out.append(
            f"no gain over the majority baseline: test accuracy {accuracy:.3f} vs "
            f"{baseline:.3f} for always predicting {majority}"
        )
    return out


def _named(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_MAX_NAMED])
    return shown + (f" and {len(names) - _MAX_NAMED} more" if len(names) > _MAX_NAMED else "")


def feature_warnings(X_train: np.ndarray, feature_names: Sequence[str]) -> list[str]:
    """Feature columns that never change in the training part carry no information."""
    X = np.asarray(X_train)
    if X.ndim != 2 or len(X) == 0 or X.shape[1] != len(feature_names):
        return []
    constant = np.ptp(X, axis=0) == 0
    zero = constant & (X[0] == 0)
    out = []
    if zero.any():
        names = [feature_names[int(i)] for i in np.flatnonzero(zero)]
        out.append(
            f"{len(names)} of {len(feature_names)} feature columns are all zero in the "
            f"training data: {_named(names)} (do their fuzzy sets cover the indicator's "
            "values?)"
        )
    other = constant & ~zero
    if other.any():
        names = [f"{feature_names[int(i)]} = {float(X[0, i]):g}" for i in np.flatnonzero(other)]
        out.append(
            f"{len(names)} of {len(feature_names)} feature columns are constant in the "
            f"training data: {_named(names)}"
        )
    return out


def split_warnings(sizes: Mapping[str, int]) -> list[str]:
    """Validation and test parts too small for their metrics to mean much."""
    return [
        f"the {part} part has only {sizes[part]:,} samples (under {MIN_EVAL_SAMPLES}): its "
        "metrics are noise-prone; use a longer date range or a larger share"
        for part in ("validation", "test")
        if sizes.get(part, 0) < MIN_EVAL_SAMPLES
    ]


def result_warnings(
    split: DatasetSplit, feature_names: Sequence[str], test_metrics: Mapping[str, Any]
) -> list[str]:
    """Every warning for a finished training, in a fixed order (labels, features, split, model)."""
    labels = np.concatenate((split.y_train, split.y_val, split.y_test))
    return [
        *label_warnings(labels),
        *feature_warnings(split.X_train, feature_names),
        *split_warnings(split.sizes()),
        *model_warnings(test_metrics),
    ]
