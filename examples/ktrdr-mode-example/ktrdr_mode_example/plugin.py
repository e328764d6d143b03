"""The entry point ktrdr loads (``[project.entry-points.ktrdr] example = ...``).

Keep this module cheap to import: ``ktrdr plugins`` and ``ktrdr --help``
load it, and must not pay for torch. The mode imports the engine only when
it trains.
"""

from __future__ import annotations

from collections.abc import Callable

from ktrdr_core import ExecutionMode, hookimpl

from ktrdr_mode_example.mode import ExampleMode


@hookimpl
def register_execution_modes(register: Callable[[ExecutionMode], None]) -> None:
    """Tell ktrdr which modes this plugin provides (one call per mode)."""
    register(ExampleMode())
