"""The options `ktrdr train` and `ktrdr compare` share: which series, which dates, which overrides.

Both commands run the same training request, so they take its parts with the
same flags, help and checks; one place keeps them equal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

__all__ = ["check_date_options", "run_options"]

F = TypeVar("F", bound=Callable[..., object])

_RUN_OPTIONS = (
    click.option("--symbols", default=None, help="Comma list; default: the strategy's."),
    click.option("--timeframes", default=None, help="Comma list; default: the strategy's."),
    click.option("--start", "start_date", default=None, help="First date (ISO, UTC)."),
    click.option("--end", "end_date", default=None, help="Last date (ISO, UTC)."),
    click.option(
        "--epochs", type=click.IntRange(min=1), default=None, help="Override the strategy's epochs."
    ),
    click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Override the batch size."),
    click.option(
        "--set",
        "set_items",
        multiple=True,
        metavar="KEY=VALUE",
        help="Change one strategy setting for this run, e.g. "
        "training.labels.zigzag_threshold=0.002 (repeatable; validated like the file).",
    ),
)


def run_options(command: F) -> F:
    """Add the shared options to ``command`` (in this order in its help)."""
    for option in reversed(_RUN_OPTIONS):
        command = option(command)
    return command


def check_date_options(start_date: str | None, end_date: str | None) -> None:
    """``--start``/``--end`` read as the engine and the HTTP API read them: refused before any training."""
    from ktrdr_core.times import parse_iso

    for option, value in (("--start", start_date), ("--end", end_date)):
        if value is not None:
            parse_iso(value, what=option)
