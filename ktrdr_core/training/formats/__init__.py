"""Strategy file formats: detect the format, translate it, validate the one native schema.

Each format is one module with ``NAME``, ``detect(raw) -> bool`` and
``translate(raw, notes) -> dict`` (the native schema's raw shape); adding a
format is adding a module to ``FORMATS``. Translation never validates: it
rewrites keys and records in :class:`~ktrdr_core.training.formats.common.Notes`
what it dropped, what it keeps unused (``decisions``, ``backtesting``, ...) and
what it cannot honour. :func:`parse_document` then validates the result with
:func:`~ktrdr_core.training.strategy.parse_strategy`, so a file is refused once,
with every unsupported item and every invalid key listed.

No torch here: ``ktrdr strategies check`` stays quick.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ktrdr_core.errors import BadInputError
from ktrdr_core.training.formats import native, v1, v3, v15
from ktrdr_core.training.formats.common import Notes, placeholders

__all__ = ["FORMATS", "Translation", "detect_format", "parse_document", "translate"]

#: Tried in order; the first whose ``detect`` is true reads the file (native takes the rest).
FORMATS = (v3, v1, v15, native)


@attrs.frozen
class Translation:
    """A file in the native schema's raw shape, and what translating it did."""

    format: str
    native: dict[str, Any]
    notes: Notes


def detect_format(raw: Mapping[str, Any]) -> str:
    """The ``NAME`` of the format of ``raw`` (a parsed YAML mapping)."""
    for module in FORMATS:
        if module.detect(raw):
            return str(module.NAME)
    return str(native.NAME)


def translate(raw: Any, display: str) -> Translation:
    """``raw`` in the native shape (a non-mapping file is refused here, in one line)."""
    if not isinstance(raw, Mapping):
        kind = "nothing" if raw is None else type(raw).__name__
        raise BadInputError(f"{display}: a strategy file must be a mapping of keys, got {kind}")
    notes = Notes()
    notes.unsupported.extend(placeholders(raw))
    name = detect_format(raw)
    module = next((m for m in FORMATS if name == m.NAME), v1)
    return Translation(format=name, native=module.translate(raw, notes), notes=notes)


def parse_document(
    raw: Any, display: str, *, expected_name: str | None = None, source_path: str | None = None
) -> Any:
    """Translate and validate one strategy file's data into a ``StrategyConfig``."""
    from ktrdr_core.training.strategy import StrategyProblems, parse_strategy

    tr = translate(raw, display)
    named = tr.native.get("name")
    if tr.format != native.NAME and expected_name is not None and named != expected_name:
        # upstream files often carry a name other than their file's; ktrdr resolves by file
        tr.notes.drop("name", f"{named!r} differs from the file name; the strategy is {expected_name!r}")
        tr.native["name"] = expected_name
    try:
        config = parse_strategy(
            tr.native,
            display,
            expected_name=expected_name,
            source_path=source_path,
            problems=tr.notes.unsupported,
        )
    except StrategyProblems as exc:
        if any(p.startswith("data: ") for p in tr.notes.unsupported):
            kept = [p for p in exc.problems if p != "training_data is required"]
            raise StrategyProblems(display, kept) from None
        raise
    return attrs.evolve(
        config, source_format=tr.format, not_used=dict(tr.notes.not_used), notes=tuple(tr.notes.dropped)
    )
