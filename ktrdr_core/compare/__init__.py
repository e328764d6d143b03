"""Side-by-side comparison of two execution modes (``ktrdr compare``).

- :mod:`ktrdr_core.compare.experiment` — :class:`Experiment`: runs control and
  candidate on the same request through the manager, Scientist style;
- :mod:`ktrdr_core.compare.diff` — field-by-field comparison with a tolerance;
- :mod:`ktrdr_core.compare.report` — ``report.md``, ``report.json``, ``curves.png``;
- :mod:`ktrdr_core.compare.stats` — percentiles and interleaving, shared with ``benchmarks/``.

Nothing here imports torch or matplotlib at import time.
"""

from ktrdr_core.compare.diff import DEFAULT_TOLERANCE, FieldComparison, compare_results
from ktrdr_core.compare.experiment import CancelCheck, Experiment, ExperimentResult, Observation

__all__ = [
    "DEFAULT_TOLERANCE",
    "CancelCheck",
    "Experiment",
    "ExperimentResult",
    "FieldComparison",
    "Observation",
    "compare_results",
]
