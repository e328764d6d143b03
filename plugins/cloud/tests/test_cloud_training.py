"""The cloud mode end to end, on the session's local Ray cluster.

Trainings are small (a few epochs on two months of the sample data); the
"long" strategy never stops by itself and is used where a test stops it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from cloud_helpers import Background, ProgressRecorder, wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ktrdr_core import (
    TrainingManager,
    TrainingRequest,
)
from ktrdr_core.testing import leftover_model_dirs as model_dirs

pytestmark = pytest.mark.usefixtures("on_cluster")

KTRDR = str(Path(sys.executable).with_name("ktrdr"))
SMALL = {"start_date": "2023-01-01", "end_date": "2023-03-15"}


def _request(strategy: str = "neuro_mean_reversion", **overrides: Any) -> TrainingRequest:
    return TrainingRequest(strategy=strategy, overrides={"seed": 7, **overrides}, **SMALL)


def _driver() -> Any:
    from ktrdr_cloud.driver_client import current
    from ktrdr_cloud.settings import CloudSettings

    driver = current(CloudSettings.from_env())
    assert driver is not None, "no Ray driver process is running"
    return driver


def _driver_log(driver: Any) -> str:
    """The driver process's log (through its stdout: the KTRDR_HOME that held the file may be gone)."""
    return Path(f"/proc/{driver.process.pid}/fd/1").read_text(errors="replace")


def _jobs() -> dict[str, dict[str, Any]]:
    """The open jobs, as the control actor in the driver process sees them."""
    from ktrdr_cloud.driver_client import current
    from ktrdr_cloud.settings import CloudSettings

    driver = current(CloudSettings.from_env())
    return {} if driver is None or not driver.connected.is_set() else driver.jobs()["jobs"]


# --------------------------------------------------------------------------- training


