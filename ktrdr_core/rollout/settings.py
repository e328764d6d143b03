"""Rollout settings: parsed from the environment and the rollout file.

The environment variables keep their established names and meaning (README, "Rollout settings"); when
one is set it wins over the file that ``ktrdr rollout ...`` edits, so an
operator's ``export UNIFIED_TRAINING_ROLLOUT_PERCENTAGE=0`` is always the
last word. Malformed values are configuration errors, never guesses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import attrs

from ktrdr_core.errors import ConfigurationError

ENV_ENABLED = "USE_UNIFIED_TRAINING"
ENV_PERCENTAGE = "UNIFIED_TRAINING_ROLLOUT_PERCENTAGE"
ENV_EXCLUDED = "ROLLBACK_USER_IDS"
ENV_CONTROL = "KTRDR_ROLLOUT_CONTROL"
ENV_CANDIDATE = "KTRDR_ROLLOUT_CANDIDATE"

ENV_FOR_FIELD = {
    "enabled": ENV_ENABLED,
    "percentage": ENV_PERCENTAGE,
    "excluded_users": ENV_EXCLUDED,
    "control": ENV_CONTROL,
    "candidate": ENV_CANDIDATE,
}

KNOWN_FILE_KEYS: tuple[str, ...] = (
    "version",
    "enabled",
    "percentage",
    "excluded_users",
    "control",
    "candidate",
    "completed",
    "shadow",
    "auto_rollback",
    "gates",
    "rollback_points",
)
"""Every top-level key the rollout file may hold; anything else (a typo such as
``"percentag"``) is an error rather than a setting silently ignored. A module
that stores a new section adds its key here."""

MODE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

StageName = Literal["off", "canary", "expanded", "full"]
"""The rollout stages' names, in order, for type checkers and the HTTP API's schema."""

STAGES: dict[str, tuple[bool, int]] = {
    "off": (False, 0),
    "canary": (True, 10),
    "expanded": (True, 50),
    "full": (True, 100),
}
"""The rollout stages (docs/runbook.md), in order: name -> (flag, percentage). The one stage
list: the CLI's choices, the HTTP API's ``stage``, the gates' next stage all come from here
(a test keeps :data:`StageName` equal to its keys)."""


def stage_descriptions() -> str:
    """``off (0 %, disabled), canary (10 %), ...``: the stages for help texts and the API schema."""
    return ", ".join(
        f"{name} ({pct} %{'' if flag else ', disabled'})" for name, (flag, pct) in STAGES.items()
    )


def stage_for(enabled: bool, percentage: int) -> str:
    """The stage name these settings amount to, or ``custom`` between stages."""
    if not enabled or percentage <= 0:
        return "off"
    for name, (_flag, pct) in STAGES.items():
        if pct == percentage:
            return name
    return "custom"


def parse_enabled(raw: str) -> bool:
    """Exactly ``true`` (any case) enables the rollout; anything else leaves it off."""
    return raw.strip().lower() == "true"


def parse_percentage(raw: Any, *, source: str) -> int:
    """A whole number 0–100; anything else is a :class:`ConfigurationError`."""
    if isinstance(raw, bool):
        raise ConfigurationError(f"{source} must be a whole number from 0 to 100, got {raw!r}")
    if isinstance(raw, int):
        value = raw
    else:
        text = str(raw).strip()
        if not re.fullmatch(r"[+-]?\d+", text):
            raise ConfigurationError(f"{source} must be a whole number from 0 to 100, got {str(raw)!r}")
        value = int(text)
    if not 0 <= value <= 100:
        raise ConfigurationError(f"{source} must be between 0 and 100, got {value}")
    return value


def parse_user_list(raw: str | Iterable[str]) -> frozenset[str]:
    """A comma list (or iterable) of user ids; blanks dropped."""
    items = raw.split(",") if isinstance(raw, str) else raw
    return frozenset(item.strip() for item in items if item and item.strip())


def parse_mode_name(raw: str, *, source: str) -> str:
    text = raw.strip()
    if not MODE_NAME_PATTERN.fullmatch(text):
        raise ConfigurationError(f"{source} must be a mode name such as 'unified', got {raw!r}")
    return text


@attrs.frozen(kw_only=True)
class RolloutSettings:
    """The rollout as configured: who gets the candidate mode instead of the control."""

    enabled: bool = False
    percentage: int = 0
    excluded_users: frozenset[str] = attrs.field(factory=frozenset, converter=frozenset)
    control: str = "legacy"
    candidate: str = "unified"
    completed: bool = False
    """Phase 3 done (``ktrdr rollout complete``): the control is the only mode; nobody is rolled out."""

    def __attrs_post_init__(self) -> None:
        if self.control == self.candidate and not self.completed:
            raise ConfigurationError(
                f"the control and candidate modes are both {self.control!r}; they must differ"
            )

    @property
    def stage(self) -> str:
        return stage_for(self.enabled, self.percentage)

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "percentage": self.percentage,
            "excluded_users": sorted(self.excluded_users),
            "control": self.control,
            "candidate": self.candidate,
            "completed": self.completed,
        }

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str) -> RolloutSettings:
        """Settings from the rollout file's JSON object; ``source`` names the file in errors."""
        values: dict[str, Any] = {}
        for flag in ("enabled", "completed"):
            if flag in data:
                if not isinstance(data[flag], bool):
                    raise ConfigurationError(f"{source}: {flag!r} must be true or false")
                values[flag] = data[flag]
        if "percentage" in data:
            values["percentage"] = parse_percentage(data["percentage"], source=f"{source}: 'percentage'")
        if "excluded_users" in data:
            users = data["excluded_users"]
            if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
                raise ConfigurationError(f"{source}: 'excluded_users' must be a list of user ids")
            values["excluded_users"] = parse_user_list(users)
        for key in ("control", "candidate"):
            if key in data:
                if not isinstance(data[key], str):
                    raise ConfigurationError(f"{source}: {key!r} must be a mode name")
                values[key] = parse_mode_name(data[key], source=f"{source}: {key!r}")
        return cls(**values)


def overrides_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings the environment sets, parsed; unset (or empty) variables are absent."""
    found: dict[str, Any] = {}
    if environ.get(ENV_ENABLED, "").strip():
        found["enabled"] = parse_enabled(environ[ENV_ENABLED])
    raw_pct = environ.get(ENV_PERCENTAGE, "")
    if raw_pct.strip():
        found["percentage"] = parse_percentage(raw_pct, source=ENV_PERCENTAGE)
    if environ.get(ENV_EXCLUDED, "").strip():
        found["excluded_users"] = parse_user_list(environ[ENV_EXCLUDED])
    for field, name in ((("control", ENV_CONTROL)), ("candidate", ENV_CANDIDATE)):
        raw = environ.get(name, "")
        if raw.strip():
            found[field] = parse_mode_name(raw, source=name)
    return found
