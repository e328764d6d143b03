"""The 'legacy' execution mode: a request in, the old ``StrategyTrainer`` call, a result out.

The mode is only an adapter around the old API (docs/modes.md): it turns the
:class:`TrainingRequest` into the ``train_multi_symbol_strategy`` arguments
and the old result dict back into a :class:`TrainingResult`. The progress
callback goes through untouched — every batch reaches the sinks.

The training engine (and torch) is imported inside :meth:`LegacyMode.execute`,
so registering the mode stays cheap (``ktrdr plugins`` never imports torch).
"""

from __future__ import annotations

from ktrdr_core import (
    BadInputError,
    CancellationToken,
    ModeHealth,
    ProgressCallback,
    TrainingRequest,
    TrainingResult,
)

# train_multi_symbol_strategy's own parameters: an override may not pose as one
# (``validation_split`` may: it is an old-API knob the request can carry).
_RESERVED = frozenset(
    {
        "strategy_config_path",
        "symbols",
        "timeframes",
        "start_date",
        "end_date",
        "progress_callback",
        "cancellation_token",
        "request_id",
    }
)


class LegacyMode:
    """The old monolithic StrategyTrainer flow, kept unchanged as the rollout's control."""

    name = "legacy"

    def health(self) -> ModeHealth:
        """Healthy when the engine and torch can be imported (checked without importing them)."""
        return ModeHealth.if_importable(
            "legacy", ("torch", "ktrdr_core.training.pipeline", "ktrdr_legacy.strategy_trainer")
        )

    def execute(
        self, request: TrainingRequest, progress: ProgressCallback, cancel: CancellationToken
    ) -> TrainingResult:
        """Run ``StrategyTrainer.train_multi_symbol_strategy`` for ``request``.

        Raises :class:`~ktrdr_core.CancellationError` when ``cancel`` fires.
        """
        from ktrdr_legacy.strategy_trainer import StrategyTrainer

        overrides = dict(request.overrides)
        clash = sorted(set(overrides) & _RESERVED)
        if clash:
            raise BadInputError(f"override(s) {', '.join(clash)} cannot be set through overrides")
        result = StrategyTrainer().train_multi_symbol_strategy(
            request.strategy,
            list(request.symbols),
            list(request.timeframes),
            request.start_date,
            request.end_date,
            progress_callback=progress,
            cancellation_token=cancel,
            request_id=request.request_id,
            **overrides,
        )
        return TrainingResult.from_dict(result)
