"""Helpers shared by the ktrdr-legacy tests."""

from __future__ import annotations

import os
from pathlib import Path

# A third of the sample data: each training takes about a second.
SHORT = {"start_date": "2023-01-01", "end_date": "2023-04-15"}


def model_dirs(home: Path) -> list[str]:
    """Every folder under ``home/models`` below the strategy level (versions and temporaries)."""
    root = home / "models"
    found = []
    for dirpath, dirnames, _files in os.walk(root):
        depth = Path(dirpath).relative_to(root).parts
        if len(depth) == 1:
            found.extend(os.path.join(dirpath, d) for d in dirnames)
    return found
