"""Automatic rollback: put the rollout at 0 % when the candidate's error rate is too high.

Enabled in the rollout file::

    "auto_rollback": {"enabled": true, "window_runs": 20, "exclude_failed_users": false}

After each finished candidate run (:class:`AutoRollbackPlugin`, a
lifecycle observer registered by default after the ledger's and called after
it, so the run that tips the error rate is already written), the last
``window_runs`` finished candidate runs *since the rollout was last changed*
are taken — and nothing happens until there are that many. If
``errors / window_runs`` is strictly greater than the current stage's
``error_rate_pct`` (the gate threshold of that stage, ``gates`` in the same
file), the percentage is set to 0 with an ``auto_rollback`` audit entry that
states the measured rate, the threshold and the window. A rate exactly at
the threshold does not trigger (the gate, which wants *strictly below*, does
not pass either: the rollout holds where it is).

Counting only runs since the last rollout change means a rollout re-enabled
after a fix is judged on its own runs, not on the failures that stopped it.
Failures of kind ``bad_input`` (the request could not work anywhere) are
not counted, nor are shadow runs (background candidate runs on users'
requests, ``ktrdr_core.service.shadow``): they are not user traffic. A
custom percentage uses the threshold of the stage below it (1-49 % canary,
51-99 % expanded); nothing is checked while the rollout is off. With
``exclude_failed_users`` the users whose candidate runs failed in the window
are added to the exclusion list in the same change.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from ktrdr_core.errors import ConfigurationError
from ktrdr_core.hookspecs import hookimpl
from ktrdr_core.ledger.store import (
    FAILED_STATUSES,
    FINISHED_STATUSES,
    NOT_COUNTED_KINDS,
    RunLedger,
    RunRecord,
)
from ktrdr_core.ledger.times import iso_utc, parse_audit_timestamp
from ktrdr_core.rollout.gates import GateConfig, exceeds
from ktrdr_core.rollout.policy import RolloutPolicy
from ktrdr_core.rollout.settings import ENV_ENABLED, ENV_PERCENTAGE, RolloutSettings
from ktrdr_core.rollout.store import AuditEntry, RolloutStore

logger = logging.getLogger(__name__)

AUTO_ROLLBACK_ACTION = "auto_rollback"
AUTO_ROLLBACK_ACTOR = "ktrdr-auto-rollback"
ROLLOUT_CHANGING_ACTIONS = frozenset(
    {
        "set_percentage",
        "set_enabled",
        "set_stage",
        "advance",
        "advance_forced",
        "api_update",
        AUTO_ROLLBACK_ACTION,
        "complete",
        "complete_forced",
        "restore",
    }
)
"""Audit actions that change who gets the candidate (exclusions aside)."""


@attrs.frozen(kw_only=True)
class AutoRollbackConfig:
    """The rollout file's ``"auto_rollback"`` section."""

    enabled: bool = False
    window_runs: int = 20
    exclude_failed_users: bool = False

    @classmethod
    def from_mapping(cls, data: Any, *, source: str) -> AutoRollbackConfig:
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"{source}: 'auto_rollback' must be a JSON object")
        values: dict[str, Any] = {}
        for key, value in data.items():
            at = f"{source}: 'auto_rollback.{key}'"
            if key in ("enabled", "exclude_failed_users"):
                if not isinstance(value, bool):
                    raise ConfigurationError(f"{at} must be true or false, got {value!r}")
                values[key] = value
            elif key == "window_runs":
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise ConfigurationError(f"{at} must be a whole number of at least 1, got {value!r}")
                values[key] = value
            else:
                raise ConfigurationError(
                    f"{at} is not an auto_rollback setting (known: enabled, window_runs, "
                    "exclude_failed_users)"
                )
        return cls(**values)


def threshold_stage(settings: RolloutSettings) -> str | None:
    """The stage whose error threshold applies now; ``None`` when the rollout is off."""
    if not settings.enabled or settings.percentage <= 0:
        return None
    stage = settings.stage
    if stage != "custom":
        return stage
    return "canary" if settings.percentage < 50 else "expanded"


def last_rollout_change(store: RolloutStore) -> float | None:
    """When the rollout percentage or flag last changed (audit log), as epoch seconds."""
    for entry in reversed(store.history()):
        if entry.action in ROLLOUT_CHANGING_ACTIONS:
            return parse_audit_timestamp(entry.timestamp)
    return None


@attrs.frozen(kw_only=True)
class RollbackCheck:
    """What the check measured and whether it triggers."""

    stage: str | None
    window_runs: int
    runs: int
    errors: int
    threshold_pct: float | None
    since: float | None
    failed_users: tuple[str, ...] = ()

    @property
    def rate_pct(self) -> float | None:
        return self.errors / self.runs * 100 if self.runs else None

    @property
    def triggered(self) -> bool:
        return (
            self.threshold_pct is not None
            and self.runs >= self.window_runs
            and exceeds(self.errors, self.runs, self.threshold_pct)
        )

    def reason(self, candidate: str) -> str:
        since = f" since {iso_utc(self.since)}" if self.since is not None else ""
        return (
            f"automatic rollback: candidate {candidate!r} error rate {self.rate_pct:.3g} % "
            f"({self.errors} of the last {self.runs} candidate runs{since}) exceeds the "
            f"{self.stage} threshold {self.threshold_pct:g} % (window: {self.window_runs} runs)"
        )


