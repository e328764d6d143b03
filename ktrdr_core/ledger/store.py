"""The run ledger: one SQLite row per training run, one per side-by-side comparison.

Each thread has its own connection, and every operation holds a transaction
only for the one statement it needs, so any number of threads and processes
can write at once (WAL mode, a busy timeout). The service inserts a run as
``queued`` when it accepts it; it becomes ``running`` when it starts (the CLI
inserts it ``running``) and is completed in one ``UPDATE`` when it ends. A
process killed in between leaves a well-formed ``queued`` or ``running`` row,
never half a row, and :meth:`RunLedger.reconcile` turns such rows of dead
processes into ``interrupted`` ones at the next start-up.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from ktrdr_core.errors import BadInputError, ConfigurationError, KtrdrError
from ktrdr_core.home import ktrdr_home
from ktrdr_core.ledger.health import describe_storage_error, record_write
from ktrdr_core.ledger.schema import thread_connection
from ktrdr_core.ledger.times import iso_utc

LEDGER_FILENAME = "ledger.sqlite3"
STATUSES = ("queued", "running", "success", "error", "cancelled", "interrupted")
OPEN_STATUSES = ("queued", "running")
FINISHED_STATUSES = ("success", "error", "cancelled", "interrupted")
FAILED_STATUSES = ("error", "interrupted")
"""What the gates and the automatic rollback count as the mode's failures."""
NOT_STARTED_KIND = "not_started"
"""``error_kind`` of a run that ended before it reached a mode (cancelled or interrupted while queued)."""
INTERRUPTED_KIND = "interrupted"
NOT_COUNTED_KINDS = ("bad_input", NOT_STARTED_KIND)
"""Error kinds the gates leave out: the request could not work anywhere, or never ran."""


class LedgerWriteError(KtrdrError):
    """The run ledger cannot be written (full disk, read-only file, not a database)."""


_live_lock = threading.Lock()
_live: set[tuple[str, int]] = set()
"""(ledger path, run id) of the open rows this process wrote and still owns."""


def _own(path: Path, run_id: int, owned: bool) -> None:
    with _live_lock:
        (_live.add if owned else _live.discard)((str(path), run_id))


def process_alive(pid: int) -> bool:
    """Whether ``pid`` names a live (not zombie) process on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def ledger_path(home: Path | None = None) -> Path:
    """``KTRDR_HOME/ledger.sqlite3``."""
    return (home if home is not None else ktrdr_home()) / LEDGER_FILENAME


COMPARISON_SOURCES = ("manual", "shadow")
RESOURCE_KEYS = ("cpu_seconds", "cpu_scope", "peak_rss_bytes", "torch_peak_bytes", "cuda_peak_bytes")
"""The keys of a result's ``metadata["resources"]`` that the ledger keeps, in column order."""


def _resource_columns(resources: Mapping[str, Any] | None) -> dict[str, Any]:
    r = resources or {}
    scope = r.get("cpu_scope")
    return {
        "cpu_seconds": _float(r.get("cpu_seconds")),
        "cpu_scope": scope if isinstance(scope, str) else None,
        **{key: _int(r.get(key)) for key in RESOURCE_KEYS[2:]},
    }


def _int(value: Any) -> int | None:
    number = _float(value)
    return None if number is None else int(number)


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # NaN is "no value"


