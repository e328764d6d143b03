"""The hook points of ktrdr (pluggy project ``"ktrdr"``).

A plugin is a module (or object) with functions decorated by
:data:`ktrdr_core.hookimpl` whose names match the specs below, declared under
the ``ktrdr`` entry-point group::

    [project.entry-points.ktrdr]
    my_mode = "my_package.plugin"

Every hook is documented in ``docs/hooks.md``; a test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from ktrdr_core.cancellation import CancellationSource
    from ktrdr_core.modes import ExecutionMode
    from ktrdr_core.progress import ProgressSink
    from ktrdr_core.report import RunReport
    from ktrdr_core.request import TrainingRequest
    from ktrdr_core.result import TrainingResult
    from ktrdr_core.rollout.policy import Decision, RolloutPolicy
    from ktrdr_core.training.indicators.registry import IndicatorRegistry

PROJECT_NAME = "ktrdr"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_execution_modes(register: Callable[[ExecutionMode], None]) -> None:
    """Register the execution modes this plugin provides.

    Call ``register(mode)`` once per mode. Mode names are global: two
    distributions registering the same name is a configuration error that
    names both. Keep this cheap and free of heavy imports (no torch): it runs
    for ``ktrdr plugins`` and ``ktrdr --help`` paths too.
    """


@hookspec
def progress_sinks(request: TrainingRequest, decision: Decision) -> Iterable[ProgressSink] | None:
    """Return sinks that should receive the progress updates of ``request``.

    Each sink is called as ``sink(epoch, total_epochs, metrics)`` with exactly
    the updates the mode emits (throttled by the mode, not by the sink). A sink
    that raises is logged once and skipped; the training goes on.
    """


@hookspec
def cancellation_sources(request: TrainingRequest) -> Iterable[CancellationSource] | None:
    """Return sources that may cancel ``request`` (signals, deadlines, remote flags).

    The manager calls ``source.attach(token)`` before the mode starts and
    ``source.detach()`` when it returns, whatever the outcome.
    """


@hookspec(firstresult=True)
def select_mode(
    request: TrainingRequest,
    policy: RolloutPolicy,
    modes: Mapping[str, ExecutionMode],
) -> Decision | None:
    """Pick the execution mode for ``request``; the first non-None answer wins.

    The core ships the default (the user-hash rollout of ``policy``) as a
    ``trylast`` implementation. A plugin with its own routing rules implements
    this with ``tryfirst=True`` and returns ``None`` to defer to the default.
    """


@hookspec
def training_started(request: TrainingRequest, decision: Decision) -> None:
    """Told when a training is about to run in ``decision.mode`` (metrics, ledger, audit)."""


@hookspec
def training_finished(
    request: TrainingRequest,
    decision: Decision,
    result: TrainingResult,
    report: RunReport,
) -> None:
    """Told when a training has ended: succeeded, failed or cancelled.

    ``report`` holds what the manager measured (duration, progress intervals,
    cancellation latency). An observer that raises is logged and ignored.
    """


@hookspec
def register_indicators(registry: IndicatorRegistry) -> None:
    """Register the indicator types this plugin provides.

    Call ``registry.register(spec)`` with an
    :class:`~ktrdr_core.training.indicators.IndicatorSpec` per type. Type
    names and aliases are global: taking one that is already registered is an
    error naming both. A plugin whose hook raises contributes no indicators;
    the others are unaffected. Runs once, when the engine first needs the
    registry (not for ``ktrdr --help``).
    """
