"""The ledger's SQLite schema and its migrations.

The schema version lives in ``PRAGMA user_version``. :data:`MIGRATIONS` is
the ordered list of steps; step *i* takes a database from version *i* to
*i + 1*. Opening a database applies the missing steps inside one
``BEGIN IMMEDIATE`` transaction, so two processes opening an old ledger at
once migrate it exactly once (the second sees the new version and does
nothing). A ledger written by a newer ktrdr (a version above ours) is a
:class:`ConfigurationError`, never silently downgraded.

A new column or table is a new function appended to :data:`MIGRATIONS`;
existing steps are never edited, because old ledgers out there were built by
them.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from ktrdr_core.errors import ConfigurationError

BUSY_TIMEOUT_MS = 10_000
"""How long a writer waits for another process's transaction before giving up."""


def _v1_runs(conn: sqlite3.Connection) -> None:
    """Version 1: one row per training run with its decision, status and model metrics."""
    conn.execute(
        """
        CREATE TABLE runs (
            id               INTEGER PRIMARY KEY AUTOINCREMENT,
            request_id       TEXT    NOT NULL,
            user_id          TEXT    NOT NULL,
            strategy         TEXT    NOT NULL,
            mode             TEXT    NOT NULL,
            reason           TEXT,
            bucket           INTEGER,
            candidate        INTEGER NOT NULL DEFAULT 0,
            forced           INTEGER NOT NULL DEFAULT 0,
            fallback         INTEGER NOT NULL DEFAULT 0,
            status           TEXT    NOT NULL
                CHECK (status IN ('running', 'success', 'error', 'cancelled')),
            error            TEXT,
            started_at       TEXT    NOT NULL,
            started_epoch    REAL    NOT NULL,
            ended_at         TEXT,
            ended_epoch      REAL,
            duration_seconds REAL,
            val_loss         REAL,
            val_accuracy     REAL,
            test_accuracy    REAL,
            test_loss        REAL
        )
        """
    )
    conn.execute("CREATE INDEX runs_started ON runs (started_epoch)")
    conn.execute("CREATE INDEX runs_request ON runs (request_id)")


def _v2_timings(conn: sqlite3.Connection) -> None:
    """Version 2: what the gates judge — progress intervals, cancellation latency, error kind."""
    for column in (
        "error_kind TEXT",
        "progress_updates INTEGER",
        "interval_p50 REAL",
        "interval_p95 REAL",
        "interval_min REAL",
        "interval_max REAL",
        "cancellation_latency_seconds REAL",
        "host TEXT",
        "pid INTEGER",
    ):
        conn.execute(f"ALTER TABLE runs ADD COLUMN {column}")
    conn.execute("CREATE INDEX runs_mode_started ON runs (mode, started_epoch)")


def _v3_comparisons(conn: sqlite3.Connection) -> None:
    """Version 3: side-by-side comparison outcomes (written by ``ktrdr compare``)."""
    conn.execute(
        """
        CREATE TABLE comparisons (
            id            INTEGER PRIMARY KEY AUTOINCREMENT,
            strategy      TEXT    NOT NULL,
            control       TEXT    NOT NULL,
            candidate     TEXT    NOT NULL,
            equivalent    INTEGER NOT NULL CHECK (equivalent IN (0, 1)),
            differences   TEXT    NOT NULL DEFAULT '[]',
            report_path   TEXT,
            created_at    TEXT    NOT NULL,
            created_epoch REAL    NOT NULL
        )
        """
    )
    conn.execute("CREATE INDEX comparisons_created ON comparisons (created_epoch)")


def _v4_monitoring(conn: sqlite3.Connection) -> None:
    """Version 4: resource usage, progress accuracy, shadow runs, and comparisons from real traffic."""
    for column in (
        "cpu_seconds REAL",
        "cpu_scope TEXT",
        "peak_rss_bytes INTEGER",
        "torch_peak_bytes INTEGER",
        "cuda_peak_bytes INTEGER",
        "progress_max_deviation REAL",
        "shadow INTEGER NOT NULL DEFAULT 0",
        "shadow_of TEXT",
    ):
        conn.execute(f"ALTER TABLE runs ADD COLUMN {column}")
    for column in (
        "source TEXT NOT NULL DEFAULT 'manual'",
        "control_run_id INTEGER",
        "candidate_run_id INTEGER",
    ):
        conn.execute(f"ALTER TABLE comparisons ADD COLUMN {column}")
    conn.execute("CREATE INDEX comparisons_source_created ON comparisons (source, created_epoch)")


def _v5_warnings(conn: sqlite3.Connection) -> None:
    """Version 5: a finished run's honest-result warnings (a JSON list of sentences)."""
    conn.execute("ALTER TABLE runs ADD COLUMN warnings TEXT")


RUN_STATUSES_V6 = ("queued", "running", "success", "error", "cancelled", "interrupted")
_STATUS_CHECK = re.compile(r"CHECK\s*\(\s*status\s+IN\s*\([^)]*\)\s*\)", re.IGNORECASE)


