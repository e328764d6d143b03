"""Loading plugins: entry points scanned once, broken plugins isolated.

Entry points of the ``ktrdr`` group are loaded one by one. A plugin whose
import raises, or whose hooks do not match the specs, is unregistered and
recorded with its error (``ktrdr plugins`` shows it); the others load as if
it were not there. ``KTRDR_PLUGINS`` and ``KTRDR_DISABLE_PLUGINS`` (comma
lists of entry-point or distribution names) choose which plugins load.
"""

from __future__ import annotations

import importlib.metadata as metadata
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

import attrs
import pluggy

from ktrdr_core import hookspecs
from ktrdr_core.errors import NoModeInstalledError, PluginConflictError
from ktrdr_core.modes import ExecutionMode
from ktrdr_core.modes import safe_health as safe_health  # re-exported: its callers import it from here

ENTRY_POINT_GROUP = "ktrdr"
ENV_ONLY = "KTRDR_PLUGINS"
ENV_DISABLE = "KTRDR_DISABLE_PLUGINS"
BUILTIN_DISTRIBUTION = "ktrdr-core"

logger = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class PluginInfo:
    """What ``ktrdr plugins`` says about one plugin."""

    name: str
    distribution: str
    version: str
    module: str
    hooks: tuple[str, ...] = ()
    modes: tuple[str, ...] = ()
    error: str | None = None
    disabled: str | None = None
    """Why the plugin was not loaded on purpose (KTRDR_PLUGINS / KTRDR_DISABLE_PLUGINS)."""

    @property
    def loaded(self) -> bool:
        return self.error is None and self.disabled is None


@attrs.frozen
class RegisteredMode:
    mode: ExecutionMode
    plugin: str
    distribution: str


def _env_list(value: str | None) -> set[str]:
    return {item.strip() for item in (value or "").split(",") if item.strip()}


def _hooks_of(pm: pluggy.PluginManager, plugin: object) -> tuple[str, ...]:
    return tuple(sorted(caller.name for caller in pm.get_hookcallers(plugin) or []))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class KtrdrPluginManager(pluggy.PluginManager):
    """The pluggy manager with ktrdr's bookkeeping: plugin infos and the mode registry."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self._infos: dict[str, PluginInfo] = {}
        self._modes: dict[str, RegisteredMode] | None = None
        self._conflicts: list[str] = []
        self._mode_errors: dict[str, str] = {}

    # -- loading -------------------------------------------------------------
    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Register ``plugin`` and forget the collected modes (they may change)."""
        registered = super().register(plugin, name)
        self._modes = None
        return registered

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any:
        self._modes = None
        return super().unregister(plugin, name)

    def register_checked(self, plugin: object, *, name: str, distribution: str, version: str) -> PluginInfo:
        """Register one plugin; on a bad hook, unregister it and record the error."""
        module = getattr(plugin, "__name__", type(plugin).__name__)
        try:
            self.register(plugin, name=name)
            self._check_unknown_hooks(plugin)
        except Exception as exc:  # noqa: BLE001 - isolate this plugin, keep the others
            if self.is_registered(plugin):
                self.unregister(plugin)
            info = PluginInfo(
                name=name, distribution=distribution, version=version, module=module, error=_describe(exc)
            )
        else:
            info = PluginInfo(
                name=name,
                distribution=distribution,
                version=version,
                module=module,
                hooks=_hooks_of(self, plugin),
            )
        self._infos[name] = info
        return info

    def _check_unknown_hooks(self, plugin: object) -> None:
        """A hookimpl named for no spec is a typo the author wants to hear about."""
        for caller in self.get_hookcallers(plugin) or []:
            if caller.spec is None:
                raise pluggy.PluginValidationError(
                    plugin, f"unknown hook {caller.name!r} (no such hook in ktrdr_core.hookspecs)"
                )

    def load_entry_points(self, environ: Mapping[str, str] | None = None) -> None:
        """Load every ``ktrdr`` entry point allowed by the environment."""
        env = os.environ if environ is None else environ
        only, blocked = _env_list(env.get(ENV_ONLY)), _env_list(env.get(ENV_DISABLE))
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist is not None else "unknown"
            version = ep.dist.version if ep.dist is not None else "unknown"
            names = {ep.name, dist}
            disabled = None
            if only and not names & only:
                disabled = f"not listed in {ENV_ONLY}"
            elif names & blocked:
                disabled = f"blocked by {ENV_DISABLE}"
            if disabled:
                self._infos[ep.name] = PluginInfo(
                    name=ep.name, distribution=dist, version=version, module=ep.value, disabled=disabled
                )
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the rest
                logger.warning("plugin %s (%s) failed to load: %s", ep.name, dist, _describe(exc))
                self._infos[ep.name] = PluginInfo(
                    name=ep.name, distribution=dist, version=version, module=ep.value, error=_describe(exc)
                )
                continue
            self.register_checked(plugin, name=ep.name, distribution=dist, version=version)

    # -- modes ---------------------------------------------------------------
    def _collect_modes(self) -> dict[str, RegisteredMode]:
        modes: dict[str, RegisteredMode] = {}
        self._conflicts = []
        self._mode_errors = {}
        for impl in self.hook.register_execution_modes.get_hookimpls():
            info = self._infos.get(impl.plugin_name)
            dist = info.distribution if info else impl.plugin_name

            def register(mode: ExecutionMode, _plugin: str = impl.plugin_name, _dist: str = dist) -> None:
                name = mode.name
                if name in modes and modes[name].distribution != _dist:
                    self._conflicts.append(
                        f"execution mode {name!r} is registered by both "
                        f"{modes[name].distribution} and {_dist}; uninstall or disable one "
                        f"({ENV_DISABLE})"
                    )
                    return
                modes[name] = RegisteredMode(mode, _plugin, _dist)

            try:
                impl.function(register)
            except Exception as exc:  # noqa: BLE001 - isolate a plugin whose hook raises
                self._mode_errors[impl.plugin_name] = _describe(exc)
                logger.warning("plugin %s raised registering modes: %s", impl.plugin_name, exc)
        return modes

    def registered_modes(self) -> dict[str, RegisteredMode]:
        """Every mode with the plugin that registered it (conflicts left out)."""
        if self._modes is None:
            self._modes = self._collect_modes()
        return self._modes

    @property
    def conflicts(self) -> list[str]:
        self.registered_modes()
        return list(self._conflicts)

    def execution_modes(self) -> dict[str, ExecutionMode]:
        """Installed modes by name; a duplicate name is a :class:`PluginConflictError`."""
        registered = self.registered_modes()
        if self._conflicts:
            raise PluginConflictError("; ".join(self._conflicts))
        return {name: entry.mode for name, entry in registered.items()}

    def get_mode(self, name: str) -> ExecutionMode:
        modes = self.execution_modes()
        if not modes:
            raise NoModeInstalledError(
                "no execution mode is installed: pip install ktrdr-legacy and/or ktrdr-unified"
            )
        if name not in modes:
            raise NoModeInstalledError(
                f"execution mode {name!r} is not installed (installed: {', '.join(sorted(modes))})"
            )
        return modes[name]

    # -- reporting -----------------------------------------------------------
    def plugin_infos(self) -> list[PluginInfo]:
        """Every plugin seen, with the modes it registered and any error."""
        registered = self.registered_modes()
        infos = []
        for name, info in sorted(self._infos.items()):
            modes = tuple(sorted(m for m, entry in registered.items() if entry.plugin == name))
            error = info.error or self._mode_errors.get(name)
            infos.append(attrs.evolve(info, modes=modes, error=error))
        return infos


