"""The optional parts of ktrdr-core, and the one-line hint when one is missing.

The base install is the core, the CLI and the training engine. The HTTP
service, the compare report's plot and the contract kit need packages a
training machine does not, so each comes with an extra
(``pip install 'ktrdr-core[service]'``). A command whose extra is missing
says so in one line naming that pip command, instead of failing on an import
deep inside it.
"""

from __future__ import annotations

import importlib

from ktrdr_core.errors import ConfigurationError

__all__ = ["EXTRAS", "MissingExtraError", "install_command", "missing_modules", "require_extra"]

EXTRAS: dict[str, tuple[str, ...]] = {
    "service": ("fastapi", "uvicorn", "prometheus_client"),
    "report": ("matplotlib",),
    "testing": ("pytest", "hypothesis"),
}
"""Each extra and the top-level modules its packages provide (what a feature imports)."""


class MissingExtraError(ConfigurationError, ModuleNotFoundError):
    """A feature's extra is not installed; the message is the pip command that adds it.

    A ``ConfigurationError`` for the CLI (one line, exit 2) and a
    ``ModuleNotFoundError`` for code that imports the feature and expects one.
    """


def install_command(extra: str) -> str:
    """``pip install 'ktrdr-core[EXTRA]'`` (quoted for the shell)."""
    return f"pip install 'ktrdr-core[{extra}]'"


def missing_modules(extra: str, modules: tuple[str, ...] | None = None) -> list[str]:
    """The modules of ``extra`` (or just ``modules`` of it) that cannot be imported."""
    missing = []
    for module in EXTRAS[extra] if modules is None else modules:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    return missing


def require_extra(extra: str, feature: str, modules: tuple[str, ...] | None = None) -> None:
    """Raise :class:`MissingExtraError` when ``feature`` cannot run for want of ``extra``."""
    missing = missing_modules(extra, modules)
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise MissingExtraError(
            f"{feature} needs the '{extra}' extra ({', '.join(missing)} {verb} not installed): "
            f"{install_command(extra)}"
        )
