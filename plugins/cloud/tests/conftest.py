"""Fixtures of the cloud tests: ONE local Ray cluster per session, a fresh KTRDR_HOME per test.

Ray's token authentication is disabled here (``RAY_AUTH_MODE=disabled``,
also set by tox); real clusters use ``RAY_AUTH_TOKEN`` (docs/cloud.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cloud_helpers import LONG_STRATEGY, ProgressRecorder

from ktrdr_core.testing.fixtures import ktrdr_home  # noqa: F401

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

CLOUD_ENV = (
    "KTRDR_RAY_ADDRESS",
    "KTRDR_RAY_NUM_CPUS",
    "KTRDR_CLOUD_TASK_CPUS",
    "KTRDR_CLOUD_GRACE_SECONDS",
    "KTRDR_CLOUD_CONNECT_TIMEOUT",
    "KTRDR_CLOUD_HEALTH_TTL",
    "KTRDR_CLOUD_LOG_TO_DRIVER",
)


@pytest.fixture(autouse=True)
def no_cloud_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Besides the core's isolation (ktrdr_home): no cloud variable leaks in from the shell."""
    for name in CLOUD_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """The session's local Ray cluster (2 CPUs, no dashboard); yields its GCS address."""
    import ray

    os.environ["RAY_AUTH_MODE"] = "disabled"
    started = time.monotonic()
    if not ray.is_initialized():  # (a test run alone may have let the mode start it)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="ktrdr")
    address = ray.get_runtime_context().gcs_address
    print(f"\nlocal Ray cluster at {address} started in {time.monotonic() - started:.1f} s")
    yield address
    ray.shutdown()


@pytest.fixture(scope="session")
def strategies_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user strategies folder (driver side only) holding :data:`LONG_STRATEGY`."""
    from ktrdr_core.training.strategy import BUILTIN_STRATEGIES_DIR

    folder = tmp_path_factory.mktemp("strategies")
    raw = yaml.safe_load((BUILTIN_STRATEGIES_DIR / "neuro_mean_reversion.yaml").read_text())
    raw["name"] = LONG_STRATEGY
    raw["model"]["training"]["epochs"] = 100000
    raw["model"]["training"]["early_stopping"] = {"enabled": False}
    (folder / f"{LONG_STRATEGY}.yaml").write_text(yaml.safe_dump(raw))
    return folder


@pytest.fixture
def long_strategy(strategies_dir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("KTRDR_STRATEGIES_DIR", str(strategies_dir))
    return LONG_STRATEGY


@pytest.fixture
def recorder() -> ProgressRecorder:
    return ProgressRecorder()