def _v6_durable_statuses(conn: sqlite3.Connection) -> None:
    """Version 6: ``queued`` (written at admission) and ``interrupted`` (its process died).

    SQLite cannot alter a CHECK constraint, so the table is rebuilt from its own
    stored definition with only the status list changed: columns that other
    steps added are kept, whatever they are.
    """
    (table_sql,) = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'runs'"
    ).fetchone()
    statuses = ", ".join(f"'{status}'" for status in RUN_STATUSES_V6)
    new_sql, found = _STATUS_CHECK.subn(f"CHECK (status IN ({statuses}))", table_sql, count=1)
    if not found:
        raise ConfigurationError("the ledger's runs table has no status check to extend")
    new_sql = re.sub(
        r"^\s*CREATE\s+TABLE\s+\"?runs\"?", "CREATE TABLE runs_v6", new_sql, count=1, flags=re.IGNORECASE
    )
    indexes = [
        row[0]
        for row in conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'runs' AND sql IS NOT NULL"
        )
    ]
    conn.execute(new_sql)
    conn.execute("INSERT INTO runs_v6 SELECT * FROM runs")
    conn.execute("DROP TABLE runs")
    conn.execute("ALTER TABLE runs_v6 RENAME TO runs")
    for index_sql in indexes:
        conn.execute(index_sql)
    conn.execute("CREATE INDEX IF NOT EXISTS runs_status ON runs (status)")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _v1_runs,
    _v2_timings,
    _v3_comparisons,
    _v4_monitoring,
    _v5_warnings,
    _v6_durable_statuses,
]
SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: Path) -> sqlite3.Connection:
    """A new connection in autocommit mode (transactions are explicit), WAL, busy timeout."""
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, path: Path, *, target: int = SCHEMA_VERSION) -> int:
    """Bring the database to ``target``; returns the version it had before."""
    if user_version(conn) == target:
        return target
    # WAL is a property of the file; it cannot be switched inside a transaction.
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = user_version(conn)
        if found > SCHEMA_VERSION:
            raise ConfigurationError(
                f"{path} has ledger schema version {found}, newer than this ktrdr knows "
                f"({SCHEMA_VERSION}); upgrade ktrdr-core"
            )
        for step in MIGRATIONS[found:target]:
            step(conn)
        conn.execute(f"PRAGMA user_version = {int(target)}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found


_ready: set[str] = set()
_ready_lock = threading.Lock()


def open_ledger(path: Path) -> sqlite3.Connection:
    """Connect to the ledger at ``path``, creating or migrating it on first use in this process."""
    key = str(path)
    with _ready_lock:
        known = key in _ready
    if path.is_dir():
        raise ConfigurationError(f"{path} is a folder, not a ledger database; move it away")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot create {path.parent} for the run ledger: {exc.strerror or exc} (check KTRDR_HOME)"
        ) from None
    conn: sqlite3.Connection | None = None
    try:
        conn = connect(path)
        if not known or user_version(conn) != SCHEMA_VERSION:
            migrate(conn, path)
            with _ready_lock:
                _ready.add(key)
    except sqlite3.OperationalError:
        if conn is not None:
            conn.close()
        raise  # locked past the busy timeout, disk full: a real, transient failure
    except sqlite3.DatabaseError as exc:
        if conn is not None:
            conn.close()
        raise ConfigurationError(f"{path} is not a usable ledger database: {exc}") from None
    except BaseException:
        if conn is not None:
            conn.close()
        raise
    return conn


# -- one connection per thread ------------------------------------------------------
#
# Closing the last connection to a WAL database checkpoints it and deletes the
# WAL file, with fsyncs: ~12 ms per operation when every operation opens and
# closes its own connection. So each thread keeps one connection per ledger
# file and reuses it (statements are single autocommit transactions, so a
# reused connection never holds a lock between operations).

_local = threading.local()
_inherited: list[object] = []
"""Connections inherited through fork(): kept referenced so the child never closes them."""


def thread_connection(path: Path) -> sqlite3.Connection:
    """This thread's connection to the ledger at ``path`` (reopened if the file was replaced)."""
    pid = os.getpid()
    cache: dict[str, tuple[sqlite3.Connection, int]] | None = getattr(_local, "connections", None)
    if cache is None or getattr(_local, "pid", None) != pid:
        if cache:
            _inherited.append(cache)
        cache = {}
        _local.connections, _local.pid = cache, pid
    key = str(path)
    try:
        inode = path.stat().st_ino
    except FileNotFoundError:
        inode = -1
    cached = cache.get(key)
    if cached is not None and cached[1] == inode:
        return cached[0]
    if cached is not None:
        cached[0].close()
        with _ready_lock:
            _ready.discard(key)
    conn = open_ledger(path)
    cache[key] = (conn, path.stat().st_ino)
    return conn


def close_thread_connections() -> None:
    """Close this thread's cached ledger connections (tests, long-lived workers)."""
    cache = getattr(_local, "connections", None) or {}
    if getattr(_local, "pid", None) == os.getpid():
        for conn, _inode in cache.values():
            conn.close()
    _local.connections = {}
    _local.pid = os.getpid()
