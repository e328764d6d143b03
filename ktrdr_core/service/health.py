"""``GET /api/v1/health``: is this service able to train, and is its loop responsive?

Status rules (also in docs/service.md):

* ``unhealthy`` (HTTP 503) — no execution mode is installed; the control mode
  is missing or reports itself unhealthy; the rollout configuration cannot be
  read; or the event loop lagged more than ``lag_threshold`` within the last
  ``lag_window`` seconds (the service looks hung).
* ``degraded`` (HTTP 200) — it can train, but something is off: the rollout's
  candidate mode is missing or unhealthy (its users fall back to the control
  mode), or another installed mode is unhealthy, or the run ledger cannot be
  written (new trainings are then refused with 503 until it can).
* ``ok`` (HTTP 200) otherwise.

Mode health checks run on a worker thread with a timeout and are cached for
a couple of seconds (a cloud mode's check may probe a cluster), with at most
one check in flight: the endpoint answers quickly whatever the modes do.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

from ktrdr_core.modes import ModeHealth
from ktrdr_core.plugins import KtrdrPluginManager, safe_health
from ktrdr_core.report import percentile
from ktrdr_core.rollout.policy import RolloutPolicy
from ktrdr_core.service.looplag import EventLoopLagMonitor


class ModeHealthCache:
    """Every installed mode's health, checked off the loop, shared and cached for ``ttl``."""

    def __init__(self, pm: KtrdrPluginManager, *, ttl: float = 2.0, timeout: float = 3.0) -> None:
        self._pm = pm
        self.ttl = ttl
        self.timeout = timeout
        self._cached: tuple[float, dict[str, ModeHealth]] | None = None
        self._inflight: asyncio.Future[dict[str, ModeHealth]] | None = None

    def _check_all(self) -> dict[str, ModeHealth]:
        modes = self._pm.execution_modes()
        return {name: safe_health(mode) for name, mode in sorted(modes.items())}

    async def get(self) -> dict[str, ModeHealth]:
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < self.ttl:
            return self._cached[1]
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.ensure_future(asyncio.to_thread(self._check_all))
        try:
            found = await asyncio.wait_for(asyncio.shield(self._inflight), self.timeout)
        except asyncio.TimeoutError:
            names = sorted(self._pm.registered_modes())
            return {
                name: ModeHealth.unhealthy(f"health check did not answer within {self.timeout:g} s")
                for name in names
            }
        self._cached = (time.monotonic(), found)
        return found


def lag_summary(monitor: EventLoopLagMonitor | None, *, window: float, threshold: float) -> dict[str, Any]:
    """The lag monitor's recent samples, summarised."""
    samples: list[float] = []
    if monitor is not None:
        keep = max(1, math.ceil(window / max(monitor.interval, 1e-3)))
        samples = list(monitor.samples)[-keep:]
    return {
        "last_seconds": samples[-1] if samples else 0.0,
        "max_recent_seconds": max(samples, default=0.0),
        "p99_recent_seconds": (percentile(samples, 99) or 0.0) if samples else 0.0,
        "window_seconds": window,
        "threshold_seconds": threshold,
        "samples": len(samples),
    }


async def evaluate_health(
    *,
    pm: KtrdrPluginManager,
    cache: ModeHealthCache,
    policy_provider: Callable[[], RolloutPolicy],
    monitor: EventLoopLagMonitor | None,
    active_sessions: dict[str, int],
    queue: dict[str, int],
    version: str,
    lag_threshold: float,
    lag_window: float,
    ledger_problem: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """The health body and its HTTP status code."""
    problems: list[str] = []
    warnings: list[str] = []
    try:
        modes = await cache.get()
    except Exception as exc:  # noqa: BLE001 - e.g. two plugins registering one mode name
        modes = {}
        problems.append(f"the execution modes cannot be listed: {exc}")
    control = candidate = None
    try:
        policy = await asyncio.to_thread(policy_provider)
        control, candidate = policy.control, policy.candidate
        rollout_on = policy.settings.enabled and policy.settings.percentage > 0
    except Exception as exc:  # noqa: BLE001 - a malformed rollout file or variable
        problems.append(f"the rollout configuration cannot be read: {exc}")
        rollout_on = False
    if not modes and not problems:
        problems.append("no execution mode is installed: pip install ktrdr-legacy and/or ktrdr-unified")
    elif control is not None and modes:
        if control not in modes:
            problems.append(f"the control mode {control!r} is not installed")
        elif not modes[control].healthy:
            problems.append(f"the control mode {control!r} is unhealthy: {modes[control].detail}")
    if candidate is not None and modes:
        if candidate not in modes:
            if rollout_on:
                warnings.append(
                    f"the candidate mode {candidate!r} is not installed; its users fall back to {control!r}"
                )
        elif not modes[candidate].healthy:
            warnings.append(f"the candidate mode {candidate!r} is unhealthy: {modes[candidate].detail}")
    for name, health in modes.items():
        if name not in (control, candidate) and not health.healthy:
            warnings.append(f"mode {name!r} is unhealthy: {health.detail}")
    if ledger_problem:
        warnings.append(
            f"the run ledger cannot be written ({ledger_problem}): new trainings are "
            "refused with 503 until it can"
        )
    lag = lag_summary(monitor, window=lag_window, threshold=lag_threshold)
    if lag["max_recent_seconds"] > lag_threshold:
        problems.append(
            f"the event loop lagged {lag['max_recent_seconds'] * 1000:.0f} ms in the last "
            f"{lag_window:g} s (threshold {lag_threshold * 1000:.0f} ms)"
        )
    status = "unhealthy" if problems else "degraded" if warnings else "ok"

    def role(name: str) -> str:
        return "control" if name == control else "candidate" if name == candidate else "other"

    body = {
        "status": status,
        "version": version,
        "modes": {
            name: {"healthy": h.healthy, "detail": h.detail, "role": role(name)} for name, h in modes.items()
        },
        "control": control,
        "candidate": candidate,
        "active_sessions": active_sessions,
        "queue": queue,
        "event_loop_lag": lag,
        "problems": problems + warnings,
    }
    return (503 if problems else 200), body
