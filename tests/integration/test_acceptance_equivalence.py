"""The migration's equivalence acceptance test, written against the public API.

What differs from the original sketch, and why:
- both entry points are synchronous (the manager runs modes off the event
  loop), so the test calls them directly instead of awaiting them;
- the two take their parameters in their own shapes: the old
  ``StrategyTrainer.train_multi_symbol_strategy`` keeps its positional
  arguments and ``**overrides``, ``TrainingExecutor.execute`` takes a
  ``TrainingRequest`` — both built from the same ``params``;
- ``val_loss``/``val_accuracy`` sit under ``training_metrics`` in the result
  (docs/contract.md, "Results"), not at its top level.
"""

from __future__ import annotations

from pathlib import Path

from integration_support import SHORT, STRATEGY

from ktrdr_core import TrainingRequest
from ktrdr_legacy import StrategyTrainer
from ktrdr_unified import TrainingExecutor


def test_equivalent_results(ktrdr_home: Path) -> None:
    """Ensure the new implementation produces the same results as legacy."""
    params = {
        "strategy": STRATEGY,
        "symbols": None,
        "timeframes": None,
        "start_date": SHORT["start_date"],
        "end_date": SHORT["end_date"],
        "overrides": {"epochs": 3, "seed": 5},
    }

    legacy_result = StrategyTrainer().train_multi_symbol_strategy(
        params["strategy"],
        params["symbols"],
        params["timeframes"],
        params["start_date"],
        params["end_date"],
        **params["overrides"],
    )
    unified_result = TrainingExecutor().execute(TrainingRequest(**params)).to_dict()

    assert legacy_result["success"] and unified_result["success"]
    legacy_metrics, unified_metrics = legacy_result["training_metrics"], unified_result["training_metrics"]
    assert abs(legacy_metrics["val_loss"] - unified_metrics["val_loss"]) < 0.01
    assert abs(legacy_metrics["val_accuracy"] - unified_metrics["val_accuracy"]) < 0.01
