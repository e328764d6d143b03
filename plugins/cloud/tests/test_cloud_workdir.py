"""The worker's folder goes on every path: a normal job leaves nothing, a killed one's is swept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cloud_helpers import ProgressRecorder

from ktrdr_cloud.workdir import PREFIX, host_tag, job_folder, sweep_stale
from ktrdr_core import ThreadingCancellationToken, TrainingManager, TrainingRequest, TrainingResult

RANGE = {"start_date": "2023-01-01", "end_date": "2023-02-15"}


@pytest.fixture
def worker_folders(session_cluster: Any) -> Callable[[], set[Path]]:
    """The job folders under the session cluster's workers' temp folder (its own TMPDIR)."""
    return lambda: set(session_cluster.worker_tmp.glob(f"{PREFIX}*"))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


def test_the_sweep_removes_only_dead_workers_folders_of_this_host(tmp_path: Path) -> None:
    host = host_tag()
    dead = tmp_path / f"{PREFIX}{host}-{_dead_pid()}-abc123"
    alive = tmp_path / f"{PREFIX}{host}-{os.getpid()}-def456"
    other_host = tmp_path / f"{PREFIX}elsewhere_{host}-{_dead_pid()}-ghi789"
    not_ours = tmp_path / f"ktrdr-cloud-other-{_dead_pid()}"
    for folder in (dead, alive, other_host, not_ours):
        (folder / "data").mkdir(parents=True)
    target = tmp_path / "target"
    (target / "keep").mkdir(parents=True)
    link = tmp_path / f"{PREFIX}{host}-{_dead_pid()}-lnk000"
    link.symlink_to(target)
    assert sweep_stale(tmp_path) == [dead]
    assert not dead.exists()
    assert alive.exists() and other_host.exists() and not_ours.exists()
    assert link.is_symlink() and (target / "keep").exists()  # a link is never followed nor removed


def test_a_job_folder_is_removed_when_the_job_raises(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), job_folder(tmp_path) as folder:
        (folder / "file").write_text("x")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.usefixtures("on_cluster")
def test_a_normal_job_leaves_nothing_behind(
    ktrdr_home: Path, worker_folders: Callable[[], set[Path]]
) -> None:
    before = worker_folders()
    request = TrainingRequest(strategy="neuro_mean_reversion", overrides={"epochs": 1}, **RANGE)
    result = TrainingManager().train(request, mode="cloud")
    assert result.status == "success", result.error
    assert worker_folders() - before == set()


@pytest.mark.usefixtures("on_cluster")
def test_a_force_cancelled_jobs_folder_is_gone_after_the_next_job(
    long_strategy: str,
    ktrdr_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    recorder: ProgressRecorder,
    worker_folders: Callable[[], set[Path]],
) -> None:
    monkeypatch.setenv("KTRDR_CLOUD_GRACE_SECONDS", "1")
    before = worker_folders()
    token = ThreadingCancellationToken()
    out: dict[str, TrainingResult] = {}
    request = TrainingRequest(strategy=long_strategy, **RANGE)
    thread = threading.Thread(
        target=lambda: out.setdefault("r", TrainingManager().train(request, recorder, token, mode="cloud")),
        daemon=True,
    )
    thread.start()
    assert recorder.first.wait(90), "the long job never reported progress"
    new = worker_folders() - before
    assert len(new) == 1, new
    folder = new.pop()
    pid = int(folder.name.rsplit("-", 2)[1])
    os.kill(pid, signal.SIGSTOP)  # it can no longer hear the cooperative cancel: Ray must kill it
    token.cancel(reason="stop")
    thread.join(60)
    assert not thread.is_alive() and out["r"].status == "cancelled"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # Ray kills the stopped worker (SIGKILL): no finally ran
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
    assert folder.exists()  # left behind by the killed worker
    after = TrainingManager().train(
        TrainingRequest(strategy="neuro_mean_reversion", overrides={"epochs": 1}, **RANGE), mode="cloud"
    )
    assert after.status == "success", after.error
    assert not folder.exists()
    assert worker_folders() - before == set()
