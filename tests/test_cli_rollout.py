"""The ``ktrdr`` CLI without any mode installed: help, plugins, rollout, exit codes.

Commands run in-process (tests/cli_inprocess.py); the import-cost checks start a real
interpreter, since a fresh process's imports are what they measure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_inprocess import CliRun, run_ktrdr


def ktrdr(*args: str, env: dict[str, str] | None = None) -> CliRun:
    return run_ktrdr(*args, env=env)


def imported_modules(*args: str) -> set[str]:
    """Top-level modules imported by ``ktrdr ARGS`` (``python -X importtime``)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ktrdr_core.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


@pytest.mark.parametrize("args", [("--help",), ("plugins",), ("rollout", "--help")])
def test_light_commands_do_not_import_torch(args: tuple[str, ...]) -> None:
    modules = imported_modules(*args)
    assert "click" in modules  # the measurement itself works
    assert "torch" not in modules


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"UNIFIED_TRAINING_ROLLOUT_PERCENTAGE": "abc"}, "UNIFIED_TRAINING_ROLLOUT_PERCENTAGE"),
        ({"UNIFIED_TRAINING_ROLLOUT_PERCENTAGE": "150"}, "between 0 and 100"),
        ({"KTRDR_ROLLOUT_CANDIDATE": "../x"}, "KTRDR_ROLLOUT_CANDIDATE"),
    ],
)
def test_malformed_env_gives_exit_2_and_one_line(env: dict[str, str], needle: str) -> None:
    for args in (("rollout", "explain", "alice"), ("rollout", "status")):
        proc = ktrdr(*args, env=env)
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], proc.stderr
        assert lines[0].startswith("ktrdr: error:")


def test_explain_alice_at_fifty_percent() -> None:
    env = {
        "USE_UNIFIED_TRAINING": "true",
        "UNIFIED_TRAINING_ROLLOUT_PERCENTAGE": "50",
        "KTRDR_PLUGINS": "no-such-plugin",
    }  # no mode loads, whatever is installed
    proc = ktrdr("rollout", "explain", "alice", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    decision = json.loads(proc.stdout)["decision"]
    assert decision["bucket"] == 0
    # no mode installed in this environment: the candidate is missing, so control, and it says so
    assert decision["mode"] == "legacy" and decision["fallback"] is True
    assert "not installed" in decision["reason"]


def test_set_exclude_include_history_round_trip(ktrdr_home: Path) -> None:
    env = {"KTRDR_ACTOR": "dave"}
    assert ktrdr("rollout", "enable", "--reason", "phase 2", env=env).returncode == 0
    assert ktrdr("rollout", "set", "10", "--reason", "canary", env=env).returncode == 0
    assert ktrdr("rollout", "exclude", "bob", env=env).returncode == 0
    assert ktrdr("rollout", "include", "bob", env=env).returncode == 0
    status = json.loads(ktrdr("rollout", "status", "--json").stdout)
    assert status["stage"] == "canary" and status["percentage"] == 10
    assert status["excluded_users"] == []
    assert status["sources"]["percentage"] == "file"
    history = json.loads(ktrdr("rollout", "history", "--json").stdout)
    assert [h["action"] for h in history] == ["set_enabled", "set_percentage", "exclude_user", "include_user"]
    assert {h["actor"] for h in history} == {"dave"}
    assert history[1]["reason"] == "canary"


@pytest.mark.parametrize("value", ["150", "abc", "-5"])
def test_set_refuses_bad_percentage(value: str, ktrdr_home: Path) -> None:
    proc = ktrdr("rollout", "set", "--", value)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (ktrdr_home / "rollout.json").exists()


def test_set_warns_when_env_overrides_the_file() -> None:
    proc = ktrdr("rollout", "set", "20", env={"UNIFIED_TRAINING_ROLLOUT_PERCENTAGE": "0"})
    assert proc.returncode == 0
    assert "wins over the rollout file" in proc.stderr


def test_unknown_command_is_a_usage_error() -> None:
    proc = ktrdr("frobnicate")
    assert proc.returncode == 2
    assert "No such command" in proc.stderr


def test_plugins_with_no_mode_says_so_plainly() -> None:
    proc = ktrdr("plugins", env={"KTRDR_PLUGINS": "nothing-matches-this"})
    assert proc.returncode == 0
    assert "No execution mode is installed" in proc.stdout
