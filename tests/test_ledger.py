"""The run ledger: API round trip, concurrent writers, killed processes, migrations, the default plugin."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from inprocess_modes import ModeProvider, StepMode

from ktrdr_core import (
    ThreadingCancellationToken,
    TrainingManager,
    TrainingRequest,
    TrainingResult,
)
from ktrdr_core.errors import BadInputError, ConfigurationError
from ktrdr_core.ledger import SCHEMA_VERSION, RunLedger, ledger_path
from ktrdr_core.ledger.schema import connect, migrate, user_version
from ktrdr_core.ledger.times import parse_duration, parse_since
from ktrdr_core.plugins import get_plugin_manager, reset_plugin_manager


@pytest.fixture(autouse=True)
def only_in_test_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Load no installed mode plugin: these tests register their own 'legacy'/'unified'."""
    monkeypatch.setenv("KTRDR_PLUGINS", "no-installed-plugins")
    reset_plugin_manager()


LEDGER_RESULT = TrainingResult(
    success=True,
    training_metrics={"val_loss": 0.42, "val_accuracy": 0.61},
    test_metrics={"test_accuracy": 0.58, "test_loss": 0.9},
)


def tiny(name: str, steps: int = 4, delay: float = 0.0, *, fail: bool = False) -> StepMode:
    """A mode with metrics in its result; ``fail`` raises after its last update."""
    return StepMode(
        name, steps, delay, fail_at=steps if fail else None, error="out of memory", result=LEDGER_RESULT
    )


def default_manager(*modes: Any) -> TrainingManager:
    """The process-wide plugin manager (ledger registered by default) plus in-test modes."""
    pm = get_plugin_manager()
    pm.register_checked(ModeProvider(*modes), name="test-provider", distribution="test-modes", version="1")
    return TrainingManager(pm)


# -- API ------------------------------------------------------------------------------


def test_start_then_finish_fills_every_field(ktrdr_home: Path) -> None:
    ledger = RunLedger()
    assert ledger.path == ktrdr_home / "ledger.sqlite3"
    run_id = ledger.start_run(
        request_id="r1",
        user_id="alice",
        strategy="s",
        mode="unified",
        reason="bucket 0 < 10",
        bucket=0,
        candidate=True,
        started_at=1_700_000_000.0,
    )
    running = ledger.get(run_id)
    assert running is not None and running.status == "running" and running.ended_at is None
    assert running.started_at == "2023-11-14T22:13:20.000000+00:00"
    ledger.finish_run(
        run_id,
        status="success",
        ended_at=1_700_000_012.5,
        metrics={"val_loss": 0.4, "val_accuracy": 0.6, "test_accuracy": float("nan")},
        progress_updates=7,
        interval_summary={"p50": 0.3, "p95": 0.45, "min": 0.1, "max": 0.5},
    )
    done = ledger.get(run_id)
    assert done is not None
    assert (done.status, done.duration_seconds) == ("success", 12.5)
    assert (done.val_loss, done.test_accuracy) == (0.4, None)
    intervals = (done.interval_p50, done.interval_p95, done.interval_min, done.interval_max)
    assert intervals == (0.3, 0.45, 0.1, 0.5)
    assert done.candidate and not done.forced and done.pid == os.getpid()


def test_finish_refuses_running_status_and_unknown_ids() -> None:
    ledger = RunLedger()
    run_id = ledger.start_run(request_id="r", user_id="u", strategy="s", mode="legacy")
    with pytest.raises(BadInputError, match="status"):
        ledger.finish_run(run_id, status="running")
    with pytest.raises(BadInputError, match="no run with id 999"):
        ledger.finish_run(999, status="success")


def test_filters_and_order() -> None:
    ledger = RunLedger()
    now = time.time()
    ledger.record_run(
        request_id="old",
        user_id="bob",
        strategy="s",
        mode="legacy",
        status="success",
        started_at=now - 10 * 86400,
        duration_seconds=3,
    )
    ledger.record_run(
        request_id="new",
        user_id="alice",
        strategy="s",
        mode="unified",
        status="error",
        started_at=now - 60,
        duration_seconds=1,
        error="boom",
    )
    assert [r.request_id for r in ledger.runs()] == ["new", "old"]
    assert [r.request_id for r in ledger.runs(since=now - 7 * 86400)] == ["new"]
    assert [r.request_id for r in ledger.runs(mode="legacy")] == ["old"]
    assert [r.request_id for r in ledger.runs(status="error", user="alice")] == ["new"]
    assert ledger.runs(user="carol") == []
    assert [r.request_id for r in ledger.runs(limit=1, newest_first=False)] == ["old"]


