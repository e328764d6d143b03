"""Start-up recovery after a crash: open ledger rows of dead processes, orphaned model folders.

A process killed by SIGKILL, the OOM killer or a power cut cannot clean up
after itself. The next ``ktrdr serve`` or ``ktrdr train`` on the same host
does it instead (:func:`recover`):

* ledger rows left ``queued`` or ``running`` by a process that is gone become
  ``interrupted``, with the reason (:meth:`RunLedger.reconcile`);
* temporary model folders (``models/<strategy>/.tmp-...``) that a dead
  process was writing are removed. Each one is named after the process that
  made it (``-p<pid>-``), so a save still in progress elsewhere is never
  touched; one without that mark is removed once it is an hour old.

No torch import here: ``ktrdr runs`` and the service's start-up use it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from pathlib import Path

import attrs

from ktrdr_core.errors import KtrdrError
from ktrdr_core.home import ktrdr_home
from ktrdr_core.ledger.store import RunLedger, RunRecord, ledger_path, process_alive

logger = logging.getLogger(__name__)

TMP_MODEL_PREFIX = ".tmp-"
UNMARKED_TMP_MAX_AGE_SECONDS = 3600.0
_PID_MARK = re.compile(r"-p(\d+)-[^-]*$")


def tmp_model_prefix(folder_prefix: str) -> str:
    """The ``mkdtemp`` prefix of a model being saved by this process."""
    return f"{TMP_MODEL_PREFIX}{folder_prefix}-p{os.getpid()}-"


@attrs.frozen
class Recovery:
    """What :func:`recover` found and fixed."""

    interrupted: tuple[RunRecord, ...] = ()
    removed_folders: tuple[Path, ...] = ()


def orphaned_model_folders(models: Path, *, now: float | None = None) -> list[Path]:
    """Temporary model folders under ``models`` whose writer is gone."""
    if not models.is_dir():
        return []
    now = time.time() if now is None else now
    found = []
    for folder in models.glob(f"*/{TMP_MODEL_PREFIX}*"):
        if not folder.is_dir():
            continue
        mark = _PID_MARK.search(folder.name)
        if mark is not None:
            pid = int(mark.group(1))
            if pid != os.getpid() and not process_alive(pid):
                found.append(folder)
        else:
            try:
                age = now - folder.stat().st_mtime
            except OSError:
                continue
            if age > UNMARKED_TMP_MAX_AGE_SECONDS:
                found.append(folder)
    return sorted(found)


def recover(home: Path | None = None) -> Recovery:
    """Reconcile the ledger and sweep orphaned model folders under ``home`` (default ``KTRDR_HOME``).

    Creates nothing: with no ledger and no models folder, there is nothing to do.
    """
    home = home if home is not None else ktrdr_home()
    interrupted: list[RunRecord] = []
    path = ledger_path(home)
    if path.exists():
        interrupted = RunLedger(path).reconcile()
    for record in interrupted:
        logger.warning(
            "run %s (training %s, mode %s) was left %s by a process that is gone: recorded as interrupted",
            record.id,
            record.request_id,
            record.mode,
            "queued" if record.error_kind == "not_started" else "running",
        )
    removed = []
    for folder in orphaned_model_folders(home / "models"):
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            removed.append(folder)
            logger.warning(
                "removed %s, a model folder left half-written by a process that is gone",
                folder.relative_to(home),
            )
    return Recovery(interrupted=tuple(interrupted), removed_folders=tuple(removed))


def recover_at_startup(home: Path | None = None) -> Recovery:
    """:func:`recover` for a command's start-up: a failure is logged, never stops the command.

    (An unreadable ledger is reported by whatever reads it next, in its own words.)
    """
    try:
        return recover(home)
    except (KtrdrError, OSError) as exc:
        logger.warning("start-up recovery skipped: %s", exc)
        return Recovery()


def interrupted_note(found: Recovery) -> str | None:
    """One line for a command's stderr when recovery ended runs of a dead process."""
    n = len(found.interrupted)
    if not n:
        return None
    return (
        f"ktrdr: recorded {n} run(s) left open by a process that is gone as interrupted "
        "(ktrdr runs --status interrupted)"
    )
