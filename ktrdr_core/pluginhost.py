"""Where code below the loader finds the process's plugin manager.

The engine looks indicator types up among the loaded plugins, but the loader
(:mod:`ktrdr_core.plugins`) sits above the engine: it registers the engine's
built-in indicators as one of its default plugins. So the loader installs its
getter here when it is imported (importing anything of ``ktrdr_core`` does,
through the package's ``__init__``) and the engine asks here: both depend on
this module, neither on the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_getter: Callable[[], Any] | None = None


def provide(getter: Callable[[], Any]) -> None:
    """Install the function that returns the process-wide plugin manager (the loader does)."""
    global _getter
    _getter = getter


def plugin_manager() -> Any:
    """The process-wide plugin manager, as the loader builds it (entry points scanned once)."""
    if _getter is None:
        raise RuntimeError("no plugin loader is installed: import ktrdr_core (its loader installs itself)")
    return _getter()
