"""``ktrdr strategies migrate``: an older file (v1, v1.5, native) written in the v3 format.

The v3 text is built from the validated translation, so it loads to the same
strategy; a comment block at the top says where it came from and lists every
key that was dropped or rewritten on the way, with why. Sections that do not
affect training are carried over unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from ktrdr_core.errors import BadInputError
from ktrdr_core.training.formats import parse_document, translate
from ktrdr_core.training.timeframes import base_timeframe

__all__ = ["to_v3"]


def _training_data(td: Mapping[str, Any]) -> dict[str, Any]:
    symbols = list(td["symbols"]) if isinstance(td["symbols"], list) else [td["symbols"]]
    tfs = list(td["timeframes"]) if isinstance(td["timeframes"], list) else [td["timeframes"]]
    out: dict[str, Any] = {
        "symbols": (
            {"mode": "single", "symbol": symbols[0]}
            if len(symbols) == 1
            else {"mode": "multi_symbol", "list": symbols}
        ),
        "timeframes": (
            {"mode": "single", "timeframe": tfs[0]}
            if len(tfs) == 1
            else {
                "mode": "multi_timeframe",
                "list": tfs,
                "base_timeframe": base_timeframe(tuple(tfs), td.get("base_timeframe")),
            }
        ),
    }
    dates = {k: td[f"{k}_date"] for k in ("start", "end") if td.get(f"{k}_date") is not None}
    if dates:
        out["date_range"] = dates
    return out


def _indicators(entries: list[Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for entry in entries:
        spec: dict[str, Any] = {"type": entry["name"]}
        spec.update({k: entry[k] for k in ("period", "source") if k in entry})
        spec.update(entry.get("params") or {})
        out[entry.get("feature_id") or entry["name"]] = spec
    return out


def to_v3(raw: Any, display: str, *, name: str | None = None) -> str:
    """The v3 YAML text of ``raw``; refuses a file that is already v3 or does not load."""
    tr = translate(raw, display)
    if tr.format == "v3":
        raise BadInputError(f"{display}: is already in the v3 format; nothing to migrate")
    config = parse_document(raw, display, expected_name=None)  # every problem, at once
    native = tr.native
    out: dict[str, Any] = {"name": name or config.name, "version": "3.0"}
    if config.description:
        out["description"] = config.description
    out["training_data"] = _training_data(native["training_data"])
    out["indicators"] = _indicators(native["indicators"])
    out["fuzzy_sets"] = {
        key: {"indicator": config.reference_of(key), **{k: v for k, v in sets.items() if k != "indicator"}}
        for key, sets in native["fuzzy_sets"].items()
    }
    out["nn_inputs"] = native.get("nn_inputs") or [
        {"fuzzy_set": key, "timeframes": "all"} for key in native["fuzzy_sets"]
    ]
    model = dict(native["model"])
    unused = dict(tr.notes.not_used)
    if "model.training.analytics" in unused:
        model["training"] = {**model.get("training", {}), "analytics": unused.pop("model.training.analytics")}
    out["model"] = model
    if "training" in native:
        out["training"] = native["training"]
    out.update(unused)
    header = [f"Migrated to the v3 format by `ktrdr strategies migrate` from the {tr.format} file {display}."]
    if name and name != config.name:
        header.append(f"name: was {config.name!r}; it must equal the file name.")
    if tr.notes.dropped:
        header.append("Dropped or rewritten on the way:")
        header.extend(f"  - {note}" for note in tr.notes.dropped)
    if unused:
        header.append(f"Kept, not used for training: {', '.join(unused)}.")
    comments = "".join(f"# {line}\n" for line in header)
    return comments + yaml.safe_dump(out, sort_keys=False, allow_unicode=True, width=100)
