"""Upstream v1: a ``data: {symbols, timeframes, history_required}`` section, list indicators.

Indicators are ``{name, period, source, ...params}`` (``feature_id`` defaults to
the name, which keys its fuzzy sets), labels may say ``method`` for
``source``, and model keys are the old ones (``dropout_rate``,
``early_stopping_patience``, ``lookback_window``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ktrdr_core.training.formats import common, v3
from ktrdr_core.training.formats.common import Notes

NAME = "v1"


def detect(raw: Mapping[str, Any]) -> bool:
    if "data" in raw or str(raw.get("version", "")).strip().startswith("1"):
        return True
    # v1 files often have no data section at all: a strategy body without training_data
    return "training_data" not in raw and isinstance(raw.get("indicators"), list)


def translate(raw: Mapping[str, Any], notes: Notes) -> dict[str, Any]:
    native = common.split_sections(raw, notes)
    data = native.pop("data", None)
    if data is not None:
        if "training_data" in native:
            notes.refuse("data", "given beside training_data (keep one)")
        else:
            native["training_data"] = v3.training_data(data, notes, key="data")
    elif "training_data" in native:
        native["training_data"] = v3.training_data(native["training_data"], notes)
    else:
        notes.refuse(
            "data",
            "missing: name the symbols and timeframes to train on "
            "(data: {symbols: [...], timeframes: [...]})",
        )
    return v3.finish(native, notes)
