"""Unusable paths and addresses are configuration errors: one line, exit 2, nothing written."""

from __future__ import annotations

import socket
from pathlib import Path

from cli_inprocess import CliRun, run_ktrdr


def ktrdr(*args: str, **env: str) -> CliRun:
    return run_ktrdr(*args, env=env)


def assert_one_line_exit_2(proc: CliRun, needle: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("ktrdr: error:") and needle in lines[-1], proc.stderr
    assert "Traceback" not in proc.stderr


def test_ktrdr_home_that_is_a_file(tmp_path: Path) -> None:
    home = tmp_path / "not-a-folder"
    home.write_text("x")
    assert_one_line_exit_2(
        ktrdr("rollout", "set", "10", KTRDR_HOME=str(home)), "cannot change the rollout file"
    )
    assert_one_line_exit_2(ktrdr("train", "neuro_mean_reversion", KTRDR_HOME=str(home)), "KTRDR_HOME")
    assert home.read_text() == "x"


def test_ledger_path_taken_by_a_folder(ktrdr_home: Path) -> None:
    (ktrdr_home / "ledger.sqlite3").mkdir(parents=True)
    assert_one_line_exit_2(ktrdr("runs"), "is a folder, not a ledger database")


def test_busy_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_one_line_exit_2(ktrdr("serve", "--port", str(port)), "cannot listen on")


def test_unwritable_progress_file(ktrdr_home: Path) -> None:
    proc = ktrdr("train", "neuro_mean_reversion", "--progress-jsonl", "/proc/no-such/x.jsonl")
    assert_one_line_exit_2(proc, "x.jsonl")


def test_five_thousand_character_strategy_name(ktrdr_home: Path) -> None:
    for command in (("train", "x" * 5000), ("compare", "x" * 5000)):
        proc = ktrdr(*command)
        assert_one_line_exit_2(proc, "at most 128 characters")
        assert "File name too long" not in proc.stderr and len(proc.stderr) < 300
