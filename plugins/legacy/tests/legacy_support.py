"""Helpers shared by the ktrdr-legacy tests."""

from __future__ import annotations

# A third of the sample data: each training takes about a second.
SHORT = {"start_date": "2023-01-01", "end_date": "2023-04-15"}