@attrs.frozen(kw_only=True)
class RunRecord:
    """One row of the ``runs`` table."""

    id: int
    request_id: str
    user_id: str
    strategy: str
    mode: str
    reason: str | None
    bucket: int | None
    candidate: bool
    forced: bool
    fallback: bool
    status: str
    error: str | None
    error_kind: str | None
    started_at: str
    started_epoch: float
    ended_at: str | None
    ended_epoch: float | None
    duration_seconds: float | None
    val_loss: float | None
    val_accuracy: float | None
    test_accuracy: float | None
    test_loss: float | None
    progress_updates: int | None
    interval_p50: float | None
    interval_p95: float | None
    interval_min: float | None
    interval_max: float | None
    cancellation_latency_seconds: float | None
    host: str | None
    pid: int | None
    cpu_seconds: float | None = None
    cpu_scope: str | None = None
    """``thread`` or ``process``: what ``cpu_seconds`` counted (see docs/metrics.md)."""
    peak_rss_bytes: int | None = None
    torch_peak_bytes: int | None = None
    cuda_peak_bytes: int | None = None
    progress_max_deviation: float | None = None
    """Largest |reported - actual| fraction of work over the run's delivered updates."""
    shadow: bool = False
    """A background candidate run on a user's request: never user traffic."""
    shadow_of: str | None = None
    """The request id of the user's run this shadow run mirrored."""
    warnings: tuple[str, ...] = ()
    """The result's ``metadata.warnings`` (honest-result warnings; see docs/engine.md)."""

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RunRecord:
        data = {name: row[name] for name in row.keys()}  # noqa: SIM118 - sqlite3.Row
        for flag in ("candidate", "forced", "fallback", "shadow"):
            data[flag] = bool(data[flag])
        data["warnings"] = tuple(json.loads(data["warnings"])) if data.get("warnings") else ()
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def _warnings_json(warnings: Sequence[str] | None) -> str | None:
    """The ``warnings`` column: a JSON list of sentences, NULL when there are none."""
    return json.dumps([str(w) for w in warnings]) if warnings else None


@attrs.frozen(kw_only=True)
class ComparisonRecord:
    """One side-by-side comparison outcome."""

    id: int
    strategy: str
    control: str
    candidate: str
    equivalent: bool
    differences: list[Any]
    report_path: str | None
    created_at: str
    created_epoch: float
    source: str = "manual"
    """``manual`` (``ktrdr compare``) or ``shadow`` (a pair from real traffic)."""
    control_run_id: int | None = None
    candidate_run_id: int | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ComparisonRecord:
        data = {name: row[name] for name in row.keys()}  # noqa: SIM118 - sqlite3.Row
        data["equivalent"] = bool(data["equivalent"])
        try:
            data["differences"] = json.loads(data["differences"] or "[]")
        except json.JSONDecodeError:
            data["differences"] = [data["differences"]]
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def _insert_open(
    conn: sqlite3.Connection,
    status: str,
    started: float,
    *,
    request_id: str,
    user_id: str,
    strategy: str,
    mode: str,
    reason: str | None,
    bucket: int | None,
    candidate: bool,
    forced: bool,
    fallback: bool,
) -> int:
    """Insert a ``queued`` or ``running`` row of this host and process; returns its id."""
    cursor = conn.execute(
        """
        INSERT INTO runs (request_id, user_id, strategy, mode, reason, bucket, candidate,
                          forced, fallback, status, started_at, started_epoch, host, pid)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """,
        (
            request_id,
            user_id,
            strategy,
            mode,
            reason,
            bucket,
            int(candidate),
            int(forced),
            int(fallback),
            status,
            iso_utc(started),
            started,
            socket.gethostname(),
            os.getpid(),
        ),
    )
    return int(cursor.lastrowid or 0)


