"""The run ledger: every training run and side-by-side comparison, in SQLite under ``KTRDR_HOME``.

It lets ``ktrdr runs``, the rollout gates and the automatic rollback work
with no server: each process that runs a training writes its own rows.
"""

from ktrdr_core.ledger.schema import MIGRATIONS, SCHEMA_VERSION
from ktrdr_core.ledger.store import (
    FAILED_STATUSES,
    FINISHED_STATUSES,
    LEDGER_FILENAME,
    NOT_COUNTED_KINDS,
    STATUSES,
    ComparisonRecord,
    LedgerWriteError,
    RunLedger,
    RunRecord,
    ledger_path,
)

__all__ = [
    "FAILED_STATUSES",
    "NOT_COUNTED_KINDS",
    "LedgerWriteError",
    "FINISHED_STATUSES",
    "LEDGER_FILENAME",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "STATUSES",
    "ComparisonRecord",
    "RunLedger",
    "RunRecord",
    "ledger_path",
]
