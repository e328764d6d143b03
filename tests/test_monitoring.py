"""Resource usage and progress accuracy per run: measured by the manager, kept in the ledger and metrics."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from inprocess_modes import StepMode, plugin_manager_with
from prometheus_client import CollectorRegistry

from ktrdr_core import ModeHealth, RolloutPolicy, TrainingManager, TrainingRequest, TrainingResult
from ktrdr_core.ledger import RunLedger
from ktrdr_core.ledger.plugin import LedgerPlugin
from ktrdr_core.progress_accuracy import ProgressAccuracy, count_batch, restart_count
from ktrdr_core.rollout.settings import RolloutSettings
from ktrdr_core.service.metrics import KtrdrMetrics, MetricsPlugin
from ktrdr_core.training.model import build_mlp
from ktrdr_core.training.trainer import ModelTrainer


class EngineMode:
    """Runs the real ModelTrainer on small random data; ``relay`` may distort its progress."""

    def __init__(
        self,
        name: str,
        *,
        epochs: int = 3,
        patience: int | None = None,
        relay: Callable[[Any], Any] | None = None,
        elsewhere: bool = False,
    ) -> None:
        self.name, self.epochs, self.patience = name, epochs, patience
        self.relay, self.elsewhere = relay, elsewhere

    def health(self) -> ModeHealth:
        return ModeHealth.ok()

    def _train(self, progress: Any, cancel: Any) -> dict[str, Any]:
        rng = np.random.default_rng(0)
        X = rng.normal(size=(400, 4)).astype(np.float32)
        y = np.digitize(X[:, 0], [-0.5, 0.5]).astype(np.int64)
        torch.manual_seed(0)
        # min_delta 1.0: no later epoch counts as better, so patience decides when it stops
        early = {"enabled": self.patience is not None, "patience": self.patience or 1, "min_delta": 1.0}
        config = {"epochs": self.epochs, "batch_size": 50, "device": "cpu", "early_stopping": early}
        callback = self.relay(progress) if self.relay is not None else progress
        return ModelTrainer(config, callback, cancel).train(
            build_mlp(4, [8]), X[:300], y[:300], X[300:], y[300:]
        )

    def execute(self, request: TrainingRequest, progress: Any, cancel: Any) -> TrainingResult:
        if self.elsewhere:  # the engine on another thread, as on a remote worker
            box: dict[str, Any] = {}
            worker = threading.Thread(target=lambda: box.update(self._train(progress, cancel)))
            worker.start()
            worker.join()
            metrics = box
        else:
            metrics = self._train(progress, cancel)
        return TrainingResult(
            success=True,
            training_metrics={
                "val_loss": metrics["val_loss"],
                "val_accuracy": metrics["val_accuracy"],
                "epochs_trained": metrics["epochs_trained"],
            },
        )


class Lagging:
    """Delivers each batch update ``lag`` batches late: the bar trails the work."""

    def __init__(self, lag: int) -> None:
        self.lag = lag

    def __call__(self, downstream: Any) -> Any:
        queue: list[tuple[int, int, dict[str, Any]]] = []

        def relay(epoch: int, total: int, metrics: Any) -> None:
            if metrics.get("progress_type") != "batch":
                downstream(epoch, total, metrics)
                return
            queue.append((epoch, total, dict(metrics)))
            if len(queue) > self.lag:
                downstream(*queue.pop(0))

        return relay


class Burn:
    """A mode that spends ``cpu`` seconds of CPU and holds ``megabytes`` of memory."""

    def __init__(
        self,
        name: str,
        *,
        cpu: float = 0.0,
        sleep: float = 0.0,
        megabytes: int = 0,
        started: threading.Event | None = None,
        release: threading.Event | None = None,
    ) -> None:
        self.name, self.cpu, self.sleep, self.megabytes = name, cpu, sleep, megabytes
        self.started, self.release = started, release

    def health(self) -> ModeHealth:
        return ModeHealth.ok()

    def execute(self, request: TrainingRequest, progress: Any, cancel: Any) -> TrainingResult:
        if self.started is not None:
            self.started.set()
        block = bytearray(self.megabytes * 1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])  # touch every page: resident, not just reserved
        end = time.thread_time() + self.cpu
        while time.thread_time() < end:
            sum(range(1000))
        time.sleep(self.sleep)
        if self.release is not None:
            assert self.release.wait(60)
        del block
        return TrainingResult(success=True, training_metrics={"val_loss": 0.5, "val_accuracy": 0.7})


def manager(*modes: Any, metrics: KtrdrMetrics | None = None) -> TrainingManager:
    pm = plugin_manager_with(*modes)
    pm.register(LedgerPlugin(), name="ktrdr-ledger")
    if metrics is not None:
        pm.register(MetricsPlugin(metrics), name="ktrdr-metrics")
    policy = RolloutPolicy(settings=RolloutSettings())
    return TrainingManager(pm, policy_provider=lambda: policy)


def only_run(request: TrainingRequest) -> Any:
    (record,) = RunLedger().find(request.request_id)
    return record


# -- resources ---------------------------------------------------------------------------


def test_cpu_seconds_and_peak_memory_are_the_runs_own(ktrdr_home: Any) -> None:
    mgr = manager(Burn("busy", cpu=0.4, megabytes=200), Burn("idle", sleep=0.4))
    busy, idle = TrainingRequest(strategy="s"), TrainingRequest(strategy="s")
    busy_result = mgr.train(busy, mode="busy")
    idle_result = mgr.train(idle, mode="idle")
    b, i = busy_result.metadata["resources"], idle_result.metadata["resources"]
    assert b["cpu_scope"] == i["cpu_scope"] == "process"  # each ran alone in this process
    assert b["cpu_seconds"] >= 0.35 and i["cpu_seconds"] < 0.2, (b, i)
    if b["peak_rss_bytes"] is not None:  # the kernel lets a process reset its high-water mark
        assert b["peak_rss_bytes"] - i["peak_rss_bytes"] > 150 * 2**20, (b, i)
    record = only_run(busy)
    assert record.cpu_seconds == pytest.approx(b["cpu_seconds"])
    assert record.cpu_scope == "process" and record.peak_rss_bytes == b["peak_rss_bytes"]
    assert record.cuda_peak_bytes is None  # no GPU used


def test_overlapping_runs_count_their_own_thread_only(ktrdr_home: Any) -> None:
    started, release = threading.Event(), threading.Event()
    mgr = manager(Burn("long", cpu=0.05, started=started, release=release), Burn("busy", cpu=0.4))
    long_request = TrainingRequest(strategy="s")
    results: dict[str, TrainingResult] = {}
    worker = threading.Thread(target=lambda: results.update(long=mgr.train(long_request, mode="long")))
    worker.start()
    assert started.wait(60)
    busy = mgr.train(TrainingRequest(strategy="s"), mode="busy")
    release.set()
    worker.join(60)
    b, lo = busy.metadata["resources"], results["long"].metadata["resources"]
    assert b["cpu_scope"] == lo["cpu_scope"] == "thread"
    assert b["peak_rss_bytes"] is None and lo["peak_rss_bytes"] is None  # not attributable
    assert b["cpu_seconds"] >= 0.35
    assert lo["cpu_seconds"] < 0.3, lo  # the other run's 0.4 s is not charged to this one
    assert lo["process_cpu_seconds"] >= b["cpu_seconds"] - 0.05


# -- progress accuracy --------------------------------------------------------------------


def test_faithful_progress_deviates_by_nothing(ktrdr_home: Any) -> None:
    request = TrainingRequest(strategy="s")
    result = manager(EngineMode("engine")).train(request, mode="engine")
    assert result.success, result.error
    assert result.metadata["progress_max_deviation"] == 0.0
    assert only_run(request).progress_max_deviation == 0.0


def test_lagging_progress_is_measured(ktrdr_home: Any) -> None:
    request = TrainingRequest(strategy="s")
    result = manager(EngineMode("laggy", relay=Lagging(3))).train(request, mode="laggy")
    # 3 epochs of 6 batches: each delivered batch update is 3 batches behind the work
    assert result.metadata["progress_max_deviation"] == pytest.approx(3 / 18)
    assert only_run(request).progress_max_deviation == pytest.approx(3 / 18)


def test_early_stopping_is_not_a_progress_error(ktrdr_home: Any) -> None:
    request = TrainingRequest(strategy="s")
    result = manager(EngineMode("engine", epochs=200, patience=1)).train(request, mode="engine")
    assert result.training_metrics["epochs_trained"] == 2  # stopped at 2 of 200 epochs
    assert result.metadata["progress_max_deviation"] == 0.0


def test_an_engine_on_another_thread_is_not_measured(ktrdr_home: Any) -> None:
    request = TrainingRequest(strategy="s")
    result = manager(EngineMode("remote", elsewhere=True)).train(request, mode="remote")
    assert result.success and result.metadata["progress_max_deviation"] is None
    # ... and a mode without the engine neither
    assert (
        manager(StepMode("steps"))
        .train(TrainingRequest(strategy="s"), mode="steps")
        .metadata["progress_max_deviation"]
        is None
    )


def test_the_counter_is_disarmed_between_runs() -> None:
    accuracy = ProgressAccuracy()
    restart_count()
    count_batch()
    accuracy(1, 1, {"progress_type": "batch", "batch": 1, "total_batches_per_epoch": 4})
    assert accuracy.max_deviation == 0.0
    accuracy.close()
    later = ProgressAccuracy()  # a new run on this thread, before the engine starts
    later(1, 1, {"progress_type": "batch", "batch": 1, "total_batches_per_epoch": 4})
    assert later.max_deviation is None
    later.close()


# -- metrics -------------------------------------------------------------------------------


def test_metrics_by_implementation(ktrdr_home: Any) -> None:
    registry = CollectorRegistry()
    metrics = KtrdrMetrics(registry)
    mgr = manager(EngineMode("engine"), Burn("busy", cpu=0.2), metrics=metrics)
    mgr.train(TrainingRequest(strategy="s"), mode="engine")
    mgr.train(TrainingRequest(strategy="s"), mode="busy")

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("ktrdr_training_cpu_seconds_count", implementation="busy") == 1
    assert value("ktrdr_training_cpu_seconds_sum", implementation="busy") >= 0.15
    assert value("ktrdr_training_val_accuracy_sum", implementation="busy") == pytest.approx(0.7)
    assert value("ktrdr_training_val_loss_count", implementation="engine") == 1
    assert value("ktrdr_progress_accuracy_deviation_count", implementation="engine") == 1
    assert value("ktrdr_progress_accuracy_deviation_count", implementation="busy") == 0  # not measured
    metrics.record_shadow("equivalent", val_loss_ratio=1.0, val_accuracy_ratio=1.0)
    metrics.record_shadow("different", val_loss_ratio=1.2)
    assert value("ktrdr_shadow_comparisons_total", result="equivalent") == 1
    assert value("ktrdr_shadow_comparisons_total", result="cancelled") == 0
    assert value("ktrdr_shadow_val_loss_ratio_sum") == pytest.approx(2.2)
