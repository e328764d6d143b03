"""The kit's pytest plugin: ``pytest --ktrdr-mode NAME`` checks an installed mode with no test code.

A tiny plugin distribution (conftest.py's ``viaentry_site``) is built and
installed with real pip into a target folder; a fresh ``python -m pytest`` with that folder on
``PYTHONPATH`` finds both the distribution's ``ktrdr`` entry point and the
kit's own ``pytest11`` entry point — the way a plugin author's environment
does. Subprocesses are the point: pytest loads entry-point plugins at start-up.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def site(viaentry_site: Path) -> Path:
    return viaentry_site


def pytest_in(folder: Path, site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    for name in ("PYTEST_ADDOPTS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_PLUGINS", "KTRDR_PLUGINS"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_option_runs_the_whole_suite_against_the_installed_mode(tmp_path: Path, site: Path) -> None:
    done = pytest_in(tmp_path, site, "--ktrdr-mode", "viaentry")
    assert done.returncode == 0, done.stdout[-4000:]
    summary = done.stdout.strip().splitlines()[-1]
    passed = int(summary.split(" passed")[0].split()[-1])
    assert passed >= 12 and "failed" not in summary, summary  # every check and the manager state machine
    listed = pytest_in(
        tmp_path,
        site,
        "--ktrdr-mode",
        "viaentry",
        "--collect-only",
    )
    assert "TestInstalledModeContract::test_result_has_the_contract_schema" in listed.stdout
    assert "TestInstalledModeInTheManager" in listed.stdout


def test_a_broken_installed_mode_fails_with_the_suites_advice(tmp_path: Path, site: Path) -> None:
    done = pytest_in(tmp_path, site, "--ktrdr-mode", "neverstops", "-k", "cancellation_at_a_progress_update")
    assert done.returncode == 1, done.stdout[-4000:]
    assert "ContractViolation" in done.stdout
    assert "ignored the cancellation" in done.stdout


def test_a_mode_no_entry_point_registers_is_one_usage_error(tmp_path: Path, site: Path) -> None:
    done = pytest_in(tmp_path, site, "--ktrdr-mode", "nosuch")
    assert done.returncode == 4  # pytest's usage error: nothing ran
    assert (
        "--ktrdr-mode nosuch: no installed `ktrdr` entry point registers a mode named 'nosuch'" in done.stderr
    )
    assert "viaentry" in done.stderr and "docs/plugin-authors.md#2-declare-the-entry-point" in done.stderr


OWN_TESTS = """\
import sys


def test_nothing_of_the_kit_is_loaded_without_the_option():
    assert "ktrdr_core.testing.contract" not in sys.modules
    assert "ktrdr_core.testing.installed_suite" not in sys.modules


def test_the_plugin_offers_an_isolated_ktrdr_home(ktrdr_home, tmp_path):
    import os

    assert os.environ["KTRDR_HOME"] == str(ktrdr_home) and ktrdr_home.parent == tmp_path
"""


def test_without_the_option_a_run_is_the_projects_own(tmp_path: Path, site: Path) -> None:
    (tmp_path / "test_own.py").write_text(OWN_TESTS)
    done = pytest_in(tmp_path, site, "test_own.py")
    assert done.returncode == 0, done.stdout[-3000:]
    assert done.stdout.strip().splitlines()[-1].startswith("2 passed")
    assert "ktrdr: contract suite" not in done.stdout


def test_with_paths_the_option_adds_the_suite_to_them(tmp_path: Path, site: Path) -> None:
    (tmp_path / "test_own.py").write_text("def test_mine():\n    assert True\n")
    done = pytest_in(tmp_path, site, "test_own.py", "--ktrdr-mode", "viaentry", "-k", "mine or has_a_name")
    assert done.returncode == 0, done.stdout[-3000:]
    assert done.stdout.strip().splitlines()[-1].startswith("2 passed")


def test_a_capability_the_mode_does_not_promise_is_declared_on_the_command_line(
    tmp_path: Path, site: Path
) -> None:
    broken = pytest_in(
        tmp_path, site, "--ktrdr-mode", "neverstops", "-k", "cancellation and not before_start"
    )
    assert broken.returncode == 1
    declared = pytest_in(
        tmp_path,
        site,
        "--ktrdr-mode",
        "neverstops",
        "--ktrdr-without",
        "cancellable",
        "-k",
        "cancellation and not before_start",
        "-rs",
    )
    assert declared.returncode == 0, declared.stdout[-3000:]
    assert "4 skipped" in declared.stdout and "declares cancellable = False" in declared.stdout
    unknown = pytest_in(tmp_path, site, "--ktrdr-mode", "neverstops", "--ktrdr-without", "fast")
    assert unknown.returncode == 4
    assert "--ktrdr-without fast: no such capability; the capabilities are installed," in unknown.stderr
