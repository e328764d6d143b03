"""The training pipeline every mode runs: one function per step, and ``run_training``.

Steps, in order (``STEP_NAMES``)::

    load strategy → load data → indicators → fuzzy memberships → features →
    labels → balance symbols → split → build model → train → evaluate →
    feature importance → save model

Each step is a plain function that a mode may also call on its own (the legacy
mode composes them its old way, the unified mode runs :func:`run_training`).
:func:`run_training` checks the cancellation token between every two steps,
the set-up steps check it between their units of work (each file and its
columns, each series, indicator and fuzzy set: their ``check`` argument), and
the trainer checks it at every batch; it calls ``on_step(index, total,
name)`` (1-based) before each step, and returns a :class:`TrainingResult`
with the result keys of docs/contract.md.

Errors: :class:`BadInputError` for anything the user can fix (a strategy, a
file, a date, an override); :class:`CancellationError` when the token fired;
any other exception becomes :class:`TrainingFailedError` naming the step.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from torch import nn

from ktrdr_core._version import __version__
from ktrdr_core.cancellation import CancelCheck, CancellationToken, no_cancel_check, raise_if_cancelled
from ktrdr_core.errors import BadInputError, CancellationError, KtrdrError, TrainingFailedError
from ktrdr_core.progress import ProgressCallback
from ktrdr_core.request import TrainingRequest, check_strategy_name
from ktrdr_core.result import TrainingResult
from ktrdr_core.training import features as feature_mod
from ktrdr_core.training.data import OHLCV, load_ohlcv, parse_date_bound, resolve_data_dir
from ktrdr_core.training.dataset import (
    DatasetSplit,
    SeriesSamples,
    balance_series,
    split_series,
)
from ktrdr_core.training.diagnostics import result_warnings
from ktrdr_core.training.evaluation import evaluate_model, permutation_importance
from ktrdr_core.training.labels import (
    LABEL_NAMES,
    label_distribution,
    triple_barrier_labels,
    zigzag_labels,
)
from ktrdr_core.training.model import NUM_CLASSES, build_mlp, select_device
from ktrdr_core.training.overrides import check_settings
from ktrdr_core.training.storage import SavedModel, save_model
from ktrdr_core.training.strategy import (
    SYMBOL_PATTERN,
    TIMEFRAME_PATTERN,
    StrategyConfig,
    load_strategy,
)
from ktrdr_core.training.timeframes import align_closed, base_timeframe
from ktrdr_core.training.trainer import ModelTrainer

__all__ = [
    "STEP_NAMES",
    "RunOptions",
    "StepHook",
    "balance_step",
    "build_features",
    "build_labels",
    "build_model",
    "compute_indicators",
    "compute_memberships",
    "feature_importance_step",
    "load_data",
    "load_strategy_step",
    "resolve_options",
    "run_training",
    "save_step",
]

logger = logging.getLogger(__name__)

StepHook = Callable[[int, int, str], None]

STEP_NAMES = (
    "load strategy",
    "load data",
    "indicators",
    "fuzzy memberships",
    "features",
    "labels",
    "balance symbols",
    "split",
    "build model",
    "train",
    "evaluate",
    "feature importance",
    "save model",
)

DEFAULT_SEED = 42
KNOWN_OVERRIDES = ("epochs", "seed", "batch_size", "learning_rate", "data_dir", "save_model", "device", "set")


# --------------------------------------------------------------------------- options


@attrs.frozen
class RunOptions:
    """The request's overrides, checked and typed."""

    seed: int = DEFAULT_SEED
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    data_dir: str | None = None
    save_model: bool = True
    device: str = "auto"
    settings: Mapping[str, Any] = attrs.field(factory=dict)
    ignored: tuple[str, ...] = ()


