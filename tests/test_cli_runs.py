"""``ktrdr runs``: filters, JSON, bad input, and no torch."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_inprocess import CliRun, run_ktrdr

from ktrdr_core.ledger import RunLedger


def ktrdr(*args: str) -> CliRun:
    return run_ktrdr(*args)


@pytest.fixture
def ledger() -> RunLedger:
    now = time.time()
    ledger = RunLedger()
    ledger.record_run(
        request_id="old-legacy",
        user_id="bob",
        strategy="mean_rev",
        mode="legacy",
        status="success",
        started_at=now - 10 * 86400,
        duration_seconds=30,
        metrics={"val_loss": 0.51},
    )
    ledger.record_run(
        request_id="new-unified",
        user_id="alice",
        strategy="mean_rev",
        mode="unified",
        status="error",
        started_at=now - 3600,
        duration_seconds=2,
        error="RuntimeError: boom",
        candidate=True,
    )
    ledger.start_run(
        request_id="live-unified",
        user_id="alice",
        strategy="trend",
        mode="unified",
        candidate=True,
        started_at=now - 60,
    )
    return ledger


def ids(proc: CliRun) -> list[str]:
    assert proc.returncode == 0, proc.stderr
    return [run["request_id"] for run in json.loads(proc.stdout)]


def test_json_lists_runs_newest_first_with_all_fields(ledger: RunLedger) -> None:
    proc = ktrdr("runs", "--json")
    assert ids(proc) == ["live-unified", "new-unified", "old-legacy"]
    first = json.loads(proc.stdout)[1]
    assert first["status"] == "error" and first["error"] == "RuntimeError: boom"
    assert first["candidate"] is True and first["duration_seconds"] == 2
    assert {"started_at", "ended_at", "interval_p95", "cancellation_latency_seconds", "reason"} <= set(first)


def test_filters(ledger: RunLedger) -> None:
    assert ids(ktrdr("runs", "--json", "--mode", "legacy")) == ["old-legacy"]
    assert ids(ktrdr("runs", "--json", "--status", "running")) == ["live-unified"]
    assert ids(ktrdr("runs", "--json", "--user", "alice", "--limit", "1")) == ["live-unified"]
    assert ids(ktrdr("runs", "--json", "--since", "7d")) == ["live-unified", "new-unified"]
    assert ids(ktrdr("runs", "--json", "--since", "30m")) == ["live-unified"]
    everything = ["live-unified", "new-unified", "old-legacy"]
    assert ids(ktrdr("runs", "--json", "--since", "2000-01-01")) == everything
    assert ids(ktrdr("runs", "--json", "--since", "2999-01-01T00:00:00+00:00")) == []


def test_text_table(ledger: RunLedger) -> None:
    proc = ktrdr("runs")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:6] == ["started", "request", "user", "strategy", "mode", "status"]
    assert "old-legacy" in lines[3] and "0.5100" in lines[3] and "30.00s" in lines[3]
    assert "running" in lines[1] and "candidate" in lines[1]
    assert any("RuntimeError: boom" in line for line in lines)


@pytest.mark.parametrize("since", ["abc", "7 days", "-1d", "2024-13-45"])
def test_bad_since_is_exit_2_one_line(since: str) -> None:
    proc = ktrdr("runs", "--since", since)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ktrdr: error: --since") and "Traceback" not in proc.stderr


def test_empty_ledger_says_so(ktrdr_home: Path) -> None:
    proc = ktrdr("runs")
    assert proc.returncode == 0 and "No runs match" in proc.stdout
    assert ids(ktrdr("runs", "--json")) == []
    assert not (ktrdr_home / "ledger.sqlite3").exists()


@pytest.mark.parametrize("args", [("runs",), ("rollout", "gate")])
def test_runs_and_gate_do_not_import_torch(ledger: RunLedger, args: tuple[str, ...]) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ktrdr_core.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    modules = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "sqlite3" in modules  # the measurement itself works
    assert "torch" not in modules


def test_shadow_runs_are_shown_as_such_and_can_be_filtered() -> None:
    ledger = RunLedger()
    ledger.record_run(
        request_id="user-run-000001",
        user_id="alice",
        strategy="s",
        mode="legacy",
        status="success",
        duration_seconds=2.0,
        resources={"cpu_seconds": 1.5, "cpu_scope": "process", "peak_rss_bytes": 300 * 2**20},
    )
    ledger.record_run(
        request_id="shadow-run-0001",
        user_id="alice",
        strategy="s",
        mode="unified",
        status="success",
        duration_seconds=2.0,
        shadow=True,
        shadow_of="user-run-000001",
    )
    table = ktrdr("runs")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert "cpu" in lines[0] and "peak_mem" in lines[0]
    shadow_line = next(line for line in lines if "shadow-run-0" in line)
    assert "shadow-of:user-run-000" in shadow_line
    user_line = next(line for line in lines if line.split()[2] == "user-run-000")
    assert "1.50s" in user_line and "300MiB" in user_line
    only = json.loads(ktrdr("runs", "--shadow", "--json").stdout)
    assert [r["request_id"] for r in only] == ["shadow-run-0001"] and only[0]["shadow"] is True
    assert ids(ktrdr("runs", "--no-shadow", "--json")) == ["user-run-000001"]


def test_warnings_are_counted_listed_and_in_the_json() -> None:
    ledger = RunLedger()
    said = [
        "every one of the 900 labels is HOLD: the model can learn nothing but that class",
        "the test part has only 40 samples (under 100)",
    ]
    ledger.record_run(
        request_id="warned-run",
        user_id="eve",
        strategy="s",
        mode="unified",
        status="success",
        duration_seconds=3,
        warnings=said,
    )
    ledger.record_run(
        request_id="clean-run",
        user_id="eve",
        strategy="s",
        mode="legacy",
        status="success",
        duration_seconds=3,
        warnings=[],
    )
    proc = ktrdr("runs", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {row["request_id"]: row for row in json.loads(proc.stdout)}
    assert rows["warned-run"]["warnings"] == said and rows["clean-run"]["warnings"] == []
    text = ktrdr("runs").stdout.splitlines()
    assert "warnings" in text[0].split()
    column = text[0].split().index("warnings")
    assert [line.split()[column + 1] for line in text[1:3]] == ["-", "2"]  # +1: the date has a space
    assert f"warning warned-run: {said[0]} (+1 more: ktrdr runs --json)" in text
