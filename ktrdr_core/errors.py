"""The exceptions ktrdr raises on purpose.

Each carries a message meant for a person, and the CLI maps each family to an
exit code (docs/contract.md, "Exit codes"): bad input or configuration → 2, a failed training
→ 1, a cancellation → 130. Anything else is a bug and is reported as one.
"""

from __future__ import annotations


class KtrdrError(Exception):
    """Base of every error ktrdr raises deliberately."""

    exit_code = 1


class ConfigurationError(KtrdrError):
    """A setting (environment variable, rollout file, plugin set-up) is malformed."""

    exit_code = 2


class BadInputError(KtrdrError):
    """A request names something that cannot be used: a strategy, a file, a mode."""

    exit_code = 2


class PluginConflictError(ConfigurationError):
    """Two distributions register an execution mode of the same name."""


class NoModeInstalledError(ConfigurationError):
    """The mode a decision needs is not installed (or no mode at all is)."""


class TrainingFailedError(KtrdrError):
    """A training ran and failed; the message says why."""

    exit_code = 1


class CancellationError(KtrdrError):
    """Raised by a mode that stopped because its cancellation token fired."""

    exit_code = 130

    def __init__(self, reason: str = "cancelled") -> None:
        super().__init__(reason)
        self.reason = reason
