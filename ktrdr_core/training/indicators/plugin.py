"""The core-internal plugin that registers the built-in indicators through the hook.

Registered by :func:`ktrdr_core.plugins.get_plugin_manager` under the name
``ktrdr-indicators``, like any plugin, so the built-ins are no side door. The
library (TA-Lib) is imported only when the hook runs, not when plugins load.
"""

from __future__ import annotations

from typing import Any

from ktrdr_core.hookspecs import hookimpl


@hookimpl
def register_indicators(registry: Any) -> None:
    from ktrdr_core.training.indicators.builtin import BUILTIN_SPECS

    for spec in BUILTIN_SPECS:
        registry.register(spec)
