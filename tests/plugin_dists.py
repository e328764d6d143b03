"""Tiny plugin distributions written to disk and installed with real pip.

They prove discovery through entry points the way a user's install works:
a wheel is built, installed into a target folder, and found through
``importlib.metadata`` — nothing is registered by hand.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.18"]
build-backend = "hatchling.build"

[project]
name = "{dist}"
version = "0.0.1"

[project.entry-points.ktrdr]
{entry} = "{package}.plugin"

[tool.hatch.build.targets.wheel]
packages = ["{package}"]
"""

GOOD_PLUGIN = """\
from ktrdr_core import ModeHealth, TrainingResult, hookimpl


class EchoMode:
    name = "{mode}"

    def health(self):
        return ModeHealth.ok("echo is always ready")

    def execute(self, request, progress, cancel):
        progress(1, 1, {{"progress_type": "epoch"}})
        return TrainingResult(success=True)


@hookimpl
def register_execution_modes(register):
    register(EchoMode())
"""

BROKEN_IMPORT = "raise ImportError('this plugin is broken on purpose')\n"

BAD_SIGNATURE = """\
from ktrdr_core import hookimpl


@hookimpl
def register_execution_modes(register, unexpected_argument):
    pass
"""


def write_dist(root: Path, dist: str, entry: str, plugin_source: str) -> Path:
    package = dist.replace("-", "_")
    folder = root / dist
    (folder / package).mkdir(parents=True)
    (folder / "pyproject.toml").write_text(PYPROJECT.format(dist=dist, entry=entry, package=package))
    (folder / package / "__init__.py").write_text("")
    (folder / package / "plugin.py").write_text(textwrap.dedent(plugin_source))
    return folder


def pip_install_target(target: Path, *dists: Path) -> None:
    """``pip install --target``: a real install, kept out of the test environment."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            *map(str, dists),
        ],
        check=True,
    )
