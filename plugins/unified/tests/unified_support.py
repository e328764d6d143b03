"""Helpers shared by the ktrdr-unified tests."""

from __future__ import annotations

# A third of the sample data: each training takes about a second.
SHORT = {"start_date": "2023-01-01", "end_date": "2023-04-15"}


class FakeClock:
    """A clock the test moves by hand (time logic only; nothing real is replaced)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
