"""The worker's private folder, removed on every path, a killed worker's included.

A job's folder (strategy, data, private ``KTRDR_HOME``) is removed in a
``finally`` when the job ends: success, error, cooperative cancel. A worker
that is killed — ``ray.cancel(force=True)``, the OOM killer, its node dying —
runs no ``finally``, so the folder is named to be recognised later::

    {tempdir}/ktrdr-cloud-job-{host}-{pid}-{random}

and every job, before it makes its own, removes the folders of that prefix
whose worker (same host, that pid) is no longer alive. A killed worker's
folder therefore goes when the next job starts on that machine (a node that
died and came back included). The sweep is bounded (at most
:data:`SWEEP_LIMIT` entries looked at), touches only real folders directly
under the temp root whose name has the exact pattern, and never follows a
link. A pid that was reused by another process keeps its folder until that
process ends too: the sweep only ever errs on the side of keeping.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["PREFIX", "SWEEP_LIMIT", "host_tag", "job_folder", "sweep_stale"]

PREFIX = "ktrdr-cloud-job-"
#: the most temp-root entries one sweep looks at
SWEEP_LIMIT = 1000
_NAME = re.compile(r"^ktrdr-cloud-job-(?P<host>[A-Za-z0-9_.]+)-(?P<pid>[0-9]+)-[a-z0-9_]+$")


def host_tag(hostname: str | None = None) -> str:
    """The host part of a folder name (pids are only meaningful on their own host)."""
    name = socket.gethostname() if hostname is None else hostname
    return re.sub(r"[^A-Za-z0-9_.]", "_", name) or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def sweep_stale(root: Path | None = None, *, limit: int = SWEEP_LIMIT) -> list[Path]:
    """Remove this host's job folders whose worker process is gone; returns what was removed."""
    base = Path(tempfile.gettempdir() if root is None else root)
    host = host_tag()
    removed: list[Path] = []
    try:
        entries = os.scandir(base)
    except OSError:
        return removed
    with entries:
        for count, entry in enumerate(entries):
            if count >= limit:
                break
            match = _NAME.match(entry.name)
            if match is None or match["host"] != host:
                continue
            if not entry.is_dir(follow_symlinks=False) or _alive(int(match["pid"])):
                continue
            path = Path(entry.path)
            shutil.rmtree(path, ignore_errors=True)
            if not path.exists():
                removed.append(path)
    return removed


@contextlib.contextmanager
def job_folder(root: Path | None = None) -> Iterator[Path]:
    """A new private folder for one job (stale ones swept first), removed when the job ends."""
    sweep_stale(root)
    folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{host_tag()}-{os.getpid()}-", dir=root))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
