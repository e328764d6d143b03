"""Rollout file integrity: no change without its audit line, clear errors for bad files, bounded lock waits."""

from __future__ import annotations

import fcntl
import json
import time
from pathlib import Path

import pytest
from cli_inprocess import run_ktrdr

from ktrdr_core.errors import ConfigurationError
from ktrdr_core.rollout import store as store_module
from ktrdr_core.rollout.store import RolloutFileError, RolloutStorageError, RolloutStore


def test_the_audit_line_is_written_before_the_change(
    ktrdr_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RolloutStore()
    store.set_percentage(10, reason="canary", actor="alice")

    def broken_audit(entry: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "_append_audit", broken_audit)
    with pytest.raises(RolloutStorageError, match="No space left on device"):
        store.set_percentage(50, reason="expand", actor="alice")
    assert store.read().percentage == 10  # no audit line, so no change
    assert [e.new for e in RolloutStore().history()] == [10]


def test_a_settings_write_that_fails_is_audited_as_not_applied(
    ktrdr_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RolloutStore()
    store.set_percentage(10, reason="canary", actor="alice")

    def broken_write(path: Path, data: object) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(store_module, "write_json_atomic", broken_write)
    with pytest.raises(RolloutStorageError, match="Read-only file system"):
        store.set_percentage(50, reason="expand", actor="alice")
    assert store.read().percentage == 10
    history = store.history()
    assert [(e.action, e.new) for e in history] == [
        ("set_percentage", 10),
        ("set_percentage", 50),
        ("set_percentage_not_applied", 10),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must hold a JSON object"),
        (b'{"percentag": 10}', "unknown key(s) 'percentag' (did you mean 'percentage'?)"),
    ],
)
def test_a_bad_rollout_file_is_one_clear_error(ktrdr_home: Path, content: bytes, message: str) -> None:
    ktrdr_home.mkdir(parents=True, exist_ok=True)
    (ktrdr_home / "rollout.json").write_bytes(content)
    with pytest.raises(RolloutFileError) as caught:
        RolloutStore().read()
    assert message in str(caught.value)
    assert isinstance(caught.value, ConfigurationError)  # the CLI's exit code 2
    proc = run_ktrdr("rollout", "status")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert message in proc.stderr


def test_a_held_lock_is_waited_on_for_a_bounded_time(
    ktrdr_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "LOCK_TIMEOUT_SECONDS", 0.3)
    store = RolloutStore()
    ktrdr_home.mkdir(parents=True, exist_ok=True)
    with open(ktrdr_home / ".rollout.lock", "a+") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        t0 = time.monotonic()
        with pytest.raises(RolloutStorageError, match="locked by another process"):
            store.set_percentage(10, reason="canary")
        assert time.monotonic() - t0 < 10
    assert store.set_percentage(10, reason="canary") is not None
    assert json.loads((ktrdr_home / "rollout.json").read_text())["percentage"] == 10
