"""Entry point of ktrdr-cloud: registers the 'cloud' mode.

Kept free of heavy imports (no torch) so that `ktrdr plugins` stays fast;
the mode imports the training engine only when it runs.
"""

from __future__ import annotations

from collections.abc import Callable

from ktrdr_cloud.mode import CloudMode
from ktrdr_core import ExecutionMode, hookimpl


@hookimpl
def register_execution_modes(register: Callable[[ExecutionMode], None]) -> None:
    register(CloudMode())
