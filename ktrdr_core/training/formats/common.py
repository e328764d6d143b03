"""What the upstream formats share: sections, symbols, timeframes, fuzzy shorthand, model keys.

Every helper writes the native schema's shape (``ktrdr_core.training.strategy``)
and records in :class:`Notes` what it translated away, what it kept without
using it, and what it cannot honour (``unsupported``). Nothing is dropped
silently: each dropped key becomes a note that ``ktrdr strategies check``,
``migrate`` and the model's metadata show.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = [
    "NOT_FOR_TRAINING",
    "Notes",
    "dates_from",
    "fuzzy_sets_from",
    "indicators_from",
    "model_from",
    "placeholders",
    "prune_unused",
    "split_sections",
    "symbols_from",
    "timeframes_from",
    "training_from",
]

#: Top-level sections that do not affect training: kept in the model's metadata.
NOT_FOR_TRAINING = (
    "decisions",
    "orchestrator",
    "risk_management",
    "backtesting",
    "analytics",
    "deployment",
    "scope",
    "hypothesis",
    "metadata",
    "author",
    "tags",
    "notes",
    "created",
    "created_at",
    "research",
    "rationale",
)

#: A shorthand parameter list's length -> the membership type it means.
SHORTHAND = {3: "triangular", 4: "trapezoidal", 2: "gaussian"}

_PLACEHOLDER = re.compile(r"\{\{?\s*[A-Za-z_][^{}]*\}\}?")


@attrs.define
class Notes:
    """What a translation did besides copying: notes, kept sections, refusals."""

    dropped: list[str] = attrs.field(factory=list)
    not_used: dict[str, Any] = attrs.field(factory=dict)
    unsupported: list[str] = attrs.field(factory=list)

    def drop(self, key: str, why: str) -> None:
        self.dropped.append(f"{key}: {why}")

    def refuse(self, key: str, why: str) -> None:
        self.unsupported.append(f"{key}: not supported: {why}")


def placeholders(value: Any, key: str = "") -> list[str]:
    """Every template placeholder (``{{symbol}}``, ``{indicator_name}``) in the file, by key."""
    found: list[str] = []
    if isinstance(value, str):
        found.extend(
            f"{key or 'the file'}: not supported: template placeholder {m!r} (fill it in before training)"
            for m in _PLACEHOLDER.findall(value)
        )
    elif isinstance(value, Mapping):
        for name, item in value.items():
            found.extend(placeholders(item, f"{key}.{name}" if key else str(name)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found.extend(placeholders(item, f"{key}[{i}]"))
    return found


def split_sections(raw: Mapping[str, Any], notes: Notes) -> dict[str, Any]:
    """The training part of the file; the other sections go to ``notes.not_used``."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in NOT_FOR_TRAINING:
            notes.not_used[key] = value
        elif key != "version":
            out[key] = value
    decisions = notes.not_used.get("decisions")
    if isinstance(decisions, Mapping):
        fmt = decisions.get("output_format", "classification")
        if fmt != "classification":
            notes.refuse(
                "decisions.output_format",
                f"{fmt!r} (ktrdr trains BUY/HOLD/SELL classifiers only, not a regression target)",
            )
    return out


