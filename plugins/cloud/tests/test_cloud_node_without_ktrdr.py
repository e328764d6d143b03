"""A cluster whose nodes lack ktrdr: health says so, and KTRDR_CLOUD_RUNTIME_ENV makes jobs run there.

The node's Python is a fresh virtual environment (no pip, ~1 s to make) that
sees this environment's third-party packages (Ray, torch, numpy, TA-Lib...)
through a ``.pth`` line naming our ``site-packages`` — but not ktrdr: the
editable installs are ``.pth`` files *inside* that folder, and Python only
reads ``.pth`` files of its own site folders. A throw-away one-node cluster
is started from it with ``ray start`` (marked slow: one cluster start and one
training, ~30-60 s on a loaded machine; CI runs it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

import ktrdr_cloud
import ktrdr_core
import ktrdr_unified
from ktrdr_cloud.mode import CloudMode
from ktrdr_cloud.testing import LocalCluster, start_cluster

pytestmark = pytest.mark.slow

KTRDR = str(Path(sys.executable).with_name("ktrdr"))


def _bare_venv(folder: Path) -> Path:
    """A venv with this environment's packages minus ktrdr; returns its ``ray`` command."""
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    python = folder / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    (Path(site) / "third_party.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    ray = folder / "bin" / "ray"
    ray.write_text(f"#!{python}\nimport sys\nfrom ray.scripts.scripts import main\nsys.exit(main())\n")
    ray.chmod(0o755)
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import ray, torch\ntry:\n import ktrdr_cloud\nexcept ImportError: print('bare')",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.stdout.strip() == "bare", probe.stderr  # Ray and torch, no ktrdr
    return ray


@pytest.fixture(scope="module")
def bare_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    ray = _bare_venv(tmp_path_factory.mktemp("bare-venv"))
    cluster = start_cluster(nodes=1, cpus_per_node=1, ray_command=str(ray))
    try:
        yield cluster
    finally:
        cluster.stop()


def _runtime_env() -> str:
    """The local ktrdr packages as py_modules (Ray uploads them with the job)."""
    modules = [str(Path(m.__file__).parent) for m in (ktrdr_core, ktrdr_unified, ktrdr_cloud)]  # type: ignore[arg-type]
    return json.dumps({"py_modules": modules})


def _env(address: str, ktrdr_home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KTRDR_", "RAY_ADDRESS"))}
    env.update(
        KTRDR_HOME=str(ktrdr_home),
        RAY_AUTH_MODE="disabled",
        KTRDR_RAY_ADDRESS=address,
        KTRDR_CLOUD_CONNECT_TIMEOUT="30",  # a worker with a new runtime env starts slowly here
        **extra,
    )
    return env


def test_health_names_the_missing_package_and_the_runtime_env_makes_it_run(
    bare_cluster: LocalCluster, ktrdr_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = bare_cluster.address
    for name, value in _env(address, ktrdr_home).items():
        if name.startswith("KTRDR_"):
            monkeypatch.setenv(name, value)  # the health check's child reads this process's environment
    health = CloudMode().health()
    assert not health.healthy
    assert "ktrdr-cloud cannot be imported on the workers" in health.detail, health.detail

    with_modules = _env(address, ktrdr_home, KTRDR_CLOUD_RUNTIME_ENV=_runtime_env())
    monkeypatch.setenv("KTRDR_CLOUD_RUNTIME_ENV", with_modules["KTRDR_CLOUD_RUNTIME_ENV"])
    health = CloudMode().health()
    assert health.healthy, health.detail
    done = subprocess.run(
        [
            KTRDR,
            "train",
            "neuro_mean_reversion",
            "--mode",
            "cloud",
            "--epochs",
            "1",
            "--start",
            "2023-01-01",
            "--end",
            "2023-02-15",
            "--json",
        ],
        env=with_modules,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["status"] == "success"
    assert result["metadata"]["cloud"]["ray_address"] == address
    assert result["model_path"] and Path(result["model_path"]).is_dir()