def check(
    ledger: RunLedger,
    settings: RolloutSettings,
    config: AutoRollbackConfig,
    gates: GateConfig,
    *,
    since: float | None,
) -> RollbackCheck:
    """Measure the candidate's error rate over the last ``config.window_runs`` runs."""
    stage = threshold_stage(settings)
    runs: list[RunRecord] = []
    if stage is not None:
        runs = ledger.runs(
            mode=settings.candidate,
            status=FINISHED_STATUSES,
            since=since,
            exclude_error_kind=NOT_COUNTED_KINDS,
            limit=config.window_runs,
            shadow=False,
        )
    failed = sorted({r.user_id for r in runs if r.status in FAILED_STATUSES})
    return RollbackCheck(
        stage=stage,
        window_runs=config.window_runs,
        runs=len(runs),
        errors=sum(1 for r in runs if r.status in FAILED_STATUSES),
        threshold_pct=gates[stage].error_rate_pct if stage else None,
        since=since,
        failed_users=tuple(failed),
    )


def maybe_auto_rollback(
    ledger: RunLedger,
    finished: RunRecord | None = None,
    *,
    home: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> AuditEntry | None:
    """Roll the candidate back to 0 % if the check triggers; returns the audit entry written.

    ``finished`` is the run that just ended; a run of any other mode than the
    candidate is not the candidate's business and returns at once.
    """
    store = RolloutStore(home)
    raw = store.read_raw()
    source = str(store.settings_path)
    config = AutoRollbackConfig.from_mapping(raw.get("auto_rollback"), source=source)
    if not config.enabled:
        return None
    policy = RolloutPolicy.from_env(environ, home=store.home)
    settings = policy.settings
    if finished is not None and finished.mode != settings.candidate:
        return None
    gates = GateConfig.from_mapping(raw.get("gates"), source=source)
    result = check(ledger, settings, config, gates, since=last_rollout_change(store))
    if not result.triggered:
        return None

    reason = result.reason(settings.candidate)
    if config.exclude_failed_users and result.failed_users:
        reason += f"; excluded the users whose runs failed: {', '.join(result.failed_users)}"
    overridden = [
        name
        for name, field in ((ENV_PERCENTAGE, "percentage"), (ENV_ENABLED, "enabled"))
        if policy.sources.get(field) == "env"
    ]
    if overridden:
        reason += (
            f"; WARNING: {', '.join(overridden)} set in the environment wins over the "
            "rollout file, so unset it for the rollback to apply"
        )

    def roll_back(data: dict[str, Any]) -> dict[str, Any]:
        updates: dict[str, Any] = {"percentage": 0}
        if config.exclude_failed_users and result.failed_users:
            users = set(data.get("excluded_users") or []) | set(result.failed_users)
            updates["excluded_users"] = sorted(users)
        return updates

    return store.change(AUTO_ROLLBACK_ACTION, roll_back, reason=reason, actor=AUTO_ROLLBACK_ACTOR)


def auto_rollback_state(store: RolloutStore) -> dict[str, Any]:
    """For ``ktrdr rollout status``: the config, and whether the rollout stands rolled back."""
    raw = store.read_raw()
    config = AutoRollbackConfig.from_mapping(raw.get("auto_rollback"), source=str(store.settings_path))
    history = store.history()
    last = next((e for e in reversed(history) if e.action == AUTO_ROLLBACK_ACTION), None)
    last_change = next((e for e in reversed(history) if e.action in ROLLOUT_CHANGING_ACTIONS), None)
    # Rolled back until someone changes the rollout by hand after the automatic rollback.
    active = last is not None and last_change is last
    return {
        **attrs.asdict(config),
        "rolled_back": active,
        "last": last.to_dict() if last is not None else None,
    }


class AutoRollbackPlugin:
    """Runs :func:`maybe_auto_rollback` after each finished run, once the ledger has written it.

    ``trylast``, so the ledger's own observer (a plain one) has completed the
    run's row first. A run the ledger could not write (kept in memory for a
    retry) is not judged: its row is still ``running``.
    """

    @hookimpl(trylast=True)
    def training_finished(self, request: Any) -> None:
        try:
            ledger = RunLedger()
            finished = [
                run
                for run in ledger.find(request.request_id)
                if run.status in FINISHED_STATUSES and not run.shadow
            ]
            if finished:
                maybe_auto_rollback(ledger, finished[-1])
        except Exception:  # noqa: BLE001 - a broken rollout file must not fail the training
            logger.exception("automatic-rollback check failed")
