"""What the installed ``ktrdr`` entry points provide: the way a user's ktrdr finds a mode.

A mode that passes the contract suite but that no installed entry point
registers cannot be picked by the rollout or ``--mode``; these helpers look
at the entry points exactly as ``ktrdr`` does (a fresh plugin manager that
loads them), so the kit can check the author's packaging too.
"""

from __future__ import annotations

from typing import Any

import attrs

from ktrdr_core.plugins import ENTRY_POINT_GROUP, KtrdrPluginManager, PluginInfo, RegisteredMode
from ktrdr_core.testing.checks import ContractViolation

__all__ = ["InstalledModes", "entry_point_problems", "installed_mode", "installed_modes"]

#: where the guide says how to declare the entry point
ENTRY_POINT_PAGE = "docs/plugin-authors.md#2-declare-the-entry-point"


@attrs.frozen
class InstalledModes:
    """Every mode the installed entry points register, and the plugins that failed to."""

    modes: dict[str, RegisteredMode]
    plugins: list[PluginInfo]

    def broken(self) -> list[str]:
        return [f"{info.name} ({info.distribution}): {info.error}" for info in self.plugins if info.error]

    def describe(self) -> str:
        names = ", ".join(sorted(self.modes)) or "none"
        broken = self.broken()
        text = f"installed modes: {names}"
        if broken:
            text += f"; plugins that failed to load: {'; '.join(broken)}"
        return text


def installed_modes() -> InstalledModes:
    """Load every ``ktrdr`` entry point into a private plugin manager (KTRDR_PLUGINS ignored)."""
    pm = KtrdrPluginManager()
    pm.load_entry_points(environ={})
    registered = pm.registered_modes()
    return InstalledModes(modes=dict(registered), plugins=pm.plugin_infos())


def installed_mode(name: str) -> Any:
    """The mode ``name`` as the installed entry points register it; ContractViolation if none does."""
    found = installed_modes()
    entry = found.modes.get(name)
    if entry is None:
        raise ContractViolation(
            f"no installed `{ENTRY_POINT_GROUP}` entry point registers a mode named {name!r} "
            f"({found.describe()}); declare the plugin under [project.entry-points.{ENTRY_POINT_GROUP}] "
            f"and pip install it into this environment ({ENTRY_POINT_PAGE})"
        )
    return entry.mode


def entry_point_problems(mode: Any) -> list[str]:
    """Why the installed entry points would not give ktrdr this ``mode``; [] when they do."""
    name = getattr(mode, "name", None)
    found = installed_modes()
    entry = found.modes.get(name) if isinstance(name, str) else None
    if entry is None:
        return [
            f"no installed `{ENTRY_POINT_GROUP}` entry point registers a mode named {name!r}, so "
            f"`ktrdr train --mode {name}` and the rollout cannot find it ({found.describe()}); declare "
            f"the plugin under [project.entry-points.{ENTRY_POINT_GROUP}] and `pip install -e .` "
            f"again after changing it ({ENTRY_POINT_PAGE})"
        ]
    tested, installed = type(mode), type(entry.mode)
    if (tested.__module__, tested.__qualname__) != (installed.__module__, installed.__qualname__):
        return [
            f"the installed entry point {entry.plugin!r} ({entry.distribution}) registers mode {name!r} "
            f"as {installed.__module__}.{installed.__qualname__}, but the suite tests "
            f"{tested.__module__}.{tested.__qualname__}: users get the installed one; register the class "
            f"under test, or reinstall the plugin ({ENTRY_POINT_PAGE})"
        ]
    return []
