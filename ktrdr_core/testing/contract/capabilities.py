"""The capability flags a contract-suite subclass sets to declare what its mode does.

Each flag switches one group of checks. The defaults are what ktrdr's own
modes do, so a subclass sets only the flags its mode does *not* honour (and
those checks then skip, saying why). A mode that declares a capability and
breaks it fails with a message naming the flag and the page that states it.
"""

from __future__ import annotations

import attrs

from ktrdr_core.testing.checks import CONTRACT_PAGE

__all__ = ["CAPABILITIES", "Capability", "capability_note"]


@attrs.frozen
class Capability:
    name: str
    default: bool
    promise: str
    """What declaring the flag promises, in one line (the guide's table and the failure note)."""

    @property
    def page(self) -> str:
        """The page and anchor that state the promise (a ``### `flag``` heading in docs/contract.md)."""
        return f"{CONTRACT_PAGE}#{self.name}"


CAPABILITIES: dict[str, Capability] = {
    capability.name: capability
    for capability in (
        Capability(
            "installed",
            True,
            "an installed `ktrdr` entry point registers the mode under its name, as the class under test",
        ),
        Capability(
            "reports_progress",
            True,
            "progress(epoch, total_epochs, metrics) follows the progress contract, and a raising "
            "callback never stops the training",
        ),
        Capability(
            "cancellable_before_start",
            True,
            "a token cancelled before execute() makes it raise CancellationError before any training",
        ),
        Capability(
            "cancellable",
            True,
            "a cancel mid-training raises CancellationError within the bound (p95 of several "
            "cancels) and leaves no model folder",
        ),
        Capability(
            "cancellable_during_setup",
            True,
            "a cancel during set-up (a few ms after execute() starts: loading data, indicators) raises "
            "CancellationError within the bound too (p95 of several cancels)",
        ),
        Capability(
            "deterministic",
            True,
            "two runs with one overrides['seed'] give the same metrics",
        ),
        Capability(
            "stores_models",
            True,
            "a successful run that saves (save_model not false) returns model_path, a complete folder",
        ),
    )
}


def capability_note(name: str) -> str:
    """The line a failure of a ``name`` check ends with: the flag and the page."""
    capability = CAPABILITIES[name]
    return (
        f"(capability `{name}`, declared by default — {capability.page}; a mode that does not "
        f"promise this sets `{name} = False` in its contract class)"
    )
