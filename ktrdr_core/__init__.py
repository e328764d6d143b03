"""ktrdr core: hook points, rollout, and the manager that routes trainings to modes.

Importing this package is cheap (no torch): the training engine in
``ktrdr_core.training`` is imported only when a training actually runs.
"""

from ktrdr_core._version import __version__
from ktrdr_core.cancellation import (
    CancellationSource,
    CancellationToken,
    DeadlineCancellation,
    ThreadingCancellationToken,
    create_cancellation_token,
)
from ktrdr_core.errors import (
    BadInputError,
    CancellationError,
    ConfigurationError,
    KtrdrError,
    TrainingFailedError,
)
from ktrdr_core.hookspecs import hookimpl
from ktrdr_core.manager import TrainingManager
from ktrdr_core.modes import ExecutionMode, ModeHealth
from ktrdr_core.plugins import get_plugin_manager
from ktrdr_core.progress import ProgressCallback, ProgressSink
from ktrdr_core.report import RunReport
from ktrdr_core.request import TrainingRequest
from ktrdr_core.result import TrainingResult
from ktrdr_core.rollout import Decision, RolloutPolicy, bucket_for

__all__ = [
    "BadInputError",
    "CancellationError",
    "CancellationSource",
    "CancellationToken",
    "ConfigurationError",
    "DeadlineCancellation",
    "Decision",
    "ExecutionMode",
    "KtrdrError",
    "ModeHealth",
    "ProgressCallback",
    "ProgressSink",
    "RolloutPolicy",
    "RunReport",
    "ThreadingCancellationToken",
    "TrainingFailedError",
    "TrainingManager",
    "TrainingRequest",
    "TrainingResult",
    "__version__",
    "bucket_for",
    "create_cancellation_token",
    "get_plugin_manager",
    "hookimpl",
]