def _listed(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def symbols_from(value: Any, key: str, notes: Notes) -> Any:
    """``[A, B]``, ``A``, ``{mode: single, symbol|list}`` or ``{mode: multi_symbol, list}``."""
    if not isinstance(value, Mapping):
        return _listed(value)
    mode = value.get("mode", "multi_symbol" if "list" in value else "single")
    if "selection_criteria" in value:
        notes.refuse(f"{key}.selection_criteria", "symbols chosen by criteria (list them)")
    for extra in sorted(set(value) - {"mode", "symbol", "list", "selection_criteria"}):
        notes.refuse(f"{key}.{extra}", "unknown key")
    if mode in ("single", "single_symbol"):
        symbols = [value["symbol"]] if "symbol" in value else _listed(value.get("list"))
        if isinstance(symbols, list) and len(symbols) > 1:
            notes.refuse(f"{key}.list", f"mode {mode} with {len(symbols)} symbols (use mode: multi_symbol)")
        return symbols
    if mode == "multi_symbol":
        return _listed(value.get("list"))
    notes.refuse(f"{key}.mode", f"{mode!r} (single, single_symbol or multi_symbol)")
    return None


def timeframes_from(value: Any, key: str, notes: Notes) -> tuple[Any, Any]:
    """``(timeframes, base_timeframe)`` from a list, one timeframe or a ``mode`` mapping."""
    if not isinstance(value, Mapping):
        return _listed(value), None
    mode = value.get("mode", "multi_timeframe" if "list" in value else "single")
    for extra in sorted(set(value) - {"mode", "timeframe", "list", "base_timeframe"}):
        notes.refuse(f"{key}.{extra}", "unknown key")
    base = value.get("base_timeframe")
    if mode in ("single", "single_timeframe"):
        tfs = [value["timeframe"]] if "timeframe" in value else _listed(value.get("list"))
        return tfs, base
    if mode == "multi_timeframe":
        return _listed(value.get("list")), base
    notes.refuse(f"{key}.mode", f"{mode!r} (single, single_timeframe or multi_timeframe)")
    return None, None


def dates_from(value: Any, key: str, notes: Notes) -> dict[str, Any]:
    """``date_range: {start, end}`` as the native ``start_date`` / ``end_date``."""
    if not isinstance(value, Mapping):
        notes.refuse(key, "must be a mapping {start, end}")
        return {}
    for extra in sorted(set(value) - {"start", "end"}):
        notes.refuse(f"{key}.{extra}", "unknown key (start, end)")
    out = {}
    for name, native in (("start", "start_date"), ("end", "end_date")):
        if value.get(name) is not None:
            out[native] = str(value[name])
    return out


def indicators_from(value: Any, notes: Notes) -> Any:
    """A mapping ``id: {type, ...params}`` or a list ``[{name, feature_id?, ...params}]``.

    Parameters given flat (``fast_period: 12`` beside ``name``) move under
    ``params``; a list entry without ``feature_id`` keeps its ``name`` as its id,
    which is what its ``fuzzy_sets`` key says.
    """
    entries: list[Any] = []
    if isinstance(value, Mapping):
        for ind_id, spec in value.items():
            if not isinstance(spec, Mapping):
                entries.append(spec)
                continue
            params = {k: v for k, v in spec.items() if k not in ("type", "params")}
            params.update(spec.get("params") or {})
            entries.append({"name": spec.get("type"), "feature_id": ind_id, "params": params})
        return entries
    if not isinstance(value, list):
        return value
    for spec in value:
        if not isinstance(spec, Mapping):
            entries.append(spec)
            continue
        params = {k: v for k, v in spec.items() if k not in ("name", "feature_id", "params")}
        params.update(spec.get("params") or {})
        entries.append(
            {
                "name": spec.get("name"),
                "feature_id": spec.get("feature_id", spec.get("name")),
                "params": params,
            }
        )
    return entries


def fuzzy_sets_from(value: Any, notes: Notes) -> Any:
    """Fuzzy sets with shorthand lists (``[0, 20, 35]`` is triangular) written out in full."""
    if not isinstance(value, Mapping):
        return value
    out: dict[Any, Any] = {}
    for key, sets in value.items():
        if not isinstance(sets, Mapping):
            out[key] = sets
            continue
        entry: dict[Any, Any] = {}
        for name, spec in sets.items():
            if name != "indicator" and isinstance(spec, list):
                kind = SHORTHAND.get(len(spec))
                if kind is None:
                    notes.refuse(
                        f"fuzzy_sets.{key}.{name}",
                        f"a shorthand list of {len(spec)} "
                        "numbers (3: triangular, 4: trapezoidal, 2: gaussian)",
                    )
                    continue
                spec = {"type": kind, "parameters": spec}
            entry[name] = spec
        out[key] = entry
    return out


_INCLUDES = (
    "include_price_context",
    "include_volume_context",
    "include_raw_indicators",
    "include_price_features",
    "include_technical_features",
    "include_volume_features",
)


def _rename(section: dict[str, Any], where: str, old: str, new: str, notes: Notes) -> None:
    """An old key read as its new name (the new one wins when both are given), noted."""
    if old in section:
        section.setdefault(new, section.pop(old))
        notes.drop(f"{where}.{old}", f"read as {new}")


def model_from(value: Any, notes: Notes) -> Any:
    """``model`` with upstream-only keys translated, dropped (noted) or refused."""
    if not isinstance(value, Mapping):
        return value
    model = dict(value)
    arch = model.get("architecture")
    if isinstance(arch, Mapping):
        arch = dict(arch)
        act = arch.pop("output_activation", None)
        if act is not None:
            if str(act).lower() == "softmax":
                notes.drop(
                    "model.architecture.output_activation",
                    "softmax is how ktrdr reads the model's outputs already",
                )
            else:
                notes.refuse("model.architecture.output_activation", f"{act!r} (only softmax)")
        _rename(arch, "model.architecture", "dropout_rate", "dropout", notes)
        model["architecture"] = arch
    feats = model.get("features")
    if isinstance(feats, Mapping):
        feats = dict(feats)
        for key in _INCLUDES:
            if key in feats:
                if feats.pop(key):
                    notes.refuse(
                        f"model.features.{key}",
                        "raw price, volume or indicator "
                        "inputs (ktrdr feeds the model fuzzy memberships only)",
                    )
                else:
                    notes.drop(f"model.features.{key}", "false, which is what ktrdr does")
        if feats.pop("include_fuzzy_features", True) is False:
            notes.refuse(
                "model.features.include_fuzzy_features", "false (ktrdr's inputs are the fuzzy memberships)"
            )
        if "scale_features" in feats:
            feats.pop("scale_features")
            notes.drop(
                "model.features.scale_features",
                "memberships are already in [0, 1]; ktrdr does not rescale them",
            )
        _rename(feats, "model.features", "lookback_window", "lookback_periods", notes)
        model["features"] = feats
    tr = model.get("training")
    if isinstance(tr, Mapping):
        tr = dict(tr)
        if "analytics" in tr:
            notes.not_used["model.training.analytics"] = tr.pop("analytics")
        _rename(tr, "model.training", "loss_function", "loss", notes)
        if "early_stopping_patience" in tr:
            patience = tr.pop("early_stopping_patience")
            es = tr.get("early_stopping")
            tr["early_stopping"] = {**(es if isinstance(es, Mapping) else {}), "patience": patience}
            notes.drop("model.training.early_stopping_patience", "read as early_stopping.patience")
        model["training"] = tr
    return model


REGRESSION_SOURCES = ("forward_return", "forward_returns", "return", "returns", "regression", "price")


def training_from(value: Any, notes: Notes) -> tuple[Any, dict[str, Any]]:
    """``(training, dates)``: ``method`` and ``date_range`` taken out, labels checked."""
    if not isinstance(value, Mapping):
        return value, {}
    training = dict(value)
    method = training.pop("method", "supervised")
    if method != "supervised":
        notes.refuse("training.method", f"{method!r} (only supervised)")
    else:
        if "method" in value:
            notes.drop("training.method", "supervised, the only method")
    dates = (
        dates_from(training.pop("date_range"), "training.date_range", notes)
        if "date_range" in training
        else {}
    )
    labels = training.get("labels")
    if isinstance(labels, Mapping):
        labels = dict(labels)
        if "method" in labels and "source" not in labels:
            labels["source"] = labels.pop("method")
            notes.drop("training.labels.method", "read as source")
        if str(labels.get("source", "")).lower() in REGRESSION_SOURCES:
            notes.refuse(
                "training.labels.source",
                f"{labels['source']!r} is a regression "
                "target (ktrdr trains BUY/HOLD/SELL labels: zigzag or triple_barrier)",
            )
            labels.pop("source")
            for key in ("horizon",):
                labels.pop(key, None)
        training["labels"] = labels
    return training, dates


def references_used(fuzzy: Any) -> set[str]:
    """The indicator ids the fuzzy sets read (``adx_14`` for ``adx_14.plus_di``)."""
    used: set[str] = set()
    if isinstance(fuzzy, Mapping):
        for key, sets in fuzzy.items():
            ref = sets.get("indicator", key) if isinstance(sets, Mapping) else key
            used.add(str(ref).partition(".")[0])
    return used


def prune_unused(native: dict[str, Any], notes: Notes) -> None:
    """Drop fuzzy sets no ``nn_inputs`` entry uses, then indicators no fuzzy set reads.

    Upstream computes such indicators and never feeds them to the model; here
    they are not computed at all, and each is noted.
    """
    fuzzy = native.get("fuzzy_sets")
    nn = native.get("nn_inputs")
    if isinstance(fuzzy, Mapping) and isinstance(nn, list):
        listed = {i.get("fuzzy_set") for i in nn if isinstance(i, Mapping)}
        for key in [k for k in fuzzy if k not in listed]:
            notes.drop(f"fuzzy_sets.{key}", "in no nn_inputs entry, so not a model input")
        native["fuzzy_sets"] = {k: v for k, v in fuzzy.items() if k in listed}
    used = references_used(native.get("fuzzy_sets"))
    indicators = native.get("indicators")
    if isinstance(indicators, list) and used:
        kept = []
        for entry in indicators:
            ind_id = entry.get("feature_id") if isinstance(entry, Mapping) else None
            if ind_id is not None and ind_id not in used:
                notes.drop(f"indicators.{ind_id}", "read by no fuzzy set, so not computed")
                continue
            kept.append(entry)
        native["indicators"] = kept
