"""The legacy mode: the old StrategyTrainer API, every batch reported, clean cancellation."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from legacy_support import SHORT

from ktrdr_core import (
    BadInputError,
    CancellationError,
    ThreadingCancellationToken,
    TrainingRequest,
    TrainingResult,
)
from ktrdr_core.result import RESULT_KEYS
from ktrdr_core.testing import CancelAtCheck
from ktrdr_core.testing import leftover_model_dirs as model_dirs
from ktrdr_legacy.mode import LegacyMode
from ktrdr_legacy.strategy_trainer import StrategyTrainer

STRATEGY = "neuro_mean_reversion"


class Recorder:
    """A progress sink that keeps every update."""

    def __init__(self) -> None:
        self.updates: list[tuple[int, int, dict[str, Any]]] = []

    def __call__(self, epoch: int, total_epochs: int, metrics: Any) -> None:
        self.updates.append((epoch, total_epochs, dict(metrics)))

    def of(self, kind: str) -> list[tuple[int, int, dict[str, Any]]]:
        return [u for u in self.updates if u[2]["progress_type"] == kind]


def train(
    recorder: Recorder | None = None, token: Any = None, home: Path | None = None, **overrides: Any
) -> dict[str, Any]:
    overrides = {"epochs": 2, **overrides}
    return StrategyTrainer(home=home).train_multi_symbol_strategy(
        STRATEGY,
        None,
        None,
        SHORT["start_date"],
        SHORT["end_date"],
        progress_callback=recorder,
        cancellation_token=token,
        **overrides,
    )


def test_every_batch_reaches_the_callback_unthrottled(ktrdr_home: Path) -> None:
    recorder = Recorder()
    result = train(recorder, epochs=3)
    batches = result["training_metrics"]["batches_per_epoch"]
    epochs = result["training_metrics"]["epochs_trained"]
    assert epochs == 3
    assert len(recorder.of("batch")) == epochs * batches
    assert len(recorder.of("epoch")) == epochs
    assert len(recorder.updates) == epochs * batches + epochs
    # in order, each batch of each epoch exactly once, then its epoch update
    expected = [(e, b) for e in range(1, epochs + 1) for b in range(1, batches + 1)]
    assert [(m["epoch"], m["batch"]) for _e, _t, m in recorder.of("batch")] == expected
    assert all(total == 3 for _e, total, _m in recorder.updates)
    assert all("val_loss" in m and "val_accuracy" in m for _e, _t, m in recorder.of("epoch"))


def test_result_is_the_old_dict_with_the_design_keys(ktrdr_home: Path) -> None:
    result = train()
    assert isinstance(result, dict)
    assert set(RESULT_KEYS) <= set(result)
    assert result["success"] is True
    assert Path(result["model_path"]).is_dir()
    assert Path(result["model_path"]).is_relative_to(ktrdr_home / "models")
    for key in ("val_loss", "val_accuracy", "epochs_trained", "history"):
        assert key in result["training_metrics"]
    for key in ("test_accuracy", "test_loss", "precision", "recall", "f1", "baseline_accuracy"):
        assert key in result["test_metrics"]
    assert result["metadata"]["seed"] == 42
    assert result["metadata"]["duration_seconds"] > 0
    assert len(result["feature_names"]) == len(result["feature_importance"])


def test_validation_split_replaces_the_strategy_validation_share(ktrdr_home: Path) -> None:
    default = train(epochs=1, save_model=False)["data_summary"]["split_sizes"]
    wider = train(epochs=1, save_model=False, validation_split=0.3)["data_summary"]["split_sizes"]
    assert wider["validation"] > default["validation"]
    assert wider["test"] == default["test"]
    with pytest.raises(BadInputError, match="validation_split"):
        train(epochs=1, validation_split=0.9)


def test_validation_split_given_as_a_string_is_parsed(ktrdr_home: Path) -> None:
    as_number = train(epochs=1, save_model=False, validation_split=0.3)["data_summary"]["split_sizes"]
    as_text = train(epochs=1, save_model=False, validation_split="0.3")["data_summary"]["split_sizes"]
    assert as_text == as_number
    request = TrainingRequest(
        strategy=STRATEGY, overrides={"epochs": 1, "save_model": False, "validation_split": "0.3"}, **SHORT
    )
    result = LegacyMode().execute(request, Recorder(), ThreadingCancellationToken())
    assert result.data_summary["split_sizes"] == as_number
    assert result.metadata["validation_split"] == 0.3


@pytest.mark.parametrize("bad", ["abc", "", "0.9", "-0.1", "nan", True, [0.2]])
def test_a_bad_validation_split_is_a_clear_error(bad: Any, ktrdr_home: Path) -> None:
    with pytest.raises(BadInputError, match=r"validation_split must be .*between 0 and .*, got ") as caught:
        train(epochs=1, validation_split=bad)
    assert repr(bad) in str(caught.value)
    assert model_dirs(ktrdr_home) == []


def test_timings_stay_out_of_training_metrics_as_in_the_pipeline(ktrdr_home: Path) -> None:
    result = train(epochs=1)
    assert "training_seconds" not in result["training_metrics"]
    assert result["metadata"]["training_seconds"] > 0
    saved = json.loads((Path(result["model_path"]) / "metrics.json").read_text())
    assert "training_seconds" not in saved["training_metrics"]
    again = train(epochs=1, save_model=False)
    assert again["training_metrics"] == result["training_metrics"]


@pytest.mark.parametrize("name", ["../neuro_mean_reversion", "/etc/passwd", "a/b", "", "x.yaml"])
def test_strategy_config_path_must_be_a_name(name: str, ktrdr_home: Path) -> None:
    with pytest.raises(BadInputError, match="strategy"):
        StrategyTrainer().train_multi_symbol_strategy(name, None, None, None, None)
    assert model_dirs(ktrdr_home) == []


def test_mode_adapts_request_and_result(ktrdr_home: Path) -> None:
    recorder = Recorder()
    request = TrainingRequest(strategy=STRATEGY, user_id="alice", overrides={"epochs": 1, "seed": 7}, **SHORT)
    result = LegacyMode().execute(request, recorder, ThreadingCancellationToken())
    assert isinstance(result, TrainingResult)
    assert result.success and result.status == "success"
    assert result.metadata["seed"] == 7
    assert result.metadata["request_id"] == request.request_id
    assert result.metadata["implementation"] == "legacy"
    assert set(RESULT_KEYS) <= set(result.to_dict())
    assert len(recorder.of("batch")) == result.training_metrics["batches_per_epoch"]


def test_mode_refuses_overrides_that_pose_as_parameters(ktrdr_home: Path) -> None:
    request = TrainingRequest(strategy=STRATEGY, overrides={"progress_callback": "x"})
    with pytest.raises(BadInputError, match="progress_callback"):
        LegacyMode().execute(request, Recorder(), ThreadingCancellationToken())


def test_health_is_ok_and_does_not_import_torch() -> None:
    code = (
        "import sys; from ktrdr_legacy.mode import LegacyMode; h = LegacyMode().health(); "
        "assert h.healthy, h; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --------------------------------------------------------------------------- cancellation


cancel_points = st.one_of(
    st.tuples(st.just("before"), st.just(0)),
    st.tuples(st.just("check"), st.integers(1, 40)),  # the steps before training, early batches
    st.tuples(st.just("batch"), st.integers(1, 280)),  # mid-epoch, from the progress callback
    st.tuples(st.just("epoch_end"), st.integers(1, 2)),  # at an epoch boundary (2 = the last)
    st.tuples(st.just("thread"), st.integers(0, 900)),  # another thread, after N ms
)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(point=cancel_points)
def test_cancellation_at_any_point_raises_and_leaves_no_model(point: tuple[str, int]) -> None:
    kind, value = point
    token: ThreadingCancellationToken = (
        CancelAtCheck(value) if kind == "check" else ThreadingCancellationToken()
    )
    seen = [0]

    def progress(epoch: int, total: int, metrics: Any) -> None:
        seen[0] += 1
        # the k-th batch (~130 per epoch here), or the last epoch's end if the run has fewer
        if kind == "batch" and (seen[0] >= value or (epoch == total and "val_loss" in metrics)):
            token.cancel(reason="mid-epoch")
        if kind == "epoch_end" and metrics["progress_type"] == "epoch" and epoch == value:
            token.cancel(reason="epoch boundary")

    if kind == "before":
        token.cancel(reason="before start")
    timer = None
    if kind == "thread":
        timer = threading.Timer(value / 1000, token.cancel, kwargs={"reason": "from a thread"})
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        if timer is not None:
            timer.start()
        with pytest.raises(CancellationError):
            # a thread's cancel must land mid-run: give that run room (it stops at the cancel)
            train(progress, token, home=home, epochs=30 if kind == "thread" else 2)
        returned = time.monotonic()
        if timer is not None:
            timer.join()
        assert token.cancelled_at is not None
        assert returned - token.cancelled_at < 1.0, "cancellation took a second or more"
        assert model_dirs(home) == []


def test_mode_raises_cancellation_error_and_saves_nothing(ktrdr_home: Path) -> None:
    token = ThreadingCancellationToken()

    def progress(epoch: int, total: int, metrics: Any) -> None:
        if metrics.get("batch") == 50:
            token.cancel(reason="stop")

    request = TrainingRequest(strategy=STRATEGY, overrides={"epochs": 2}, **SHORT)
    with pytest.raises(CancellationError, match="stop"):
        LegacyMode().execute(request, progress, token)
    assert model_dirs(ktrdr_home) == []