def test_cloud_matches_unified_and_saves_the_model_on_the_driver(
    ktrdr_home: Path, recorder: ProgressRecorder
) -> None:
    import torch

    from ktrdr_core.training.storage import load_model

    request = _request(epochs=4)
    manager = TrainingManager()
    before = manager.train(request, mode="cloud")
    first = _driver().jobs()
    cloud = manager.train(request, recorder, mode="cloud")
    assert _driver().jobs()["control"] == first["control"]  # one driver, one actor, reused
    assert before.training_metrics["val_loss"] == cloud.training_metrics["val_loss"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the Ray task; on a busy 2-core box this is 10x faster
    try:
        unified = manager.train(request, mode="unified")
    finally:
        torch.set_num_threads(threads)
    assert cloud.status == "success", cloud.error
    assert unified.status == "success", unified.error
    for key in ("val_loss", "val_accuracy"):
        assert abs(cloud.training_metrics[key] - unified.training_metrics[key]) <= 0.01, key
    assert cloud.training_metrics["epochs_trained"] == unified.training_metrics["epochs_trained"]
    assert cloud.test_metrics["test_accuracy"] == pytest.approx(
        unified.test_metrics["test_accuracy"], abs=0.01
    )
    assert cloud.metadata["mode"] == "cloud"
    assert cloud.metadata["cloud"]["worker_pid"] not in (os.getpid(), first["pid"])  # it ran elsewhere
    # the driver saved it, with the core's storage, under the driver's KTRDR_HOME
    assert cloud.model_path is not None
    assert Path(cloud.model_path).parent.parent == ktrdr_home / "models"
    assert before.model_id is not None and before.model_id.endswith("_v1")
    assert cloud.model_id is not None and cloud.model_id.endswith("_v2")
    assert unified.model_id is not None and unified.model_id.endswith("_v3")
    loaded = load_model(cloud.model_path)
    assert loaded.feature_names == list(cloud.feature_names)
    assert loaded.metadata["model_id"] == cloud.model_id
    assert "ktrdr-cloud-" not in json.dumps(loaded.metadata)  # no worker temp path leaked
    # the result reads like unified's: driver-side paths, same keys
    assert set(cloud.to_dict()) == set(unified.to_dict())
    assert cloud.data_summary["data_dir"] == unified.data_summary["data_dir"]
    assert [s["file"] for s in cloud.data_summary["series"]] == [
        s["file"] for s in unified.data_summary["series"]
    ]
    assert cloud.metadata["strategy_source"] == unified.metadata["strategy_source"]
    # progress reached the driver's callback, on the thread that ran execute()
    assert recorder.calls
    assert {thread for _, thread, _ in recorder.calls} == {threading.get_ident()}
    last = recorder.calls[-1][2]
    assert last[0] == last[1] == 4 and last[2]["progress_type"] == "epoch"


def test_progress_has_the_exact_signature_and_is_throttled(
    long_strategy: str, recorder: ProgressRecorder, ktrdr_home: Path
) -> None:
    run = Background(_request(long_strategy), recorder)
    wait_for(lambda: len(recorder.calls) >= 6, 60, "six progress updates")
    run.token.cancel(reason="enough updates")
    result = run.join(30)
    assert result.status == "cancelled"
    for _, _, (epoch, total, metrics) in recorder.calls:
        assert type(epoch) is int and type(total) is int
        assert isinstance(metrics, Mapping)
        assert metrics["progress_type"] in ("batch", "epoch")
        assert total == 100000
    intervals = recorder.intervals
    # ~300 ms apart (the worker's bridge), never under 100 ms except the final update
    assert all(gap >= 0.1 for gap in intervals[:-1]), intervals
    assert len(recorder.calls) < 40  # not one per batch: the sample strategy has ~30 per epoch
    assert model_dirs(ktrdr_home) == []


def test_bad_input_is_reported_before_anything_runs_on_the_cluster() -> None:
    result = TrainingManager().train(
        TrainingRequest(strategy="neuro_mean_reversion", symbols=["NOPE"]), mode="cloud"
    )
    assert result.status == "error"
    assert result.metadata["error_kind"] == "bad_input"
    assert "NOPE" in (result.error or "")


# --------------------------------------------------------------------------- cancellation


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(delay=st.floats(min_value=0.0, max_value=1.5))
def test_cancel_at_any_point_ends_cancelled_with_no_model(
    delay: float, long_strategy: str, ktrdr_home: Path
) -> None:
    run = Background(_request(long_strategy))
    time.sleep(delay)
    cancelled_at = time.monotonic()
    run.token.cancel(reason=f"test cancel after {delay:.2f} s")
    result = run.join(30)
    assert result.status == "cancelled", result.error
    assert result.error == f"test cancel after {delay:.2f} s"
    assert result.model_path is None
    assert model_dirs(ktrdr_home) == []
    assert not (ktrdr_home / "models").exists()
    assert run.ended_at is not None
    # cooperative stop (no force: the grace period is 5 s)
    assert run.ended_at - cancelled_at < 2.0


def test_cancel_before_the_task_starts_is_honoured(
    long_strategy: str,
    ktrdr_home: Path,
    session_cluster: Any,
    ray_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ray = ray_client
    # no force-cancel can end it: only the task seeing the flag when it starts can
    monkeypatch.setenv("KTRDR_CLOUD_GRACE_SECONDS", "60")

    @ray.remote(num_cpus=1)
    def occupy(seconds: float) -> None:
        time.sleep(seconds)

    # every CPU of the cluster is busy
    blockers = [occupy.remote(1.5) for _ in range(session_cluster.slots())]
    wait_for(
        lambda: len(ray.wait(blockers, timeout=0)[0]) == 0 and ray.available_resources().get("CPU", 0) == 0,
        10,
        "the blockers to start",
    )
    run = Background(_request(long_strategy))
    job = wait_for(lambda: next(iter(_jobs().values()), None), 30, "the job to open")
    log_offset = len(_driver_log(_driver()))
    assert "pid" not in job  # queued, not started
    cancelled_at = time.monotonic()
    run.token.cancel(reason="cancelled while queued")
    result = run.join(30)
    ray.get(blockers)
    assert result.status == "cancelled" and result.error == "cancelled while queued"
    # the task saw the flag when it started (a cold worker may take seconds on a loaded machine)
    assert run.ended_at is not None and run.ended_at - cancelled_at < 60
    log = _driver_log(_driver())[log_offset:]
    assert "force-cancelling" not in log, log[-2000:]
    assert model_dirs(ktrdr_home) == []


def test_a_worker_that_cannot_be_told_is_force_cancelled_after_the_grace_period(
    long_strategy: str,
    ktrdr_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    recorder: ProgressRecorder,
    ray_client: Any,
) -> None:
    monkeypatch.setenv("KTRDR_CLOUD_GRACE_SECONDS", "1")
    run = Background(_request(long_strategy), recorder)
    assert recorder.first.wait(60)
    # the worker can no longer hear the cooperative cancel: its control actor is gone
    driver = _driver()
    ray_client.kill(ray_client.get_actor(driver.jobs()["control"], namespace="ktrdr"))
    time.sleep(0.3)
    cancelled_at = time.monotonic()
    run.token.cancel(reason="stop it anyway")
    result = run.join(30)
    assert result.status == "cancelled" and result.error == "stop it anyway"
    assert run.ended_at is not None and run.ended_at - cancelled_at < 15
    # the driver process logged the force (its log file, not this process's output)
    assert "force-cancelling" in _driver_log(driver)
    assert model_dirs(ktrdr_home) == []
    # the next job gets a new control actor and works
    again = TrainingManager().train(_request(epochs=1), mode="cloud")
    assert again.status == "success", again.error


# --------------------------------------------------------------------------- faults


def test_a_killed_worker_gives_a_failed_result_not_a_hang(
    long_strategy: str, ktrdr_home: Path, recorder: ProgressRecorder
) -> None:
    run = Background(_request(long_strategy), recorder)
    assert recorder.first.wait(60)
    job = wait_for(lambda: next((j for j in _jobs().values() if "pid" in j), None), 10, "the worker pid")
    killed_at = time.monotonic()
    os.kill(job["pid"], signal.SIGKILL)
    result = run.join(60)
    assert result.status == "error"
    assert (result.error or "").startswith("the Ray worker died: "), result.error
    assert run.ended_at is not None and run.ended_at - killed_at < 30
    assert model_dirs(ktrdr_home) == []


def test_a_task_the_cluster_cannot_place_fails_after_the_start_timeout(
    monkeypatch: pytest.MonkeyPatch, ktrdr_home: Path, session_cluster: Any
) -> None:
    # more than any node has
    monkeypatch.setenv("KTRDR_CLOUD_TASK_CPUS", f"{max(session_cluster.cpus) + 1:g}")
    monkeypatch.setenv("KTRDR_CLOUD_START_TIMEOUT", "1.5")
    started = time.monotonic()
    result = TrainingManager().train(_request(epochs=1), mode="cloud")
    assert result.status == "error"
    assert "did not start the training within 1.5 s" in (result.error or "")
    assert time.monotonic() - started < 10
    assert model_dirs(ktrdr_home) == []


def _cli_env(ktrdr_home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KTRDR_", "USE_UNIFIED", "UNIFIED_", "ROLLBACK_"))
    }
    env.update({"KTRDR_HOME": str(ktrdr_home), "RAY_AUTH_MODE": "disabled", **extra})
    return env


def test_cli_rollout_candidate_cloud_on_a_cluster_given_by_address(
    ray_cluster: str, ktrdr_home: Path
) -> None:
    env = _cli_env(
        ktrdr_home,
        KTRDR_RAY_ADDRESS=ray_cluster,
        USE_UNIFIED_TRAINING="true",
        UNIFIED_TRAINING_ROLLOUT_PERCENTAGE="100",
        KTRDR_ROLLOUT_CONTROL="unified",
        KTRDR_ROLLOUT_CANDIDATE="cloud",
    )
    proc = subprocess.run(
        [
            KTRDR,
            "train",
            "neuro_mean_reversion",
            "--epochs",
            "2",
            "--start",
            SMALL["start_date"],
            "--end",
            SMALL["end_date"],
            "--no-progress",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert "mode: cloud" in proc.stderr
    result = json.loads(proc.stdout)
    assert result["metadata"]["mode"] == "cloud"
    assert result["metadata"]["cloud"]["ray_address"] == ray_cluster
    assert Path(result["model_path"]).is_dir()


def test_cli_with_an_unreachable_cluster_fails_fast_with_a_clear_error(ktrdr_home: Path) -> None:
    env = _cli_env(ktrdr_home, KTRDR_RAY_ADDRESS="127.0.0.1:1", KTRDR_CLOUD_CONNECT_TIMEOUT="2")
    started = time.monotonic()
    proc = subprocess.run(
        [KTRDR, "train", "neuro_mean_reversion", "--mode", "cloud", "--epochs", "1", "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "unreachable" in proc.stderr and "127.0.0.1:1" in proc.stderr
    assert time.monotonic() - started < 60
    assert model_dirs(ktrdr_home) == []


def test_never_more_trainings_at_once_than_the_cluster_has_cpus(
    long_strategy: str, session_cluster: Any
) -> None:
    """1 CPU per task: one training more than the cluster's CPUs waits; capacity() says how many fit."""
    from ktrdr_core.plugins import get_plugin_manager, mode_capacity

    slots = session_cluster.slots()
    runs = [Background(_request(long_strategy)) for _ in range(slots + 1)]
    wait_for(
        lambda: sum("pid" in job for job in _jobs().values()) >= slots, 60, f"{slots} trainings to start"
    )
    peak = 0
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # the running ones never lend their CPUs to the last
        peak = max(peak, sum("pid" in job for job in _jobs().values()))
        time.sleep(0.05)
    assert peak == slots
    assert mode_capacity(get_plugin_manager(), "cloud") == slots
    for run in runs:
        run.token.cancel(reason="enough")
    assert [run.join(60).status for run in runs] == ["cancelled"] * (slots + 1)
