"""Upstream v3 (``version: "3.0"``): indicators by id, fuzzy sets by name, ``nn_inputs``.

``indicators: {id: {type, ...params}}``; ``fuzzy_sets: {name: {indicator: REF,
set: [a, b, c] | {type, parameters}}}`` with ``REF`` an id or ``id.output``;
``nn_inputs: [{fuzzy_set, timeframes: all | [..]}]``; ``training_data`` with
``{mode, symbol | list, base_timeframe}`` forms and ``date_range``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ktrdr_core.training.formats import common
from ktrdr_core.training.formats.common import Notes

NAME = "v3"


def detect(raw: Mapping[str, Any]) -> bool:
    return str(raw.get("version", "")).strip().startswith("3") or isinstance(raw.get("indicators"), Mapping)


def training_data(td: Any, notes: Notes, key: str = "training_data") -> Any:
    """The ``training_data`` of v3 and v1.5 as the native one."""
    if not isinstance(td, Mapping):
        return td
    out: dict[str, Any] = {}
    for name, value in td.items():
        if name == "symbols":
            out["symbols"] = common.symbols_from(value, f"{key}.symbols", notes)
        elif name == "timeframes":
            tfs, base = common.timeframes_from(value, f"{key}.timeframes", notes)
            out["timeframes"] = tfs
            if base is not None:
                out["base_timeframe"] = base
        elif name == "history_required":
            notes.drop(f"{key}.history_required", "ktrdr uses every bar in the date range")
        elif name == "date_range":
            out.update(common.dates_from(value, f"{key}.date_range", notes))
        else:
            out[name] = value  # start_date, end_date, base_timeframe, or an error to report
    return out


def translate(raw: Mapping[str, Any], notes: Notes) -> dict[str, Any]:
    native = common.split_sections(raw, notes)
    if "training_data" in native:
        native["training_data"] = training_data(native["training_data"], notes)
    return finish(native, notes)


def finish(native: dict[str, Any], notes: Notes) -> dict[str, Any]:
    """The steps every upstream format shares after its ``training_data``."""
    if "indicators" in native:
        native["indicators"] = common.indicators_from(native["indicators"], notes)
    if "fuzzy_sets" in native:
        native["fuzzy_sets"] = common.fuzzy_sets_from(native["fuzzy_sets"], notes)
    if "model" in native:
        native["model"] = common.model_from(native["model"], notes)
    if "training" in native:
        native["training"], dates = common.training_from(native["training"], notes)
        td = native.get("training_data")
        if dates and isinstance(td, dict):
            for key, value in dates.items():
                td.setdefault(key, value)
    common.prune_unused(native, notes)
    return native
