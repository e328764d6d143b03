"""The rollout file under ``KTRDR_HOME`` and its append-only audit log.

``rollout.json`` holds the settings ``ktrdr rollout ...`` and the service
change; ``rollout-audit.jsonl`` gets one line per change (who, when, old →
new, why) and is never rewritten. Changes are serialised across processes
with a lock file (waited on for at most :data:`LOCK_TIMEOUT_SECONDS`), and
the settings file is replaced atomically.

No change takes effect without its audit line: the line is appended (and
fsynced) first, then the settings file is replaced. Should that replacement
fail, a second line records that the change was not applied; a crash in
between leaves a line for a change that may not have happened — never the
reverse. A file that cannot be read (not UTF-8, not JSON, a misspelled key)
is a :class:`RolloutFileError`; a write or lock that fails, a
:class:`RolloutStorageError`: the server's problem (HTTP 503), not the
caller's (422).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import getpass
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from ktrdr_core.errors import ConfigurationError
from ktrdr_core.fileutil import LockTimeoutError, locked, write_json_atomic
from ktrdr_core.home import ktrdr_home
from ktrdr_core.rollout.settings import KNOWN_FILE_KEYS, RolloutSettings

FILE_VERSION = 1
LOCK_TIMEOUT_SECONDS = 5.0
FAILED_SUFFIX = "_not_applied"
"""Appended to an audit line's action when the change it announced could not be written."""


class RolloutStoreError(ConfigurationError):
    """The rollout file or its storage is unusable: the server's problem, not the request's."""


class RolloutFileError(RolloutStoreError):
    """The rollout file cannot be read: not UTF-8, not JSON, not an object, an unknown key."""


class RolloutStorageError(RolloutStoreError):
    """The rollout file or its audit log cannot be written, or its lock is held too long."""


def default_actor() -> str:
    """Who is making a change, for the audit log: ``KTRDR_ACTOR``, else the OS user."""
    actor = os.environ.get("KTRDR_ACTOR", "").strip()
    if actor:
        return actor
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return "unknown"


@attrs.frozen(kw_only=True)
class AuditEntry:
    """One change of the rollout."""

    timestamp: str
    actor: str
    action: str
    old: Any
    new: Any
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


