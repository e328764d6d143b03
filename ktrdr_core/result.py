"""What a training gives back: a :class:`TrainingResult`.

Its :meth:`TrainingResult.to_dict` has the result keys of docs/contract.md; the
legacy dict, the service's JSON and the run ledger are all built from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import attrs

Status = Literal["success", "error", "cancelled"]

RESULT_KEYS = (
    "success",
    "model_path",
    "model_id",
    "training_metrics",
    "test_metrics",
    "feature_names",
    "feature_importance",
    "config",
    "metadata",
    "data_summary",
)


def _dict(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value or {})


def _str_tuple(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(str(v) for v in values)


@attrs.frozen(kw_only=True)
class TrainingResult:
    """The outcome of one training, successful or not.

    ``status`` refines ``success``: a run that did not succeed either failed
    (``error``, with ``error`` set) or was stopped (``cancelled``).
    """

    success: bool
    status: Status = "success"
    error: str | None = None
    model_path: str | None = None
    model_id: str | None = None
    training_metrics: Mapping[str, Any] = attrs.field(factory=dict, converter=_dict)
    test_metrics: Mapping[str, Any] = attrs.field(factory=dict, converter=_dict)
    feature_names: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    feature_importance: Mapping[str, float] = attrs.field(factory=dict, converter=_dict)
    config: Mapping[str, Any] = attrs.field(factory=dict, converter=_dict)
    metadata: Mapping[str, Any] = attrs.field(factory=dict, converter=_dict)
    data_summary: Mapping[str, Any] = attrs.field(factory=dict, converter=_dict)

    @classmethod
    def failed(cls, error: str, *, metadata: Mapping[str, Any] | None = None) -> TrainingResult:
        """A result for a training that raised."""
        return cls(success=False, status="error", error=error, metadata=metadata)

    @classmethod
    def cancelled(cls, reason: str, *, metadata: Mapping[str, Any] | None = None) -> TrainingResult:
        """A result for a training stopped by its cancellation token."""
        return cls(success=False, status="cancelled", error=reason, metadata=metadata)

    def with_metadata(self, **extra: Any) -> TrainingResult:
        """A copy whose metadata also holds ``extra`` (later keys win)."""
        return attrs.evolve(self, metadata={**self.metadata, **extra})

    def to_dict(self) -> dict[str, Any]:
        """The result keys (docs/contract.md, "Results"), JSON-ready."""
        return {
            "success": self.success,
            "status": self.status,
            "error": self.error,
            "model_path": self.model_path,
            "model_id": self.model_id,
            "training_metrics": dict(self.training_metrics),
            "test_metrics": dict(self.test_metrics),
            "feature_names": list(self.feature_names),
            "feature_importance": dict(self.feature_importance),
            "config": dict(self.config),
            "metadata": dict(self.metadata),
            "data_summary": dict(self.data_summary),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingResult:
        """Rebuild a result from :meth:`to_dict` output (e.g. one sent back by a worker)."""
        names: Sequence[str] = [f.name for f in attrs.fields(cls)]
        return cls(**{key: data[key] for key in names if key in data})
