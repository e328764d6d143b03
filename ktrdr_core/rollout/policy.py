"""Deciding which mode a user gets, and saying why in a sentence.

The order of checks is fixed: the exclusion list first (a
partial rollback), then the feature flag, then the hash bucket against the
percentage. A candidate that is missing or unhealthy falls back to the
control mode, and the reason says so.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import attrs

from ktrdr_core.home import ktrdr_home
from ktrdr_core.modes import ModeHealth
from ktrdr_core.request import DEFAULT_USER_ID
from ktrdr_core.rollout.bucket import bucket_for
from ktrdr_core.rollout.settings import ENV_ENABLED, RolloutSettings, overrides_from_env
from ktrdr_core.rollout.store import RolloutStore


@attrs.frozen(kw_only=True)
class Decision:
    """The mode chosen for one request and why."""

    mode: str
    reason: str
    bucket: int
    user_id: str = DEFAULT_USER_ID
    candidate: bool = False
    """True when the user got the rollout's candidate mode."""
    fallback: bool = False
    """True when the candidate was chosen but was missing or unhealthy."""
    forced: bool = False
    """True when the mode was named explicitly (``--mode``) rather than rolled out."""

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


AvailableModes = Mapping[str, ModeHealth] | Collection[str]


def _health_of(available: AvailableModes, name: str) -> ModeHealth | None:
    if isinstance(available, Mapping):
        return available.get(name)
    return ModeHealth.ok() if name in available else None


@attrs.frozen(kw_only=True)
class RolloutPolicy:
    """The rollout settings in force, and where each came from.

    ``sources`` maps each field to ``"env"``, ``"file"`` or ``"default"``.
    """

    settings: RolloutSettings = attrs.field(factory=RolloutSettings)
    sources: Mapping[str, str] = attrs.field(factory=dict)
    raw_enabled: str | None = None
    """The literal ``USE_UNIFIED_TRAINING`` value, to explain a "yes" that is not "true"."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, home: Path | None = None) -> RolloutPolicy:
        """Read the rollout file under ``KTRDR_HOME``, then let the environment win."""
        env = os.environ if environ is None else environ
        store = RolloutStore(home if home is not None else ktrdr_home(env))
        file_data = store.read_raw()
        from_file = store.read()
        from_env = overrides_from_env(env)
        merged = attrs.evolve(from_file, **from_env)
        sources = {
            field: "env" if field in from_env else "file" if field in file_data else "default"
            for field in ("enabled", "percentage", "excluded_users", "control", "candidate")
        }
        return cls(settings=merged, sources=sources, raw_enabled=env.get(ENV_ENABLED, "").strip() or None)

    @property
    def control(self) -> str:
        return self.settings.control

    @property
    def candidate(self) -> str:
        return self.settings.candidate

    def wants_candidate(self, user_id: str) -> tuple[bool, str]:
        """Whether the rollout puts ``user_id`` on the candidate, and the sentence why."""
        s = self.settings
        bucket = bucket_for(user_id)
        if s.completed:
            return False, (
                f"the migration is complete, so {s.control!r} is the only mode "
                "(`ktrdr rollout complete`; `ktrdr rollout restore NAME` undoes it)"
            )
        if user_id in s.excluded_users:
            return False, f"user {user_id!r} is on the rollback list (ROLLBACK_USER_IDS)"
        if not s.enabled:
            if self.raw_enabled is not None and self.raw_enabled.strip().lower() != "true":
                why = f"{ENV_ENABLED} is {self.raw_enabled!r}, not 'true', so the rollout is off"
            else:
                why = f"the rollout is off ({ENV_ENABLED} is not 'true')"
            return False, why
        if s.percentage >= 100:
            return True, "the rollout is at 100 %, so every user is in"
        if s.percentage <= 0:
            return False, "the rollout is enabled at 0 %, so no user is in"
        if bucket < s.percentage:
            return True, f"bucket {bucket} is below the rollout percentage {s.percentage}"
        return False, f"bucket {bucket} is not below the rollout percentage {s.percentage}"

    def decide(self, user_id: str | None, available_modes: AvailableModes) -> Decision:
        """Choose between control and candidate for ``user_id``.

        ``available_modes`` is either the installed mode names (taken as
        healthy) or a mapping of name → :class:`ModeHealth`.
        """
        uid = user_id or DEFAULT_USER_ID
        bucket = bucket_for(uid)
        wants, why = self.wants_candidate(uid)
        if not wants:
            return Decision(
                mode=self.control,
                reason=f"{uid} gets the control mode {self.control!r}: {why}.",
                bucket=bucket,
                user_id=uid,
            )
        health = _health_of(available_modes, self.candidate)
        if health is None:
            return Decision(
                mode=self.control,
                reason=(
                    f"{uid} would get the candidate mode {self.candidate!r} ({why}), "
                    f"but it is not installed, so {uid} falls back to the control mode "
                    f"{self.control!r}."
                ),
                bucket=bucket,
                user_id=uid,
                fallback=True,
            )
        if not health.healthy:
            return Decision(
                mode=self.control,
                reason=(
                    f"{uid} would get the candidate mode {self.candidate!r} ({why}), "
                    f"but it is unhealthy ({health.detail}), so {uid} falls back to the "
                    f"control mode {self.control!r}."
                ),
                bucket=bucket,
                user_id=uid,
                fallback=True,
            )
        return Decision(
            mode=self.candidate,
            reason=f"{uid} gets the candidate mode {self.candidate!r}: {why}.",
            bucket=bucket,
            user_id=uid,
            candidate=True,
        )

    def forced(self, user_id: str | None, mode: str) -> Decision:
        """A decision for a mode named explicitly, bypassing the rollout."""
        uid = user_id or DEFAULT_USER_ID
        return Decision(
            mode=mode,
            reason=f"{uid} gets mode {mode!r} because it was forced (--mode); the rollout was not consulted.",
            bucket=bucket_for(uid),
            user_id=uid,
            candidate=mode == self.candidate,
            forced=True,
        )

    def describe(self) -> dict[str, Any]:
        """Settings, stage and sources, for ``ktrdr rollout status`` and the service."""
        return {
            **self.settings.to_dict(),
            "stage": self.settings.stage,
            "sources": dict(self.sources),
        }
