"""ktrdr-legacy: the 'legacy' execution mode.

The old monolithic StrategyTrainer flow, kept unchanged as the rollout's control.
"""
