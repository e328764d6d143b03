"""Durable runs: a ledger row from admission on, and start-up recovery after a crash.

In-process (the SIGKILL versions of these are in tests/integration/test_service_faults.py):
rows of a dead process become ``interrupted``; a row this process still owns
is left alone; a half-written model folder of a dead process is swept; the
service writes ``queued`` before it answers 202, ends never-started runs
``cancelled``, and refuses trainings with 503 while the ledger cannot be written.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cli_inprocess import run_ktrdr
from fastapi.testclient import TestClient
from inprocess_modes import plugin_manager_with

from ktrdr_core.cancellation import CancellationToken
from ktrdr_core.errors import CancellationError
from ktrdr_core.ledger.plugin import ledger_plugin
from ktrdr_core.ledger.store import RunLedger, ledger_path
from ktrdr_core.modes import ExecutionMode, ModeHealth
from ktrdr_core.plugins import KtrdrPluginManager
from ktrdr_core.progress import ProgressCallback
from ktrdr_core.recovery import orphaned_model_folders, recover, tmp_model_prefix
from ktrdr_core.request import TrainingRequest
from ktrdr_core.result import TrainingResult
from ktrdr_core.service import create_app


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def open_row(ledger: RunLedger, request_id: str, *, status: str, pid: int, host: str | None = None) -> int:
    run_id = ledger.record_run(
        request_id=request_id, user_id="u", strategy="s", mode="unified", status="running"
    )
    with sqlite3.connect(ledger.path) as raw:
        raw.execute(
            "UPDATE runs SET status = ?, pid = ?, host = ? WHERE id = ?",
            (status, pid, host or socket.gethostname(), run_id),
        )
    return run_id


def test_reconcile_ends_rows_of_dead_processes_only(ktrdr_home: Path) -> None:
    ledger = RunLedger()
    gone = dead_pid()
    running = open_row(ledger, "was-running", status="running", pid=gone)
    queued = open_row(ledger, "was-queued", status="queued", pid=gone)
    alive = open_row(ledger, "alive", status="running", pid=os.getppid())
    elsewhere = open_row(ledger, "other-host", status="running", pid=gone, host="another-host")
    mine_stale = open_row(ledger, "my-pid-not-mine", status="running", pid=os.getpid())
    mine_owned = ledger.admit_run(request_id="mine", user_id="u", strategy="s", mode="unified")

    ended = {r.request_id: r for r in recover(ktrdr_home).interrupted}

    assert set(ended) == {"was-running", "was-queued", "my-pid-not-mine"}
    assert ended["was-running"].status == "interrupted" and ended["was-running"].error_kind == "interrupted"
    assert f"pid {gone}" in (ended["was-running"].error or "") and ended["was-running"].ended_at
    assert ended["was-queued"].error_kind == "not_started"
    assert "never started" in (ended["was-queued"].error or "")
    for run_id, status in ((alive, "running"), (elsewhere, "running"), (mine_owned, "queued")):
        assert ledger.get(run_id).status == status  # type: ignore[union-attr]
    assert ledger.get(running).status == ledger.get(queued).status == "interrupted"  # type: ignore[union-attr]
    assert ledger.get(mine_stale).status == "interrupted"  # type: ignore[union-attr]
    assert recover(ktrdr_home).interrupted == ()  # idempotent


def test_a_queued_row_is_claimed_when_its_training_starts(ktrdr_home: Path) -> None:
    ledger = RunLedger()
    admitted = ledger.admit_run(request_id="r1", user_id="u", strategy="s", mode="legacy")
    assert ledger.get(admitted).status == "queued"  # type: ignore[union-attr]
    started = ledger.start_run(request_id="r1", user_id="u", strategy="s", mode="legacy")
    assert started == admitted and ledger.get(admitted).status == "running"  # type: ignore[union-attr]
    ledger.finish_run(started, status="success")
    assert [r.status for r in ledger.find("r1")] == ["success"]


def test_recovery_sweeps_half_written_models_of_dead_processes(ktrdr_home: Path) -> None:
    strategy_dir = ktrdr_home / "models" / "neuro"
    strategy_dir.mkdir(parents=True)
    dead = strategy_dir / f".tmp-A_1h-p{dead_pid()}-abc123"
    live = strategy_dir / f"{tmp_model_prefix('A_1h')}xyz789"  # this process: a save in progress
    old_unmarked = strategy_dir / ".tmp-A_1h-oldstyle"
    new_unmarked = strategy_dir / ".tmp-A_1h-recent"
    finished = strategy_dir / "A_1h_v1"
    for folder in (dead, live, old_unmarked, new_unmarked, finished):
        folder.mkdir()
        (folder / "model.pt").write_bytes(b"half")
    two_hours_ago = time.time() - 7200
    os.utime(old_unmarked, (two_hours_ago, two_hours_ago))

    assert orphaned_model_folders(ktrdr_home / "models") == sorted([dead, old_unmarked])
    found = recover(ktrdr_home)
    assert set(found.removed_folders) == {dead, old_unmarked}
    assert not dead.exists() and not old_unmarked.exists()
    assert live.exists() and new_unmarked.exists() and finished.exists()


def test_recovery_creates_nothing_in_an_empty_home(ktrdr_home: Path) -> None:
    assert recover(ktrdr_home).interrupted == ()
    assert not ledger_path(ktrdr_home).exists()


# -- the service ----------------------------------------------------------------------------


class GatedMode:
    """Runs until ``release`` is set (or it is cancelled)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.release = threading.Event()

    def health(self) -> ModeHealth:
        return ModeHealth.ok()

    def execute(
        self, request: TrainingRequest, progress: ProgressCallback, cancel: CancellationToken
    ) -> TrainingResult:
        while not self.release.wait(0.01):
            if cancel.is_cancelled():
                raise CancellationError(cancel.reason or "cancelled")
        return TrainingResult(success=True)