class RunLedger:
    """The ledger at ``path`` (default ``KTRDR_HOME/ledger.sqlite3``)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else ledger_path()

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        # One connection per thread and file (see schema.thread_connection); each
        # statement is its own autocommit transaction, so nothing is held between calls.
        yield thread_connection(self.path)

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """A connection for one write; its outcome is reported to the ledger's health."""
        try:
            yield thread_connection(self.path)
        except ConfigurationError as exc:  # not a ledger database: the operator's to fix (exit 2)
            record_write(self.path, str(exc))
            raise
        except (sqlite3.Error, OSError) as exc:
            problem = describe_storage_error(exc)
            record_write(self.path, problem)
            raise LedgerWriteError(
                f"the run ledger ({self.path.name}) cannot be written: {problem}"
            ) from None
        record_write(self.path, None)

    def exists(self) -> bool:
        return self.path.exists()

    # -- runs: writing -----------------------------------------------------
    def start_run(
        self,
        *,
        request_id: str,
        user_id: str,
        strategy: str,
        mode: str,
        reason: str | None = None,
        bucket: int | None = None,
        candidate: bool = False,
        forced: bool = False,
        fallback: bool = False,
        started_at: float | None = None,
    ) -> int:
        """Mark this process's ``queued`` row of ``request_id`` running, else insert a ``running`` row.

        Returns the row's id (needed by :meth:`finish_run`).
        """
        started = time.time() if started_at is None else started_at
        with self._writing() as conn:
            claimed = conn.execute(
                """
                UPDATE runs SET status = 'running', started_at = ?, started_epoch = ?
                WHERE id = (SELECT id FROM runs WHERE request_id = ? AND status = 'queued'
                            AND host = ? AND pid = ? ORDER BY id DESC LIMIT 1)
                RETURNING id
                """,
                (iso_utc(started), started, request_id, socket.gethostname(), os.getpid()),
            ).fetchone()
            if claimed is not None:
                _own(self.path, int(claimed[0]), True)
                return int(claimed[0])
            run_id = _insert_open(
                conn,
                "running",
                started,
                request_id=request_id,
                user_id=user_id,
                strategy=strategy,
                mode=mode,
                reason=reason,
                bucket=bucket,
                candidate=candidate,
                forced=forced,
                fallback=fallback,
            )
        _own(self.path, run_id, True)
        return run_id

    def admit_run(
        self,
        *,
        request_id: str,
        user_id: str,
        strategy: str,
        mode: str,
        reason: str | None = None,
        bucket: int | None = None,
        candidate: bool = False,
        forced: bool = False,
        fallback: bool = False,
    ) -> int:
        """Insert a ``queued`` row for an accepted request (the service, before it answers 202)."""
        with self._writing() as conn:
            run_id = _insert_open(
                conn,
                "queued",
                time.time(),
                request_id=request_id,
                user_id=user_id,
                strategy=strategy,
                mode=mode,
                reason=reason,
                bucket=bucket,
                candidate=candidate,
                forced=forced,
                fallback=fallback,
            )
        _own(self.path, run_id, True)
        return run_id

    def end_unstarted(self, run_id: int, *, status: str, reason: str) -> None:
        """End a ``queued`` row that never reached a mode (cancelled or refused while waiting)."""
        if status not in ("cancelled", "interrupted"):
            raise BadInputError(f"a run that never started ends cancelled or interrupted, not {status!r}")
        now = time.time()
        with self._writing() as conn:
            conn.execute(
                """
                UPDATE runs SET status = ?, error = ?, error_kind = ?, ended_at = ?, ended_epoch = ?,
                    duration_seconds = 0
                WHERE id = ? AND status = 'queued'
                """,
                (status, reason, NOT_STARTED_KIND, iso_utc(now), now, run_id),
            )
        _own(self.path, run_id, False)

    def reconcile(self) -> list[RunRecord]:
        """End the open rows of processes that are gone (same host, dead pid) as ``interrupted``.

        A row of this very process counts as gone unless this process still
        owns it (a restarted container may get its old pid back). Rows of
        other hosts are left alone: their process cannot be checked from here.
        Returns the rows it ended, as they are now.
        """
        if not self.exists():
            return []
        host, me = socket.gethostname(), os.getpid()
        with self._connection() as conn:
            rows = [
                RunRecord.from_row(row)
                for row in conn.execute(
                    "SELECT * FROM runs WHERE status IN ('queued', 'running') AND host = ? ORDER BY id",
                    (host,),
                )
            ]
        stale = []
        for row in rows:
            if row.pid is None:
                continue
            if row.pid == me:
                with _live_lock:
                    if (str(self.path), row.id) in _live:
                        continue
            elif process_alive(row.pid):
                continue
            stale.append(row)
        if not stale:
            return []
        now = time.time()
        with self._writing() as conn:
            for row in stale:
                if row.status == "queued":
                    kind, why = NOT_STARTED_KIND, "accepted it; the training never started"
                else:
                    kind, why = INTERRUPTED_KIND, "was running it; its result was never recorded"
                reason = (
                    f"interrupted: the process (pid {row.pid} on {row.host}) that {why}; "
                    f"found gone at start-up by pid {me}"
                )
                conn.execute(
                    """
                    UPDATE runs SET status = 'interrupted', error = ?, error_kind = ?, ended_at = ?,
                        ended_epoch = ?, duration_seconds = MAX(0, ? - started_epoch)
                    WHERE id = ? AND status = ?
                    """,
                    (reason, kind, iso_utc(now), now, now, row.id, row.status),
                )
        return [record for row in stale if (record := self.get(row.id)) is not None]

    def finish_run(
        self,
        run_id: int,
        *,
        status: str,
        ended_at: float | None = None,
        duration_seconds: float | None = None,
        error: str | None = None,
        error_kind: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        progress_updates: int | None = None,
        interval_summary: Mapping[str, float | None] | None = None,
        cancellation_latency_seconds: float | None = None,
        resources: Mapping[str, Any] | None = None,
        progress_max_deviation: float | None = None,
        warnings: Sequence[str] | None = None,
    ) -> None:
        """Complete the row ``run_id`` in one statement (all of it, or nothing)."""
        if status not in FINISHED_STATUSES:
            raise BadInputError(f"a finished run's status is one of {FINISHED_STATUSES}, not {status!r}")
        ended = time.time() if ended_at is None else ended_at
        m = metrics or {}
        s = interval_summary or {}
        r = _resource_columns(resources)
        with self._writing() as conn:
            cursor = conn.execute(
                """
                UPDATE runs SET status = ?, error = ?, error_kind = ?, ended_at = ?, ended_epoch = ?,
                    duration_seconds = COALESCE(?, ? - started_epoch),
                    val_loss = ?, val_accuracy = ?, test_accuracy = ?, test_loss = ?,
                    progress_updates = ?, interval_p50 = ?, interval_p95 = ?, interval_min = ?,
                    interval_max = ?, cancellation_latency_seconds = ?,
                    cpu_seconds = ?, cpu_scope = ?, peak_rss_bytes = ?, torch_peak_bytes = ?,
                    cuda_peak_bytes = ?, progress_max_deviation = ?, warnings = ?
                WHERE id = ?
                """,
                (
                    status,
                    error,
                    error_kind,
                    iso_utc(ended),
                    ended,
                    _float(duration_seconds),
                    ended,
                    _float(m.get("val_loss")),
                    _float(m.get("val_accuracy")),
                    _float(m.get("test_accuracy")),
                    _float(m.get("test_loss")),
                    progress_updates,
                    _float(s.get("p50")),
                    _float(s.get("p95")),
                    _float(s.get("min")),
                    _float(s.get("max")),
                    _float(cancellation_latency_seconds),
                    *r.values(),
                    _float(progress_max_deviation),
                    _warnings_json(warnings),
                    run_id,
                ),
            )
            if cursor.rowcount != 1:
                raise BadInputError(f"the ledger has no run with id {run_id}")
        _own(self.path, run_id, False)

    def record_run(
        self,
        *,
        request_id: str,
        user_id: str,
        strategy: str,
        mode: str,
        status: str,
        reason: str | None = None,
        bucket: int | None = None,
        candidate: bool = False,
        forced: bool = False,
        fallback: bool = False,
        started_at: float | None = None,
        ended_at: float | None = None,
        duration_seconds: float | None = None,
        error: str | None = None,
        error_kind: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        progress_updates: int | None = None,
        interval_summary: Mapping[str, float | None] | None = None,
        cancellation_latency_seconds: float | None = None,
        resources: Mapping[str, Any] | None = None,
        progress_max_deviation: float | None = None,
        shadow: bool = False,
        shadow_of: str | None = None,
        warnings: Sequence[str] | None = None,
    ) -> int:
        """Insert a whole run in one statement (imports, tests, shadow runs, runs whose start was not seen).

        With ``started_at`` and ``duration_seconds`` but no ``ended_at``, the end
        is their sum; a ``running`` status records the start only.
        """
        if status not in STATUSES:
            raise BadInputError(f"a run's status is one of {STATUSES}, not {status!r}")
        started = time.time() if started_at is None else started_at
        finished = status != "running"
        if finished and ended_at is None:
            ended_at = started + float(duration_seconds) if duration_seconds is not None else time.time()
        if finished and duration_seconds is None and ended_at is not None:
            duration_seconds = ended_at - started
        m = metrics or {}
        s = interval_summary or {}
        values: dict[str, Any] = {
            "request_id": request_id,
            "user_id": user_id,
            "strategy": strategy,
            "mode": mode,
            "reason": reason,
            "bucket": bucket,
            "candidate": int(candidate),
            "forced": int(forced),
            "fallback": int(fallback),
            "status": status,
            "error": error,
            "error_kind": error_kind,
            "started_at": iso_utc(started),
            "started_epoch": started,
            "ended_at": iso_utc(ended_at) if finished and ended_at is not None else None,
            "ended_epoch": ended_at if finished else None,
            "duration_seconds": _float(duration_seconds) if finished else None,
            "val_loss": _float(m.get("val_loss")),
            "val_accuracy": _float(m.get("val_accuracy")),
            "test_accuracy": _float(m.get("test_accuracy")),
            "test_loss": _float(m.get("test_loss")),
            "progress_updates": progress_updates,
            "interval_p50": _float(s.get("p50")),
            "interval_p95": _float(s.get("p95")),
            "interval_min": _float(s.get("min")),
            "interval_max": _float(s.get("max")),
            "cancellation_latency_seconds": _float(cancellation_latency_seconds),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            **_resource_columns(resources),
            "progress_max_deviation": _float(progress_max_deviation),
            "shadow": int(bool(shadow)),
            "shadow_of": shadow_of,
            "warnings": _warnings_json(warnings),
        }
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        with self._writing() as conn:
            cursor = conn.execute(f"INSERT INTO runs ({columns}) VALUES ({marks})", list(values.values()))
            return int(cursor.lastrowid or 0)

    # -- runs: reading -----------------------------------------------------
    def runs(
        self,
        *,
        mode: str | None = None,
        status: str | Sequence[str] | None = None,
        since: float | None = None,
        until: float | None = None,
        user: str | None = None,
        exclude_error_kind: str | Sequence[str] | None = None,
        limit: int | None = None,
        newest_first: bool = True,
        shadow: bool | None = None,
    ) -> list[RunRecord]:
        """Runs matching every filter given (``since``/``until``: epoch of the start).

        ``exclude_error_kind`` leaves out runs of that kind or kinds (the gates
        leave out :data:`NOT_COUNTED_KINDS`: a request that cannot work anywhere,
        or that never reached a mode, says nothing about the mode).
        ``shadow=False`` keeps user traffic only (what the gates judge).
        """
        if not self.exists():
            return []
        clauses: list[str] = []
        params: list[Any] = []
        if mode is not None:
            clauses.append("mode = ?")
            params.append(mode)
        if status is not None:
            wanted = [status] if isinstance(status, str) else list(status)
            clauses.append(f"status IN ({', '.join('?' for _ in wanted)})")
            params.extend(wanted)
        if since is not None:
            clauses.append("started_epoch >= ?")
            params.append(since)
        if until is not None:
            clauses.append("started_epoch <= ?")
            params.append(until)
        if user is not None:
            clauses.append("user_id = ?")
            params.append(user)
        if exclude_error_kind is not None:
            kinds = [exclude_error_kind] if isinstance(exclude_error_kind, str) else list(exclude_error_kind)
            clauses.append(f"(error_kind IS NULL OR error_kind NOT IN ({', '.join('?' for _ in kinds)}))")
            params.extend(kinds)
        if shadow is not None:
            clauses.append("shadow = ?")
            params.append(int(shadow))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT * FROM runs {where} ORDER BY started_epoch {order}, id {order}"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._connection() as conn:
            return [RunRecord.from_row(row) for row in conn.execute(sql, params)]

    def get(self, run_id: int) -> RunRecord | None:
        if not self.exists():
            return None
        with self._connection() as conn:
            row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return RunRecord.from_row(row) if row else None

    def find(self, request_id: str) -> list[RunRecord]:
        """Every run of ``request_id``, oldest first (a request may be re-run)."""
        if not self.exists():
            return []
        with self._connection() as conn:
            rows = conn.execute("SELECT * FROM runs WHERE request_id = ? ORDER BY id", (request_id,))
            return [RunRecord.from_row(row) for row in rows]

    # -- comparisons -------------------------------------------------------
    def record_comparison(
        self,
        *,
        strategy: str,
        control: str,
        candidate: str,
        equivalent: bool,
        differences: Sequence[Any] | Mapping[str, Any] = (),
        report_path: str | Path | None = None,
        created_at: float | None = None,
        source: str = "manual",
        control_run_id: int | None = None,
        candidate_run_id: int | None = None,
    ) -> ComparisonRecord:
        """Record one side-by-side outcome; ``differences`` names the fields that differed.

        ``source`` is ``manual`` for ``ktrdr compare`` and ``shadow`` for a pair
        from real traffic, which names its two runs.
        """
        if source not in COMPARISON_SOURCES:
            raise BadInputError(f"a comparison's source is one of {COMPARISON_SOURCES}, not {source!r}")
        created = time.time() if created_at is None else created_at
        diffs = [differences] if isinstance(differences, Mapping) else list(differences)
        with self._writing() as conn:
            cursor = conn.execute(
                """
                INSERT INTO comparisons (strategy, control, candidate, equivalent, differences,
                                         report_path, created_at, created_epoch, source,
                                         control_run_id, candidate_run_id)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                (
                    strategy,
                    control,
                    candidate,
                    int(bool(equivalent)),
                    json.dumps(diffs, sort_keys=True, default=str),
                    str(report_path) if report_path is not None else None,
                    iso_utc(created),
                    created,
                    source,
                    control_run_id,
                    candidate_run_id,
                ),
            )
            row = conn.execute("SELECT * FROM comparisons WHERE id = ?", (cursor.lastrowid,)).fetchone()
        return ComparisonRecord.from_row(row)

    def comparisons(
        self,
        *,
        control: str | None = None,
        candidate: str | None = None,
        limit: int | None = None,
        source: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[ComparisonRecord]:
        """Comparisons, newest first, optionally for one control/candidate pair, source and window."""
        if not self.exists():
            return []
        clauses: list[str] = []
        params: list[Any] = []
        for clause, value in (
            ("source = ?", source),
            ("created_epoch >= ?", since),
            ("created_epoch <= ?", until),
        ):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        if control is not None:
            clauses.append("control = ?")
            params.append(control)
        if candidate is not None:
            clauses.append("candidate = ?")
            params.append(candidate)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT * FROM comparisons {where} ORDER BY created_epoch DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._connection() as conn:
            return [ComparisonRecord.from_row(row) for row in conn.execute(sql, params)]

    def latest_comparison(
        self, *, control: str | None = None, candidate: str | None = None, source: str | None = None
    ) -> ComparisonRecord | None:
        found = self.comparisons(control=control, candidate=candidate, limit=1, source=source)
        return found[0] if found else None
