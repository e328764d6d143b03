"""The core's own hook implementations: the default selector.

Registered by :func:`ktrdr_core.plugins.get_plugin_manager` under the name
``ktrdr-core``, before any entry point, so a plugin can override them
(``tryfirst``) without the core knowing.
"""

from __future__ import annotations

from collections.abc import Mapping

from ktrdr_core.hookspecs import hookimpl
from ktrdr_core.modes import ExecutionMode, ModeHealth, safe_health
from ktrdr_core.request import TrainingRequest
from ktrdr_core.rollout.policy import Decision, RolloutPolicy


@hookimpl(trylast=True)
def select_mode(
    request: TrainingRequest, policy: RolloutPolicy, modes: Mapping[str, ExecutionMode]
) -> Decision:
    """The user-hash rollout (README, "Rollout settings"); health is asked of the candidate only."""
    available: dict[str, ModeHealth] = {}
    for name in (policy.control, policy.candidate):
        if name in modes:
            available[name] = safe_health(modes[name]) if name == policy.candidate else ModeHealth.ok()
    return policy.decide(request.user_id, available)
