"""Technical indicators: a registry of types, computed with TA-Lib where it has them.

- :mod:`.registry` — :class:`ParamSpec`, :class:`IndicatorSpec`, :class:`IndicatorRegistry`,
  :func:`default_registry` (built-ins + plugins' ``register_indicators``), :func:`parse_reference`.
- :mod:`.builtin` — the built-in types (importing it imports TA-Lib).
- :mod:`.own` — the computations TA-Lib lacks.

Importing this package is cheap (no TA-Lib, no torch); the built-ins load on
the first :func:`default_registry` call. The type table is in ``docs/engine.md``.
"""

from __future__ import annotations

from ktrdr_core.training.indicators.registry import (
    PRICE_COLUMNS,
    IndicatorRegistry,
    IndicatorSpec,
    ParamSpec,
    default_registry,
    normalize_name,
    parse_reference,
)

__all__ = [
    "PRICE_COLUMNS",
    "IndicatorRegistry",
    "IndicatorSpec",
    "ParamSpec",
    "default_registry",
    "normalize_name",
    "parse_reference",
]
