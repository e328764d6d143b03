"""Helpers shared by the integration tests."""

from __future__ import annotations

import os
from pathlib import Path

STRATEGY = "neuro_mean_reversion"
# About a third of the sample data: a training takes a second or two.
SHORT = {"start_date": "2023-01-01", "end_date": "2023-04-15"}


def model_dirs(home: Path) -> list[str]:
    """Every folder under ``home/models`` below the strategy level (versions and temporaries)."""
    root = home / "models"
    found = []
    for dirpath, dirnames, _files in os.walk(root):
        if len(Path(dirpath).relative_to(root).parts) == 1:
            found.extend(os.path.join(dirpath, d) for d in dirnames)
    return found
