"""Helpers shared by the integration tests."""

from __future__ import annotations

STRATEGY = "neuro_mean_reversion"
# About a third of the sample data: a training takes a second or two.
SHORT = {"start_date": "2023-01-01", "end_date": "2023-04-15"}
