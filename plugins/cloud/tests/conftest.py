"""Fixtures of the cloud tests: ONE real Ray cluster per session, a fresh KTRDR_HOME per test.

The cluster is the one at ``KTRDR_RAY_ADDRESS`` (or ``RAY_ADDRESS``) when
either is set in the environment pytest starts with; otherwise the session
starts its own with ``ray start`` (a head and a second node, 1 CPU each, free
ports, its own temp dir; :mod:`ktrdr_cloud.testing`) and stops it by pid at
the end. Tests that need it take ``on_cluster`` (or ``ray_cluster`` for the
address alone).

Ray's token authentication is disabled here (``RAY_AUTH_MODE=disabled``,
also set by tox); real clusters use ``RAY_AUTH_TOKEN`` (docs/cloud.md).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml
from cloud_helpers import LONG_STRATEGY, ProgressRecorder

from ktrdr_cloud.testing import node_cpus, start_cluster
from ktrdr_core.testing.fixtures import ktrdr_home  # noqa: F401

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

#: the cluster given by the environment pytest started with (read before any test changes it)
GIVEN_ADDRESS = os.environ.get("KTRDR_RAY_ADDRESS", "").strip() or os.environ.get("RAY_ADDRESS", "").strip()

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


@attrs.frozen
class ClusterShape:
    """The session cluster's address and the CPUs of each alive node."""

    address: str
    cpus: tuple[float, ...]
    #: the workers' temp folder (TMPDIR): the session's own when it started the cluster, so tests
    #: that look at the workers' job folders never see another process's cluster's folders
    worker_tmp: Path

    def slots(self, task_cpus: float = 1.0) -> int:
        return sum(int(cpus // task_cpus) for cpus in self.cpus)


@pytest.fixture(scope="session")
def session_cluster() -> Iterator[ClusterShape]:
    """The given cluster, or one started here (see the module docstring)."""
    started = time.monotonic()
    cluster = None
    worker_tmp = Path(tempfile.gettempdir())
    if GIVEN_ADDRESS:
        address = GIVEN_ADDRESS
    else:
        worker_tmp = Path(tempfile.mkdtemp(prefix="ktrdr-cloud-workers-"))
        cluster = start_cluster(nodes=2, cpus_per_node=1, env={**os.environ, "TMPDIR": str(worker_tmp)})
        address = cluster.address
    try:
        cpus = node_cpus(address, timeout=120)
        assert cpus, f"the Ray cluster at {address} did not answer"
        where = "given" if cluster is None else "started with `ray start`"
        print(
            f"\nRay cluster at {address} ({where}, CPUs per node {cpus}) in {time.monotonic() - started:.1f} s"
        )
        yield ClusterShape(address, tuple(cpus), worker_tmp)
    finally:
        if cluster is not None:
            cluster.stop()
            shutil.rmtree(worker_tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_cluster(session_cluster: ClusterShape) -> str:
    """The session cluster's GCS address."""
    return session_cluster.address


@pytest.fixture(scope="session")
def ray_client(ray_cluster: str) -> Iterator[Any]:
    """Ray, connected from this process to the session cluster: for tests that act on the
    cluster themselves (occupy its CPUs, kill an actor). The cloud mode never uses it.

    Disconnected before the cluster stops: a connected process prints Ray's "Raylet is
    terminated" dump when its cluster goes away under it."""
    import ray

    if not ray.is_initialized():
        ray.init(address=ray_cluster, namespace="ktrdr", log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def on_cluster(ray_cluster: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """This test's cloud trainings go to the session cluster (``KTRDR_RAY_ADDRESS``)."""
    monkeypatch.setenv("KTRDR_RAY_ADDRESS", ray_cluster)
    return ray_cluster


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


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A plain TCP server on 127.0.0.1 that accepts every connection and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    for conn in held:
        conn.close()
    server.close()
