"""Whether this process can write the run ledger, for the service's health and admission.

Every ledger write reports its outcome here. The last outcome per ledger file
wins: a write that fails (disk full, read-only file system, a file that is
not SQLite) marks the ledger unwritable until a later write succeeds. The
service reads :func:`ledger_problem` so that a ledger it cannot write shows
up in its health instead of runs silently going unrecorded.
"""

from __future__ import annotations

import errno
import sqlite3
import threading
from pathlib import Path

_lock = threading.Lock()
_problems: dict[str, str] = {}


def record_write(path: Path, problem: str | None) -> None:
    """Remember the outcome of a write to the ledger at ``path`` (``None``: it worked)."""
    with _lock:
        if problem is None:
            _problems.pop(str(path), None)
        else:
            _problems[str(path)] = problem


def ledger_problem(path: Path | None = None) -> str | None:
    """Why the ledger at ``path`` (or any ledger, when ``None``) could not be written last time."""
    with _lock:
        if path is not None:
            return _problems.get(str(path))
        return next(iter(_problems.values()), None)


def describe_storage_error(exc: BaseException) -> str:
    """A short, path-free sentence for a storage failure; a full disk always reads the same."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "no space left on device"
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code == sqlite3.SQLITE_FULL or "disk is full" in str(exc):
            return "no space left on device"
        if code == sqlite3.SQLITE_READONLY or "readonly" in str(exc):
            return "the ledger file is read-only"
        return str(exc)
    if isinstance(exc, OSError):
        return (exc.strerror or str(exc)).lower()
    return str(exc)
