"""ktrdr's own schema (``docs/engine.md``): taken as it is, non-training sections aside."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ktrdr_core.training.formats.common import Notes, split_sections

NAME = "native"


def detect(raw: Mapping[str, Any]) -> bool:
    """No ``version``, list indicators, and a ``training_data`` of plain lists."""
    td = raw.get("training_data")
    return ("version" not in raw and "data" not in raw and isinstance(td, Mapping)
            and not isinstance(td.get("symbols"), Mapping)
            and not isinstance(td.get("timeframes"), Mapping)
            and not isinstance(raw.get("indicators"), Mapping))


def translate(raw: Mapping[str, Any], notes: Notes) -> dict[str, Any]:
    return split_sections(raw, notes)
