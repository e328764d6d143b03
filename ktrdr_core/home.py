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


def writable_home(environ: Mapping[str, str] | None = None) -> Path:
    """``KTRDR_HOME``, created if need be; a :class:`ConfigurationError` if it cannot hold state.

    Checked before a training starts, so an unusable home is a one-line error
    up front rather than a failure after minutes of training.
    """
    from ktrdr_core.errors import ConfigurationError

    home = ktrdr_home(environ)
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"KTRDR_HOME {home} cannot be created: {exc.strerror or exc}") from None
    if not os.access(home, os.W_OK | os.X_OK):
        raise ConfigurationError(f"KTRDR_HOME {home} is not writable")
    return home