class RolloutStore:
    """Reads and changes the rollout file of one ``KTRDR_HOME``."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = home if home is not None else ktrdr_home()
        self.settings_path = self.home / "rollout.json"
        self.audit_path = self.home / "rollout-audit.jsonl"
        self._lock_path = self.home / ".rollout.lock"

    # -- reading -----------------------------------------------------------
    def read_raw(self) -> dict[str, Any]:
        """The file's JSON object; ``{}`` when there is no file yet."""
        try:
            text = self.settings_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except UnicodeDecodeError:
            raise RolloutFileError(
                f"{self.settings_path} is not valid UTF-8 text; fix or remove it "
                "(ktrdr rollout history has every change)"
            ) from None
        except OSError as exc:
            raise RolloutFileError(f"cannot read {self.settings_path}: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RolloutFileError(
                f"{self.settings_path} is not valid JSON (line {exc.lineno}): {exc.msg}"
            ) from None
        if not isinstance(data, dict):
            raise RolloutFileError(f"{self.settings_path} must hold a JSON object")
        unknown = sorted(set(data) - set(KNOWN_FILE_KEYS))
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(str(key), KNOWN_FILE_KEYS, n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise RolloutFileError(
                f"{self.settings_path}: unknown key(s) {', '.join(hints)}; "
                f"known: {', '.join(sorted(KNOWN_FILE_KEYS))}"
            )
        return data

    def read(self) -> RolloutSettings:
        """The settings the file holds (defaults where it is silent)."""
        return RolloutSettings.from_mapping(self.read_raw(), source=str(self.settings_path))

    def history(self) -> list[AuditEntry]:
        """Every recorded change, oldest first; a torn last line (crash mid-write) is skipped."""
        try:
            lines = self.audit_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        entries = []
        for line in lines:
            try:
                entries.append(AuditEntry(**json.loads(line)))
            except (json.JSONDecodeError, TypeError):
                continue
        return entries

    # -- changing ----------------------------------------------------------
    def change(
        self,
        action: str,
        mutate: Callable[[dict[str, Any]], Mapping[str, Any]],
        *,
        reason: str,
        actor: str | None = None,
    ) -> AuditEntry | None:
        """Apply ``mutate`` to the file's data under the lock and audit it.

        ``mutate`` gets a copy of the raw data and returns the keys it changes.
        The new data is validated before anything is written; a change that
        changes nothing writes nothing and returns ``None``.
        """
        try:
            with locked(self._lock_path, timeout=LOCK_TIMEOUT_SECONDS):
                return self._change_locked(action, mutate, reason=reason, actor=actor)
        except LockTimeoutError:
            raise RolloutStorageError(
                f"the rollout file is locked by another process ({self._lock_path.name} under "
                f"{self.home}, held over {LOCK_TIMEOUT_SECONDS:g} s); nothing was changed, retry"
            ) from None
        except OSError as exc:
            raise RolloutStorageError(
                f"cannot change the rollout file under {self.home}: {exc.strerror or exc} "
                "(check KTRDR_HOME); nothing was changed"
            ) from None

    def _change_locked(
        self,
        action: str,
        mutate: Callable[[dict[str, Any]], Mapping[str, Any]],
        *,
        reason: str,
        actor: str | None,
    ) -> AuditEntry | None:
        """The body of :meth:`change`, run while holding the lock."""
        data = self.read_raw()
        updates = dict(mutate(dict(data)))
        old = {key: data.get(key) for key in updates}
        if all(data.get(key) == value for key, value in updates.items()):
            return None
        new_data = {**data, **updates, "version": FILE_VERSION}
        RolloutSettings.from_mapping(new_data, source=str(self.settings_path))
        entry = AuditEntry(
            timestamp=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            actor=actor or default_actor(),
            action=action,
            old=old if len(old) > 1 else next(iter(old.values()), None),
            new=updates if len(updates) > 1 else next(iter(updates.values()), None),
            reason=reason,
        )
        self._append_audit(entry)  # first: no change without its line
        try:
            write_json_atomic(self.settings_path, new_data)
        except OSError as exc:
            with contextlib.suppress(OSError):
                self._append_audit(
                    attrs.evolve(
                        entry,
                        action=entry.action + FAILED_SUFFIX,
                        old=entry.new,
                        new=entry.old,
                        reason=f"not applied: the rollout file could not be written ({exc.strerror or exc})",
                    )
                )
            raise
        return entry

    def _append_audit(self, entry: AuditEntry) -> None:
        self.audit_path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(entry.to_dict(), sort_keys=True) + "\n"
        fd = os.open(self.audit_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- the changes the CLI and service make -------------------------------
    def set_percentage(self, percentage: int, *, reason: str, actor: str | None = None) -> AuditEntry | None:
        return self.change(
            "set_percentage", lambda _d: {"percentage": percentage}, reason=reason, actor=actor
        )

    def set_enabled(self, enabled: bool, *, reason: str, actor: str | None = None) -> AuditEntry | None:
        return self.change("set_enabled", lambda _d: {"enabled": enabled}, reason=reason, actor=actor)

    def set_fields(
        self, action: str, fields: Mapping[str, Any], *, reason: str, actor: str | None = None
    ) -> AuditEntry | None:
        return self.change(action, lambda _d: dict(fields), reason=reason, actor=actor)

    def exclude(self, user_id: str, *, reason: str, actor: str | None = None) -> AuditEntry | None:
        def add(data: dict[str, Any]) -> dict[str, Any]:
            users = set(data.get("excluded_users") or [])
            users.add(user_id)
            return {"excluded_users": sorted(users)}

        return self.change("exclude_user", add, reason=reason, actor=actor)

    def include(self, user_id: str, *, reason: str, actor: str | None = None) -> AuditEntry | None:
        def remove(data: dict[str, Any]) -> dict[str, Any]:
            users = set(data.get("excluded_users") or [])
            users.discard(user_id)
            return {"excluded_users": sorted(users)}

        return self.change("include_user", remove, reason=reason, actor=actor)
