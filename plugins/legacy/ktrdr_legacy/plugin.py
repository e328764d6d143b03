"""Entry point of ktrdr-legacy: registers the 'legacy' mode.

Kept free of heavy imports (no torch) so that `ktrdr plugins` stays fast;
the mode imports the training engine only when it runs.
"""

from __future__ import annotations

from collections.abc import Callable

from ktrdr_core import ExecutionMode, hookimpl
from ktrdr_legacy.mode import LegacyMode


@hookimpl
def register_execution_modes(register: Callable[[ExecutionMode], None]) -> None:
    register(LegacyMode())
