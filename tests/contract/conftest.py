"""Run the contract suite programmatically against a mode and collect what failed.

A small in-process runner (pytester's idea, without registering pytester,
which only a rootdir conftest may do): a generated test module subclasses
ExecutionModeContract with the mode, ``pytest.main`` runs it in a temporary
folder, and a plugin records each test's outcome and failure text.
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from plugin_dists import pip_install_target, write_dist

HERE = Path(__file__).resolve().parent


@attrs.define
class ContractRun:
    exit_code: int
    outcomes: dict[str, str]
    failures: dict[str, str]

    @property
    def failed(self) -> list[str]:
        return [name for name, outcome in self.outcomes.items() if outcome == "failed"]

    @property
    def text(self) -> str:
        return "\n".join(self.failures.values())


class _Collector:
    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}
        self.failures: dict[str, str] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        name = report.nodeid.rsplit("::", 1)[-1]
        if report.when == "call" or report.failed:
            self.outcomes[name] = report.outcome
        if report.failed:
            self.failures[name] = report.longreprtext


def _module_source(mode_expr: str | None, attributes: dict[str, Any], imports: str) -> str:
    body = "\n".join(f"    {key} = {value!r}" for key, value in attributes.items()) or "    pass"
    fixture = (
        ""
        if mode_expr is None
        else textwrap.indent(
            textwrap.dedent(f"""\
        @pytest.fixture
        def mode(self):
            return {mode_expr}
        """),
            "    ",
        )
    )
    return (
        textwrap.dedent(f"""\
        import pytest
        from ktrdr_core.testing import ExecutionModeContract
        {imports}


        class TestModeUnderContract(ExecutionModeContract):
        """)
        + fixture
        + body
        + "\n"
    )


@pytest.fixture
def run_contract(tmp_path: Path) -> Callable[..., ContractRun]:
    """``run_contract("IgnoresCancellation()", "-k", "cancel", cancel_epochs=100)``."""
    counter = iter(range(1000))

    def run(
        mode_expr: str | None, *args: str, imports: str = "from broken_modes import *", **attributes: Any
    ) -> ContractRun:
        folder = tmp_path / f"run{next(counter)}"
        folder.mkdir()
        (folder / "pytest.ini").write_text("[pytest]\n")
        module = folder / f"test_contract_{folder.name}.py"
        module.write_text(_module_source(mode_expr, attributes, imports))
        collector = _Collector()
        saved_path, saved_modules, saved_cwd = list(sys.path), set(sys.modules), os.getcwd()
        sys.path.insert(0, str(HERE))
        os.chdir(folder)
        try:
            code = pytest.main(
                [
                    str(module),
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    "--rootdir",
                    str(folder),
                    "-c",
                    str(folder / "pytest.ini"),
                    *args,
                ],
                plugins=[collector],
            )
        finally:
            os.chdir(saved_cwd)
            sys.path[:] = saved_path
            for name in set(sys.modules) - saved_modules:
                if name.startswith("test_contract_"):
                    del sys.modules[name]
        return ContractRun(int(code), collector.outcomes, collector.failures)

    return run


VIAENTRY_PLUGIN = """\
from ktrdr_core import hookimpl
from ktrdr_core.testing import QuickMode


class NeverStops(QuickMode):
    \"\"\"Never looks at its token.\"\"\"

    def check(self, cancel):
        pass


@hookimpl
def register_execution_modes(register):
    register(QuickMode("viaentry"))
    register(NeverStops("neverstops"))
"""


@pytest.fixture(scope="session")
def viaentry_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where pip installed ``ktrdr-mode-viaentry``: modes ``viaentry`` (QuickMode) and ``neverstops``."""
    root = tmp_path_factory.mktemp("dists")
    target = root / "site"
    pip_install_target(target, write_dist(root, "ktrdr-mode-viaentry", "viaentry", VIAENTRY_PLUGIN))
    return target


@pytest.fixture
def viaentry_installed(viaentry_site: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``viaentry_site`` on ``sys.path`` for one test: its entry point is installed, as pip would."""
    monkeypatch.syspath_prepend(str(viaentry_site))
    return viaentry_site
