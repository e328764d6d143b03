"""Honest-result warnings: each one triggered, and not triggered, with the numbers said."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ktrdr_core.request import TrainingRequest
from ktrdr_core.training import pipeline
from ktrdr_core.training.dataset import DatasetSplit
from ktrdr_core.training.diagnostics import (
    feature_warnings,
    label_warnings,
    model_warnings,
    result_warnings,
    split_warnings,
)
from ktrdr_core.training.evaluation import classification_metrics
from ktrdr_core.training.labels import BUY, HOLD, SELL


def test_single_class_labels() -> None:
    (warning,) = label_warnings(np.full(250, SELL))
    assert "every one of the 250 labels is SELL" in warning


def test_near_single_class_labels_say_the_distribution() -> None:
    labels = np.array([HOLD] * 92 + [BUY] * 5 + [SELL] * 3)
    (warning,) = label_warnings(labels)
    assert "nearly one class (BUY 5.0%, HOLD 92.0%, SELL 3.0% of 100)" in warning
    assert "always saying HOLD" in warning


def test_mixed_labels_give_no_warning() -> None:
    assert label_warnings(np.array([HOLD] * 89 + [BUY] * 6 + [SELL] * 5)) == []
    assert label_warnings(np.array([], dtype=np.int64)) == []


def _test_metrics(y_true: list[int], y_pred: list[int]) -> dict[str, Any]:
    metrics = classification_metrics(np.array(y_true), np.array(y_pred))
    metrics["test_accuracy"] = metrics.pop("accuracy")
    return metrics


def test_a_model_that_predicts_one_class() -> None:
    warnings = model_warnings(_test_metrics([0, 1, 1, 2, 1], [1, 1, 1, 1, 1]))
    assert "the model predicts HOLD for every one of the 5 test samples" in warnings
    # always HOLD scores exactly the HOLD share: no gain either
    assert any(
        "no gain over the majority baseline: test accuracy 0.600 vs 0.600 for always predicting HOLD" in w
        for w in warnings
    )


def test_no_gain_over_the_baseline_with_varied_predictions() -> None:
    (warning,) = model_warnings(_test_metrics([1, 1, 1, 0, 2], [0, 1, 2, 0, 1]))
    assert warning.startswith("no gain over the majority baseline: test accuracy 0.400 vs 0.600")


def test_a_useful_model_gives_no_model_warning() -> None:
    assert model_warnings(_test_metrics([0, 1, 1, 2, 1], [0, 1, 1, 2, 0])) == []


def test_zero_and_constant_feature_columns_are_named() -> None:
    rng = np.random.default_rng(0)
    X = rng.random((50, 4))
    X[:, 1] = 0.0
    X[:, 3] = 1.0
    warnings = feature_warnings(X, ["rsi_low", "rsi_never", "macd_up", "bb_always"])
    assert warnings == [
        "1 of 4 feature columns are all zero in the training data: rsi_never (do their fuzzy sets "
        "cover the indicator's values?)",
        "1 of 4 feature columns are constant in the training data: bb_always = 1",
    ]
    assert feature_warnings(rng.random((50, 4)), ["a", "b", "c", "d"]) == []


def test_many_zero_columns_are_summarised() -> None:
    names = [f"f{i}" for i in range(14)]
    (warning,) = feature_warnings(np.zeros((5, 14)), names)
    assert "14 of 14 feature columns are all zero" in warning and "f9 and 4 more" in warning


def test_small_validation_and_test_parts() -> None:
    warnings = split_warnings({"train": 900, "validation": 99, "test": 40})
    assert warnings == [
        "the validation part has only 99 samples (under 100): its metrics are noise-prone; use a "
        "longer date range or a larger share",
        "the test part has only 40 samples (under 100): its metrics are noise-prone; use a longer "
        "date range or a larger share",
    ]
    assert split_warnings({"train": 900, "validation": 100, "test": 100}) == []


def test_result_warnings_reads_the_whole_split() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 400)
    split = DatasetSplit(
        X_train=rng.random((300, 2)),
        y_train=y[:300],
        X_val=rng.random((50, 2)),
        y_val=y[300:350],
        X_test=rng.random((50, 2)),
        y_test=y[350:],
    )
    warnings = result_warnings(split, ["a", "b"], _test_metrics(list(y[350:]), list(y[350:])))
    assert [w.split(" part")[0] for w in warnings] == ["the validation", "the test"]


def test_a_run_on_hopeless_labels_warns_and_still_completes(
    write_strategy: Callable[..., Path], ktrdr_home: Path
) -> None:
    def hopeless(raw: dict[str, Any]) -> None:
        raw["training"]["labels"] = {"source": "zigzag", "zigzag_threshold": 0.5, "label_lookahead": 2}
        raw["fuzzy_sets"]["rsi"]["never"] = {"type": "gaussian", "parameters": [500, 1]}
        raw["fuzzy_sets"]["rsi"]["always"] = {
            "type": "trapezoidal",
            "parameters": [float("-inf"), float("-inf"), 1000, 2000],
        }
        raw["model"]["features"]["lookback_periods"] = 0

    write_strategy("hopeless", edit=hopeless)
    request = TrainingRequest(
        strategy="hopeless",
        symbols=("SYNTH_A", "SYNTH_B"),
        start_date="2023-01-02",
        end_date="2023-01-12",
        overrides={"epochs": 1, "save_model": False},
    )
    result = pipeline.run_training(request)
    assert result.success
    warnings = result.metadata["warnings"]
    assert any(w.startswith("every one of the") and w.count("HOLD") for w in warnings), warnings
    assert any("all zero in the training data: rsi_never" in w for w in warnings)
    assert any("constant in the training data: rsi_always = 1" in w for w in warnings)
    assert any(w.startswith("the test part has only") for w in warnings)
    assert any(w.startswith("the model predicts HOLD for every one") for w in warnings)
    assert any(w.startswith("no gain over the majority baseline") for w in warnings)


def test_a_sound_run_has_no_warnings(ktrdr_home: Path) -> None:
    request = TrainingRequest(
        strategy="neuro_mean_reversion",
        start_date="2023-01-02",
        end_date="2023-06-30",
        overrides={"epochs": 3, "save_model": False},
    )
    result = pipeline.run_training(request)
    assert result.metadata["warnings"] == [], result.metadata["warnings"]
