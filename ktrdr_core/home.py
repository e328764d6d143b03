"""Where ktrdr keeps its state: ``KTRDR_HOME`` (default ``~/.ktrdr``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def ktrdr_home(environ: Mapping[str, str] | None = None) -> Path:
    """The state folder: rollout file, audit log, run ledger, models."""
    env = os.environ if environ is None else environ
    configured = env.get("KTRDR_HOME", "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".ktrdr"
