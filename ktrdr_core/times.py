"""One reading of ISO dates and date-times, for the engine, the CLI, the HTTP API, the ledger and the kit.

Accepted: ``YYYY-MM-DD``, and ``YYYY-MM-DDTHH:MM`` with optional ``:SS`` (and
a fraction of up to six digits), ending in ``Z``, an offset (``+01:00``,
``-0500``) or nothing, which means UTC. A space may stand for the ``T`` (how
spreadsheets and ``pandas`` write a time). Nothing else passes: Python's own
``fromisoformat`` also takes week dates and compact forms (``2023W01``,
``20230101``) that a person rarely means, and a narrower rule everywhere is
what lets one message say what is wrong.
"""

from __future__ import annotations

import datetime as dt
import re

from ktrdr_core.errors import BadInputError

ISO_FORMS = "an ISO date or date-time such as 2023-03-01, 2023-03-01T12:00 or 2023-03-01T12:00:00Z"
"""What every refusal says is expected."""

_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?)?")
_DATE_LENGTH = 10


def try_parse_iso(text: object, *, end_of_day: bool = False) -> dt.datetime | None:
    """``text`` as an aware datetime in UTC, or ``None`` when it is not one of the accepted forms.

    A bare date is that day's midnight (UTC), or with ``end_of_day`` its last
    second, so an end bound of ``2023-03-01`` includes the whole day.
    """
    if not isinstance(text, str):
        return None
    raw = text.strip()
    if not _ISO.fullmatch(raw):
        return None
    try:
        moment = dt.datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith("Z") else raw)
    except ValueError:  # the form is right, the calendar is not: 2023-02-30, 25:00
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    if end_of_day and len(raw) == _DATE_LENGTH:
        moment += dt.timedelta(days=1) - dt.timedelta(seconds=1)
    return moment.astimezone(dt.timezone.utc)


_NOT_SHOWN = object()


def iso_error(what: str, text: object = _NOT_SHOWN) -> str:
    """The one message for a value that is not an accepted date or date-time.

    Without ``text`` the value is not repeated: the HTTP API never echoes its input.
    """
    return f"{what} must be {ISO_FORMS}" + ("" if text is _NOT_SHOWN else f"; got {text!r}")


def parse_iso(text: object, *, what: str = "date", end_of_day: bool = False) -> dt.datetime:
    """:func:`try_parse_iso`, or a :class:`BadInputError` naming ``what`` and the accepted forms."""
    moment = try_parse_iso(text, end_of_day=end_of_day)
    if moment is None:
        raise BadInputError(iso_error(what, text))
    return moment
