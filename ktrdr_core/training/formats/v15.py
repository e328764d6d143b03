"""Upstream v1.5/v2: list indicators with ``feature_id``, ``training_data`` in ``mode`` forms.

``training_data.symbols: {mode: single_symbol | single | multi_symbol, symbol |
list}`` and ``timeframes: {mode: single_timeframe | single | multi_timeframe,
timeframe | list, base_timeframe}``; fuzzy sets keyed by ``feature_id``; no
``nn_inputs`` (every fuzzy set feeds the model on every timeframe).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ktrdr_core.training.formats import common, v3
from ktrdr_core.training.formats.common import Notes

NAME = "v1.5"


def detect(raw: Mapping[str, Any]) -> bool:
    version = str(raw.get("version", "")).strip()
    td = raw.get("training_data")
    shaped = isinstance(td, Mapping) and (
        isinstance(td.get("symbols"), Mapping) or isinstance(td.get("timeframes"), Mapping)
    )
    return shaped or version.startswith("2") or version == "1.5"


def translate(raw: Mapping[str, Any], notes: Notes) -> dict[str, Any]:
    native = common.split_sections(raw, notes)
    if "training_data" in native:
        native["training_data"] = v3.training_data(native["training_data"], notes)
    return v3.finish(native, notes)
