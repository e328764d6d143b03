"""Times in the ledger: UTC ISO text for people, epoch seconds for queries.

``--since`` and the gates' ``window`` accept the forms an operator types:
an ISO date or date-time, read by :mod:`ktrdr_core.times` like every other
date in ktrdr (``2024-05-01``, ``2024-05-01T09:30``, with ``Z``, an offset or
neither, which means UTC), or a relative age (``90s``, ``30m``, ``12h``,
``7d``, ``2w``). Anything else is a :class:`BadInputError`.
"""

from __future__ import annotations

import datetime as dt
import re
import time

from ktrdr_core.errors import BadInputError
from ktrdr_core.times import ISO_FORMS, try_parse_iso

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)


def iso_utc(epoch: float) -> str:
    """``epoch`` as ISO 8601 in UTC, to the microsecond (``...+00:00``)."""
    return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc).isoformat(timespec="microseconds")


MAX_DURATION_SECONDS = 100 * 365.25 * 86_400


def parse_duration(text: str, *, what: str = "duration") -> float:
    """``7d`` / ``12h`` / ``30m`` / ``90s`` / ``2w`` as seconds (> 0)."""
    match = _RELATIVE.match(str(text))
    if not match:
        raise BadInputError(f"{what}: expected a duration such as 7d, 12h, 30m or 90s, got {text!r}")
    seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if seconds <= 0:
        raise BadInputError(f"{what}: the duration must be more than zero, got {text!r}")
    if seconds > MAX_DURATION_SECONDS:
        raise BadInputError(f"{what}: at most 100 years, got {text!r}")
    return seconds


def parse_since(text: str, *, now: float | None = None, what: str = "--since") -> float:
    """The epoch that ``text`` (an ISO date/date-time or a relative age) stands for."""
    now = time.time() if now is None else now
    raw = str(text).strip()
    if _RELATIVE.match(raw):
        return now - parse_duration(raw, what=what)
    moment = try_parse_iso(raw)
    if moment is None:
        raise BadInputError(f"{what} must be {ISO_FORMS}, or a relative age such as 7d or 12h; got {text!r}")
    return moment.timestamp()


def parse_audit_timestamp(text: str) -> float | None:
    """An audit-log timestamp as epoch seconds; ``None`` if it is not one."""
    moment = try_parse_iso(text)
    return None if moment is None else moment.timestamp()
