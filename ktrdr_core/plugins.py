"""Loading plugins: the core's default plugins, then entry points scanned once, broken plugins isolated.

The core's own plugins come from one list, :data:`DEFAULT_PLUGINS`, and are
registered first (so an installed plugin can override them). Entry points of
the ``ktrdr`` group are loaded one by one after them. A plugin whose import
raises, or whose hooks do not match the specs, is unregistered and recorded
with its error (``ktrdr plugins`` shows it); the others load as if it were
not there. A hook implementation that raises when called is isolated the
same way (see :mod:`ktrdr_core.hookcalls`). ``KTRDR_PLUGINS`` and
``KTRDR_DISABLE_PLUGINS`` (comma lists of entry-point or distribution names)
choose which entry points load.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib.metadata as metadata
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs
import pluggy

from ktrdr_core import builtin, hookspecs, pluginhost
from ktrdr_core.errors import ConfigurationError, NoModeInstalledError, PluginConflictError
from ktrdr_core.hookcalls import HookCalls
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


_failures: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "ktrdr_hook_failures", default=None
)
"""While :meth:`KtrdrPluginManager.failures` is open: plugin name -> the error its impl raised."""

_HookExec = Callable[[str, Sequence[pluggy.HookImpl], Mapping[str, object], bool], Any]


class KtrdrPluginManager(pluggy.PluginManager):
    """The pluggy manager with ktrdr's bookkeeping: plugin infos, isolated hook calls, the mode registry.

    Hooks are called through :attr:`calls` (typed, one method per hook). Every
    call runs pluggy's own machinery; the manager only puts each plain
    implementation of a non-``firstresult`` hook inside a guard that records
    and skips an exception, so monitoring and wrappers see the real call.
    """

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self._infos: dict[str, PluginInfo] = {}
        self._modes: dict[str, RegisteredMode] | None = None
        self._conflicts: list[str] = []
        self._hook_errors: dict[tuple[str, str], str] = {}
        self._guarded: dict[tuple[str, int], tuple[pluggy.HookImpl, pluggy.HookImpl]] = {}
        """(hook, id(impl)) -> (impl, its guarded copy): built once per impl, dropped on unregister."""
        self.calls = HookCalls(self)
        """The hooks, typed; use these instead of ``self.hook``."""
        plain: _HookExec = self._inner_hookexec
        # pluggy's monitoring (add_hookcall_monitoring) wraps whatever is here, so it sees every call
        self._inner_hookexec = functools.partial(self._isolating_hookexec, plain)

    # -- isolated calls --------------------------------------------------------
    def _isolating_hookexec(
        self,
        plain: _HookExec,
        hook_name: str,
        impls: Sequence[pluggy.HookImpl],
        kwargs: Mapping[str, object],
        firstresult: bool,
    ) -> Any:
        impls = [self._isolated(hook_name, impl, firstresult) for impl in impls]
        return plain(hook_name, impls, kwargs, firstresult)

    def _isolated(self, hook_name: str, impl: pluggy.HookImpl, firstresult: bool) -> pluggy.HookImpl:
        if impl.wrapper or impl.hookwrapper:
            return impl
        cached = self._guarded.get((hook_name, id(impl)))
        if cached is not None and cached[0] is impl:
            return cached[1]
        guarded = self._guard(hook_name, impl, firstresult)
        self._guarded[(hook_name, id(impl))] = (impl, guarded)
        return guarded

    def _guard(self, hook_name: str, impl: pluggy.HookImpl, firstresult: bool) -> pluggy.HookImpl:
        """Skip what raises; for a ``firstresult`` hook (the selector) stop the call, naming the plugin.

        A selector that raises must not hand the request to the next one
        silently: it becomes a :class:`ConfigurationError` (the CLI's exit 2,
        the service's 503) that names the plugin and how to turn it off.
        """
        function, plugin_name = impl.function, impl.plugin_name

        @functools.wraps(function)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                value = function(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - one plugin's bug must not stop the others
                description = self.record_failure(plugin_name, hook_name, exc)
                if firstresult:
                    raise ConfigurationError(
                        f"plugin {plugin_name} raised in {hook_name}: {description} "
                        f"(fix it, or leave it out with {ENV_DISABLE}={plugin_name})"
                    ) from exc
                return None
            self._hook_errors.pop((plugin_name, hook_name), None)
            return value

        return pluggy.HookImpl(impl.plugin, plugin_name, guarded, impl.opts)

    def record_failure(self, plugin_name: str, hook_name: str, exc: Exception) -> str:
        """Log and keep what ``plugin_name``'s ``hook_name`` raised (``ktrdr plugins`` shows it)."""
        description = _describe(exc)
        self._hook_errors[(plugin_name, hook_name)] = description
        failed = _failures.get()
        if failed is not None:
            failed[plugin_name] = description
        logger.warning("plugin %s raised in %s: %s", plugin_name, hook_name, description)
        logger.debug("traceback of plugin %s in %s", plugin_name, hook_name, exc_info=exc)
        return description

    def record_wrapper_failure(self, hook_name: str, exc: Exception) -> None:
        """A whole call raised: only a wrapper can, so it is recorded against the hook's wrappers."""
        caller = getattr(self.hook, hook_name)
        wrappers = {impl.plugin_name for impl in caller.get_hookimpls() if impl.wrapper or impl.hookwrapper}
        for plugin_name in sorted(wrappers) or ["(unknown)"]:
            self.record_failure(plugin_name, hook_name, exc)

    @contextlib.contextmanager
    def failures(self) -> Iterator[dict[str, str]]:
        """Collect, by plugin name, the implementations that raise in the calls made inside."""
        failed: dict[str, str] = {}
        token = _failures.set(failed)
        try:
            yield failed
        finally:
            _failures.reset(token)

    def hook_errors(self, plugin_name: str) -> dict[str, str]:
        """Hook name -> what ``plugin_name``'s implementation raised the last time it was called."""
        return {
            hook: error
            for (plugin, hook), error in sorted(self._hook_errors.items())
            if plugin == plugin_name
        }

    # -- loading -------------------------------------------------------------
    def _implements(self, plugin: object, hook_name: str) -> bool:
        return any(caller.name == hook_name for caller in self.get_hookcallers(plugin) or [])

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Register ``plugin``; the mode registry is rebuilt only if ``plugin`` registers modes."""
        registered = super().register(plugin, name)
        if self._implements(plugin, "register_execution_modes"):
            self._modes = None
        return registered

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any:
        """Unregister; the mode registry is rebuilt only if the plugin had registered modes."""
        target = plugin if plugin is not None else (self.get_plugin(name) if name is not None else None)
        if (
            target is not None
            and self.is_registered(target)
            and self._implements(target, "register_execution_modes")
        ):
            self._modes = None
        removed = super().unregister(plugin, name)
        if removed is not None:
            self._guarded = {
                key: pair for key, pair in self._guarded.items() if pair[0].plugin is not removed
            }
        return removed

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

        def register_for(plugin: str) -> Callable[[ExecutionMode], None]:
            info = self._infos.get(plugin)
            dist = info.distribution if info else plugin

            def register(mode: ExecutionMode) -> None:
                name = mode.name
                if name in modes and modes[name].distribution != dist:
                    self._conflicts.append(
                        f"execution mode {name!r} is registered by both "
                        f"{modes[name].distribution} and {dist}; uninstall or disable one "
                        f"({ENV_DISABLE})"
                    )
                    return
                modes[name] = RegisteredMode(mode, plugin, dist)

            return register

        for _plugin, _error in self.calls.register_execution_modes(register_for):
            pass  # one that raised is recorded (plugin_infos shows it); the modes it did register stay
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
            hook_errors = self.hook_errors(name)
            error = info.error or next((f"{hook}: {text}" for hook, text in hook_errors.items()), None)
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


# -- the core's own plugins ---------------------------------------------------------
# Each is loaded when the manager is built, not when this module is imported: the
# ledger (SQLite), the rollout's auto-rollback and the engine's indicator package
# stay out of ``import ktrdr_core``.


def _always(environ: Mapping[str, str]) -> bool:
    return True


def _ledger_on(environ: Mapping[str, str]) -> bool:
    from ktrdr_core.ledger.plugin import ledger_enabled

    return ledger_enabled(environ)  # KTRDR_LEDGER=off skips the run ledger (docs/decisions.md)


def _selector() -> object:
    return builtin


def _indicators() -> object:
    from ktrdr_core.training.indicators import plugin

    return plugin


def _ledger() -> object:
    from ktrdr_core.ledger.plugin import ledger_plugin

    return ledger_plugin


def _auto_rollback() -> object:
    from ktrdr_core.rollout.autorollback import AutoRollbackPlugin

    return AutoRollbackPlugin()


@attrs.frozen
class DefaultPlugin:
    """One of the core's own plugins: registered before any entry point, like any plugin."""

    name: str
    load: Callable[[], object]
    enabled: Callable[[Mapping[str, str]], bool] = _always
    """Whether the environment wants it (the ledger and its auto-rollback can be turned off)."""


DEFAULT_PLUGINS: tuple[DefaultPlugin, ...] = (
    DefaultPlugin("ktrdr-core", _selector),
    DefaultPlugin("ktrdr-indicators", _indicators),
    DefaultPlugin("ktrdr-ledger", _ledger, _ledger_on),
    DefaultPlugin("ktrdr-auto-rollback", _auto_rollback, _ledger_on),
)
"""The core's plugins, in registration order (docs/hooks.md lists what each implements)."""


def _build_manager(environ: Mapping[str, str] | None = None) -> KtrdrPluginManager:
    env = os.environ if environ is None else environ
    pm = KtrdrPluginManager()
    version = metadata.version(BUILTIN_DISTRIBUTION) if _dist_installed() else "dev"
    for default in DEFAULT_PLUGINS:
        if default.enabled(env):
            pm.register_checked(
                default.load(), name=default.name, distribution=BUILTIN_DISTRIBUTION, version=version
            )
    pm.load_entry_points(env)
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


pluginhost.provide(get_plugin_manager)  # the engine finds indicator plugins through this
