"""The ``example`` execution mode: runs the core's training engine in this process.

An execution mode is any object with a ``name``, a quick ``health()`` and a
synchronous ``execute(request, progress, cancel)`` (the ``ktrdr_core.ExecutionMode``
protocol). What the contract asks of ``execute`` — and what
``ktrdr_core.testing.ExecutionModeContract`` checks:

- return a ``TrainingResult`` with every result key of docs/contract.md;
- call ``progress(epoch, total_epochs, metrics)`` — exactly these three
  arguments, epochs 1-based and never going back, ``metrics["progress_type"]``
  "batch" or "epoch", the final epoch's update last — and survive a
  ``progress`` that raises;
- check ``cancel.is_cancelled()`` often enough to stop within 100 ms and then
  raise ``CancellationError``, leaving no half-written model folder;
- turn a request that cannot work (unknown strategy, bad symbols) into a
  ``BadInputError`` whose message names the bad value;
- train deterministically from ``request.overrides["seed"]``.

``ktrdr_core.training.pipeline.run_training`` does all of that, so this mode
is a thin wrapper around it; replace the body of ``execute`` with your own
way of running a training (a job queue, a remote worker, another device) and
keep those promises.
"""

from __future__ import annotations

import importlib.util

from ktrdr_core import (
    CancellationToken,
    ModeHealth,
    ProgressCallback,
    TrainingRequest,
    TrainingResult,
)


class ExampleMode:
    """Runs ``run_training`` in-process: the smallest complete execution mode."""

    name = "example"

    def health(self) -> ModeHealth:
        """Answer fast (the rollout's selector asks before every decision): no training here."""
        if importlib.util.find_spec("torch") is None:
            return ModeHealth.unhealthy("the example mode needs torch: pip install torch")
        return ModeHealth.ok("the example mode trains in-process")

    def execute(
        self, request: TrainingRequest, progress: ProgressCallback, cancel: CancellationToken
    ) -> TrainingResult:
        """Train ``request`` and return its result; raises CancellationError when cancelled."""
        from ktrdr_core.training.pipeline import run_training  # torch is imported here, not at load

        result = run_training(request, progress, cancel)
        return result.with_metadata(example_mode_version="0.1.0")
