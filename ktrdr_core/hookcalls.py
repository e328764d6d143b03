"""Typed calls of the hooks: one method per hook, each going through pluggy's own call machinery.

Every call is a pluggy ``HookCaller`` call, so hook-call monitoring
(``pm.add_hookcall_monitoring``) sees it, ``wrapper=True`` and
``hookwrapper=True`` implementations wrap it and ``tryfirst``/``trylast``
order it. The plugin manager (:class:`ktrdr_core.plugins.KtrdrPluginManager`)
isolates each plain implementation of a hook that is not ``firstresult``: one
that raises is logged, recorded against its plugin (``ktrdr plugins`` shows
it) and skipped, and the others still answer. A selector (``select_mode``,
``firstresult``) that raises is recorded too, but stops the request with a
:class:`~ktrdr_core.errors.ConfigurationError` naming it: routing by another
rule instead would be a silent surprise. A wrapper is trusted like the
call itself: if one raises, the call is logged and recorded against the
hook's wrapper plugins and answers nothing.

The two registration hooks are called once per plugin (pluggy's
``subset_hook_caller``), each plugin with its own ``register``/``registry``
argument, so what a plugin registers is attributed to it (and, for
indicators, dropped whole if it fails); a wrapper there wraps its own
plugin's implementation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ktrdr_core.errors import ConfigurationError
from ktrdr_core.rollout.policy import Decision

if TYPE_CHECKING:
    from ktrdr_core.cancellation import CancellationSource
    from ktrdr_core.modes import ExecutionMode
    from ktrdr_core.plugins import KtrdrPluginManager
    from ktrdr_core.progress import ProgressCallback
    from ktrdr_core.report import RunReport
    from ktrdr_core.request import TrainingRequest
    from ktrdr_core.result import TrainingResult
    from ktrdr_core.rollout.policy import RolloutPolicy

logger = logging.getLogger(__name__)


class HookCalls:
    """The hooks of one plugin manager, called with their spec's arguments and result types."""

    def __init__(self, pm: KtrdrPluginManager) -> None:
        self._pm = pm

    # -- routing (a selector that raises is an error naming it, never a silent fallback) --------
    def select_mode(
        self, *, request: TrainingRequest, policy: RolloutPolicy, modes: Mapping[str, ExecutionMode]
    ) -> Decision:
        decision = self._pm.hook.select_mode(request=request, policy=policy, modes=modes)
        if not isinstance(decision, Decision):
            raise ConfigurationError(f"the selector returned {decision!r} instead of a Decision")
        return decision

    # -- per request -----------------------------------------------------------------------------
    def progress_sinks(self, *, request: TrainingRequest, decision: Decision) -> list[ProgressCallback]:
        return [
            sink
            for found in self._each("progress_sinks", request=request, decision=decision)
            for sink in found
        ]

    def cancellation_sources(self, *, request: TrainingRequest) -> list[CancellationSource]:
        return [source for found in self._each("cancellation_sources", request=request) for source in found]

    def training_started(self, *, request: TrainingRequest, decision: Decision) -> None:
        self._each("training_started", request=request, decision=decision)

    def training_finished(
        self, *, request: TrainingRequest, decision: Decision, result: TrainingResult, report: RunReport
    ) -> None:
        self._each("training_finished", request=request, decision=decision, result=result, report=report)

    # -- registration, one plugin at a time ------------------------------------------------------
    def register_execution_modes(
        self, register_for: Callable[[str], Callable[[ExecutionMode], None]]
    ) -> Iterator[tuple[str, str | None]]:
        """Each plugin's ``register_execution_modes(register_for(plugin))``; yields (plugin, its error)."""
        return self._per_plugin("register_execution_modes", lambda name: {"register": register_for(name)})

    def register_indicators(
        self, registry_for: Callable[[str], Any], *, first: str | None = None
    ) -> Iterator[tuple[str, str | None]]:
        """Each plugin's ``register_indicators(registry_for(plugin))`` (``first`` before the others).

        Lazy: each (plugin, error) is yielded right after that plugin's call,
        so the caller commits what it registered before the next plugin runs
        and a later plugin meets the names already taken.
        """
        return self._per_plugin("register_indicators", lambda name: {"registry": registry_for(name)}, first)

    # -- the machinery -----------------------------------------------------------------------------
    def _each(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """One pluggy call of a hook; the manager isolates its plain implementations."""
        try:
            return list(getattr(self._pm.hook, hook_name)(**kwargs))
        except Exception as exc:  # noqa: BLE001 - only a wrapper can raise here
            self._pm.record_wrapper_failure(hook_name, exc)
            return []

    def _per_plugin(
        self, hook_name: str, kwargs_for: Callable[[str], Mapping[str, Any]], first: str | None = None
    ) -> Iterator[tuple[str, str | None]]:
        caller = getattr(self._pm.hook, hook_name)
        plugins: dict[str, object] = {}
        for impl in reversed(caller.get_hookimpls()):  # pluggy's call order
            plugins.setdefault(impl.plugin_name, impl.plugin)
        order = sorted(plugins, key=lambda name: name != first)
        for name in order:
            others = [plugin for other, plugin in plugins.items() if other != name]
            subset = self._pm.subset_hook_caller(hook_name, remove_plugins=others)
            with self._pm.failures() as failed:
                try:
                    subset(**kwargs_for(name))
                except Exception as exc:  # noqa: BLE001 - its wrapper raised: this plugin failed
                    failed[name] = self._pm.record_failure(name, hook_name, exc)
            yield name, failed.get(name)
