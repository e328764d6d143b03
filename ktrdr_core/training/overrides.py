"""Per-run strategy settings: ``--set training.labels.zigzag_threshold=0.002``.

A setting is a dotted key path into the strategy file *as written* and a value.
The values are written into the file's raw data before it is validated, so a
setting passes exactly the checks a value in the file would, with the same
messages (an unknown key, a value out of range), and nothing is trusted that
the file itself could not say. The CLI parses ``KEY=VALUE`` text (the value as
a YAML scalar or flow value: ``0.002``, ``true``, ``[32, 16]``,
``{type: step}``); the HTTP API and a ``TrainingRequest`` give the mapping
``overrides["set"] = {"training.labels.zigzag_threshold": 0.002}``.

This module imports no torch.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from ktrdr_core.errors import BadInputError

__all__ = ["KEY_PATTERN", "apply_settings", "check_settings", "parse_set_options"]

KEY_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_MAX_SETTINGS = 100
_MAX_TEXT = 10_000


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or len(key) > 500 or not KEY_PATTERN.fullmatch(key):
        shown = repr(key)[:80]
        raise BadInputError(
            f"strategy setting key {shown} is not a dotted key path such as training.labels.zigzag_threshold"
        )
    return key


def parse_set_options(items: Iterable[str]) -> dict[str, Any]:
    """``["KEY=VALUE", ...]`` as ``{KEY: value}``; a later setting of the same key wins."""
    settings: dict[str, Any] = {}
    for item in items:
        if len(item) > _MAX_TEXT:
            raise BadInputError(f"--set: a setting is limited to {_MAX_TEXT:,} characters")
        key, sep, text = item.partition("=")
        if not sep:
            raise BadInputError(
                f"--set {item[:80]!r}: expected KEY=VALUE, such as training.labels.zigzag_threshold=0.002"
            )
        key = _check_key(key.strip())
        try:
            settings[key] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
            raise BadInputError(
                f"--set {key}: the value {text[:80]!r} is not valid YAML: {problem}"
            ) from None
        if settings[key] is None:
            raise BadInputError(f"--set {key}: a value is required (KEY=VALUE)")
    return check_settings(settings)


def check_settings(settings: Any) -> dict[str, Any]:
    """The settings as a plain dict with checked keys (for request overrides from anywhere)."""
    if not isinstance(settings, Mapping):
        raise BadInputError(
            f"override set must be a mapping of dotted keys to values, got {type(settings).__name__}"
        )
    if len(settings) > _MAX_SETTINGS:
        raise BadInputError(f"override set: at most {_MAX_SETTINGS} settings, got {len(settings)}")
    return {_check_key(key): value for key, value in settings.items()}


def apply_settings(raw: Any, settings: Mapping[str, Any]) -> Any:
    """A deep copy of the file's raw data with every setting written in (missing sections are
    created); the caller validates the result."""
    if not settings:
        return raw
    if not isinstance(raw, Mapping):
        return raw  # the validator says what is wrong with the file itself
    data = copy.deepcopy(dict(raw))
    for key, value in settings.items():
        parts = key.split(".")
        node: dict[str, Any] = data
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif isinstance(child, Mapping):
                child = node[part] = dict(child)
            else:
                where = ".".join(parts[: depth + 1])
                raise BadInputError(
                    f"cannot set {key}: {where} is a {type(child).__name__}, not a section of keys"
                )
            node = child
        node[parts[-1]] = copy.deepcopy(value)
    return data
