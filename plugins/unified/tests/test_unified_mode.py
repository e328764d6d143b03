"""The unified mode on real trainings: throttled progress, step logging, clean cancellation."""

from __future__ import annotations

import logging
import statistics
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
from unified_support import SHORT

from ktrdr_core import CancellationError, ThreadingCancellationToken, TrainingRequest, TrainingResult
from ktrdr_core.result import RESULT_KEYS
from ktrdr_core.testing import CancelAtCheck
from ktrdr_core.testing import leftover_model_dirs as model_dirs
from ktrdr_core.training.trainer import DeferredSums
from ktrdr_unified.executor import TrainingExecutor
from ktrdr_unified.mode import UnifiedMode
from ktrdr_unified.progress_bridge import MIN_INTERVAL

STRATEGY = "neuro_mean_reversion"


class TimedSink:
    """Keeps each delivered update and when (monotonic) it arrived."""

    def __init__(self) -> None:
        self.got: list[tuple[float, int, int, dict[str, Any]]] = []

    def __call__(self, epoch: int, total_epochs: int, metrics: Any) -> None:
        self.got.append((time.monotonic(), epoch, total_epochs, dict(metrics)))

    def intervals(self) -> list[float]:
        times = [t for t, *_ in self.got]
        return [b - a for a, b in zip(times, times[1:], strict=False)]

    def epochs_with_validation(self) -> dict[int, float]:
        seen: dict[int, float] = {}
        for _t, _e, _total, m in self.got:
            if m["progress_type"] == "epoch":
                seen[m["epoch"]] = m["val_loss"]
            for folded in m.get("folded_epochs", []):
                seen[folded["epoch"]] = folded["val_loss"]
        return seen


def request(**overrides: Any) -> TrainingRequest:
    return TrainingRequest(strategy=STRATEGY, overrides={"epochs": 2, **overrides}, **SHORT)


@pytest.mark.slow
def test_real_training_updates_come_about_every_300_ms(ktrdr_home: Path) -> None:
    # Small batches make long epochs (~1 s here), so the batch throttle, not the epoch
    # ends, sets the pace; the whole run lasts ~4-6 s on one CPU thread.
    sink = TimedSink()
    started = time.monotonic()
    result = TrainingExecutor().execute(
        TrainingRequest(strategy=STRATEGY, overrides={"epochs": 4, "batch_size": 8}),
        sink,
        ThreadingCancellationToken(),
    )
    elapsed = time.monotonic() - started
    intervals = sink.intervals()
    assert elapsed > 2.0, "the run is too short to say anything about intervals"
    assert len(intervals) >= 5
    assert 0.2 <= statistics.median(intervals) <= 0.45, intervals
    assert min(intervals[:-1]) >= MIN_INTERVAL, intervals  # all but the final one
    trained = result.training_metrics["epochs_trained"]
    history = result.training_metrics["history"]["val_loss"]
    assert sink.epochs_with_validation() == {e: history[e - 1] for e in range(1, trained + 1)}
    summary = result.metadata["progress"]
    assert summary["delivered"] == len(sink.got)
    assert summary["received"] > 20 * summary["delivered"]