def pm_with(*modes: ExecutionMode) -> KtrdrPluginManager:
    pm = plugin_manager_with(*modes)
    pm.register(ledger_plugin, name="ktrdr-ledger")
    return pm


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch) -> GatedMode:
    monkeypatch.setenv("KTRDR_ROLLOUT_CONTROL", "gated")
    monkeypatch.setenv("KTRDR_ROLLOUT_CANDIDATE", "other")
    return GatedMode("gated")


def wait_status(ledger: RunLedger, request_id: str, wanted: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while [r.status for r in ledger.find(request_id)] != [wanted]:
        assert time.monotonic() < deadline, (request_id, [r.status for r in ledger.find(request_id)])
        time.sleep(0.02)


def test_every_accepted_training_has_one_row_from_the_202_on(gated: GatedMode, ktrdr_home: Path) -> None:
    ledger = RunLedger()
    gone = dead_pid()
    stale = open_row(ledger, "from-before-the-crash", status="running", pid=gone)
    app = create_app(
        plugin_manager=pm_with(gated), max_concurrent=1, queue_size=2, metrics=False, preload=False
    )
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert ledger.get(stale).status == "interrupted"  # type: ignore[union-attr]  # start-up recovery
        ids = []
        for _ in range(3):
            answer = client.post("/api/v1/trainings", json={"strategy": "s", "user_id": "alice"})
            assert answer.status_code == 202
            ids.append(answer.json()["id"])
            assert len(ledger.find(ids[-1])) == 1  # written before the answer
        wait_status(ledger, ids[0], "running")
        assert [ledger.find(i)[0].status for i in ids[1:]] == ["queued", "queued"]
        assert client.post(f"/api/v1/trainings/{ids[2]}/cancel").status_code == 202
        wait_status(ledger, ids[2], "cancelled")
        assert ledger.find(ids[2])[0].error_kind == "not_started"
        gated.release.set()
        wait_status(ledger, ids[0], "success")
        wait_status(ledger, ids[1], "success")
        gated.release.clear()
        running = client.post("/api/v1/trainings", json={"strategy": "s"}).json()["id"]
        waiting = client.post("/api/v1/trainings", json={"strategy": "s"}).json()["id"]
        wait_status(ledger, running, "running")
    # leaving the client stops the service: the running one is cancelled, the queued one never starts
    assert [r.status for r in ledger.find(running)] == ["cancelled"]
    assert [(r.status, r.error_kind) for r in ledger.find(waiting)] == [("cancelled", "not_started")]
    assert not ledger.runs(status=["queued", "running"])


def test_an_unwritable_ledger_refuses_trainings_and_degrades_health(
    gated: GatedMode, ktrdr_home: Path
) -> None:
    app = create_app(plugin_manager=pm_with(gated), metrics=False, preload=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get("/api/v1/health").json()["status"] == "ok"
        ktrdr_home.mkdir(parents=True, exist_ok=True)
        ledger_path(ktrdr_home).write_bytes(b"this is not a database" * 100)
        refused = client.post("/api/v1/trainings", json={"strategy": "s"})
        assert refused.status_code == 503
        assert refused.json()["message"].startswith("not accepted: ")
        assert client.get("/api/v1/trainings").json()["trainings"] == []
        health = client.get("/api/v1/health").json()
        assert health["status"] == "degraded"
        assert any("run ledger cannot be written" in p for p in health["problems"])
        ledger_path(ktrdr_home).unlink()
        gated.release.set()
        accepted = client.post("/api/v1/trainings", json={"strategy": "s"})
        assert accepted.status_code == 202
        assert client.get("/api/v1/health").json()["status"] == "ok"


def test_ktrdr_runs_shows_a_crashed_run_as_interrupted(ktrdr_home: Path) -> None:
    import json

    ledger = RunLedger()
    open_row(ledger, "crashed", status="running", pid=dead_pid())
    proc = run_ktrdr("runs", "--status", "interrupted", "--json")
    assert proc.returncode == 0, proc.stderr
    assert [(r["request_id"], r["status"]) for r in json.loads(proc.stdout)] == [("crashed", "interrupted")]
