"""The base install (core, CLI, engine) works without any extra; a missing extra is a one-line hint.

Each check runs a fresh interpreter of this environment in which the extras'
packages cannot be found: a ``sitecustomize`` on ``PYTHONPATH`` swaps the
path finder on ``sys.meta_path`` for one blind to them (``find_spec`` says
None, an import raises ModuleNotFoundError), as if only the base
dependencies were installed. (Installing a real minimal venv would mean
copying torch, ~1 GB, per run.) The subprocess is the point: a clean
interpreter with nothing imported yet.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import tomllib

from ktrdr_core.extras import EXTRAS

ROOT = Path(__file__).resolve().parents[1]
KTRDR = Path(sys.executable).with_name("ktrdr")
#: top-level modules of each extra's packages (and what they pull in): refused in the "base" interpreter
EXTRA_PACKAGES = {
    "service": ("fastapi", "starlette", "pydantic", "pydantic_core", "uvicorn", "prometheus_client"),
    "report": ("matplotlib",),
    "testing": ("pytest", "_pytest", "hypothesis"),
    "test": ("httpx",),
}

BLOCKER = """\
import sys
from importlib.machinery import PathFinder

BLOCKED = frozenset({blocked!r})


class BaseInstallFinder(PathFinder):
    \"\"\"The path finder, blind to the extras' packages: as if only the base were installed.\"\"\"

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            return None
        return super().find_spec(name, path, target)


sys.meta_path[:] = [BaseInstallFinder if finder is PathFinder else finder for finder in sys.meta_path]
"""


ALL_EXTRAS = tuple(name for names in EXTRA_PACKAGES.values() for name in names)


def run_base(
    tmp_path: Path, args: list[str], *, blocked: tuple[str, ...] = ALL_EXTRAS
) -> subprocess.CompletedProcess[str]:
    """Run ``args`` in an interpreter where the ``blocked`` modules (every extra's) are missing."""
    site = tmp_path / "base-site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER.format(blocked=sorted(blocked)))
    env = {**os.environ, "PYTHONPATH": str(site), "KTRDR_HOME": str(tmp_path / "home")}
    env.pop("KTRDR_DEBUG", None)
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert "Traceback" not in stderr
    return lines[0]


def test_the_blocker_really_hides_the_extras(tmp_path: Path) -> None:
    done = run_base(tmp_path, [sys.executable, "-c", "import fastapi"])
    assert done.returncode == 1 and "No module named 'fastapi'" in done.stderr


def test_help_and_plugins_work_without_any_extra(tmp_path: Path) -> None:
    helped = run_base(tmp_path, [str(KTRDR), "--help"])
    assert helped.returncode == 0, helped.stderr
    assert "serve" in helped.stdout and "compare" in helped.stdout
    listed = run_base(tmp_path, [str(KTRDR), "plugins", "--json"])
    assert listed.returncode == 0, listed.stderr
    assert "error" not in listed.stderr.lower()


def test_every_base_module_imports_without_any_extra(tmp_path: Path) -> None:
    """The core, the CLI, the engine, the rollout, the ledger and compare (but its plot) need no extra."""
    code = textwrap.dedent("""\
        import importlib, pkgutil, ktrdr_core
        EXTRA_ONLY = ("ktrdr_core.service", "ktrdr_core.testing")
        names = [m.name for m in pkgutil.walk_packages(ktrdr_core.__path__, "ktrdr_core.")]
        base = [n for n in names if not n.startswith(EXTRA_ONLY)]
        for name in base:
            importlib.import_module(name)
        print(len(base))
    """)
    done = run_base(tmp_path, [sys.executable, "-c", code])
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 60  # the walk found the package, not an empty path


def test_a_training_needs_no_extra(tmp_path: Path) -> None:
    """The engine trains (through the core's pipeline: this env may have no mode plugin installed)."""
    code = textwrap.dedent("""\
        from ktrdr_core import TrainingRequest
        from ktrdr_core.training.pipeline import run_training
        request = TrainingRequest(strategy="neuro_mean_reversion", start_date="2023-01-02",
                                  end_date="2023-02-01", overrides={"epochs": 1, "save_model": False})
        result = run_training(request)
        print(result.success, result.training_metrics["epochs_trained"])
    """)
    done = run_base(tmp_path, [sys.executable, "-c", code])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "1"]


def test_serve_without_the_service_extra_names_the_pip_command(tmp_path: Path) -> None:
    done = run_base(tmp_path, [str(KTRDR), "serve", "--port", "0"])
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert "ktrdr serve needs the 'service' extra" in line
    assert line.endswith("pip install 'ktrdr-core[service]'")


def test_compare_without_the_report_extra_names_the_pip_command(tmp_path: Path) -> None:
    done = run_base(tmp_path, [str(KTRDR), "compare", "neuro_mean_reversion"])
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert "matplotlib is not installed" in line
    assert line.endswith("pip install 'ktrdr-core[report]'")
    assert not (tmp_path / "home").exists() or not any((tmp_path / "home").rglob("report.md"))


def test_importing_the_service_without_its_extra_names_the_pip_command(tmp_path: Path) -> None:
    done = run_base(tmp_path, [sys.executable, "-c", "from ktrdr_core.service import create_app"])
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].endswith("pip install 'ktrdr-core[service]'")


def test_the_kit_without_the_testing_extra_names_the_pip_command(tmp_path: Path) -> None:
    done = run_base(tmp_path, [sys.executable, "-c", "import ktrdr_core.testing"])
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert "ktrdr_core.testing needs the 'testing' extra (pytest is not installed)" in last
    assert last.endswith("pip install 'ktrdr-core[testing]'")


def test_the_kit_with_pytest_but_without_hypothesis_names_the_pip_command(tmp_path: Path) -> None:
    """The package imports with pytest alone (a pytest run never breaks on it); the suite says what is missing."""
    code = (
        "import ktrdr_core.testing\nprint('imported')\nfrom ktrdr_core.testing import ExecutionModeContract\n"
    )
    done = run_base(tmp_path, [sys.executable, "-c", code], blocked=("hypothesis",))
    assert done.returncode == 1 and done.stdout.strip() == "imported"
    last = done.stderr.strip().splitlines()[-1]
    assert "(hypothesis is not installed): pip install 'ktrdr-core[testing]'" in last


def test_the_base_dependencies_leave_the_extras_out() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"]).lower()
    for name in ("fastapi", "uvicorn", "matplotlib", "prometheus", "pytest", "hypothesis", "httpx"):
        assert name not in base, f"{name} is a base dependency of ktrdr-core"
    extras = project["optional-dependencies"]
    assert {"service", "report", "testing", "test"} <= set(extras)
    assert "ktrdr-core[service,report,testing]" in extras["test"]


def test_the_extras_table_names_what_each_extra_installs() -> None:
    """ktrdr_core.extras.EXTRAS (what the hints check) matches the extras' packages in pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for extra, modules in EXTRAS.items():
        declared = " ".join(project["optional-dependencies"][extra]).lower().replace("-", "_")
        for module in modules:
            assert module in declared, f"the {extra!r} extra does not install {module}"
