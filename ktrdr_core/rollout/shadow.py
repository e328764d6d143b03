"""The shadow stage's settings: what share of control-routed requests also runs the candidate.

Set in the rollout file (``ktrdr rollout shadow PCT``, or ``PUT
/api/v1/rollout/shadow``)::

    "shadow": {"percentage": 100, "max_concurrent": 1}

A request is sampled by its request id (``md5 % 100 < percentage``). What
runs the shadow pairs, and how the user's run is protected from them, is
:mod:`ktrdr_core.service.shadow`: only a long-lived process shadows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import attrs

from ktrdr_core.errors import ConfigurationError
from ktrdr_core.rollout.store import AuditEntry, RolloutStore

SHADOW_KEY = "shadow"
SET_SHADOW_ACTION = "set_shadow"


@attrs.frozen(kw_only=True)
class ShadowConfig:
    """The rollout file's ``"shadow"`` section."""

    percentage: int = 0
    max_concurrent: int = 1

    @classmethod
    def from_mapping(cls, data: Any, *, source: str) -> ShadowConfig:
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"{source}: 'shadow' must be a JSON object")
        values: dict[str, Any] = {}
        for key, value in data.items():
            at = f"{source}: 'shadow.{key}'"
            whole = isinstance(value, int) and not isinstance(value, bool)
            if key == "percentage":
                if not (whole and 0 <= value <= 100):
                    raise ConfigurationError(f"{at} must be a whole number from 0 to 100, got {value!r}")
                values[key] = value
            elif key == "max_concurrent":
                if not (whole and 1 <= value <= 64):
                    raise ConfigurationError(f"{at} must be a whole number from 1 to 64, got {value!r}")
                values[key] = value
            else:
                raise ConfigurationError(f"{at} is not a shadow setting (known: percentage, max_concurrent)")
        return cls(**values)

    @classmethod
    def read(cls, store: RolloutStore) -> ShadowConfig:
        return cls.from_mapping(store.read_raw().get(SHADOW_KEY), source=str(store.settings_path))


def set_shadow_percentage(
    store: RolloutStore, percentage: int, *, reason: str, actor: str | None = None
) -> AuditEntry | None:
    """Set ``shadow.percentage`` in the rollout file, audited as ``set_shadow``."""

    def change(data: dict[str, Any]) -> dict[str, Any]:
        current = data.get(SHADOW_KEY)
        section = dict(current) if isinstance(current, Mapping) else {}
        section["percentage"] = percentage
        ShadowConfig.from_mapping(section, source=str(store.settings_path))
        return {SHADOW_KEY: section}

    return store.change(SET_SHADOW_ACTION, change, reason=reason, actor=actor)


def sampled(request_id: str, percentage: int) -> bool:
    """Whether the request falls in the shadowed share (deterministic by request id)."""
    return int(hashlib.md5(request_id.encode()).hexdigest(), 16) % 100 < percentage