def _int_option(name: str, value: Any, minimum: int | None) -> int:
    if isinstance(value, bool):
        raise BadInputError(f"override {name} must be an integer, got {value!r}")
    try:
        number = int(str(value).strip()) if isinstance(value, str) else int(value)
        if not isinstance(value, str) and number != value:
            raise ValueError
    except (TypeError, ValueError):
        raise BadInputError(f"override {name} must be an integer, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise BadInputError(f"override {name} must be at least {minimum}, got {number}")
    return number


def _bool_option(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise BadInputError(f"override {name} must be true or false, got {value!r}")


def resolve_options(overrides: Mapping[str, Any]) -> RunOptions:
    """Check the overrides the engine honours; others are ignored (and listed in metadata)."""
    values: dict[str, Any] = {}
    if overrides.get("seed") is not None:
        values["seed"] = _int_option("seed", overrides["seed"], 0)
    for key in ("epochs", "batch_size"):
        if overrides.get(key) is not None:
            values[key] = _int_option(key, overrides[key], 1)
    if overrides.get("learning_rate") is not None:
        try:
            rate = float(overrides["learning_rate"])
        except (TypeError, ValueError):
            rate = float("nan")
        if not 0 < rate <= 10:
            raise BadInputError(
                f"override learning_rate must be a number between 0 and 10, "
                f"got {overrides['learning_rate']!r}"
            )
        values["learning_rate"] = rate
    if overrides.get("data_dir") not in (None, ""):
        values["data_dir"] = str(overrides["data_dir"])
    if overrides.get("save_model") is not None:
        values["save_model"] = _bool_option("save_model", overrides["save_model"])
    if overrides.get("device") not in (None, ""):
        values["device"] = str(overrides["device"])
    if overrides.get("set"):
        values["settings"] = check_settings(overrides["set"])
    ignored = tuple(sorted(key for key in overrides if key not in KNOWN_OVERRIDES))
    if ignored:
        logger.warning("ignoring override(s) the engine does not use: %s", ", ".join(ignored))
    return RunOptions(**values, ignored=ignored)


# --------------------------------------------------------------------------- the steps


def load_strategy_step(
    request: TrainingRequest, options: RunOptions, environ: Mapping[str, str] | None = None
) -> StrategyConfig:
    """Resolve the strategy by name and apply the training overrides."""
    check_strategy_name(request.strategy)
    strategy = load_strategy(request.strategy, environ, settings=options.settings)
    changes = {
        key: getattr(options, key)
        for key in ("epochs", "batch_size", "learning_rate")
        if getattr(options, key) is not None
    }
    return strategy.with_training(**changes) if changes else strategy


def _checked_names(values: Sequence[str], pattern: Any, what: str) -> tuple[str, ...]:
    for value in values:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise BadInputError(f"invalid {what} {value!r}")
    if len(set(values)) != len(values):
        raise BadInputError(f"repeated {what} in {', '.join(values)}")
    return tuple(values)


def select_series(
    request: TrainingRequest, strategy: StrategyConfig
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The request's symbols and timeframes, or the strategy's ``training_data`` when empty.

    Several timeframes must each have a fixed length (they are aligned on the
    base one), and every timeframe an ``nn_inputs`` entry names must be loaded.
    """
    symbols = _checked_names(request.symbols or strategy.training_data.symbols, SYMBOL_PATTERN, "symbol")
    timeframes = _checked_names(
        request.timeframes or strategy.training_data.timeframes, TIMEFRAME_PATTERN, "timeframe"
    )
    if len(timeframes) > 1:
        base_of(strategy, timeframes)  # refuses a timeframe without a fixed length
    for entry in strategy.nn_inputs:
        missing = [tf for tf in entry.timeframes or () if tf not in timeframes]
        if missing:
            raise BadInputError(
                f"nn_inputs: {entry.fuzzy_set} feeds the model on "
                f"{', '.join(missing)}, which this run does not load "
                f"(timeframes: {', '.join(timeframes)})"
            )
    if not any(strategy.inputs_on(tf) for tf in timeframes):
        raise BadInputError(f"no fuzzy set feeds the model on {', '.join(timeframes)} (see nn_inputs)")
    return symbols, timeframes


def base_of(strategy: StrategyConfig, timeframes: Sequence[str]) -> str:
    """The run's base timeframe: the strategy's when loaded, else the finest."""
    return base_timeframe(tuple(timeframes), strategy.training_data.base_timeframe)


def date_range(request: TrainingRequest, strategy: StrategyConfig) -> tuple[str | None, str | None]:
    """The request's dates, else the strategy file's ``training_data`` dates."""
    if request.start_date or request.end_date:
        return request.start_date, request.end_date
    return strategy.training_data.start_date, strategy.training_data.end_date


def strategy_metadata(strategy: StrategyConfig) -> dict[str, Any]:
    """What metadata records about the file itself: format, unused sections, notes."""
    return {
        "strategy_format": strategy.source_format,
        "not_used_for_training": dict(strategy.not_used),
        "strategy_notes": list(strategy.notes),
    }


def load_data(
    symbols: Sequence[str],
    timeframes: Sequence[str],
    data_dir: Path,
    *,
    start_date: str | None = None,
    end_date: str | None = None,
    check: CancelCheck = no_cancel_check,
) -> list[OHLCV]:
    """One checked, date-filtered :class:`OHLCV` per (symbol, timeframe)."""
    start = parse_date_bound(start_date, what="start_date")
    end = parse_date_bound(end_date, end=True, what="end_date")
    if start is not None and end is not None and end < start:
        raise BadInputError(f"end_date {end_date} is before start_date {start_date}")
    return [
        load_ohlcv(symbol, timeframe, data_dir, start=start, end=end, check=check)
        for symbol in symbols
        for timeframe in timeframes
    ]


def compute_indicators(
    strategy: StrategyConfig, data: Sequence[OHLCV], check: CancelCheck = no_cancel_check
) -> list[dict[str, np.ndarray]]:
    """Per series: ``{reference: series}`` (``ID`` and ``ID.OUTPUT`` for every indicator)."""
    return [
        feature_mod.indicator_values(strategy, series.columns(), series.path or series.symbol, check)
        for series in data
    ]


def compute_memberships(
    strategy: StrategyConfig, values: Sequence[Mapping[str, np.ndarray]], check: CancelCheck = no_cancel_check
) -> list[dict[str, np.ndarray]]:
    """Per series: ``{f"{key}_{set}": membership}`` (``key`` a ``fuzzy_sets`` key)."""
    return [feature_mod.memberships(strategy, v, check) for v in values]


def base_series(strategy: StrategyConfig, data: Sequence[OHLCV]) -> list[OHLCV]:
    """One series per symbol: the one at the base timeframe, which the samples are."""
    base = base_of(strategy, list(dict.fromkeys(s.timeframe for s in data)))
    return [s for s in data if s.timeframe == base]


def build_features(
    strategy: StrategyConfig,
    memberships: Sequence[Mapping[str, np.ndarray]],
    data: Sequence[OHLCV] | None = None,
    check: CancelCheck = no_cancel_check,
) -> tuple[list[np.ndarray], list[str]]:
    """Per symbol one matrix, a row per base bar, and the shared column names.

    Each timeframe's columns (the fuzzy sets ``nn_inputs`` feeds on it, then
    their lags, counted in that timeframe's own bars) are aligned on the base
    bars: a higher timeframe contributes its last bar closed by the base bar's
    close (:func:`~ktrdr_core.training.timeframes.align_closed`), NaN before its
    first one. With several timeframes, columns are prefixed ``{timeframe}_``.
    Without ``data``, each membership mapping is one single-timeframe series.
    ``check`` runs before each series' matrix.
    """
    if data is None:
        pairs = []
        for columns in memberships:
            check()
            pairs.append(feature_mod.feature_matrix(columns, strategy.model.lookback_periods))
        return [m for m, _ in pairs], (pairs[-1][1] if pairs else [])
    timeframes = list(dict.fromkeys(s.timeframe for s in data))
    base = base_of(strategy, timeframes)
    multi = len(timeframes) > 1
    groups: dict[str, list[tuple[OHLCV, Mapping[str, np.ndarray]]]] = {}
    for series, columns in zip(data, memberships, strict=True):
        groups.setdefault(series.symbol, []).append((series, columns))
    matrices = []
    names: list[str] = []
    for group in groups.values():
        bars = next(s for s, _ in group if s.timeframe == base)
        blocks: list[np.ndarray] = []
        names = []
        for series, columns in group:
            wanted = [
                f"{key}_{fs.name}"
                for key in strategy.inputs_on(series.timeframe)
                for fs in strategy.fuzzy_sets[key]
            ]
            if not wanted:
                continue
            check()
            matrix, block = feature_mod.feature_matrix(
                {n: columns[n] for n in wanted}, strategy.model.lookback_periods
            )
            if series is not bars:
                index = align_closed(bars.timestamps, base, series.timestamps, series.timeframe)
                aligned = np.full((len(bars), matrix.shape[1]), np.nan, dtype=matrix.dtype)
                closed = index >= 0
                aligned[closed] = matrix[index[closed]]
                matrix = aligned
            blocks.append(matrix)
            names.extend(f"{series.timeframe}_{n}" if multi else n for n in block)
        matrices.append(np.hstack(blocks))
    return matrices, names


def series_labels(strategy: StrategyConfig, series: OHLCV) -> np.ndarray:
    """One series' labels by ``training.labels.source`` (see :mod:`~ktrdr_core.training.labels`)."""
    config = strategy.labels
    if config.source == "triple_barrier":
        return triple_barrier_labels(
            series.close,
            series.high,
            series.low,
            pt=config.pt_multiplier,
            sl=config.sl_multiplier,
            horizon=config.max_holding_period,
            vol_method=config.vol_method,
            vol_span=config.vol_span,
        )
    return zigzag_labels(series.close, config.zigzag_threshold, config.label_lookahead)


def build_labels(
    strategy: StrategyConfig,
    data: Sequence[OHLCV],
    matrices: Sequence[np.ndarray],
    check: CancelCheck = no_cancel_check,
) -> list[SeriesSamples]:
    """Labels on each symbol's base bars, keeping rows with a label and complete features."""
    out = []
    for series, matrix in zip(base_series(strategy, data), matrices, strict=True):
        check()
        labels = series_labels(strategy, series)
        labelled = labels >= 0
        complete = np.isfinite(matrix).all(axis=1)
        keep = labelled & complete
        out.append(
            SeriesSamples(
                symbol=series.symbol,
                timeframe=series.timeframe,
                X=matrix[keep],
                y=labels[keep],
                timestamps=series.timestamps[keep],
                bars=len(series),
                warmup=int((labelled & ~complete).sum()),
                unlabelled=int((~labelled).sum()),
            )
        )
    return out


def discarded(labelled: Sequence[SeriesSamples], balanced: Sequence[SeriesSamples]) -> list[dict[str, Any]]:
    """Every base bar that did not become a training sample: how many, where, and why.

    Each line is also logged, so nothing is discarded without a word.
    """
    out: list[dict[str, Any]] = []
    for s, kept in zip(labelled, balanced, strict=True):
        reasons = (
            (
                s.warmup,
                "incomplete features: indicator warm-up, lags, or no closed bar yet on a higher timeframe",
            ),
            (s.unlabelled, "no label: the label window runs past the last bar"),
            (
                len(s) - len(kept),
                f"balancing across symbols: kept the most recent {len(kept)} "
                "samples, as many as the symbol with the fewest",
            ),
        )
        for count, why in reasons:
            if count:
                out.append(
                    {
                        "symbol": s.symbol,
                        "timeframe": s.timeframe,
                        "count": count,
                        "of_bars": s.bars,
                        "reason": why,
                    }
                )
                logger.info("%s %s: discarded %d of %d bars: %s", s.symbol, s.timeframe, count, s.bars, why)
    return out


def series_summary(
    data: Sequence[OHLCV], labelled: Sequence[SeriesSamples], balanced: Sequence[SeriesSamples]
) -> list[dict[str, Any]]:
    """``data_summary.series``: one entry per file; sample counts on the base timeframe's."""
    used = {s.key: (s, b) for s, b in zip(labelled, balanced, strict=True)}
    out = []
    for bars in data:
        entry: dict[str, Any] = {
            "symbol": bars.symbol,
            "timeframe": bars.timeframe,
            "file": bars.path,
            "first": bars.first(),
            "last": bars.last(),
            "bars": len(bars),
        }
        key = f"{bars.symbol}_{bars.timeframe}"
        if key in used:
            samples, kept = used[key]
            entry.update(
                role="base",
                samples=len(samples),
                samples_used=len(kept),
                label_distribution=label_distribution(kept.y),
            )
        else:
            entry["role"] = "context"  # a higher timeframe: features only, no samples
        out.append(entry)
    return out


def balance_step(samples: Sequence[SeriesSamples]) -> list[SeriesSamples]:
    """Equal samples per series (see :mod:`ktrdr_core.training.dataset`)."""
    return balance_series(samples)


def split_step(strategy: StrategyConfig, samples: Sequence[SeriesSamples], seed: int) -> DatasetSplit:
    split = strategy.data_split
    return split_series(
        samples, split.train, split.validation, method=split.method, gap=strategy.labels.horizon, seed=seed
    )


def build_model(strategy: StrategyConfig, input_size: int, seed: int) -> nn.Module:
    """The strategy's MLP, initialised from ``seed``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    arch = strategy.model
    return build_mlp(input_size, arch.hidden_layers, arch.activation, arch.dropout)


def trainer_settings(strategy: StrategyConfig, options: RunOptions) -> dict[str, Any]:
    """The ``ModelTrainer`` config: ``model.training`` plus seed and device."""
    return {**attrs.asdict(strategy.model.training), "seed": options.seed, "device": options.device}


def feature_importance_step(
    model: nn.Module,
    split: DatasetSplit,
    feature_names: Sequence[str],
    seed: int,
    device: torch.device,
    check: Callable[[], None] | None = None,
) -> dict[str, float]:
    return permutation_importance(
        model, split.X_test, split.y_test, feature_names, seed=seed, device=device, check=check
    )


def save_step(
    model: nn.Module,
    strategy: StrategyConfig,
    symbols: Sequence[str],
    timeframes: Sequence[str],
    feature_names: Sequence[str],
    *,
    training_metrics: Mapping[str, Any],
    test_metrics: Mapping[str, Any],
    feature_importance: Mapping[str, float],
    metadata: Mapping[str, Any],
    home: Path | None = None,
) -> SavedModel:
    """Write the model as a new version (see :mod:`ktrdr_core.training.storage`)."""
    return save_model(
        model,
        strategy=strategy.name,
        symbols=symbols,
        timeframes=timeframes,
        config=strategy.to_dict(),
        metrics={
            "training_metrics": dict(training_metrics),
            "test_metrics": dict(test_metrics),
            "feature_importance": dict(feature_importance),
        },
        features={
            "feature_names": list(feature_names),
            "input_size": len(feature_names),
            "num_classes": NUM_CLASSES,
            "labels": {n: i for i, n in enumerate(LABEL_NAMES)},
            "lookback_periods": strategy.model.lookback_periods,
        },
        metadata=metadata,
        home=home,
    )


# --------------------------------------------------------------------------- the run


@attrs.define
class _Run:
    """What the steps of one :func:`run_training` call hand each other."""

    request: TrainingRequest
    progress_callback: ProgressCallback | None
    token: CancellationToken | None
    environ: Mapping[str, str] | None
    home: Path | None
    options: RunOptions = attrs.field(factory=RunOptions)
    strategy: StrategyConfig | None = None
    symbols: tuple[str, ...] = ()
    timeframes: tuple[str, ...] = ()
    data_dir: Path | None = None
    data_source: str = ""
    data: list[OHLCV] = attrs.field(factory=list)
    values: list[dict[str, np.ndarray]] = attrs.field(factory=list)
    memberships: list[dict[str, np.ndarray]] = attrs.field(factory=list)
    matrices: list[np.ndarray] = attrs.field(factory=list)
    feature_names: list[str] = attrs.field(factory=list)
    labelled: list[SeriesSamples] = attrs.field(factory=list)
    balanced: list[SeriesSamples] = attrs.field(factory=list)
    split: DatasetSplit | None = None
    model: nn.Module | None = None
    device: torch.device | None = None
    training_metrics: dict[str, Any] = attrs.field(factory=dict)
    test_metrics: dict[str, Any] = attrs.field(factory=dict)
    importance: dict[str, float] = attrs.field(factory=dict)
    warnings: list[str] = attrs.field(factory=list)
    saved: SavedModel | None = None
    started: float = attrs.field(factory=time.perf_counter)

    def check(self) -> None:
        """The run's :data:`~ktrdr_core.cancellation.CancelCheck`, handed to every set-up step."""
        raise_if_cancelled(self.token)

    # one method per step, in STEP_NAMES order
    def load_strategy(self) -> None:
        self.options = resolve_options(self.request.overrides)
        self.strategy = load_strategy_step(self.request, self.options, self.environ)
        self.symbols, self.timeframes = select_series(self.request, self.strategy)

    def load_data(self) -> None:
        self.data_dir, self.data_source = resolve_data_dir({"data_dir": self.options.data_dir}, self.environ)
        try:
            start, end = date_range(self.request, self._strategy)
            self.data = load_data(
                self.symbols, self.timeframes, self.data_dir, start_date=start, end_date=end, check=self.check
            )
        except BadInputError as exc:
            if self.data_source == "KTRDR_DATA_DIR":
                raise BadInputError(f"{exc} (the data folder comes from KTRDR_DATA_DIR)") from exc
            raise

    def indicators(self) -> None:
        self.values = compute_indicators(self._strategy, self.data, self.check)

    def fuzzy(self) -> None:
        self.memberships = compute_memberships(self._strategy, self.values, self.check)

    def features(self) -> None:
        self.matrices, self.feature_names = build_features(
            self._strategy, self.memberships, self.data, self.check
        )

    def labels(self) -> None:
        self.labelled = build_labels(self._strategy, self.data, self.matrices, self.check)

    def balance(self) -> None:
        self.balanced = balance_step(self.labelled)

    def split_data(self) -> None:
        self.split = split_step(self._strategy, self.balanced, self.options.seed)

    def build_model(self) -> None:
        self.device = select_device(self.options.device)
        self.model = build_model(self._strategy, len(self.feature_names), self.options.seed)

    def train(self) -> None:
        assert self.split is not None and self.model is not None
        trainer = ModelTrainer(
            trainer_settings(self._strategy, self.options), self.progress_callback, self.token
        )
        split = self.split
        self.training_metrics = trainer.train(
            self.model, split.X_train, split.y_train, split.X_val, split.y_val
        )

    def evaluate(self) -> None:
        assert self.split is not None and self.model is not None
        self.test_metrics = evaluate_model(
            self.model, self.split.X_test, self.split.y_test, self.device or "cpu"
        )
        self.warnings = result_warnings(self.split, self.feature_names, self.test_metrics)
        for warning in self.warnings:
            logger.info("%s: warning: %s", self.request.strategy, warning)  # the result carries it

    def importance_step(self) -> None:
        assert self.split is not None and self.model is not None
        self.importance = feature_importance_step(
            self.model,
            self.split,
            self.feature_names,
            self.options.seed,
            self.device or torch.device("cpu"),
            check=self.check,
        )

    def save(self) -> None:
        if not self.options.save_model:
            return
        assert self.model is not None
        self.saved = save_step(
            self.model,
            self._strategy,
            self.symbols,
            self.timeframes,
            self.feature_names,
            training_metrics=self._training_metrics(),
            test_metrics=self.test_metrics,
            feature_importance=self.importance,
            metadata=self.metadata(),
            home=self.home,
        )

    # -- result pieces

    @property
    def _strategy(self) -> StrategyConfig:
        assert self.strategy is not None
        return self.strategy

    def _training_metrics(self) -> dict[str, Any]:
        return {
            key: value
            for key, value in self.training_metrics.items()
            if key not in ("device", "samples_per_second", "training_seconds")
        }

    def metadata(self) -> dict[str, Any]:
        return {
            "engine_version": __version__,
            "request_id": self.request.request_id,
            "strategy": self.request.strategy,
            "strategy_source": self._strategy.source_path,
            "symbols": list(self.symbols),
            "timeframes": list(self.timeframes),
            "start_date": date_range(self.request, self._strategy)[0],
            "end_date": date_range(self.request, self._strategy)[1],
            "base_timeframe": base_of(self._strategy, self.timeframes),
            "discarded": discarded(self.labelled, self.balanced) if self.balanced else [],
            **strategy_metadata(self._strategy),
            "seed": self.options.seed,
            "device": self.training_metrics.get("device", str(self.device)),
            "samples_per_second": self.training_metrics.get("samples_per_second"),
            "training_seconds": self.training_metrics.get("training_seconds"),
            "duration_seconds": time.perf_counter() - self.started,
            "torch_version": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "python_version": platform.python_version(),
            "ignored_overrides": list(self.options.ignored),
            "save_model": self.options.save_model,
            "strategy_settings": dict(self.options.settings),
            "warnings": list(self.warnings),
        }

    def data_summary(self) -> dict[str, Any]:
        assert self.split is not None
        series = series_summary(self.data, self.labelled, self.balanced)
        split = self.split
        return {
            "data_dir": str(self.data_dir),
            "data_source": self.data_source,
            "series": series,
            "samples_per_series": len(self.balanced[0]) if self.balanced else 0,
            "split_method": self._strategy.data_split.method,
            "split_sizes": split.sizes(),
            "label_distribution": {
                "train": label_distribution(split.y_train),
                "validation": label_distribution(split.y_val),
                "test": label_distribution(split.y_test),
            },
            "label_encoding": {name: i for i, name in enumerate(LABEL_NAMES)},
        }

    def result(self) -> TrainingResult:
        metadata = self.metadata()
        if self.saved is not None:
            metadata["model_version"] = self.saved.version
        return TrainingResult(
            success=True,
            model_path=str(self.saved.path) if self.saved else None,
            model_id=self.saved.model_id if self.saved else None,
            training_metrics=self._training_metrics(),
            test_metrics=self.test_metrics,
            feature_names=self.feature_names,
            feature_importance=self.importance,
            config=self._strategy.to_dict(),
            metadata=metadata,
            data_summary=self.data_summary(),
        )


def run_training(
    request: TrainingRequest,
    progress_callback: ProgressCallback | None = None,
    cancellation_token: CancellationToken | None = None,
    *,
    on_step: StepHook | None = None,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> TrainingResult:
    """Run every step for ``request``; see the module docstring.

    ``environ`` (default ``os.environ``) supplies ``KTRDR_STRATEGIES_DIR`` and
    ``KTRDR_DATA_DIR``; ``home`` (default ``KTRDR_HOME``) is where models go.
    """
    run = _Run(
        request=request,
        progress_callback=progress_callback,
        token=cancellation_token,
        environ=environ,
        home=home,
    )
    steps: tuple[Callable[[], None], ...] = (
        run.load_strategy,
        run.load_data,
        run.indicators,
        run.fuzzy,
        run.features,
        run.labels,
        run.balance,
        run.split_data,
        run.build_model,
        run.train,
        run.evaluate,
        run.importance_step,
        run.save,
    )
    total = len(steps)
    for index, (name, step) in enumerate(zip(STEP_NAMES, steps, strict=True), start=1):
        run.check()
        if on_step is not None:
            try:
                on_step(index, total, name)
            except CancellationError:
                raise
            except Exception:  # noqa: BLE001 - a logging hook must not kill the training
                logger.exception("on_step hook raised at step %d (%s); ignored", index, name)
        try:
            step()
        except KtrdrError:
            raise
        except Exception as exc:
            raise TrainingFailedError(f"training step '{name}' failed: {type(exc).__name__}: {exc}") from exc
    return run.result()
