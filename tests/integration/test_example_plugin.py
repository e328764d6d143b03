"""The example third-party plugin, installed the way a user installs it, without touching the core.

``examples/ktrdr-mode-example`` is pip-installed (a real wheel build) into a
folder of its own, which only the subprocesses here see through PYTHONPATH:
the test interpreter's environment stays as it was. Then: ``ktrdr plugins``
lists it, the rollout picks it as the candidate mode, a training runs in it,
and its own contract tests pass.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "ktrdr-mode-example"
SHORT_ARGS = ["--start", "2023-01-02", "--end", "2023-03-04"]
ROLLOUT_TO_EXAMPLE = {
    "KTRDR_ROLLOUT_CANDIDATE": "example",
    "USE_UNIFIED_TRAINING": "true",
    "UNIFIED_TRAINING_ROLLOUT_PERCENTAGE": "100",
}


@pytest.fixture(scope="module")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install --no-deps --target SITE examples/ktrdr-mode-example``."""
    site = tmp_path_factory.mktemp("example-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(EXAMPLE)],
        check=True,
        timeout=300,
    )
    assert (site / "ktrdr_mode_example" / "plugin.py").is_file()
    return site


@pytest.fixture
def env(cli_env: dict[str, str], example_site: Path) -> dict[str, str]:
    return {**cli_env, "PYTHONPATH": str(example_site), "PYTHONDONTWRITEBYTECODE": "1"}


def ktrdr(env: dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ktrdr_core.cli.main", *args],
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_ktrdr_plugins_lists_the_installed_example(env: dict[str, str], example_site: Path) -> None:
    done = ktrdr(env, "plugins", "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)["plugins"]}
    example = rows["example"]
    assert example["distribution"] == "ktrdr-mode-example" and example["error"] is None
    assert example["modes"] == [
        {"name": "example", "healthy": True, "detail": "the example mode trains in-process"}
    ]
    text = ktrdr(env, "plugins")
    assert "mode example: healthy" in text.stdout
    # it came from the pip-installed copy, not from the source tree
    where = subprocess.run(
        [sys.executable, "-c", "import ktrdr_mode_example as m; print(m.__file__)"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.strip().startswith(str(example_site))


def test_the_rollout_selects_the_example_as_candidate(env: dict[str, str]) -> None:
    done = ktrdr(env, "rollout", "explain", "alice", "--json", **ROLLOUT_TO_EXAMPLE)
    assert done.returncode == 0, done.stderr
    decision = json.loads(done.stdout)["decision"]
    assert decision["mode"] == "example" and decision["candidate"] is True
    assert "candidate mode 'example'" in decision["reason"]
    # without the candidate override the same user stays on the default modes
    default = json.loads(ktrdr(env, "rollout", "explain", "alice", "--json").stdout)["decision"]
    assert default["mode"] == "legacy"


def test_a_training_routed_by_the_rollout_runs_in_the_example(env: dict[str, str]) -> None:
    done = ktrdr(
        env,
        "train",
        "neuro_mean_reversion",
        "--user",
        "alice",
        "--epochs",
        "1",
        "--json",
        "--no-progress",
        *SHORT_ARGS,
        **ROLLOUT_TO_EXAMPLE,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["success"] is True
    assert result["metadata"]["mode"] == "example"
    assert result["metadata"]["example_mode_version"] == "0.1.0"


def test_the_example_passes_its_contract_tests(env: dict[str, str], tmp_path: Path) -> None:
    """What an author runs after copying the example: ``pytest`` on its tests (the contract suite)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(EXAMPLE / "tests"),
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(EXAMPLE),
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "passed" in done.stdout and "failed" not in done.stdout
