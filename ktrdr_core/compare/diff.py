"""Field-by-field comparison of two training results.

What counts as *equivalent*:

- both runs succeeded;
- every compared number is within ``tolerance`` (absolute difference,
  ``|control - candidate| <= tolerance``; the default, 0.01, is the
  equivalence the rollout asks for): ``val_loss``, ``val_accuracy``, ``train_loss``,
  ``train_accuracy`` of the restored best epoch, and every scalar test metric
  either result has (``test_accuracy``, ``test_loss``, ``precision``,
  ``recall``, ``f1``, ``baseline_accuracy``, ...);
- whole-number facts are equal exactly: ``epochs_trained``, ``best_epoch``,
  ``test_samples``, and the list of feature names.

Durations, progress behaviour and cancellation latency are compared and
reported too, but they describe *how* a mode runs, not what it computes, and
differ by design (legacy floods progress, unified throttles): they only
decide the verdict when a limit is given (``--max-duration-ratio``), or, for
cancellation, when a mode failed to stop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ktrdr_core.result import TrainingResult

TRAINING_FLOAT_FIELDS = ("val_loss", "val_accuracy", "train_loss", "train_accuracy")
TRAINING_EXACT_FIELDS = ("epochs_trained", "best_epoch")
TEST_EXACT_FIELDS = ("test_samples",)
DEFAULT_TOLERANCE = 0.01


@attrs.frozen(kw_only=True)
class FieldComparison:
    """One compared field: both values, their difference, and whether they match."""

    field: str
    control: Any
    candidate: Any
    equal: bool
    difference: float | None = None
    """``candidate - control`` for numbers; ``None`` otherwise."""
    tolerance: float | None = None
    """The allowed absolute difference; ``None`` for an exact comparison."""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def compare_numbers(
    field: str, control: Any, candidate: Any, tolerance: float, *, exact: bool = False
) -> FieldComparison:
    """Compare one value: numbers within ``tolerance`` (or exactly), anything else by ``==``."""
    if control is None or candidate is None:
        missing = "control" if control is None else "candidate"
        both = control is None and candidate is None
        return FieldComparison(
            field=field,
            control=control,
            candidate=candidate,
            equal=both,
            note="" if both else f"missing in the {missing}",
        )
    if not (_is_number(control) and _is_number(candidate)):
        return FieldComparison(field=field, control=control, candidate=candidate, equal=control == candidate)
    difference: float = float(candidate) - float(control)
    if math.isnan(float(control)) or math.isnan(float(candidate)):
        both_nan = math.isnan(float(control)) and math.isnan(float(candidate))
        return FieldComparison(
            field=field,
            control=control,
            candidate=candidate,
            equal=both_nan,
            note="NaN" if both_nan else "NaN on one side",
        )
    if exact or (_is_whole(control) and _is_whole(candidate)):
        whole = _is_whole(control) and _is_whole(candidate)
        return FieldComparison(
            field=field,
            control=control,
            candidate=candidate,
            equal=control == candidate,
            difference=candidate - control if whole else difference,
        )
    return FieldComparison(
        field=field,
        control=control,
        candidate=candidate,
        equal=abs(difference) <= tolerance,
        difference=difference,
        tolerance=tolerance,
    )


def _scalar_keys(*mappings: Mapping[str, Any]) -> list[str]:
    keys: set[str] = set()
    for mapping in mappings:
        keys.update(key for key, value in mapping.items() if _is_number(value) or value is None)
    return sorted(keys)


def compare_results(
    control: TrainingResult, candidate: TrainingResult, tolerance: float = DEFAULT_TOLERANCE
) -> list[FieldComparison]:
    """Every compared field of two *successful* results, in a stable order."""
    out: list[FieldComparison] = []
    ctm, ttm = control.training_metrics, candidate.training_metrics
    for key in TRAINING_FLOAT_FIELDS:
        if key in ctm or key in ttm:
            out.append(compare_numbers(f"training_metrics.{key}", ctm.get(key), ttm.get(key), tolerance))
    for key in TRAINING_EXACT_FIELDS:
        if key in ctm or key in ttm:
            out.append(
                compare_numbers(f"training_metrics.{key}", ctm.get(key), ttm.get(key), tolerance, exact=True)
            )
    cte, tte = control.test_metrics, candidate.test_metrics
    for key in _scalar_keys(cte, tte):
        out.append(
            compare_numbers(
                f"test_metrics.{key}", cte.get(key), tte.get(key), tolerance, exact=key in TEST_EXACT_FIELDS
            )
        )
    if control.feature_names or candidate.feature_names:
        same = list(control.feature_names) == list(candidate.feature_names)
        out.append(
            FieldComparison(
                field="feature_names",
                control=len(control.feature_names),
                candidate=len(candidate.feature_names),
                equal=same,
                note="" if same else "the feature lists differ (count shown)",
            )
        )
    return out


def history_gap(control: TrainingResult, candidate: TrainingResult) -> dict[str, float | None]:
    """Per curve (``val_loss``, ...), the largest absolute gap over the epochs both ran."""
    gaps: dict[str, float | None] = {}
    ch = control.training_metrics.get("history") or {}
    th = candidate.training_metrics.get("history") or {}
    for key in sorted(set(ch) | set(th)):
        a: Sequence[float] = ch.get(key) or []
        b: Sequence[float] = th.get(key) or []
        pairs = list(zip(a, b, strict=False))
        gaps[key] = max((abs(x - y) for x, y in pairs), default=None)
    return gaps
