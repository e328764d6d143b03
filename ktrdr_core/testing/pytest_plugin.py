"""The contract kit as a pytest plugin: ``--ktrdr-mode NAME`` and the kit's fixtures.

Installed with ktrdr-core as the ``ktrdr`` entry point of the ``pytest11``
group, so pytest loads it in every run of an environment that has ktrdr-core
(``-p ktrdr`` names it where plugin autoloading is off). It costs nothing
unless asked: no fixture is autouse, nothing else is imported, and without
the option no test is added.

``pytest --ktrdr-mode NAME`` runs the whole contract suite
(:mod:`ktrdr_core.testing.installed_suite`) against the mode NAME as the
installed ``ktrdr`` entry points provide it — what a user's ktrdr would run —
with no test code from the plugin's author. Given paths as well, it runs
those tests and the suite. ``--ktrdr-without CAPABILITY`` (repeatable)
declares a capability the mode does not promise, as a subclass would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["SUITE", "ktrdr_home", "ktrdr_mode_name", "selected_mode_name"]

#: the module ``--ktrdr-mode`` adds to the run
SUITE = Path(__file__).with_name("installed_suite.py")
OPTION = "--ktrdr-mode"
WITHOUT = "--ktrdr-without"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ktrdr", "ktrdr execution-mode contract suite (docs/plugin-authors.md)")
    group.addoption(
        OPTION,
        dest="ktrdr_mode",
        metavar="NAME",
        default=None,
        help="run ktrdr's contract suite against the installed execution mode NAME "
        "(found through the 'ktrdr' entry points, as ktrdr finds it)",
    )
    group.addoption(
        WITHOUT,
        dest="ktrdr_without",
        metavar="CAPABILITY",
        action="append",
        default=[],
        help="with --ktrdr-mode: the mode does not promise CAPABILITY (e.g. deterministic); its "
        "checks skip. Repeatable.",
    )


def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    """Add the suite to the paths to collect (alone when no path was given)."""
    name = early_config.known_args_namespace.ktrdr_mode
    if name is not None:
        args.append(str(SUITE))


_selected: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    name = config.getoption("ktrdr_mode")
    if name is not None and not name.strip():
        raise pytest.UsageError(f"{OPTION} needs a mode name, e.g. {OPTION} unified")
    _selected[:] = [] if name is None else [name.strip()]
    without = config.getoption("ktrdr_without")
    if without and name is None:
        raise pytest.UsageError(f"{WITHOUT} goes with {OPTION} NAME")
    if name is not None:
        from ktrdr_core.testing.contract.capabilities import CAPABILITIES

        unknown = sorted(set(without) - set(CAPABILITIES))
        if unknown:
            raise pytest.UsageError(
                f"{WITHOUT} {', '.join(unknown)}: no such capability; the capabilities are "
                f"{', '.join(CAPABILITIES)} (docs/contract.md#capabilities)"
            )
        # a mode no entry point registers is a usage error, said once, before anything runs
        from ktrdr_core.testing.checks import ContractViolation
        from ktrdr_core.testing.entrypoints import installed_mode

        try:
            installed_mode(name.strip())
        except ContractViolation as exc:
            raise pytest.UsageError(f"{OPTION} {name.strip()}: {exc}") from None


def selected_mode_name() -> str:
    """The mode ``--ktrdr-mode`` named in this run (the installed suite's state machine needs it)."""
    if not _selected:
        raise pytest.UsageError(f"the installed-mode suite runs with pytest {OPTION} NAME")
    return _selected[0]


def pytest_report_header(config: pytest.Config) -> str | None:
    name = config.getoption("ktrdr_mode")
    return None if name is None else f"ktrdr: contract suite against the installed mode {name!r}"


@pytest.fixture
def ktrdr_mode_name(request: pytest.FixtureRequest) -> str:
    """The mode ``--ktrdr-mode`` names; a test asking for it without the option fails with how to."""
    name = request.config.getoption("ktrdr_mode")
    if name is None:
        pytest.fail(f"this test checks an installed mode: run pytest {OPTION} NAME", pytrace=False)
    return str(name).strip()


@pytest.fixture
def ktrdr_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh ``KTRDR_HOME``, no ktrdr variable from the shell, a fresh plugin manager.

    Not autouse here (this plugin is active in every run); a ``conftest.py`` that
    wants it for every test imports :func:`ktrdr_core.testing.fixtures.ktrdr_home`.
    """
    from ktrdr_core.testing.fixtures import isolated_ktrdr_home

    yield from isolated_ktrdr_home(tmp_path, monkeypatch)
