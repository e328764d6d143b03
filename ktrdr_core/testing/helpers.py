"""Small public helpers for mode tests: a token that cancels itself, a plugin that registers modes.

Plugins' own tests need both (to cancel at an exact point, to run a mode
through a private plugin manager); they live here so that no plugin keeps a
private copy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ktrdr_core import builtin
from ktrdr_core.cancellation import ThreadingCancellationToken
from ktrdr_core.hookspecs import hookimpl
from ktrdr_core.plugins import KtrdrPluginManager

__all__ = ["CancelAtCheck", "ModeProvider", "plugin_manager_with"]


class CancelAtCheck(ThreadingCancellationToken):
    """Cancels itself on its ``n``-th ``is_cancelled()`` call: a cancel at an exact check, by number.

    A mode checks its token between steps and before every batch, so
    ``CancelAtCheck(1)`` stops it before any work and larger numbers walk the
    cancel through the steps and into the epochs.
    """

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.calls = 0

    def is_cancelled(self) -> bool:
        self.calls += 1
        if self.calls >= self.n:
            self.cancel(reason=f"cancelled at check {self.n}")
        return super().is_cancelled()


class ModeProvider:
    """A plugin whose ``register_execution_modes`` registers the given modes."""

    def __init__(self, *modes: Any) -> None:
        self.modes = modes

    @hookimpl
    def register_execution_modes(self, register: Callable[[Any], None]) -> None:
        for mode in self.modes:
            register(mode)


def plugin_manager_with(
    *modes: Any, distribution: str = "test-modes", version: str = "test"
) -> KtrdrPluginManager:
    """A private plugin manager: the core's default selector plus ``modes``, no entry points."""
    pm = KtrdrPluginManager()
    pm.register_checked(builtin, name="ktrdr-core", distribution="ktrdr-core", version=version)
    pm.register_checked(ModeProvider(*modes), name="provider", distribution=distribution, version=version)
    return pm