def test_comparisons_latest_per_pair() -> None:
    ledger = RunLedger()
    assert ledger.latest_comparison() is None
    ledger.record_comparison(
        strategy="a", control="legacy", candidate="unified", equivalent=True, created_at=100.0
    )
    ledger.record_comparison(
        strategy="b",
        control="legacy",
        candidate="unified",
        equivalent=False,
        differences=[{"field": "val_loss", "control": 0.5, "candidate": 0.7}],
        report_path="/tmp/report.json",
        created_at=200.0,
    )
    ledger.record_comparison(
        strategy="c", control="legacy", candidate="cloud", equivalent=True, created_at=300.0
    )
    latest = ledger.latest_comparison(control="legacy", candidate="unified")
    assert latest is not None and latest.strategy == "b" and latest.equivalent is False
    assert latest.differences[0]["field"] == "val_loss" and latest.report_path == "/tmp/report.json"
    assert ledger.latest_comparison().strategy == "c"  # type: ignore[union-attr]


def test_reading_without_a_ledger_creates_nothing(ktrdr_home: Path) -> None:
    ledger = RunLedger()
    assert ledger.runs() == [] and ledger.comparisons() == [] and ledger.get(1) is None
    assert not ledger_path().exists()


# -- concurrency and crashes ------------------------------------------------------------


def _writer(path: str, worker: int, count: int) -> None:
    ledger = RunLedger(Path(path))
    for i in range(count):
        run_id = ledger.start_run(
            request_id=f"w{worker}-{i}",
            user_id=f"user{worker}",
            strategy="s",
            mode="unified" if i % 2 else "legacy",
        )
        ledger.finish_run(
            run_id, status="success", duration_seconds=0.01 * i, metrics={"val_loss": 0.5}, progress_updates=i
        )


def test_concurrent_writers_from_several_processes(tmp_path: Path) -> None:
    path = tmp_path / "shared" / "ledger.sqlite3"
    workers, per_worker = 4, 30
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), w, per_worker)) for w in range(workers)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert [proc.exitcode for proc in procs] == [0] * workers
    runs = RunLedger(path).runs()
    assert len(runs) == workers * per_worker
    assert {r.request_id for r in runs} == {f"w{w}-{i}" for w in range(workers) for i in range(per_worker)}
    assert all(r.status == "success" and r.ended_at and r.val_loss == 0.5 for r in runs)
    assert len({r.pid for r in runs}) == workers
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_concurrent_writer_threads(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "ledger.sqlite3"
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            _writer(str(path), worker, 20)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    runs = RunLedger(path).runs(status="success")
    assert len(runs) == 120 and len({r.request_id for r in runs}) == 120


def test_a_killed_process_leaves_a_readable_running_row(ktrdr_home: Path, tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import time
        from ktrdr_core import ModeHealth, TrainingManager, TrainingRequest, hookimpl
        from ktrdr_core.plugins import get_plugin_manager

        class Hang:
            name = "legacy"
            def health(self):
                return ModeHealth.ok()
            def execute(self, request, progress, cancel):
                progress(1, 1, {"progress_type": "batch", "batch": 1})
                time.sleep(600)

        class Provider:
            @hookimpl
            def register_execution_modes(self, register):
                register(Hang())

        pm = get_plugin_manager()
        pm.register_checked(Provider(), name="p", distribution="t", version="1")
        TrainingManager(pm).train(TrainingRequest(strategy="s", user_id="victim", request_id="doomed"))
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ})
    ledger = RunLedger()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not ledger.find("doomed"):
            assert proc.poll() is None, "the training process died on its own"
            time.sleep(0.05)
        assert ledger.find("doomed"), "the running row never appeared"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    [row] = ledger.find("doomed")
    assert (row.status, row.user_id, row.mode, row.ended_at, row.duration_seconds) == (
        "running",
        "victim",
        "legacy",
        None,
        None,
    )
    with sqlite3.connect(ledger.path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # and the ledger keeps working for the next run
    ledger.record_run(request_id="after", user_id="u", strategy="s", mode="legacy", status="success")
    assert {r.request_id for r in ledger.runs()} == {"doomed", "after"}


# -- schema migrations ----------------------------------------------------------------


def test_migrates_a_v1_ledger_to_the_current_schema(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    conn = connect(path)
    migrate(conn, path, target=1)
    assert user_version(conn) == 1
    # a row as ktrdr with schema v1 wrote it (raw SQL: that code no longer exists)
    conn.execute(
        "INSERT INTO runs (request_id, user_id, strategy, mode, status, started_at, started_epoch, "
        "ended_at, ended_epoch, duration_seconds, val_loss) VALUES "
        "('v1run', 'alice', 's', 'legacy', 'success', '2024-01-01T00:00:00+00:00', 1704067200, "
        "'2024-01-01T00:00:05+00:00', 1704067205, 5.0, 0.3)"
    )
    conn.execute(
        "INSERT INTO runs (request_id, user_id, strategy, mode, status, started_at, started_epoch) "
        "VALUES ('v1open', 'bob', 's', 'legacy', 'running', '2024-01-01T00:00:00+00:00', 1704067200)"
    )
    conn.close()

    ledger = RunLedger(path)
    old = {r.request_id: r for r in ledger.runs()}
    assert old["v1run"].duration_seconds == 5.0 and old["v1run"].val_loss == 0.3
    assert old["v1run"].interval_p50 is None and old["v1run"].error_kind is None
    assert old["v1run"].warnings == ()
    ledger.finish_run(old["v1open"].id, status="cancelled", cancellation_latency_seconds=0.02)
    assert ledger.get(old["v1open"].id).cancellation_latency_seconds == 0.02  # type: ignore[union-attr]
    ledger.record_comparison(strategy="s", control="legacy", candidate="unified", equivalent=True)
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6


def test_a_ledger_from_a_newer_ktrdr_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    with sqlite3.connect(path) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(ConfigurationError, match="newer than this ktrdr"):
        RunLedger(path).runs()


def test_a_file_that_is_not_sqlite_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    path.write_text("this is not a database, " * 100)
    with pytest.raises(ConfigurationError, match="not a usable ledger"):
        RunLedger(path).runs()


# -- time parsing ---------------------------------------------------------------------


@given(st.integers(min_value=1, max_value=5_000), st.sampled_from("smhdw"))
def test_relative_durations(amount: int, unit: str) -> None:
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    assert parse_duration(f"{amount}{unit}") == amount * seconds
    assert parse_since(f"{amount}{unit.upper()}", now=1e10) == 1e10 - amount * seconds


@pytest.mark.parametrize("text", ["99999999d", "5300w", "1000000h"])
def test_durations_over_a_century_are_refused_not_crashed(text: str) -> None:
    with pytest.raises(BadInputError, match="at most 100 years"):
        parse_duration(text)
    with pytest.raises(BadInputError, match="at most 100 years"):
        parse_since(text)


@given(st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2200, 1, 1)))
def test_iso_since_round_trips(moment: dt.datetime) -> None:
    expected = moment.replace(tzinfo=dt.timezone.utc).timestamp()
    assert parse_since(moment.isoformat()) == pytest.approx(expected, abs=1e-6)
    with_offset = moment.replace(tzinfo=dt.timezone.utc).isoformat()
    assert parse_since(with_offset) == pytest.approx(expected, abs=1e-6)


