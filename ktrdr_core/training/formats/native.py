"""ktrdr's own schema (``docs/engine.md``): taken as it is, non-training sections aside."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ktrdr_core.training.formats.common import Notes, split_sections

NAME = "native"


def detect(raw: Mapping[str, Any]) -> bool:
    """What no other format claims (tried last), so its errors are the schema's own."""
    return True


def translate(raw: Mapping[str, Any], notes: Notes) -> dict[str, Any]:
    return split_sections(raw, notes)