def test_running_numbers_are_summed_only_for_delivered_updates(
    ktrdr_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unified's trainer leaves each batch's loss and hits on the device; they are summed
    (a host read) only when the bridge delivers an update, plus once per epoch end."""
    folds: list[int] = []
    real_fold = DeferredSums._fold

    def counting_fold(self: DeferredSums, count: int) -> None:
        folds.append(count)
        real_fold(self, count)

    monkeypatch.setattr(DeferredSums, "_fold", counting_fold)
    sink = TimedSink()
    result = TrainingExecutor().execute(request(), sink, ThreadingCancellationToken())
    metrics = result.training_metrics
    batches = metrics["batches_per_epoch"] * metrics["epochs_trained"]
    delivered_batches = sum(m["progress_type"] == "batch" for *_, m in sink.got)
    assert sum(folds) == batches  # every batch summed exactly once
    assert len(folds) <= delivered_batches + metrics["epochs_trained"]
    assert len(folds) < batches / 5
    epoch_updates = [m for *_, m in sink.got if m["progress_type"] == "epoch"]
    assert epoch_updates[-1]["train_loss"] == metrics["history"]["train_loss"][-1]


def test_result_has_the_design_keys_and_a_model(ktrdr_home: Path) -> None:
    result = UnifiedMode().execute(request(seed=3), TimedSink(), ThreadingCancellationToken())
    assert isinstance(result, TrainingResult) and result.success
    assert set(RESULT_KEYS) <= set(result.to_dict())
    assert Path(result.model_path).is_dir()
    assert Path(result.model_path).is_relative_to(ktrdr_home / "models")
    assert result.metadata["seed"] == 3
    assert result.metadata["implementation"] == "unified"


def test_steps_are_logged_numbered_and_batches_are_not(
    ktrdr_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    TrainingExecutor().execute(request(), TimedSink(), ThreadingCancellationToken())
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("ktrdr_unified")]
    steps = [m for m in messages if m.startswith("step ") and " done in " not in m]
    assert steps[0] == "step 1/13: load strategy"
    assert "step 3/13: indicators" in steps
    assert steps[-1] == "step 13/13: save model"
    assert len(steps) == 13
    # progress is not logging: no line per batch, a bounded number in all
    assert len(caplog.records) < 60
    assert not any("batch" in m for m in messages if m.startswith("step"))


def test_without_a_callback_nothing_is_throttled_or_sent(ktrdr_home: Path) -> None:
    executor = TrainingExecutor()
    result = executor.execute(request(epochs=1, save_model=False), None, None)
    assert result.success and result.model_path is None
    assert executor.last_bridge is None and result.metadata["progress"] == {}


def test_health_is_ok_and_does_not_import_torch() -> None:
    code = (
        "import sys; from ktrdr_unified.mode import UnifiedMode; h = UnifiedMode().health(); "
        "assert h.healthy, h; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --------------------------------------------------------------------------- cancellation


class CancelAtStep(logging.Handler):
    """Cancels the token when the executor logs ``step N/13`` — i.e. just before step N."""

    def __init__(self, token: ThreadingCancellationToken, step: int) -> None:
        super().__init__()
        self.token, self.prefix = token, f"step {step}/"

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(self.prefix):
            self.token.cancel(reason=f"at {record.getMessage()}")


cancel_points = st.one_of(
    st.tuples(st.just("before"), st.just(0)),
    st.tuples(st.just("step"), st.integers(2, 11)),  # before data ... during evaluation
    st.tuples(st.just("check"), st.integers(1, 40)),
    st.tuples(st.just("update"), st.integers(1, 4)),  # at the k-th delivered update: mid-epoch
    st.tuples(st.just("epoch_end"), st.integers(1, 2)),
    st.tuples(st.just("thread"), st.integers(0, 900)),  # e.g. during features, mid-epoch
)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(point=cancel_points)
def test_cancellation_at_any_point_raises_and_leaves_no_model(point: tuple[str, int]) -> None:
    kind, value = point
    token: ThreadingCancellationToken = (
        CancelAtCheck(value) if kind == "check" else ThreadingCancellationToken()
    )
    delivered = [0]

    def progress(epoch: int, total: int, metrics: Any) -> None:
        delivered[0] += 1
        # the k-th delivered update, or the final one if the run has fewer
        if kind == "update" and (delivered[0] >= value or epoch == total):
            token.cancel(reason="mid-epoch")
        # the first update that says epoch `value` is complete (its own, or one carrying it folded)
        if kind == "epoch_end" and metrics.get("epochs_completed", 0) >= value:
            token.cancel(reason="epoch boundary")

    if kind == "before":
        token.cancel(reason="before start")
    handler = CancelAtStep(token, value) if kind == "step" else None
    executor_logger = logging.getLogger("ktrdr_unified.executor")
    if handler is not None:
        executor_logger.addHandler(handler)
        executor_logger.setLevel(logging.INFO)
    timer = (
        threading.Timer(value / 1000, token.cancel, kwargs={"reason": "from a thread"})
        if kind == "thread"
        else None
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            if timer is not None:
                timer.start()
            with pytest.raises(CancellationError):
                # a thread's cancel must land mid-run: give that run room (it stops at the cancel)
                epochs = 30 if kind == "thread" else 2
                TrainingExecutor(home=home).execute(request(epochs=epochs), progress, token)
            returned = time.monotonic()
            if timer is not None:
                timer.join()
            assert token.cancelled_at is not None
            assert returned - token.cancelled_at < 1.0, "cancellation took a second or more"
            assert model_dirs(home) == []
    finally:
        if handler is not None:
            executor_logger.removeHandler(handler)
            executor_logger.setLevel(logging.NOTSET)


def test_mode_raises_cancellation_error_and_saves_nothing(ktrdr_home: Path) -> None:
    token = ThreadingCancellationToken()
    threading.Timer(0.5, token.cancel, kwargs={"reason": "stop"}).start()
    with pytest.raises(CancellationError, match="stop"):
        UnifiedMode().execute(request(epochs=50), TimedSink(), token)
    assert model_dirs(ktrdr_home) == []
