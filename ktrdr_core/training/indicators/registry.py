"""The indicator registry: what an indicator type is, its parameters, and who registered it.

An :class:`IndicatorSpec` is everything the engine needs to use one indicator
type without knowing it: its parameters (validated here, every problem at
once), the price columns it reads, its named outputs and its warm-up. The
built-in types and any plugin's register through the ``register_indicators``
hook; :func:`default_registry` collects them once per plugin manager.

Type names are matched loosely, so strategy files written for other tools
load: case and ``_``/``-`` are ignored and a trailing ``Indicator`` is
dropped (``BollingerBands``, ``bollinger_bands`` and ``RSIIndicator`` all
resolve).

This package never imports torch.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
import numpy as np

from ktrdr_core import pluginhost

__all__ = [
    "PRICE_COLUMNS",
    "IndicatorRegistry",
    "IndicatorSpec",
    "ParamSpec",
    "default_registry",
    "normalize_name",
    "parse_reference",
]

logger = logging.getLogger(__name__)

#: Columns an indicator may read (``source`` must be one of the first four).
PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
SOURCE_COLUMNS = PRICE_COLUMNS[:4]
KINDS = ("int", "float", "str", "bool")

Compute = Callable[[Mapping[str, np.ndarray], Mapping[str, Any]], Mapping[str, np.ndarray]]


def normalize_name(name: str) -> str:
    """The lookup key of a type name: lower case, no ``_``/``-``/spaces, no ``indicator`` suffix."""
    key = "".join(ch for ch in name.lower() if ch not in "_- ")
    if key.endswith("indicator") and len(key) > len("indicator"):
        key = key[: -len("indicator")]
    return key


def _fmt(value: float) -> str:
    return f"{value:g}"


@attrs.frozen
class ParamSpec:
    """One parameter of an indicator type.

    ``kind`` is ``int``, ``float``, ``str`` or ``bool``. Bounds are inclusive;
    ``choices`` (for ``str``) match case-insensitively and are stored in the
    spelling given here. ``aliases`` are other spellings accepted in files.
    """

    name: str
    kind: str
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    description: str = ""
    aliases: tuple[str, ...] = ()

    def __attrs_post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"parameter {self.name}: kind must be one of {', '.join(KINDS)}")

    def check(self, value: Any) -> tuple[Any, str | None]:
        """``(clean value, None)`` or ``(None, problem)``."""
        if self.kind == "bool":
            if isinstance(value, bool):
                return value, None
            return None, f"{self.name} must be true or false, got {value!r}"
        if self.kind == "str":
            if not isinstance(value, str):
                return None, f"{self.name} must be a string, got {value!r}"
            if self.choices:
                for choice in self.choices:
                    if choice.lower() == value.lower():
                        return choice, None
                return None, f"{self.name} must be one of {', '.join(self.choices)}, got {value!r}"
            return value, None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            what = "an integer" if self.kind == "int" else "a number"
            return None, f"{self.name} must be {what}, got {value!r}"
        if self.kind == "int":
            if isinstance(value, float) and not value.is_integer():
                return None, f"{self.name} must be an integer, got {value!r}"
            number: float = int(value)
        else:
            if not math.isfinite(value):
                return None, f"{self.name} must be a finite number, got {value!r}"
            number = float(value)
        if self.minimum is not None and number < self.minimum:
            return None, f"{self.name} must be at least {_fmt(self.minimum)}, got {_fmt(number)}"
        if self.maximum is not None and number > self.maximum:
            return None, f"{self.name} must be at most {_fmt(self.maximum)}, got {_fmt(number)}"
        return number, None

    def describe(self) -> str:
        """``name=default`` with bounds or choices, for docs and messages."""
        extra = ""
        if self.choices:
            extra = f" ({'/'.join(self.choices)})"
        elif self.minimum is not None or self.maximum is not None:
            low = _fmt(self.minimum) if self.minimum is not None else ""
            high = _fmt(self.maximum) if self.maximum is not None else ""
            extra = f" ({low}..{high})"
        default = str(self.default).lower() if isinstance(self.default, bool) else self.default
        return f"{self.name}={default}{extra}"


def _no_checks(params: Mapping[str, Any]) -> list[str]:
    return []


@attrs.frozen
class IndicatorSpec:
    """One indicator type: its parameters, inputs, named outputs and how to compute them.

    ``compute_fn(ohlcv, params)`` gets float64 arrays of the columns it reads
    and clean parameters, and returns ``{output: array}`` for every name in
    ``outputs``. ``lookback_fn(params)`` is the warm-up. A spec with a
    ``source`` parameter also reads that column; ``inputs`` are the columns it
    always reads. ``checks`` finds problems between parameters (fast < slow).
    """

    type: str
    outputs: tuple[str, ...]
    params: tuple[ParamSpec, ...]
    inputs: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    compute_fn: Compute = attrs.field(kw_only=True, eq=False, repr=False)
    lookback_fn: Callable[[Mapping[str, Any]], int] = attrs.field(kw_only=True, eq=False, repr=False)
    checks: Callable[[Mapping[str, Any]], list[str]] = attrs.field(
        kw_only=True, default=_no_checks, eq=False, repr=False
    )
    library: str = attrs.field(kw_only=True, default="own code")
    description: str = attrs.field(kw_only=True, default="")

    def __attrs_post_init__(self) -> None:
        if not self.outputs:
            raise ValueError(f"indicator {self.type!r} must name at least one output")
        if len(set(self.outputs)) != len(self.outputs):
            raise ValueError(f"indicator {self.type!r} repeats an output name")
        bad = [c for c in self.inputs if c not in PRICE_COLUMNS]
        if bad:
            raise ValueError(f"indicator {self.type!r}: unknown input column(s) {', '.join(bad)}")
        names = [p.name for p in self.params] + [a for p in self.params for a in p.aliases]
        if len(set(names)) != len(names):
            raise ValueError(f"indicator {self.type!r} repeats a parameter name")

    @property
    def primary(self) -> str:
        """The output a bare indicator id means."""
        return self.outputs[0]

    def param(self, name: str) -> ParamSpec | None:
        for spec in self.params:
            if name == spec.name or name in spec.aliases:
                return spec
        return None

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def validate(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Clean params with defaults filled in, and EVERY problem found (empty list = valid)."""
        clean = self.defaults()
        problems: list[str] = []
        seen: dict[str, str] = {}
        for key, value in params.items():
            spec = self.param(str(key))
            if spec is None:
                if key == "source" and value == "close" and "close" in self.inputs:
                    continue  # written by other tools for every indicator; this one reads close
                problems.append(self._unknown(str(key)))
                continue
            if spec.name in seen:
                problems.append(f"{key} and {seen[spec.name]} are the same parameter; give one")
                continue
            seen[spec.name] = str(key)
            cleaned, problem = spec.check(value)
            if problem is not None:
                problems.append(problem)
            else:
                clean[spec.name] = cleaned
        source = self.param("source")
        if source is not None and not problems and clean["source"] not in SOURCE_COLUMNS:
            problems.append(f"source must be one of {', '.join(SOURCE_COLUMNS)}, got {clean['source']!r}")
        if not problems:
            problems.extend(self.checks(clean))
        return clean, problems

    def _unknown(self, key: str) -> str:
        known = ", ".join(p.name for p in self.params) or "none"
        if key == "source":
            return f"source is not a parameter of {self.type} (it reads {', '.join(self.inputs)})"
        return f"{key} is not a parameter of {self.type} (parameters: {known})"

    def clean(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Validated params, or ``ValueError`` listing every problem."""
        clean, problems = self.validate(params)
        if problems:
            raise ValueError(f"{self.type}: " + "; ".join(problems))
        return clean

    def columns(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        """Every price column this indicator reads with these params."""
        cols = list(self.inputs)
        if self.param("source") is not None:
            source = str(params.get("source", self.defaults()["source"]))
            if source not in cols:
                cols.insert(0, source)
        return tuple(cols)

    def warmup(self, params: Mapping[str, Any]) -> int:
        """Bars before the first defined value (used to ship/trim data and drop warm-up rows)."""
        return int(self.lookback_fn(self.clean(params)))

    def compute(self, ohlcv: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """{output_name: float64 array of len(bars)}, NaN during warm-up; uses only bars <= t for value t."""
        clean = self.clean(params)
        needed = self.columns(clean)
        missing = [c for c in needed if c not in ohlcv or ohlcv[c] is None]
        if missing:
            raise ValueError(f"{self.type} needs the column(s) {', '.join(missing)}")
        arrays = {c: np.ascontiguousarray(ohlcv[c], dtype=np.float64) for c in needed}
        lengths = {len(a) for a in arrays.values()}
        if len(lengths) > 1:
            raise ValueError(f"{self.type}: input columns differ in length")
        n = lengths.pop() if lengths else 0
        if n <= self.lookback_fn(clean):
            return {name: np.full(n, np.nan) for name in self.outputs}
        with np.errstate(divide="ignore", invalid="ignore"):
            raw = self.compute_fn(arrays, clean)
        out: dict[str, np.ndarray] = {}
        for name in self.outputs:
            if name not in raw:
                raise ValueError(f"{self.type} did not compute its output {name!r}")
            values = np.asarray(raw[name], dtype=np.float64)
            if values.shape != (n,):
                raise ValueError(f"{self.type}.{name} has shape {values.shape}, expected ({n},)")
            out[name] = np.where(np.isinf(values), np.nan, values)
        return out


@attrs.frozen
class _Entry:
    spec: IndicatorSpec
    plugin: str


class IndicatorRegistry:
    """Indicator types by name; names are matched by :func:`normalize_name`."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}  # canonical type -> entry
        self._keys: dict[str, str] = {}  # normalized name or alias -> canonical type
        self.errors: dict[str, str] = {}
        """Plugins whose ``register_indicators`` failed, with the error (nothing of theirs is in)."""

    def register(self, spec: IndicatorSpec, *, plugin: str = "") -> None:
        """Add ``spec``; a type or alias that is already taken is a ``ValueError`` naming both."""
        if not isinstance(spec, IndicatorSpec):
            raise TypeError(f"register() takes an IndicatorSpec, got {type(spec).__name__}")
        for name in self._conflicts(spec):
            raise ValueError(name)
        keys = {normalize_name(n) for n in (spec.type, *spec.aliases)}
        self._entries[spec.type] = _Entry(spec, plugin)
        for key in keys:
            self._keys[key] = spec.type

    def _conflicts(self, spec: IndicatorSpec) -> Iterator[str]:
        by = f" (from {self._entries[spec.type].plugin})" if spec.type in self._entries else ""
        if spec.type in self._entries:
            yield f"indicator type {spec.type!r} is already registered{by}"
        for name in (spec.type, *spec.aliases):
            owner = self._keys.get(normalize_name(name))
            if owner is not None:
                entry = self._entries[owner]
                source = f" by {entry.plugin}" if entry.plugin else ""
                yield (f"indicator name {name!r} of {spec.type!r} is already taken by {owner!r}{source}")

    def get(self, name: str) -> IndicatorSpec | None:
        """The spec for a type name or alias (case-insensitive), or ``None``."""
        if not isinstance(name, str):
            return None
        canonical = self._keys.get(normalize_name(name))
        return self._entries[canonical].spec if canonical is not None else None

    def plugin_of(self, name: str) -> str:
        canonical = self._keys.get(normalize_name(name), "")
        return self._entries[canonical].plugin if canonical in self._entries else ""

    def names(self) -> list[str]:
        """Canonical types, sorted."""
        return sorted(self._entries)

    def specs(self) -> list[IndicatorSpec]:
        return [self._entries[name].spec for name in self.names()]

    def unknown_message(self, name: Any) -> str:
        """One line for a type nobody registered (with any plugin that failed to register)."""
        text = f"unknown indicator type {name!r} (known: {', '.join(self.names())})"
        if self.errors:
            failed = "; ".join(f"{plugin}: {error}" for plugin, error in sorted(self.errors.items()))
            text += f"; plugins that failed to register indicators: {failed}"
        return text

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __len__(self) -> int:
        return len(self._entries)


class _PluginView:
    """What one plugin's ``register_indicators`` sees: registrations are kept only if it succeeds."""

    def __init__(self, registry: IndicatorRegistry, plugin: str) -> None:
        self._registry = registry
        self._plugin = plugin
        self._staged = IndicatorRegistry()

    def register(self, spec: IndicatorSpec) -> None:
        if not isinstance(spec, IndicatorSpec):
            raise TypeError(f"register() takes an IndicatorSpec, got {type(spec).__name__}")
        for problem in self._registry._conflicts(spec):
            raise ValueError(problem)
        self._staged.register(spec, plugin=self._plugin)

    def get(self, name: str) -> IndicatorSpec | None:
        return self._staged.get(name) or self._registry.get(name)

    def names(self) -> list[str]:
        return sorted(set(self._registry.names()) | set(self._staged.names()))

    def commit(self) -> None:
        for spec in self._staged.specs():
            self._registry.register(spec, plugin=self._plugin)


BUILTIN_PLUGIN = "ktrdr-indicators"


def collect_indicators(pm: Any) -> IndicatorRegistry:
    """Run every ``register_indicators`` implementation, each isolated from the others.

    The built-ins go first, so a plugin cannot take a built-in name. Each
    plugin is called on its own through ``pm.calls`` (pluggy's call machinery)
    with its own view of the registry: a plugin whose hook raises (or
    registers a taken name) contributes nothing; its error is kept in
    ``registry.errors`` and logged.
    """
    registry = IndicatorRegistry()
    views: dict[str, _PluginView] = {}

    def view_for(plugin: str) -> _PluginView:
        return views.setdefault(plugin, _PluginView(registry, plugin))

    for plugin, error in pm.calls.register_indicators(view_for, first=BUILTIN_PLUGIN):
        if error is None:
            views[plugin].commit()
        else:
            registry.errors[plugin] = error
    return registry


_lock = threading.Lock()
_cached: tuple[Any, IndicatorRegistry] | None = None


def default_registry() -> IndicatorRegistry:
    """Built-ins + every loaded plugin's hook; cached for the current plugin manager."""
    global _cached
    pm = pluginhost.plugin_manager()
    with _lock:
        if _cached is None or _cached[0] is not pm:
            _cached = (pm, collect_indicators(pm))
        return _cached[1]


def parse_reference(ref: str) -> tuple[str, str | None]:
    """``"adx_14.plus_di"`` -> ``("adx_14", "plus_di")``; ``"rsi_14"`` -> ``("rsi_14", None)``."""
    if not isinstance(ref, str) or not ref:
        raise ValueError(f"an indicator reference must be a non-empty string, got {ref!r}")
    head, dot, tail = ref.partition(".")
    if not head or (dot and (not tail or "." in tail)):
        raise ValueError(f"indicator reference {ref!r} must be ID or ID.OUTPUT")
    return head, (tail if dot else None)