@settings(max_examples=200)
@given(st.text(max_size=20))
def test_since_either_parses_or_says_bad_input(text: str) -> None:
    try:
        value = parse_since(text, now=1e9)
    except BadInputError as exc:
        assert "--since" in str(exc)
    else:
        assert isinstance(value, float)


@pytest.mark.parametrize("text", ["0d", "7", "d", "-3h", "7 days", "1y"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(BadInputError):
        parse_duration(text)


# -- the default-registered plugin, end to end ----------------------------------------------


def test_manager_runs_are_recorded_by_the_default_ledger() -> None:
    manager = default_manager(tiny("legacy", delay=0.01), tiny("unified", fail=True))
    assert "ktrdr-ledger" in {info.name for info in manager.plugin_manager.plugin_infos()}
    ok = manager.train(TrainingRequest(strategy="demo", user_id="alice", request_id="ok1"))
    failed = manager.train(TrainingRequest(strategy="demo", user_id="bob", request_id="bad1"), mode="unified")
    assert ok.success and not failed.success
    runs = {r.request_id: r for r in RunLedger().runs()}
    good, bad = runs["ok1"], runs["bad1"]
    assert (good.status, good.mode, good.user_id, good.strategy) == ("success", "legacy", "alice", "demo")
    assert "control mode" in (good.reason or "") and good.bucket == 0
    assert (good.val_loss, good.val_accuracy, good.test_accuracy, good.test_loss) == (0.42, 0.61, 0.58, 0.9)
    assert good.progress_updates == 4 and good.interval_p50 is not None and good.interval_p50 >= 0.005
    assert good.duration_seconds is not None and good.duration_seconds >= 0.03
    assert (bad.status, bad.forced, bad.error, bad.error_kind) == (
        "error",
        True,
        "RuntimeError: out of memory",
        "exception",
    )


def test_cancelled_run_records_its_latency() -> None:
    manager = default_manager(tiny("legacy", steps=2000, delay=0.002))
    token = ThreadingCancellationToken()
    import threading

    threading.Timer(0.1, token.cancel, kwargs={"reason": "stop"}).start()
    result = manager.train(TrainingRequest(strategy="s", request_id="c1"), cancel=token)
    assert result.status == "cancelled"
    [row] = RunLedger().find("c1")
    assert row.status == "cancelled" and row.error == "stop"
    assert row.cancellation_latency_seconds is not None and 0 <= row.cancellation_latency_seconds < 1


def test_ktrdr_ledger_off_skips_the_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KTRDR_LEDGER", "off")
    reset_plugin_manager()
    manager = default_manager(tiny("legacy"))
    assert "ktrdr-ledger" not in {info.name for info in manager.plugin_manager.plugin_infos()}
    assert manager.train(TrainingRequest(strategy="s")).success
    assert not ledger_path().exists()
