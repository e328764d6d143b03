"""What a user asks for: a training request.

A request names a strategy (never a path: the engine resolves names itself,
so a request cannot reach an arbitrary file) and carries everything a mode needs, so that a
request can be serialised, logged, and shipped to another machine unchanged.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

STRATEGY_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
"""Letters, digits, ``_`` and ``-``, starting with a letter or digit; always applied with
``fullmatch`` ('$' alone lets a trailing newline in)."""
SYMBOL_PATTERN = re.compile(r"^[A-Za-z0-9^][A-Za-z0-9._^=-]*$")
"""Tickers as data vendors write them (``EURUSD``, ``BRK.B``, ``^GSPC``, ``EURUSD=X``); no path
separators, since a symbol names a data file ``{SYMBOL}_{timeframe}.csv``. The one symbol rule of
the engine, the CLI, the HTTP API and the contract kit; applied with ``fullmatch``."""
TIMEFRAME_PATTERN = re.compile(r"^[0-9]+[A-Za-z]+$")
"""A count and a unit (``1h``, ``4h``, ``1d``); the one timeframe rule, applied with ``fullmatch``."""
MAX_STRATEGY_NAME_LENGTH = 128
"""Longer names are refused: ``NAME.yaml`` and the model folder must fit a file name (255 bytes)."""
DEFAULT_USER_ID = "default"


def _new_request_id() -> str:
    return uuid.uuid4().hex


def _as_tuple(value: Sequence[str] | str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return tuple(value)


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return dict(value or {})


@attrs.frozen(kw_only=True)
class TrainingRequest:
    """One training to run.

    Frozen: no field can be reassigned (``overrides`` is a plain dict so that
    requests pickle to Ray workers; treat it as read-only). ``symbols`` and
    ``timeframes`` may be empty: the strategy's own ``training_data`` then decides.
    ``overrides`` carries per-run knobs such as ``epochs``, ``seed`` and
    ``batch_size`` that win over the strategy file.
    """

    strategy: str
    user_id: str = DEFAULT_USER_ID
    symbols: tuple[str, ...] = attrs.field(default=(), converter=_as_tuple)
    timeframes: tuple[str, ...] = attrs.field(default=(), converter=_as_tuple)
    start_date: str | None = None
    end_date: str | None = None
    overrides: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)
    request_id: str = attrs.field(factory=_new_request_id)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (tuples become lists)."""
        data = attrs.asdict(self, recurse=False)
        data["symbols"] = list(self.symbols)
        data["timeframes"] = list(self.timeframes)
        data["overrides"] = dict(self.overrides)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingRequest:
        """Rebuild a request from :meth:`to_dict` output; unknown keys are an error."""
        known = {field.name for field in attrs.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            from ktrdr_core.errors import BadInputError

            raise BadInputError(f"unknown training request field(s): {', '.join(unknown)}")
        return cls(**dict(data))


def _shown(name: str, limit: int = 40) -> str:
    """``repr`` of a name, cut short: an error line must stay one readable line."""
    return repr(name) if len(name) <= limit else f"{name[:limit]!r}... ({len(name)} characters)"


def check_strategy_name(name: str) -> str:
    """Return ``name`` if it is a safe strategy name, else raise :class:`BadInputError`.

    Only names are accepted: a path such as ``../x`` or ``/etc/passwd`` could
    reach outside the strategies folder. Names longer than
    ``MAX_STRATEGY_NAME_LENGTH`` are refused here, before any file is opened,
    so that no operating-system error (file name too long) can surface.
    """
    from ktrdr_core.errors import BadInputError

    if not isinstance(name, str) or not STRATEGY_NAME_PATTERN.fullmatch(name):
        shown = _shown(name) if isinstance(name, str) else repr(name)
        raise BadInputError(
            f"invalid strategy name {shown}: use a name such as 'neuro_mean_reversion' "
            "(letters, digits, '_' and '-', not a path)"
        )
    if len(name) > MAX_STRATEGY_NAME_LENGTH:
        raise BadInputError(
            f"invalid strategy name {_shown(name)}: at most {MAX_STRATEGY_NAME_LENGTH} characters"
        )
    return name


USER_ID_MAX_LENGTH = 200


def check_user_id(user_id: str) -> str:
    """Return ``user_id`` if it can name a user, else raise :class:`BadInputError`.

    The rollout hashes the exact bytes, so characters nobody can see —
    control characters (Unicode Cc) and invisible formatting ones such as
    zero-width spaces and bidi overrides (Cf) — would make ``alice`` and
    ``alice\u200b`` two users that look the same in every log and listing.
    The message names the offending character by code point, never echoes the id.
    """
    from ktrdr_core.errors import BadInputError

    if not isinstance(user_id, str) or not user_id.strip():
        raise BadInputError("a user id must be a non-empty string")
    if len(user_id) > USER_ID_MAX_LENGTH:
        raise BadInputError(f"a user id is at most {USER_ID_MAX_LENGTH} characters")
    for position, char in enumerate(user_id):
        if unicodedata.category(char) in ("Cc", "Cf", "Cs"):
            raise BadInputError(
                f"a user id must not contain control or invisible formatting characters: "
                f"U+{ord(char):04X} ({unicodedata.name(char, 'unnamed')}) at position {position}"
            )
    return user_id
