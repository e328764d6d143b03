"""Strategy files: the YAML schema, its validation, and name-only resolution.

A strategy is named, never given as a path (a path from a request could reach any file): the name
resolves to ``NAME.yaml`` in ``KTRDR_STRATEGIES_DIR`` and then to the built-in
strategies shipped in ``ktrdr_core/training/strategies/``. Every validation
error names the file and the offending key, e.g.
``strategies/x.yaml: model.architecture.dropout must be between 0 and 1``.
Unknown keys are errors: a typo must never be silently ignored.

This module imports no torch, so ``ktrdr strategies`` stays quick.
The full schema is documented in ``docs/engine.md``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import yaml

from ktrdr_core.errors import BadInputError
from ktrdr_core.request import (
    STRATEGY_NAME_PATTERN,
    SYMBOL_PATTERN,
    TIMEFRAME_PATTERN,
    check_strategy_name,
)

__all__ = [
    "BUILTIN_STRATEGIES_DIR",
    "DataSplitConfig",
    "EarlyStoppingConfig",
    "FuzzySetConfig",
    "IndicatorConfig",
    "LabelConfig",
    "ModelConfig",
    "NNInput",
    "StrategyConfig",
    "StrategyProblems",
    "StrategyInfo",
    "TrainingDataConfig",
    "TrainingParams",
    "iter_strategy_files",
    "list_strategies",
    "load_strategy",
    "load_strategy_file",
    "resolve_strategy_path",
    "strategies_dir",
]

BUILTIN_STRATEGIES_DIR = Path(__file__).resolve().parent / "strategies"


#: Old names of the native schema, kept working: name -> (registry type, output a
#: bare feature_id means). ``num_std`` is an alias of bollinger_bands' multiplier.
LEGACY_INDICATORS: dict[str, tuple[str, str]] = {
    "bollinger_percent_b": ("bollinger_bands", "percent_b"),
}
#: What a bare ``macd`` feature_id meant before indicators had named outputs.
LEGACY_DEFAULT_OUTPUT = {"macd": "histogram"}
#: Indicator types are the registry's (``ktrdr_core.training.indicators``); this
#: lists the native schema's keys of one ``indicators`` entry.
INDICATOR_KEYS = ("name", "feature_id", "period", "params", "source")
FUZZY_TYPES = {"triangular": 3, "trapezoidal": 4, "gaussian": 2}
ACTIVATIONS = ("relu", "tanh", "gelu", "leaky_relu", "elu", "sigmoid")
OPTIMIZERS = ("adam",)
MONITORS = ("val_loss", "val_accuracy")
SPLIT_METHODS = ("chronological", "random")


# --------------------------------------------------------------------------- config classes


@attrs.frozen
class TrainingDataConfig:
    """What to train on; several ``timeframes`` are aligned on ``base_timeframe``.

    ``base_timeframe`` ``None`` means the finest of the run's timeframes.
    ``start_date`` / ``end_date`` are the file's default date range; a
    request's own range wins.
    """

    symbols: tuple[str, ...]
    timeframes: tuple[str, ...]
    base_timeframe: str | None = None
    start_date: str | None = None
    end_date: str | None = None


@attrs.frozen
class NNInput:
    """One ``nn_inputs`` entry: a ``fuzzy_sets`` key and the timeframes it feeds (None: all)."""

    fuzzy_set: str
    timeframes: tuple[str, ...] | None = None


@attrs.frozen
class IndicatorConfig:
    """One indicator; ``feature_id`` is the id its outputs are referenced by.

    ``name`` is the registry's canonical type and ``params`` every parameter of
    it, defaults filled in (``period`` and ``source`` are repeated as fields
    when the type has them). ``fuzzy_sets`` keys reference it as
    ``feature_id`` (the output ``output`` names, else the type's primary) or
    ``feature_id.OUTPUT``.
    """

    name: str
    feature_id: str
    period: int | None
    source: str
    params: Mapping[str, Any] = attrs.field(factory=dict)
    output: str | None = None

    def references(self, outputs: Sequence[str]) -> dict[str, str]:
        """``{reference: output}`` for this indicator, given its type's outputs."""
        refs = {self.feature_id: self.output or outputs[0]}
        refs.update({f"{self.feature_id}.{name}": name for name in outputs})
        return refs


@attrs.frozen
class FuzzySetConfig:
    name: str
    type: str
    parameters: tuple[float, ...]


@attrs.frozen
class EarlyStoppingConfig:
    enabled: bool = True
    patience: int = 10
    monitor: str = "val_loss"
    min_delta: float = 0.0


@attrs.frozen
class TrainingParams:
    """``model.training``: what :class:`~ktrdr_core.training.trainer.ModelTrainer` reads.

    ``lr_scheduler`` is ``None`` or a mapping with ``type`` and that type's
    settings, every default filled in; ``gradient_clip`` 0 means no clipping;
    ``class_weights`` is ``None``, ``"balanced"`` or one weight per class.
    """

    learning_rate: float = 0.001
    batch_size: int = 32
    epochs: int = 100
    optimizer: str = "adam"
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    lr_scheduler: Mapping[str, Any] | None = None
    gradient_clip: float = 0.0
    loss: str = "cross_entropy"
    focal_gamma: float = 2.0
    class_weights: str | tuple[float, ...] | None = None


@attrs.frozen
class ModelConfig:
    type: str = "mlp"
    hidden_layers: tuple[int, ...] = (64, 32)
    activation: str = "relu"
    dropout: float = 0.2
    lookback_periods: int = 0
    training: TrainingParams = TrainingParams()


@attrs.frozen
class LabelConfig:
    """``training.labels``: zigzag (``zigzag_threshold``, ``label_lookahead``) or
    triple_barrier (the ``pt_``/``sl_multiplier`` barriers in ``vol_method`` units,
    ``max_holding_period`` bars, volatility over ``vol_span`` bars)."""

    source: str = "zigzag"
    zigzag_threshold: float = 0.02
    label_lookahead: int = 20
    pt_multiplier: float = 2.0
    sl_multiplier: float = 1.5
    max_holding_period: int = 50
    vol_span: int = 50
    vol_method: str = "atr"

    @property
    def horizon(self) -> int:
        """How many bars after a sample its label looks at (the split's gap)."""
        return self.max_holding_period if self.source == "triple_barrier" else self.label_lookahead

    def to_dict(self) -> dict[str, Any]:
        """The keys of the chosen source only."""
        keys = (
            ("zigzag_threshold", "label_lookahead")
            if self.source == "zigzag"
            else ("pt_multiplier", "sl_multiplier", "max_holding_period", "vol_span", "vol_method")
        )
        return {"source": self.source, **{key: getattr(self, key) for key in keys}}


@attrs.frozen
class DataSplitConfig:
    train: float = 0.7
    validation: float = 0.15
    test: float = 0.15
    method: str = "chronological"


@attrs.frozen
class StrategyConfig:
    """A parsed, validated strategy file."""

    name: str
    description: str
    training_data: TrainingDataConfig
    indicators: tuple[IndicatorConfig, ...]
    fuzzy_sets: Mapping[str, tuple[FuzzySetConfig, ...]]
    model: ModelConfig
    labels: LabelConfig
    data_split: DataSplitConfig
    source_path: str | None = attrs.field(default=None, eq=False)
    fuzzy_inputs: Mapping[str, str] = attrs.field(factory=dict)
    """``fuzzy_sets`` key -> indicator reference, for keys that are not references themselves."""
    nn_inputs: tuple[NNInput, ...] = ()
    """Which fuzzy sets feed the model on which timeframes; empty: every set on every one."""
    source_format: str = attrs.field(default="native", eq=False)
    """The file's format (``native``, ``v3``, ``v1.5``, ``v1``); see ``formats``."""
    not_used: Mapping[str, Any] = attrs.field(factory=dict, eq=False)
    """Sections kept from the file that do not affect training (``decisions``, ...)."""
    notes: tuple[str, ...] = attrs.field(default=(), eq=False)
    """Keys of the file that were translated away or dropped, each with why."""

    def inputs_on(self, timeframe: str) -> tuple[str, ...]:
        """The ``fuzzy_sets`` keys that feed the model on ``timeframe``, in strategy order."""
        if not self.nn_inputs:
            return tuple(self.fuzzy_sets)
        wanted = {i.fuzzy_set for i in self.nn_inputs if i.timeframes is None or timeframe in i.timeframes}
        return tuple(key for key in self.fuzzy_sets if key in wanted)

    def reference_of(self, key: str) -> str:
        """The indicator reference (``ID`` or ``ID.OUTPUT``) a ``fuzzy_sets`` key reads."""
        return self.fuzzy_inputs.get(key, key)

    def to_dict(self) -> dict[str, Any]:
        """The strategy in the YAML schema's shape, JSON-ready (the resolved config)."""
        training = self.model.training
        return {
            "name": self.name,
            "description": self.description,
            "training_data": {
                "symbols": list(self.training_data.symbols),
                "timeframes": list(self.training_data.timeframes),
                **{
                    key: value
                    for key in ("base_timeframe", "start_date", "end_date")
                    if (value := getattr(self.training_data, key)) is not None
                },
            },
            "indicators": [_indicator_dict(ind) for ind in self.indicators],
            "fuzzy_sets": {
                feature_id: {
                    **(
                        {"indicator": self.fuzzy_inputs[feature_id]}
                        if feature_id in self.fuzzy_inputs
                        else {}
                    ),
                    **{
                        fs.name: {"type": fs.type, "parameters": [_json_float(p) for p in fs.parameters]}
                        for fs in sets
                    },
                }
                for feature_id, sets in self.fuzzy_sets.items()
            },
            **(
                {
                    "nn_inputs": [
                        {
                            "fuzzy_set": i.fuzzy_set,
                            "timeframes": "all" if i.timeframes is None else list(i.timeframes),
                        }
                        for i in self.nn_inputs
                    ]
                }
                if self.nn_inputs
                else {}
            ),
            "model": {
                "type": self.model.type,
                "architecture": {
                    "hidden_layers": list(self.model.hidden_layers),
                    "activation": self.model.activation,
                    "dropout": self.model.dropout,
                },
                "features": {"lookback_periods": self.model.lookback_periods},
                "training": {
                    "learning_rate": training.learning_rate,
                    "batch_size": training.batch_size,
                    "epochs": training.epochs,
                    "optimizer": training.optimizer,
                    "early_stopping": attrs.asdict(training.early_stopping),
                    "lr_scheduler": (dict(training.lr_scheduler) if training.lr_scheduler else None),
                    "gradient_clip": training.gradient_clip,
                    "loss": training.loss,
                    **({"focal_gamma": training.focal_gamma} if training.loss == "focal" else {}),
                    "class_weights": (
                        list(training.class_weights)
                        if isinstance(training.class_weights, tuple)
                        else training.class_weights
                    ),
                },
            },
            "training": {
                "labels": self.labels.to_dict(),
                "data_split": attrs.asdict(self.data_split),
            },
        }

    def with_training(self, **changes: Any) -> StrategyConfig:
        """A copy whose ``model.training`` has ``changes`` (request overrides)."""
        training = attrs.evolve(self.model.training, **changes)
        return attrs.evolve(self, model=attrs.evolve(self.model, training=training))


def _indicator_dict(ind: IndicatorConfig) -> dict[str, Any]:
    """One ``indicators`` entry as the native schema writes it (it parses back the same)."""
    params = {k: v for k, v in ind.params.items() if k not in ("period", "source")}
    if ind.output is not None:
        params["output"] = ind.output
    return {
        "name": ind.name,
        "feature_id": ind.feature_id,
        **({"period": ind.period} if "period" in ind.params else {}),
        **({"source": ind.source} if "source" in ind.params else {}),
        **({"params": params} if params else {}),
    }


def _json_float(value: float) -> float | str:
    """JSON has no infinity: shoulders are written as the strings "inf" / "-inf"."""
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


# --------------------------------------------------------------------------- YAML loading


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys (YAML would silently keep the last)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:  # e.g. "? [a, b]": SafeLoader refuses it the same way
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, "found unhashable key", key_node.start_mark
            ) from None
        if key in mapping:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_yaml(path: Path, display: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInputError(f"{display}: cannot read strategy file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise BadInputError(f"{display}: strategy file is not UTF-8 text") from exc
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise BadInputError(f"{display}: invalid YAML: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if isinstance(exc, yaml.reader.ReaderError):  # a bad character, no line/column mark
            where = f"character {exc.position + 1}: "
            problem = (
                f"unacceptable character #x{exc.character:04x}"
                if isinstance(exc.character, int)
                else str(exc.reason)
            )
        else:
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
        # one line: the CLI prints "error: MESSAGE" and nothing else
        raise BadInputError(f"{display}: {where}invalid YAML: {' '.join(str(problem).split())}") from exc


# --------------------------------------------------------------------------- validation


class _Checker:
    """Validates one file's raw data; every error names the file and the key path."""

    def __init__(self, display: str) -> None:
        self.display = display

    def fail(self, key: str, problem: str) -> BadInputError:
        return BadInputError(f"{self.display}: {key} {problem}")

    def mapping(
        self, value: Any, key: str, allowed: Sequence[str], required: Sequence[str] = ()
    ) -> Mapping[str, Any]:
        label = key or "the file"
        if not isinstance(value, Mapping):
            if key:
                raise self.fail(key, f"must be a mapping, got {_type_name(value)}")
            raise BadInputError(
                f"{self.display}: a strategy file must be a mapping of keys, got {_type_name(value)}"
            )
        for name in value:
            if not isinstance(name, str):
                raise self.fail(label, f"has a non-text key {name!r}")
            if name not in allowed:
                where = f"{key}.{name}" if key else name
                raise BadInputError(
                    f"{self.display}: unknown key {where!r} (allowed here: {', '.join(allowed)})"
                )
        for name in required:
            if name not in value:
                raise BadInputError(f"{self.display}: {f'{key}.{name}' if key else name} is required")
        return value

    def text(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "must be a non-empty string")
        return value

    def choice(self, value: Any, key: str, choices: Sequence[str]) -> str:
        if not isinstance(value, str) or value.lower() not in choices:
            raise self.fail(key, f"must be one of {', '.join(choices)}, got {value!r}")
        return value.lower()

    def integer(self, value: Any, key: str, minimum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"must be an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise self.fail(key, f"must be at least {minimum}, got {value}")
        return value

    def number(self, value: Any, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, f"must be a number, got {value!r}")
        if math.isnan(value):
            raise self.fail(key, "must be a number, got NaN")
        return float(value)

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, got {value!r}")
        return value

    def string_list(self, value: Any, key: str, pattern: re.Pattern[str], what: str) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise self.fail(key, f"must be a non-empty list of {what}s")
        out = []
        for index, item in enumerate(value):
            if not isinstance(item, str) or not pattern.fullmatch(item):
                raise self.fail(f"{key}[{index}]", f"is not a valid {what}: {item!r}")
            if item in out:
                raise self.fail(f"{key}[{index}]", f"repeats {item!r}")
            out.append(item)
        return tuple(out)


def _type_name(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _parse_indicator(ck: _Checker, raw: Any, index: int) -> IndicatorConfig:
    """``{name: TYPE, feature_id?, period?, source?, params?}``, validated by the type's spec.

    Every problem with the parameters is reported at once. Old names keep
    working: ``bollinger_percent_b`` is bollinger_bands' ``percent_b`` output,
    and ``params.output`` picks the output a bare ``feature_id`` means (for
    ``macd`` the histogram unless it says otherwise, as before).
    """
    from ktrdr_core.training.indicators import default_registry

    key = f"indicators[{index}]"
    data = ck.mapping(raw, key, INDICATOR_KEYS, ("name",))
    registry = default_registry()
    raw_name = data["name"]
    legacy = LEGACY_INDICATORS.get(raw_name) if isinstance(raw_name, str) else None
    spec = registry.get(legacy[0] if legacy else raw_name)
    if spec is None:
        raise ck.fail(f"{key}.name", registry.unknown_message(raw_name))
    feature_id = data.get("feature_id", raw_name if legacy else spec.type)
    if not isinstance(feature_id, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", feature_id):
        raise ck.fail(f"{key}.feature_id", f"must be an identifier such as 'rsi_14', got {feature_id!r}")
    params_raw = data.get("params", {}) or {}
    if not isinstance(params_raw, Mapping):
        raise ck.fail(f"{key}.params", f"must be a mapping, got {_type_name(params_raw)}")
    params = dict(params_raw)
    problems: list[str] = []
    for shorthand in ("period", "source"):
        if shorthand in data:
            if shorthand in params:
                problems.append(f"params.{shorthand} repeats the indicator's {shorthand}")
            params[shorthand] = data[shorthand]
    if "output" in params:
        output = params.pop("output")
    else:
        output = legacy[1] if legacy else LEGACY_DEFAULT_OUTPUT.get(spec.type)
    if output is not None and output not in spec.outputs:
        problems.append(f"params.output must be one of {', '.join(spec.outputs)}, got {output!r}")
    clean, param_problems = spec.validate(params)
    problems.extend(param_problems)
    if problems:
        raise ck.fail(key, f"({spec.type}): {'; '.join(problems)}")
    return IndicatorConfig(
        name=spec.type,
        feature_id=feature_id,
        period=clean.get("period"),
        source=str(clean.get("source", "close")),
        params=clean,
        output=output if output != spec.primary else None,
    )


def _fuzzy_references(
    ck: _Checker, indicators: Sequence[IndicatorConfig]
) -> tuple[dict[str, int], dict[str, list[str]]]:
    """``{reference: index of its indicator}`` and each indicator's references, for messages."""
    from ktrdr_core.training.indicators import default_registry

    registry = default_registry()
    refs: dict[str, int] = {}
    by_id: dict[str, list[str]] = {}
    for i, ind in enumerate(indicators):
        spec = registry.get(ind.name)
        outputs = spec.outputs if spec is not None else (ind.name,)
        names = list(ind.references(outputs))
        refs.update(dict.fromkeys(names, i))
        by_id[ind.feature_id] = names
    return refs, by_id


def _parse_fuzzy_set(ck: _Checker, raw: Any, key: str, set_name: str) -> FuzzySetConfig:
    data = ck.mapping(raw, key, ("type", "parameters"), ("type", "parameters"))
    kind = ck.choice(data["type"], f"{key}.type", tuple(FUZZY_TYPES))
    params_raw = data["parameters"]
    count = FUZZY_TYPES[kind]
    if not isinstance(params_raw, list) or len(params_raw) != count:
        raise ck.fail(
            f"{key}.parameters", f"must be a list of {count} numbers for {kind}, got {params_raw!r}"
        )
    params = tuple(ck.number(p, f"{key}.parameters[{i}]") for i, p in enumerate(params_raw))
    if any(b < a for a, b in zip(params, params[1:], strict=False)) and kind != "gaussian":
        raise ck.fail(f"{key}.parameters", f"must be in ascending order, got {list(params)}")
    if kind == "triangular":
        if any(math.isinf(p) for p in params):
            raise ck.fail(
                f"{key}.parameters",
                "must be finite for triangular (use trapezoidal with -.inf/.inf for a shoulder)",
            )
        if params[0] == params[2]:
            raise ck.fail(f"{key}.parameters", f"must span a range (a < c), got {list(params)}")
    elif kind == "trapezoidal":
        a, b, c, d = params
        left = math.isinf(a) or math.isinf(b)
        right = math.isinf(c) or math.isinf(d)
        if (left and not a == b == -math.inf) or (right and not c == d == math.inf) or (left and right):
            raise ck.fail(
                f"{key}.parameters",
                "may hold infinities only as one shoulder: [-.inf, -.inf, c, d] or [a, b, .inf, .inf]",
            )
        if a == d:
            raise ck.fail(f"{key}.parameters", f"must span a range (a < d), got {list(params)}")
    else:
        mean, sigma = params
        if math.isinf(mean) or math.isinf(sigma) or sigma <= 0:
            raise ck.fail(
                f"{key}.parameters",
                f"must be [mean, sigma] with a finite mean and sigma > 0, got {list(params)}",
            )
    return FuzzySetConfig(name=set_name, type=kind, parameters=params)


def _parse_model(ck: _Checker, raw: Any) -> ModelConfig:
    data = ck.mapping(raw, "model", ("type", "architecture", "features", "training"), ("type",))
    kind = ck.choice(data["type"], "model.type", ("mlp",))
    arch = ck.mapping(
        data.get("architecture", {}) or {}, "model.architecture", ("hidden_layers", "activation", "dropout")
    )
    layers_raw = arch.get("hidden_layers", [64, 32])
    if not isinstance(layers_raw, list) or not layers_raw:
        raise ck.fail(
            "model.architecture.hidden_layers", f"must be a non-empty list of layer sizes, got {layers_raw!r}"
        )
    layers = tuple(
        ck.integer(v, f"model.architecture.hidden_layers[{i}]", 1) for i, v in enumerate(layers_raw)
    )
    activation = ck.choice(arch.get("activation", "relu"), "model.architecture.activation", ACTIVATIONS)
    dropout = ck.number(arch.get("dropout", 0.2), "model.architecture.dropout")
    if not 0 <= dropout < 1:
        raise ck.fail("model.architecture.dropout", f"must be between 0 and 1, got {dropout}")
    features = ck.mapping(data.get("features", {}) or {}, "model.features", ("lookback_periods",))
    lookback = ck.integer(features.get("lookback_periods", 0), "model.features.lookback_periods", 0)
    tr = ck.mapping(
        data.get("training", {}) or {},
        "model.training",
        (
            "learning_rate",
            "batch_size",
            "epochs",
            "optimizer",
            "early_stopping",
            "lr_scheduler",
            "gradient_clip",
            "loss",
            "focal_gamma",
            "class_weights",
        ),
    )
    lr = ck.number(tr.get("learning_rate", 0.001), "model.training.learning_rate")
    if not 0 < lr <= 10:
        raise ck.fail("model.training.learning_rate", f"must be between 0 and 10, got {lr}")
    es_raw = tr.get("early_stopping", {})
    if isinstance(es_raw, bool):
        es_raw = {"enabled": es_raw}
    es = ck.mapping(
        es_raw or {}, "model.training.early_stopping", ("enabled", "patience", "monitor", "min_delta")
    )
    min_delta = ck.number(es.get("min_delta", 0.0), "model.training.early_stopping.min_delta")
    if min_delta < 0:
        raise ck.fail("model.training.early_stopping.min_delta", "must not be negative")
    early = EarlyStoppingConfig(
        enabled=ck.boolean(es.get("enabled", True), "model.training.early_stopping.enabled"),
        patience=ck.integer(es.get("patience", 10), "model.training.early_stopping.patience", 1),
        monitor=ck.choice(es.get("monitor", "val_loss"), "model.training.early_stopping.monitor", MONITORS),
        min_delta=min_delta,
    )
    params = TrainingParams(
        learning_rate=lr,
        batch_size=ck.integer(tr.get("batch_size", 32), "model.training.batch_size", 1),
        epochs=ck.integer(tr.get("epochs", 100), "model.training.epochs", 1),
        optimizer=ck.choice(tr.get("optimizer", "adam"), "model.training.optimizer", OPTIMIZERS),
        early_stopping=early,
        **_parse_training_options(ck, tr),
    )
    return ModelConfig(
        type=kind,
        hidden_layers=layers,
        activation=activation,
        dropout=dropout,
        lookback_periods=lookback,
        training=params,
    )


#: lr_scheduler type -> its settings and their defaults (torch.optim.lr_scheduler classes)
LR_SCHEDULERS: dict[str, dict[str, float | int]] = {
    "reduce_on_plateau": {"factor": 0.5, "patience": 5, "min_lr": 0.0},
    "step": {"step_size": 30, "gamma": 0.1},
    "exponential": {"gamma": 0.95},
}
LOSSES = ("cross_entropy", "focal")
NUM_LABEL_CLASSES = 3  # BUY, HOLD, SELL
TRIPLE_BARRIER_KEYS = ("pt_multiplier", "sl_multiplier", "max_holding_period", "vol_span", "vol_method")
VOL_METHODS = ("atr", "close", "fixed")


def lr_scheduler_shorthand(raw: Any) -> Any:
    """``false``/absent: ``None`` (no scheduler); ``true``: reduce_on_plateau; a bare type
    name: that type; anything else as given (a mapping with ``type`` and settings)."""
    if raw is None or raw is False:
        return None
    if raw is True:
        return {"type": "reduce_on_plateau"}
    return {"type": raw} if isinstance(raw, str) else raw


def _parse_lr_scheduler(ck: _Checker, raw: Any) -> dict[str, Any] | None:
    key = "model.training.lr_scheduler"
    raw = lr_scheduler_shorthand(raw)
    if raw is None:
        return None
    data = ck.mapping(raw, key, ("type", *sorted({k for d in LR_SCHEDULERS.values() for k in d})), ("type",))
    kind = ck.choice(data["type"], f"{key}.type", tuple(LR_SCHEDULERS))
    defaults = LR_SCHEDULERS[kind]
    for name in data:
        if name != "type" and name not in defaults:
            raise ck.fail(
                f"{key}.{name}", f"is not a setting of {kind} (its settings: {', '.join(defaults)})"
            )
    out: dict[str, Any] = {"type": kind}
    for name, default in defaults.items():
        where = f"{key}.{name}"
        if isinstance(default, int):
            out[name] = ck.integer(data.get(name, default), where, 1 if name == "step_size" else 0)
            continue
        value = ck.number(data.get(name, default), where)
        if name == "min_lr" and not 0 <= value < math.inf:
            raise ck.fail(where, f"must be a finite number ≥ 0, got {value}")
        if name == "factor" and not 0 < value < 1:
            raise ck.fail(where, f"must be between 0 and 1 (the LR is multiplied by it), got {value}")
        if name == "gamma" and not 0 < value <= 1:
            raise ck.fail(where, f"must be in (0, 1] (the LR is multiplied by it), got {value}")
        out[name] = value
    return out


def _parse_class_weights(ck: _Checker, raw: Any) -> str | tuple[float, ...] | None:
    key = "model.training.class_weights"
    if raw is None or (isinstance(raw, str) and raw.lower() == "none"):
        return None
    if isinstance(raw, str):
        return ck.choice(raw, key, ("balanced", "none"))
    if not isinstance(raw, list) or len(raw) != NUM_LABEL_CLASSES:
        raise ck.fail(key, f"must be balanced, none, or a list of 3 weights (BUY, HOLD, SELL), got {raw!r}")
    weights = tuple(ck.number(w, f"{key}[{i}]") for i, w in enumerate(raw))
    if any(not 0 <= w < math.inf for w in weights) or not any(weights):
        raise ck.fail(key, f"weights must be finite, ≥ 0 and not all 0, got {list(weights)}")
    return weights


def _parse_training_options(ck: _Checker, tr: Mapping[str, Any]) -> dict[str, Any]:
    """``lr_scheduler``, ``gradient_clip``, ``loss``, ``focal_gamma``, ``class_weights``."""
    clip = ck.number(tr.get("gradient_clip", 0.0), "model.training.gradient_clip")
    if not 0 <= clip < math.inf:
        raise ck.fail(
            "model.training.gradient_clip",
            f"must be a finite number ≥ 0 (the largest gradient norm; 0 turns clipping off), got {clip}",
        )
    loss = ck.choice(tr.get("loss", "cross_entropy"), "model.training.loss", LOSSES)
    gamma = 2.0
    if "focal_gamma" in tr:
        if loss != "focal":
            raise ck.fail("model.training.focal_gamma", "is used only with loss: focal")
        gamma = ck.number(tr["focal_gamma"], "model.training.focal_gamma")
        if not 0 <= gamma <= 10:
            raise ck.fail("model.training.focal_gamma", f"must be between 0 and 10, got {gamma}")
    return {
        "lr_scheduler": _parse_lr_scheduler(ck, tr.get("lr_scheduler")),
        "gradient_clip": clip,
        "loss": loss,
        "focal_gamma": gamma,
        "class_weights": _parse_class_weights(ck, tr.get("class_weights")),
    }


def _parse_labels(ck: _Checker, raw: Any) -> LabelConfig:
    zigzag_keys = ("zigzag_threshold", "label_lookahead")
    lab = ck.mapping(
        raw or {}, "training.labels", ("source", *zigzag_keys, *TRIPLE_BARRIER_KEYS, "compute_weights")
    )
    source = ck.choice(lab.get("source", "zigzag"), "training.labels.source", ("zigzag", "triple_barrier"))
    if ck.boolean(lab.get("compute_weights", False), "training.labels.compute_weights"):
        raise ck.fail(
            "training.labels.compute_weights",
            "is not supported: ktrdr does not weight "
            "samples by label uniqueness (remove it or set it to false)",
        )
    other = TRIPLE_BARRIER_KEYS if source == "zigzag" else zigzag_keys
    for name in other:
        if name in lab:
            raise ck.fail(f"training.labels.{name}", f"is not used by source: {source}")
    if source == "zigzag":
        threshold = ck.number(lab.get("zigzag_threshold", 0.02), "training.labels.zigzag_threshold")
        if not 0 < threshold < 1:
            raise ck.fail(
                "training.labels.zigzag_threshold",
                f"must be between 0 and 1 (a fraction: 0.02 is 2 %), got {threshold}",
            )
        return LabelConfig(
            source=source,
            zigzag_threshold=threshold,
            label_lookahead=ck.integer(lab.get("label_lookahead", 20), "training.labels.label_lookahead", 1),
        )
    barriers: dict[str, float] = {}
    for name, default in (("pt_multiplier", 2.0), ("sl_multiplier", 1.5)):
        value = ck.number(lab.get(name, default), f"training.labels.{name}")
        if not 0 < value < math.inf:
            raise ck.fail(f"training.labels.{name}", f"must be a finite number > 0, got {value}")
        barriers[name] = value
    method = ck.choice(lab.get("vol_method", "atr"), "training.labels.vol_method", VOL_METHODS)
    if method == "fixed" and "vol_span" in lab:
        raise ck.fail("training.labels.vol_span", "is not used by vol_method: fixed")
    if method == "fixed" and barriers["sl_multiplier"] >= 1:
        raise ck.fail(
            "training.labels.sl_multiplier",
            "must be below 1 with vol_method: fixed "
            f"(a fraction of the price: 0.01 is 1 %), got {barriers['sl_multiplier']}",
        )
    return LabelConfig(
        source=source,
        pt_multiplier=barriers["pt_multiplier"],
        sl_multiplier=barriers["sl_multiplier"],
        vol_method=method,
        max_holding_period=ck.integer(
            lab.get("max_holding_period", 50), "training.labels.max_holding_period", 1
        ),
        vol_span=ck.integer(lab.get("vol_span", 50), "training.labels.vol_span", 2),
    )


def _parse_training(ck: _Checker, raw: Any) -> tuple[LabelConfig, DataSplitConfig]:
    data = ck.mapping(raw or {}, "training", ("labels", "data_split"))
    labels = _parse_labels(ck, data.get("labels", {}))
    sp = ck.mapping(
        data.get("data_split", {}) or {}, "training.data_split", ("train", "validation", "test", "method")
    )
    fractions = {}
    for part, default in (("train", 0.7), ("validation", 0.15), ("test", 0.15)):
        value = ck.number(sp.get(part, default), f"training.data_split.{part}")
        if not 0 < value < 1:
            raise ck.fail(f"training.data_split.{part}", f"must be between 0 and 1, got {value}")
        fractions[part] = value
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise ck.fail("training.data_split", f"fractions must add up to 1, got {total:g}")
    split = DataSplitConfig(
        **fractions,
        method=ck.choice(sp.get("method", "chronological"), "training.data_split.method", SPLIT_METHODS),
    )
    return labels, split


class StrategyProblems(BadInputError):
    """A strategy file with one or more problems, every one of them listed.

    ``problems`` holds each problem without the file name; the message is one
    line (``FILE: PROBLEM`` for one, ``FILE: N problems: A; B; ...`` for more),
    so a user fixes the whole file in one pass, not one error per run.
    """

    def __init__(self, display: str, problems: Sequence[str]) -> None:
        self.display = display
        self.problems = tuple(problems)
        if len(self.problems) == 1:
            message = f"{display}: {self.problems[0]}"
        else:
            message = f"{display}: {len(self.problems)} problems: {'; '.join(self.problems)}"
        super().__init__(message)


class _Problems:
    """Collects every section's error instead of stopping at the first."""

    def __init__(self, display: str, initial: Sequence[str] = ()) -> None:
        self.display = display
        self.items: list[str] = list(initial)

    def attempt(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)``, or ``None`` with its :class:`BadInputError` recorded."""
        try:
            return fn(*args)
        except StrategyProblems as exc:
            self.items.extend(exc.problems)
        except BadInputError as exc:
            text = str(exc)
            prefix = f"{self.display}: "
            self.items.append(text[len(prefix) :] if text.startswith(prefix) else text)
        return None


def _parse_training_data(ck: _Checker, raw: Any) -> TrainingDataConfig:
    from ktrdr_core.training.data import parse_date_bound

    td = ck.mapping(
        raw,
        "training_data",
        ("symbols", "timeframes", "base_timeframe", "start_date", "end_date"),
        ("symbols", "timeframes"),
    )
    timeframes = ck.string_list(
        td["timeframes"], "training_data.timeframes", TIMEFRAME_PATTERN, "timeframe (such as 1h)"
    )
    base = td.get("base_timeframe")
    if base is not None and base not in timeframes:
        raise ck.fail(
            "training_data.base_timeframe",
            f"must be one of the timeframes ({', '.join(timeframes)}), got {base!r}",
        )
    if len(timeframes) == 1:
        base = None  # one timeframe is its own base
    dates: dict[str, str | None] = {}
    for key in ("start_date", "end_date"):
        value = td.get(key)
        if value is not None:
            value = str(value)  # YAML reads an unquoted 2023-01-31 as a date
            try:
                parse_date_bound(value, end=key == "end_date", what=f"training_data.{key}")
            except BadInputError as exc:
                raise ck.fail(f"training_data.{key}", str(exc).split(" ", 2)[-1]) from None
        dates[key] = value
    if dates["start_date"] and dates["end_date"]:
        start = parse_date_bound(dates["start_date"])
        stop = parse_date_bound(dates["end_date"], end=True)
        if start is not None and stop is not None and stop < start:
            raise ck.fail(
                "training_data.end_date", f"{dates['end_date']} is before start_date {dates['start_date']}"
            )
    return TrainingDataConfig(
        symbols=ck.string_list(td["symbols"], "training_data.symbols", SYMBOL_PATTERN, "symbol"),
        timeframes=timeframes,
        base_timeframe=base,
        **dates,
    )


_KEY_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def _parse_fuzzy_entry(
    ck: _Checker,
    key: Any,
    sets: Any,
    references: Mapping[str, int],
    by_id: Mapping[str, list[str]],
    ids: Sequence[str],
) -> tuple[str, tuple[FuzzySetConfig, ...], str]:
    """One ``fuzzy_sets`` entry: ``(key, sets, the reference it reads)``.

    The key is a reference itself (``rsi_14``, ``adx_14.plus_di``) or, with an
    ``indicator:`` entry, any name (``rsi_fast: {indicator: rsi_14, ...}``), so
    that two sets of sets can read the same indicator.
    """
    where = f"fuzzy_sets.{key}"
    if not isinstance(sets, Mapping) or not sets:
        raise ck.fail(where, "must be a non-empty mapping of named sets")
    reference = sets.get("indicator", key)
    if reference != key and (not isinstance(key, str) or not _KEY_PATTERN.fullmatch(key)):
        raise ck.fail("fuzzy_sets", f"has an invalid key {key!r} (letters, digits and _)")
    if reference not in references:
        head = str(reference).partition(".")[0]
        if head in by_id:
            hint = f"{head}'s references: {', '.join(by_id[head])}"
        else:
            hint = f"feature_ids: {', '.join(sorted(ids))}; a reference is ID or ID.OUTPUT"
        if "indicator" in sets:
            raise ck.fail(f"{where}.indicator", f"names no indicator output {reference!r} ({hint})")
        raise ck.fail(where, f"names no indicator output ({hint})")
    parsed = []
    for set_name, spec in sets.items():
        if set_name == "indicator":
            continue
        if not isinstance(set_name, str) or not re.fullmatch(r"[A-Za-z0-9_]+", set_name):
            raise ck.fail(where, f"has an invalid set name {set_name!r}")
        parsed.append(_parse_fuzzy_set(ck, spec, f"{where}.{set_name}", set_name))
    if not parsed:
        raise ck.fail(where, "must hold at least one named set besides indicator")
    return str(key), tuple(parsed), str(reference)


def _parse_nn_inputs(
    ck: _Checker, raw: Any, keys: Sequence[str], timeframes: Sequence[str]
) -> tuple[NNInput, ...]:
    """``nn_inputs``: which fuzzy sets feed the model, on which of the timeframes."""
    if not isinstance(raw, list) or not raw:
        raise ck.fail("nn_inputs", "must be a non-empty list of {fuzzy_set, timeframes}")
    out: list[NNInput] = []
    for i, item in enumerate(raw):
        where = f"nn_inputs[{i}]"
        entry = ck.mapping(item, where, ("fuzzy_set", "timeframes"), ("fuzzy_set",))
        key = entry["fuzzy_set"]
        if key not in keys:
            raise ck.fail(f"{where}.fuzzy_set", f"names no fuzzy_sets key {key!r} (keys: {', '.join(keys)})")
        if any(o.fuzzy_set == key for o in out):
            raise ck.fail(f"{where}.fuzzy_set", f"repeats {key!r}")
        chosen = entry.get("timeframes", "all")
        tfs: tuple[str, ...] | None = None
        if chosen != "all":
            tfs = ck.string_list(chosen, f"{where}.timeframes", TIMEFRAME_PATTERN, "timeframe")
            unknown = [tf for tf in tfs if tf not in timeframes]
            if unknown:
                raise ck.fail(
                    f"{where}.timeframes",
                    f"names {', '.join(unknown)}, not in training_data.timeframes ({', '.join(timeframes)})",
                )
        out.append(NNInput(fuzzy_set=key, timeframes=tfs))
    return tuple(out)


TOP_LEVEL_KEYS = (
    "name",
    "description",
    "training_data",
    "indicators",
    "fuzzy_sets",
    "nn_inputs",
    "model",
    "training",
)


def parse_strategy(
    raw: Any,
    display: str,
    *,
    expected_name: str | None = None,
    source_path: str | None = None,
    problems: Sequence[str] = (),
) -> StrategyConfig:
    """Validate the raw data of one native strategy file (``display`` names it in errors).

    Every section is checked even when an earlier one failed, and
    :class:`StrategyProblems` lists every problem found, after ``problems``
    (what a format translation already refused).
    """
    ck = _Checker(display)
    found = _Problems(display, problems)
    data = ck.mapping(raw, "", (), ()) if not isinstance(raw, Mapping) else raw
    unknown = [k for k in data if k not in TOP_LEVEL_KEYS]
    for key in unknown:
        found.items.append(
            f"unknown key {key!r} (allowed here: {', '.join(TOP_LEVEL_KEYS)})"
            if isinstance(key, str)
            else f"the file has a non-text key {key!r}"
        )
    for key in ("name", "training_data", "indicators", "fuzzy_sets", "model"):
        if key not in data:
            found.items.append(f"{key} is required")

    def name_of() -> str:
        name = data["name"]
        if not isinstance(name, str) or not STRATEGY_NAME_PATTERN.fullmatch(name):
            raise ck.fail("name", f"must match {STRATEGY_NAME_PATTERN.pattern}, got {name!r}")
        if expected_name is not None and name != expected_name:
            raise ck.fail(
                "name", f"is {name!r} but the file is named {expected_name!r}.yaml; they must match"
            )
        return name

    name = found.attempt(name_of) if "name" in data else None
    description = data.get("description", "") or ""
    if not isinstance(description, str):
        found.items.append("description must be a string")
        description = ""
    training_data = (
        found.attempt(_parse_training_data, ck, data["training_data"]) if "training_data" in data else None
    )
    raw_indicators = data.get("indicators")
    parsed: list[IndicatorConfig | None] = []
    if "indicators" in data:
        if not isinstance(raw_indicators, list) or not raw_indicators:
            found.items.append("indicators must be a non-empty list")
        else:
            parsed = [found.attempt(_parse_indicator, ck, item, i) for i, item in enumerate(raw_indicators)]
    failed_ids = {
        str(item.get("feature_id", item.get("name")))
        for item, ind in zip(raw_indicators or [], parsed, strict=False)
        if ind is None and isinstance(item, Mapping)
    }
    indicators = tuple(ind for ind in parsed if ind is not None)
    seen: set[str] = set()
    for i, ind in enumerate(parsed):
        if ind is None:
            continue
        if ind.feature_id in seen:
            found.items.append(
                f"indicators[{i}].feature_id repeats {ind.feature_id!r}; give "
                "each indicator its own feature_id"
            )
        seen.add(ind.feature_id)
    fuzzy: dict[str, tuple[FuzzySetConfig, ...]] = {}
    fuzzy_inputs: dict[str, str] = {}
    references, by_id = _fuzzy_references(ck, indicators)
    fz = data.get("fuzzy_sets")
    if "fuzzy_sets" in data and not isinstance(fz, Mapping):
        found.items.append(f"fuzzy_sets must be a mapping, got {_type_name(fz)}")
    elif isinstance(fz, Mapping):
        targeted: set[int] = set()
        for key, sets in fz.items():
            target = sets.get("indicator", key) if isinstance(sets, Mapping) else key
            if isinstance(target, str) and target in references:
                targeted.add(references[target])
            if str(target).partition(".")[0] in failed_ids:
                continue  # its indicator's own error says what is wrong
            entry = found.attempt(_parse_fuzzy_entry, ck, key, sets, references, by_id, seen)
            if entry is not None:
                fuzzy[entry[0]] = entry[1]
                if entry[2] != entry[0]:
                    fuzzy_inputs[entry[0]] = entry[2]
        for i, ind in enumerate(indicators):
            if i not in targeted:
                found.items.append(
                    f"fuzzy_sets has no sets for indicator {ind.feature_id!r} "
                    "(every indicator feeds the model through its fuzzy sets)"
                )
    order = list(fuzzy)

    def position(key: str) -> tuple[int, int]:
        return references[fuzzy_inputs.get(key, key)], order.index(key)

    fuzzy = {k: fuzzy[k] for k in sorted(order, key=position)}
    nn_inputs: tuple[NNInput, ...] = ()
    if "nn_inputs" in data and training_data is not None:
        keys = list(fz) if isinstance(fz, Mapping) else []  # failed entries: no second error
        nn_inputs = (
            found.attempt(_parse_nn_inputs, ck, data["nn_inputs"], keys, training_data.timeframes) or ()
        )
        nn_inputs = tuple(i for i in nn_inputs if i.fuzzy_set in fuzzy)
        if all(i.timeframes is None for i in nn_inputs) and len(nn_inputs) == len(fuzzy):
            nn_inputs = ()  # every set on every timeframe: the same as no nn_inputs
        unused = [k for k in fuzzy if not any(i.fuzzy_set == k for i in nn_inputs)]
        if nn_inputs and unused:
            found.items.append(
                f"fuzzy_sets {', '.join(unused)} feed no nn_inputs entry "
                "(list them in nn_inputs or remove them)"
            )
    model = found.attempt(_parse_model, ck, data["model"]) if "model" in data else None
    trained = found.attempt(_parse_training, ck, data.get("training", {}))
    if found.items:
        raise StrategyProblems(display, found.items)
    assert name is not None and training_data is not None and model is not None and trained
    labels, split = trained
    return StrategyConfig(
        name=name,
        description=description.strip(),
        training_data=training_data,
        indicators=indicators,
        fuzzy_sets=fuzzy,
        model=model,
        labels=labels,
        data_split=split,
        source_path=source_path,
        fuzzy_inputs=fuzzy_inputs,
        nn_inputs=nn_inputs,
    )


# --------------------------------------------------------------------------- resolution


def strategies_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """``KTRDR_STRATEGIES_DIR``, or ``None`` when unset."""
    env = os.environ if environ is None else environ
    value = env.get("KTRDR_STRATEGIES_DIR", "").strip()
    return Path(value).expanduser() if value else None


def _display(path: Path, builtin: bool) -> str:
    return f"strategies/{path.name} (built-in)" if builtin else str(path)


def resolve_strategy_path(name: str, environ: Mapping[str, str] | None = None) -> Path:
    """``NAME.yaml`` in ``KTRDR_STRATEGIES_DIR``, else the built-in; names only, never paths."""
    check_strategy_name(name)
    searched = []
    user_dir = strategies_dir(environ)
    if user_dir is not None:
        candidate = user_dir / f"{name}.yaml"
        if candidate.is_file():
            return candidate
        searched.append(str(user_dir))
    candidate = BUILTIN_STRATEGIES_DIR / f"{name}.yaml"
    if candidate.is_file():
        return candidate
    searched.append("the built-in strategies")
    known = sorted({info.name for info in list_strategies(environ) if info.error is None})
    hint = f" (available: {', '.join(known)})" if known else ""
    raise BadInputError(f"unknown strategy {name!r}: no {name}.yaml in {' or '.join(searched)}{hint}")


def read_strategy_data(path: Path) -> tuple[Any, str]:
    """``(raw YAML data, display name)`` of one strategy file (one-line errors)."""
    path = Path(path)
    display = _display(path, path.resolve().parent == BUILTIN_STRATEGIES_DIR)
    return _read_yaml(path, display), display


def load_strategy_file(
    path: Path, *, builtin: bool | None = None, settings: Mapping[str, Any] | None = None
) -> StrategyConfig:
    """Parse and validate one strategy file (its stem must be its ``name``).

    ``settings`` (``{dotted key: value}``, see :mod:`~ktrdr_core.training.overrides`)
    are written into the file's data first, so they are validated like the file.
    """
    path = Path(path)
    if builtin is None:
        builtin = path.resolve().parent == BUILTIN_STRATEGIES_DIR
    display = _display(path, builtin)
    raw = _read_yaml(path, display)
    if settings:
        from ktrdr_core.training.overrides import apply_settings

        raw = apply_settings(raw, settings)
        display = f"{display}, with set {', '.join(settings)}"
    from ktrdr_core.training.formats import parse_document

    config: StrategyConfig = parse_document(raw, display, expected_name=path.stem, source_path=str(path))
    return config


def load_strategy(
    name: str, environ: Mapping[str, str] | None = None, *, settings: Mapping[str, Any] | None = None
) -> StrategyConfig:
    """Resolve a strategy *name* and load it (the pipeline's first step), with ``settings``."""
    return load_strategy_file(resolve_strategy_path(name, environ), settings=settings)


@attrs.frozen
class StrategyInfo:
    """One row of ``ktrdr strategies``."""

    name: str
    path: str
    source: str  # "built-in" or the file path
    active: bool  # False when a KTRDR_STRATEGIES_DIR file of the same name shadows it
    description: str = ""
    symbols: tuple[str, ...] = ()
    timeframes: tuple[str, ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["symbols"] = list(self.symbols)
        data["timeframes"] = list(self.timeframes)
        return data


def iter_strategy_files(environ: Mapping[str, str] | None = None) -> Iterator[tuple[Path, bool]]:
    """``(path, is_builtin)`` for every ``*.yaml`` the resolver could see, user dir first."""
    user_dir = strategies_dir(environ)
    if user_dir is not None and user_dir.is_dir():
        for path in sorted(user_dir.glob("*.yaml")):
            yield path, False
    for path in sorted(BUILTIN_STRATEGIES_DIR.glob("*.yaml")):
        yield path, True


def list_strategies(environ: Mapping[str, str] | None = None) -> list[StrategyInfo]:
    """Every strategy file, each validated; an invalid one carries its error instead."""
    rows: list[StrategyInfo] = []
    seen: set[str] = set()
    for path, builtin in iter_strategy_files(environ):
        name = path.stem
        source = "built-in" if builtin else str(path)
        active = name not in seen
        seen.add(name)
        if not STRATEGY_NAME_PATTERN.fullmatch(name):
            rows.append(
                StrategyInfo(
                    name=name,
                    path=str(path),
                    source=source,
                    active=False,
                    error=f"{path.name}: the file name is not a valid "
                    "strategy name, so it cannot be selected",
                )
            )
            continue
        try:
            config = load_strategy_file(path, builtin=builtin)
        except BadInputError as exc:
            rows.append(StrategyInfo(name=name, path=str(path), source=source, active=active, error=str(exc)))
            continue
        rows.append(
            StrategyInfo(
                name=name,
                path=str(path),
                source=source,
                active=active,
                description=config.description,
                symbols=config.training_data.symbols,
                timeframes=config.training_data.timeframes,
            )
        )
    return rows
