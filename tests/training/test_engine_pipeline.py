"""The pipeline end to end on the embedded sample data."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ktrdr_core.cancellation import ThreadingCancellationToken
from ktrdr_core.errors import BadInputError, CancellationError, TrainingFailedError
from ktrdr_core.request import TrainingRequest
from ktrdr_core.result import RESULT_KEYS, TrainingResult
from ktrdr_core.training import pipeline
from ktrdr_core.training.labels import LABEL_NAMES
from ktrdr_core.training.storage import load_model
from ktrdr_core.training.strategy import load_strategy

# A quarter of the sample data, two symbols, two epochs: enough to exercise everything fast.
SMALL = {
    "strategy": "neuro_mean_reversion",
    "symbols": ["SYNTH_A", "SYNTH_B"],
    "start_date": "2023-03-01",
    "end_date": "2023-04-30",
}


def small_request(**overrides: Any) -> TrainingRequest:
    return TrainingRequest(**SMALL, overrides={"epochs": 2, "batch_size": 64, **overrides})


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainingResult, Path]:
    """One real training on all the sample data (short: 4 epochs), saved under a tmp home."""
    home = tmp_path_factory.mktemp("home")
    steps: list[tuple[int, int, str]] = []
    request = TrainingRequest(strategy="neuro_mean_reversion", overrides={"epochs": 4, "batch_size": 64})
    result = pipeline.run_training(
        request,
        None,
        ThreadingCancellationToken(),
        on_step=lambda *step: steps.append(step),
        environ={},
        home=home,
    )
    assert steps == [(i, 13, name) for i, name in enumerate(pipeline.STEP_NAMES, start=1)]
    return result, home


def test_beats_the_majority_baseline(full_run: tuple[TrainingResult, Path]) -> None:
    result, _ = full_run
    test = result.test_metrics
    assert test["test_accuracy"] > test["baseline_accuracy"] + 0.08, test
    assert 0 < test["f1"] <= 1 and 0 < test["precision"] <= 1 and 0 < test["recall"] <= 1


def test_result_has_the_design_keys(full_run: tuple[TrainingResult, Path]) -> None:
    result, home = full_run
    data = result.to_dict()
    assert set(RESULT_KEYS) <= set(data) and data["success"] is True
    json.dumps(data)  # JSON-ready
    metrics = data["training_metrics"]
    assert {"val_loss", "val_accuracy", "epochs_trained", "history", "best_epoch"} <= set(metrics)
    assert set(metrics["history"]) == {
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "learning_rate",
    }
    assert metrics["val_loss"] == metrics["history"]["val_loss"][metrics["best_epoch"] - 1]
    assert {"test_accuracy", "test_loss", "precision", "recall", "f1", "baseline_accuracy"} <= set(
        data["test_metrics"]
    )
    meta = data["metadata"]
    assert meta["seed"] == 42 and meta["device"] == "cpu"
    assert meta["duration_seconds"] > 0 and meta["samples_per_second"] > 0
    summary = data["data_summary"]
    assert [s["symbol"] for s in summary["series"]] == ["SYNTH_A", "SYNTH_B", "SYNTH_C"]
    assert all(s["bars"] == 6000 for s in summary["series"])
    used = {s["samples_used"] for s in summary["series"]}
    assert len(used) == 1  # balanced
    sizes = summary["split_sizes"]
    assert sum(sizes.values()) < 3 * used.pop()  # the gap before each boundary is dropped
    assert set(summary["label_distribution"]["test"]) == set(LABEL_NAMES)
    assert data["feature_names"][:3] == ["rsi_oversold", "rsi_neutral", "rsi_overbought"]
    assert "rsi_oversold_lag_3" in data["feature_names"]
    assert list(data["feature_importance"]) == data["feature_names"]
    assert data["config"]["model"]["training"]["epochs"] == 4  # the override, resolved
    assert data["model_path"].startswith(str(home))


def test_saved_model_loads_back(full_run: tuple[TrainingResult, Path]) -> None:
    result, home = full_run
    folder = Path(result.model_path)
    assert folder == home / "models" / "neuro_mean_reversion" / "SYNTH_A-SYNTH_B-SYNTH_C_1h_v1"
    assert result.model_id == "neuro_mean_reversion/SYNTH_A-SYNTH_B-SYNTH_C_1h_v1"
    loaded = load_model(folder)
    assert loaded.feature_names == list(result.feature_names)
    assert loaded.metrics["test_metrics"]["test_accuracy"] == result.test_metrics["test_accuracy"]
    assert loaded.metadata["model_id"] == result.model_id
    out = loaded.model(torch.zeros(2, len(result.feature_names)))
    assert out.shape == (2, 3)


def test_same_seed_same_metrics_other_seed_differs(ktrdr_home: Path) -> None:
    one = pipeline.run_training(small_request(save_model=False))
    two = pipeline.run_training(small_request(save_model=False))
    other = pipeline.run_training(small_request(save_model=False, seed=7))
    assert one.training_metrics == two.training_metrics
    assert one.test_metrics == two.test_metrics
    assert one.feature_importance == two.feature_importance
    assert one.training_metrics["history"] != other.training_metrics["history"]
    assert other.metadata["seed"] == 7
    assert not (ktrdr_home / "models").exists()  # save_model=False


def test_cancel_mid_epoch_leaves_no_model(ktrdr_home: Path) -> None:
    token = ThreadingCancellationToken()
    seen: list[int] = []

    def progress(epoch: int, total: int, metrics: Mapping[str, Any]) -> None:
        if metrics["progress_type"] == "batch":
            seen.append(metrics["batch"])
            if metrics["batch"] == 5:
                token.cancel(reason="stop please")

    with pytest.raises(CancellationError, match="stop please"):
        pipeline.run_training(small_request(), progress, token)
    assert seen == [1, 2, 3, 4, 5]
    models = ktrdr_home / "models"
    assert not models.exists() or not any(p for p in models.rglob("*") if p.name != ".lock")


def test_cancel_between_steps(ktrdr_home: Path) -> None:
    token = ThreadingCancellationToken()
    names: list[str] = []

    def on_step(index: int, total: int, name: str) -> None:
        names.append(name)
        if name == "labels":
            token.cancel("enough")

    with pytest.raises(CancellationError, match="enough"):
        pipeline.run_training(small_request(), None, token, on_step=on_step)
    assert names[-1] == "labels" and len(names) == 6


def test_raising_progress_callback_does_not_kill_training(
    ktrdr_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls = []

    def broken(epoch: int, total: int, metrics: Mapping[str, Any]) -> None:
        calls.append(epoch)
        raise RuntimeError("dashboard down")

    with caplog.at_level(logging.ERROR):
        result = pipeline.run_training(small_request(epochs=1), broken)
    assert result.success and len(calls) > 1
    assert sum("progress callback" in r.getMessage() for r in caplog.records) == 1
    assert Path(result.model_path).is_dir()


def test_overrides_are_checked_and_unknown_ones_reported(ktrdr_home: Path) -> None:
    with pytest.raises(BadInputError, match="override epochs must be at least 1"):
        pipeline.run_training(small_request(epochs=0))
    with pytest.raises(BadInputError, match="override save_model must be true or false"):
        pipeline.run_training(small_request(save_model="maybe"))
    result = pipeline.run_training(small_request(epochs="1", save_model="false", colour="red"))
    assert result.metadata["ignored_overrides"] == ["colour"]
    assert result.training_metrics["epochs_trained"] == 1 and result.model_path is None


def test_data_dir_override_and_env(
    ktrdr_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_csv: Callable[..., Path]
) -> None:
    monkeypatch.setenv("KTRDR_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(BadInputError, match=r"empty does not exist.*SYNTH_A_1h.csv.*KTRDR_DATA_DIR"):
        pipeline.run_training(small_request())
    mine = tmp_path / "mine"
    write_csv(mine, "OWN", bars=800, seed=3)
    request = TrainingRequest(
        strategy="neuro_mean_reversion",
        symbols=["OWN"],
        overrides={"epochs": 1, "data_dir": str(mine), "save_model": False},
    )
    result = pipeline.run_training(request)
    assert result.data_summary["data_source"] == "overrides.data_dir"
    assert result.data_summary["series"][0]["bars"] == 800


def test_bad_request_inputs(ktrdr_home: Path) -> None:
    with pytest.raises(BadInputError, match="invalid strategy name"):
        pipeline.run_training(TrainingRequest(strategy="../etc/passwd"))
    with pytest.raises(BadInputError, match="invalid symbol"):
        pipeline.run_training(TrainingRequest(strategy="neuro_mean_reversion", symbols=["../x"]))
    with pytest.raises(BadInputError, match="end_date 2023-01-01 is before start_date"):
        pipeline.run_training(
            TrainingRequest(strategy="neuro_mean_reversion", start_date="2023-02-01", end_date="2023-01-01")
        )
    with pytest.raises(BadInputError, match="too few for a"):
        pipeline.run_training(
            TrainingRequest(strategy="neuro_mean_reversion", start_date="2023-03-01", end_date="2023-03-03")
        )


@pytest.mark.parametrize(
    ("symbols", "timeframes", "pattern"),
    [
        (["SYNTH_A\n"], [], "invalid symbol"),
        ([], ["1h\n"], "invalid timeframe"),
    ],
)
def test_request_names_with_a_trailing_newline_are_refused(
    symbols: list[str], timeframes: list[str], pattern: str
) -> None:
    request = TrainingRequest(strategy="neuro_mean_reversion", symbols=symbols, timeframes=timeframes)
    with pytest.raises(BadInputError, match=pattern):
        pipeline.select_series(request, load_strategy("neuro_mean_reversion"))


def test_unexpected_errors_become_training_failed(ktrdr_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("numerical meltdown")

    monkeypatch.setattr(pipeline, "evaluate_model", boom)
    with pytest.raises(TrainingFailedError, match="step 'evaluate' failed: RuntimeError: numerical meltdown"):
        pipeline.run_training(small_request(epochs=1))
    models = ktrdr_home / "models"
    assert not models.exists() or not any(models.rglob("*_v*"))


def test_steps_compose_by_hand() -> None:
    """The legacy mode composes the step functions itself; they work on their own."""
    strategy = pipeline.load_strategy_step(small_request(), pipeline.resolve_options({}))
    data = pipeline.load_data(
        ["SYNTH_C"], ["1h"], pipeline.resolve_data_dir({}, {})[0], end_date="2023-02-15"
    )
    values = pipeline.compute_indicators(strategy, data)
    members = pipeline.compute_memberships(strategy, values)
    matrices, names = pipeline.build_features(strategy, members, data)
    samples = pipeline.build_labels(strategy, data, matrices)
    assert matrices[0].shape == (len(data[0]), len(names))
    assert np.isfinite(samples[0].X).all() and (samples[0].y >= 0).all()
    assert len(samples[0]) < len(data[0])  # warm-up and the unlabelled tail are dropped
