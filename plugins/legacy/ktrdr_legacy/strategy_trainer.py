"""``StrategyTrainer``: the old monolithic training flow, kept as the rollout's control.

``train_multi_symbol_strategy`` is one long method that does everything in
order — strategy, data, indicators, fuzzy sets, features, labels, balancing,
split, model, ``ModelTrainer``, test metrics, feature importance, save — the
way the old code did, built from the engine's own step functions so that its
numbers are the engine's numbers (side by side, the same seed gives the
same model as the unified mode: docs/compare.md).

Two old behaviours are kept on purpose:

- the progress callback is handed to ``ModelTrainer`` untouched, so it gets
  *every* batch (the "progress flooding" docs/modes.md describes — the
  unified mode's bridge is the fix; this is the control it is measured against);
- the result is the old API's plain ``dict`` (the result keys of docs/contract.md).

``strategy_config_path`` keeps its old name but is a strategy *name*
(docs/engine.md): a path is refused.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ktrdr_core._version import __version__
from ktrdr_core.cancellation import CancellationToken, cancel_check
from ktrdr_core.errors import BadInputError, KtrdrError, TrainingFailedError
from ktrdr_core.progress import ProgressCallback
from ktrdr_core.request import TrainingRequest, check_strategy_name
from ktrdr_core.training import pipeline
from ktrdr_core.training.data import resolve_data_dir
from ktrdr_core.training.dataset import split_series
from ktrdr_core.training.diagnostics import result_warnings
from ktrdr_core.training.evaluation import evaluate_model
from ktrdr_core.training.labels import LABEL_NAMES, label_distribution
from ktrdr_core.training.model import select_device
from ktrdr_core.training.trainer import ModelTrainer

__all__ = ["StrategyTrainer"]

logger = logging.getLogger(__name__)


def _parse_validation_split(value: Any, test_share: float) -> float:
    """``validation_split`` as a float in (0, 1 - test share); a string such as "0.2" is fine.

    Raises :class:`BadInputError`, naming the value, for anything else.
    """
    upper = 1.0 - test_share
    try:
        if isinstance(value, bool):
            raise TypeError("a bool is not a fraction")
        share = float(value)
    except (TypeError, ValueError):
        raise BadInputError(
            f"validation_split must be a number between 0 and {upper:g} (exclusive), got {value!r}"
        ) from None
    if not 0.0 < share < upper:  # also refuses nan
        raise BadInputError(
            f"validation_split must be between 0 and {upper:g} (exclusive; the "
            f"strategy keeps {test_share:g} for the test set), got {value!r}"
        )
    return share


class StrategyTrainer:
    """The old entry point: ``StrategyTrainer().train_multi_symbol_strategy(...)``.

    ``environ`` (default ``os.environ``) supplies ``KTRDR_STRATEGIES_DIR`` and
    ``KTRDR_DATA_DIR``; ``home`` (default ``KTRDR_HOME``) is where models go.
    """

    def __init__(self, environ: Mapping[str, str] | None = None, home: Any = None) -> None:
        self.environ = environ
        self.home = home

    def train_multi_symbol_strategy(  # noqa: C901 - the old flow is one long method, on purpose
        self,
        strategy_config_path: str,
        symbols: Sequence[str] | None,
        timeframes: Sequence[str] | None,
        start_date: str | None,
        end_date: str | None,
        validation_split: float | str | None = None,
        progress_callback: ProgressCallback | None = None,
        cancellation_token: CancellationToken | None = None,
        request_id: str | None = None,
        **overrides: Any,
    ) -> dict[str, Any]:
        """Train one model on several symbols; return the old result dict.

        ``validation_split``: ``None`` keeps the strategy's ``data_split``; a
        fraction (or a string of one, "0.2", as overrides from the CLI or JSON
        carry it) replaces its validation share (the train share shrinks, the
        test share stays). ``overrides``: ``epochs``, ``seed``, ``batch_size``,
        ``learning_rate``, ``data_dir``, ``save_model``, ``device``, ``set`` (strategy settings).

        Raises :class:`BadInputError` for anything the caller can fix,
        :class:`CancellationError` when the token fires (no model is left),
        :class:`TrainingFailedError` for anything else.
        """
        started = time.perf_counter()
        token = cancellation_token
        check = cancel_check(token)  # between steps, and handed to the set-up steps' units of work
        step = "load strategy"
        try:
            # -- strategy (by name only, never a path) ---------------------------------------------
            check_strategy_name(strategy_config_path)
            request = TrainingRequest(
                strategy=strategy_config_path,
                symbols=symbols or (),
                timeframes=timeframes or (),
                start_date=start_date,
                end_date=end_date,
                overrides=overrides,
                **({"request_id": request_id} if request_id else {}),
            )
            options = pipeline.resolve_options(request.overrides)
            strategy = pipeline.load_strategy_step(request, options, self.environ)
            symbols_used, timeframes_used = pipeline.select_series(request, strategy)
            split_config = strategy.data_split
            train_share, validation_share = split_config.train, split_config.validation
            if validation_split is not None:
                validation_share = _parse_validation_split(validation_split, split_config.test)
                train_share = 1.0 - split_config.test - validation_share
            logger.info(
                "legacy: training %s on %s %s",
                strategy.name,
                ",".join(symbols_used),
                ",".join(timeframes_used),
            )
            check()

            # -- data --------------------------------------------------------------------------
            step = "load data"
            data_dir, data_source = resolve_data_dir({"data_dir": options.data_dir}, self.environ)
            start_date, end_date = pipeline.date_range(request, strategy)
            data = pipeline.load_data(
                symbols_used, timeframes_used, data_dir, start_date=start_date, end_date=end_date, check=check
            )
            logger.info("legacy: loaded %d series from %s", len(data), data_source)
            check()

            # -- indicators, fuzzy memberships, features --------------------------------------
            step = "indicators"
            values = pipeline.compute_indicators(strategy, data, check)
            check()
            step = "fuzzy memberships"
            memberships = pipeline.compute_memberships(strategy, values, check)
            check()
            step = "features"
            matrices, feature_names = pipeline.build_features(strategy, memberships, data, check)
            check()

            # -- labels, balance, split --------------------------------------------------------
            step = "labels"
            labelled = pipeline.build_labels(strategy, data, matrices, check)
            check()
            step = "balance symbols"
            balanced = pipeline.balance_step(labelled)
            check()
            step = "split"
            split = split_series(
                balanced,
                train_share,
                validation_share,
                method=split_config.method,
                gap=strategy.labels.horizon,
                seed=options.seed,
            )
            logger.info("legacy: %d features, split %s", len(feature_names), split.sizes())
            check()

            # -- model and training (ModelTrainer unchanged, callback passed straight through) -
            step = "build model"
            device = select_device(options.device)
            model = pipeline.build_model(strategy, len(feature_names), options.seed)
            check()
            step = "train"
            # the old flow sums its running loss/accuracy every batch, as it always has: it is
            # the control, and its per-batch updates are all read anyway
            trainer = ModelTrainer(
                pipeline.trainer_settings(strategy, options), progress_callback, token, deferred_metrics=False
            )
            raw_metrics = trainer.train(model, split.X_train, split.y_train, split.X_val, split.y_val)
            # run-dependent timings go to metadata only (as in the pipeline): metrics.json
            # stays the same run to run and has the unified mode's keys
            training_metrics = {
                key: value
                for key, value in raw_metrics.items()
                if key not in ("device", "samples_per_second", "training_seconds")
            }
            logger.info(
                "legacy: trained %s epochs, val_loss %.4f val_accuracy %.3f",
                raw_metrics["epochs_trained"],
                raw_metrics["val_loss"],
                raw_metrics["val_accuracy"],
            )
            check()

            # -- evaluation and feature importance --------------------------------------------
            step = "evaluate"
            test_metrics = evaluate_model(model, split.X_test, split.y_test, device)
            warnings = result_warnings(split, feature_names, test_metrics)
            for warning in warnings:
                logger.info("legacy: %s: warning: %s", strategy.name, warning)
            check()
            step = "feature importance"
            importance = pipeline.feature_importance_step(
                model, split, feature_names, options.seed, device, check=check
            )
            check()

            # -- metadata, then the (atomic, versioned) save -----------------------------------
            metadata: dict[str, Any] = {
                "engine_version": __version__,
                "implementation": "legacy",
                "request_id": request.request_id,
                "strategy": strategy_config_path,
                "strategy_source": strategy.source_path,
                "symbols": list(symbols_used),
                "timeframes": list(timeframes_used),
                "start_date": start_date,
                "end_date": end_date,
                "seed": options.seed,
                "device": raw_metrics.get("device", str(device)),
                "samples_per_second": raw_metrics.get("samples_per_second"),
                "training_seconds": raw_metrics.get("training_seconds"),
                "duration_seconds": time.perf_counter() - started,
                "torch_version": torch.__version__,
                "torch_threads": torch.get_num_threads(),
                "python_version": platform.python_version(),
                "ignored_overrides": list(options.ignored),
                "base_timeframe": pipeline.base_of(strategy, timeframes_used),
                "discarded": pipeline.discarded(labelled, balanced),
                **pipeline.strategy_metadata(strategy),
                "save_model": options.save_model,
                "validation_split": validation_share,
                "strategy_settings": dict(options.settings),
                "warnings": warnings,
            }
            step = "save model"
            saved = None
            if options.save_model:
                saved = pipeline.save_step(
                    model,
                    strategy,
                    symbols_used,
                    timeframes_used,
                    feature_names,
                    training_metrics=training_metrics,
                    test_metrics=test_metrics,
                    feature_importance=importance,
                    metadata=metadata,
                    home=self.home,
                )
                metadata["model_version"] = saved.version
                logger.info("legacy: saved %s", saved.path)
        except KtrdrError:
            raise
        except Exception as exc:
            raise TrainingFailedError(
                f"legacy training failed at '{step}': {type(exc).__name__}: {exc}"
            ) from exc

        series = pipeline.series_summary(data, labelled, balanced)
        metadata["duration_seconds"] = time.perf_counter() - started
        return {
            "success": True,
            "model_path": str(saved.path) if saved else None,
            "model_id": saved.model_id if saved else None,
            "training_metrics": training_metrics,
            "test_metrics": test_metrics,
            "feature_names": list(feature_names),
            "feature_importance": importance,
            "config": strategy.to_dict(),
            "metadata": metadata,
            "data_summary": {
                "data_dir": str(data_dir),
                "data_source": data_source,
                "series": series,
                "samples_per_series": len(balanced[0]) if balanced else 0,
                "split_method": split_config.method,
                "split_sizes": split.sizes(),
                "label_distribution": {
                    "train": label_distribution(split.y_train),
                    "validation": label_distribution(split.y_val),
                    "test": label_distribution(split.y_test),
                },
                "label_encoding": {name: i for i, name in enumerate(LABEL_NAMES)},
            },
        }