def mode_capacity(pm: KtrdrPluginManager, name: str) -> int | None:
    """How many trainings mode ``name`` can run at once, or None: "use the local limit".

    ``capacity()`` is optional on an execution mode; one that runs its work
    elsewhere (a cluster) has it, so a service admits its trainings by that
    number instead of its local ``--max-concurrent``. It must answer at once
    (a cached value): the service asks on its event loop. An unknown mode, no
    method, or one that raises or answers something else: None.
    """
    try:
        capacity = getattr(pm.get_mode(name), "capacity", None)
        value = capacity() if callable(capacity) else None
    except Exception:  # noqa: BLE001 - never take admission down; fall back to the local limit
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return None
    return value


_lock = threading.Lock()
_manager: KtrdrPluginManager | None = None


def _build_manager() -> KtrdrPluginManager:
    from ktrdr_core import builtin

    pm = KtrdrPluginManager()
    version = metadata.version(BUILTIN_DISTRIBUTION) if _dist_installed() else "dev"
    pm.register_checked(builtin, name="ktrdr-core", distribution=BUILTIN_DISTRIBUTION, version=version)
    from ktrdr_core.training.indicators import plugin as indicator_plugin

    pm.register_checked(
        indicator_plugin, name="ktrdr-indicators", distribution=BUILTIN_DISTRIBUTION, version=version
    )
    from ktrdr_core.ledger.plugin import ledger_enabled, ledger_plugin

    if ledger_enabled(os.environ):  # KTRDR_LEDGER=off skips the run ledger (docs/decisions.md)
        pm.register_checked(
            ledger_plugin, name="ktrdr-ledger", distribution=BUILTIN_DISTRIBUTION, version=version
        )
    pm.load_entry_points()
    return pm


def _dist_installed() -> bool:
    try:
        metadata.distribution(BUILTIN_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return False
    return True


def get_plugin_manager() -> KtrdrPluginManager:
    """The process-wide plugin manager; entry points are scanned on first use only."""
    global _manager
    with _lock:
        if _manager is None:
            _manager = _build_manager()
        return _manager


def reset_plugin_manager() -> None:
    """Forget the cached manager (tests, or after changing KTRDR_PLUGINS)."""
    global _manager
    with _lock:
        _manager = None
