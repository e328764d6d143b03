"""ktrdr-unified: the 'unified' execution mode.

The new composed TrainingExecutor pipeline with throttled progress, the rollout's candidate.
"""
