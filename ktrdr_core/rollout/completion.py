"""Phase 3: complete the migration, and keep the way back as a named rollback point.

``complete`` makes the candidate the control and turns the rollout off, in
one audited change of the rollout file; the settings it replaced are kept
under ``"rollback_points"`` by name, and ``restore NAME`` puts them back (also
audited). After completion no decision names the old control, so
uninstalling its plugin changes no routing; ``ktrdr plugins`` says which
installed modes the rollout still references.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from ktrdr_core.errors import BadInputError
from ktrdr_core.rollout.settings import RolloutSettings
from ktrdr_core.rollout.store import AuditEntry, RolloutStore

ROLLBACK_POINTS_KEY = "rollback_points"
SETTING_KEYS = ("enabled", "percentage", "excluded_users", "control", "candidate", "completed", "shadow")
"""What a rollback point keeps: who gets which mode (not the gates' thresholds)."""
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def default_point_name(settings: RolloutSettings) -> str:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"before-complete-{settings.control}-{stamp}"


def check_point_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise BadInputError(
            f"invalid rollback point name {name!r}: use letters, digits, '_', '.', '-' (at most 64)"
        )
    return name


def rollback_points(store: RolloutStore) -> dict[str, dict[str, Any]]:
    points = store.read_raw().get(ROLLBACK_POINTS_KEY) or {}
    if not isinstance(points, Mapping):
        return {}
    return {k: dict(v) for k, v in points.items() if isinstance(v, Mapping)}


def complete(
    store: RolloutStore, *, name: str, reason: str, action: str = "complete", actor: str | None = None
) -> AuditEntry | None:
    """Make the candidate the control, turn the rollout off, keep the old settings as ``name``."""
    check_point_name(name)

    def change(data: dict[str, Any]) -> dict[str, Any]:
        settings = RolloutSettings.from_mapping(data, source=str(store.settings_path))
        if settings.completed:
            raise BadInputError(f"the migration is already complete: {settings.control!r} is the only mode")
        points = dict(data.get(ROLLBACK_POINTS_KEY) or {})
        if name in points:
            raise BadInputError(f"a rollback point named {name!r} exists already; choose another --name")
        saved = {key: data[key] for key in SETTING_KEYS if key in data}
        saved.update(control=settings.control, candidate=settings.candidate)
        points[name] = {
            "settings": saved,
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "reason": reason,
        }
        return {
            "enabled": False,
            "percentage": 0,
            "control": settings.candidate,
            "candidate": settings.candidate,
            "completed": True,
            "excluded_users": [],
            "shadow": {**(data.get("shadow") or {}), "percentage": 0},
            ROLLBACK_POINTS_KEY: points,
        }

    return store.change(action, change, reason=reason, actor=actor)


def restore(store: RolloutStore, name: str, *, reason: str, actor: str | None = None) -> AuditEntry | None:
    """Put back the settings kept as rollback point ``name``."""
    points = rollback_points(store)
    if name not in points:
        known = ", ".join(sorted(points)) or "none (`ktrdr rollout complete` makes one)"
        raise BadInputError(f"no rollback point named {name!r}; known: {known}")
    saved = dict(points[name].get("settings") or {})

    def change(data: dict[str, Any]) -> dict[str, Any]:
        updates = {key: saved[key] for key in SETTING_KEYS if key in saved}
        updates.setdefault("completed", False)
        return updates

    return store.change("restore", change, reason=f"restore {name}: {reason}", actor=actor)
