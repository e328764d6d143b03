"""Faults, each on a throw-away cluster of its own (or none): a Ray failure ends only its cloud runs.

- the head dies while a cloud training runs under a real ``ktrdr serve`` next to a unified one;
- the worker node running a training dies;
- the driver process itself dies;
- the address is a TCP listener that is not Ray (health, a training, Ctrl-C while connecting);
- no address at all: the driver process starts the local Ray instance itself.

The throw-away clusters run the GCS's node health checks every second, so a
dead node is noticed in seconds instead of Ray's default half minute.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cloud_helpers import LONG_STRATEGY, Background, ProgressRecorder, alive, children, wait_for

from ktrdr_cloud.mode import CloudMode
from ktrdr_cloud.testing import LocalCluster, start_cluster
from ktrdr_core import TrainingManager, TrainingRequest
from ktrdr_core.testing import leftover_model_dirs as model_dirs

KTRDR = str(Path(sys.executable).with_name("ktrdr"))
SMALL = {"start_date": "2023-01-01", "end_date": "2023-03-15"}
#: the GCS marks a node dead after 3 missed checks 1 s apart (Ray's defaults: 5 × 3 s + timeouts)
FAST_NODE_DEATH = {
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}
TERMINAL = {"completed", "failed", "cancelled"}


@pytest.fixture
def throwaway() -> Iterator[LocalCluster]:
    """A head with no CPUs and one 1-CPU worker node: every training runs on the worker node."""
    cluster = start_cluster(nodes=2, cpus_per_node=1, head_cpus=0, env={**os.environ, **FAST_NODE_DEATH})
    try:
        yield cluster
    finally:
        cluster.stop()


def _env(ktrdr_home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KTRDR_", "USE_UNIFIED", "UNIFIED_", "ROLLBACK_", "RAY_ADDRESS"))
    }
    env.update({"KTRDR_HOME": str(ktrdr_home), "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1", **extra})
    return env


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _driver_children(pid: int) -> list[int]:
    return [child for child in children(pid) if "ktrdr_cloud.driver" in _cmdline(child)]


# --------------------------------------------------------------------------- the head dies


class Server:
    """``ktrdr serve`` in a subprocess on a free port (its output in a file)."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home.parent / "server.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [KTRDR, "serve", "--port", str(self.port), "--max-concurrent", "2"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the server exited:\n{self.output()}"
            try:
                httpx.get(self.url + "/api/v1/health", timeout=2)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise AssertionError(f"the server did not start:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _updates(client: httpx.Client, training_id: str) -> int:
    progress = _training(client, training_id).get("progress") or {}
    return int(progress.get("updates") or 0)


def _training(client: httpx.Client, training_id: str) -> dict[str, Any]:
    answer = client.get(f"/api/v1/trainings/{training_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_the_heads_death_fails_only_the_cloud_run_and_the_service_goes_on(
    throwaway: LocalCluster, ktrdr_home: Path, strategies_dir: Path
) -> None:
    env = _env(
        ktrdr_home,
        KTRDR_RAY_ADDRESS=throwaway.address,
        KTRDR_STRATEGIES_DIR=str(strategies_dir),
        USE_UNIFIED_TRAINING="true",
        UNIFIED_TRAINING_ROLLOUT_PERCENTAGE="100",
        KTRDR_ROLLOUT_CONTROL="unified",
        KTRDR_ROLLOUT_CANDIDATE="cloud",
        ROLLBACK_USER_IDS="bob",  # bob gets the control: unified, in the service's process
        KTRDR_CLOUD_HEALTH_TTL="1",
        OMP_NUM_THREADS="1",
        KTRDR_TORCH_THREADS="1",
    )
    server = Server(ktrdr_home, env)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            cloud = client.post(
                "/api/v1/trainings",
                json={"strategy": LONG_STRATEGY, "user_id": "alice", **SMALL, "overrides": {"seed": 7}},
            )
            assert cloud.status_code == 202, cloud.text
            assert cloud.json()["decision"]["mode"] == "cloud", cloud.json()["decision"]
            cloud_id = cloud.json()["id"]
            wait_for(lambda: _updates(client, cloud_id) >= 1, 120, "the cloud run's progress")
            local = client.post(
                "/api/v1/trainings",
                json={
                    "strategy": "neuro_mean_reversion",
                    "user_id": "bob",
                    "start_date": "2023-01-02",
                    "end_date": "2023-05-31",
                    "overrides": {"epochs": 4, "seed": 7, "batch_size": 16},
                },
            )
            assert local.status_code == 202, local.text
            assert local.json()["decision"]["mode"] == "unified", local.json()["decision"]
            local_id = local.json()["id"]
            wait_for(lambda: _updates(client, local_id) >= 1, 60, "the unified run's progress")

            throwaway.kill_head()
            killed_at = time.monotonic()

            ended = wait_for(
                lambda: (t := _training(client, cloud_id))["status"] in TERMINAL and t,
                30,
                "the cloud run to end",
            )
            assert time.monotonic() - killed_at < 30
            assert ended["status"] == "failed", ended
            assert f"lost the Ray cluster at {throwaway.address}" in (ended["error"] or ""), (
                ended,
                server.output()[-3000:],
            )
            # the unified run in the same process never noticed
            other = wait_for(
                lambda: (t := _training(client, local_id))["status"] in TERMINAL and t, 240, "the unified run"
            )
            assert other["status"] == "completed", other
            health = wait_for(
                lambda: not (h := client.get("/api/v1/health").json())["modes"]["cloud"]["healthy"] and h,
                30,
                "health to call cloud unhealthy",
            )
            assert health["modes"]["unified"]["healthy"], health
            assert server.proc.poll() is None
    finally:
        server.stop()
    # the run ledger has the cloud run as failed, with the sentence
    runs = subprocess.run(
        [KTRDR, "runs", "--json"], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    rows = {row["request_id"]: row for row in json.loads(runs.stdout)}
    assert rows[cloud_id]["status"] == "error" and rows[cloud_id]["mode"] == "cloud", rows[cloud_id]
    assert "lost the Ray cluster" in (rows[cloud_id]["error"] or ""), rows[cloud_id]
    assert rows[local_id]["status"] == "success" and rows[local_id]["mode"] == "unified", rows[local_id]


# --------------------------------------------------------------------------- a node dies


def test_the_death_of_the_node_running_a_training_fails_that_run(
    throwaway: LocalCluster, long_strategy: str, ktrdr_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KTRDR_RAY_ADDRESS", throwaway.address)
    recorder = ProgressRecorder()
    run = Background(TrainingRequest(strategy=long_strategy, overrides={"seed": 7}, **SMALL), recorder)
    assert recorder.first.wait(120), "the training never reported progress"
    throwaway.kill_node(1)  # the only node with CPUs: the one running it
    killed_at = time.monotonic()
    result = run.join(60)
    assert result.status == "error"
    assert (result.error or "").startswith("the Ray worker died: "), result.error
    assert run.ended_at is not None and run.ended_at - killed_at < 45
    assert model_dirs(ktrdr_home) == []


# --------------------------------------------------------------------------- the driver dies


@pytest.mark.usefixtures("on_cluster")
def test_a_dead_driver_process_fails_its_run_and_the_next_training_starts_a_new_one(
    long_strategy: str, ktrdr_home: Path
) -> None:
    from ktrdr_cloud import driver_client
    from ktrdr_cloud.settings import CloudSettings

    recorder = ProgressRecorder()
    run = Background(TrainingRequest(strategy=long_strategy, overrides={"seed": 7}, **SMALL), recorder)
    assert recorder.first.wait(120), "the training never reported progress"
    driver = driver_client.current(CloudSettings.from_env())
    assert driver is not None and driver.process is not None
    losses = driver_client.losses()
    os.kill(driver.process.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    result = run.join(30)
    assert result.status == "error"
    assert "lost the Ray cluster at" in (result.error or "") and "exited" in (result.error or ""), (
        result.error
    )
    assert run.ended_at is not None and run.ended_at - killed_at < 10
    assert driver_client.losses() == losses + 1  # the health cache is keyed on it
    again = TrainingManager().train(
        TrainingRequest(strategy="neuro_mean_reversion", overrides={"seed": 7, "epochs": 1}, **SMALL),
        mode="cloud",
    )
    assert again.status == "success", again.error
    new = driver_client.current(CloudSettings.from_env())
    assert new is not None and new is not driver


# --------------------------------------------------------------------------- not Ray at all


def test_a_listener_that_is_not_ray_is_unhealthy_within_five_seconds(silent_port: int) -> None:
    mode = CloudMode(environ={"KTRDR_RAY_ADDRESS": f"127.0.0.1:{silent_port}"})  # default timeouts
    started = time.monotonic()
    health = mode.health()
    elapsed = time.monotonic() - started
    assert not health.healthy and f"127.0.0.1:{silent_port}" in health.detail
    assert elapsed < 5 + 3, elapsed  # the check's bound is 5 s; slack for a loaded machine


def test_a_training_against_a_listener_that_is_not_ray_fails_fast_with_one_line(
    silent_port: int, ktrdr_home: Path
) -> None:
    address = f"127.0.0.1:{silent_port}"
    env = _env(ktrdr_home, KTRDR_RAY_ADDRESS=address, KTRDR_CLOUD_CONNECT_TIMEOUT="1")
    started = time.monotonic()
    proc = subprocess.run(
        [
            KTRDR,
            "train",
            "neuro_mean_reversion",
            "--mode",
            "cloud",
            "--epochs",
            "1",
            "--no-progress",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert f"cannot connect to the Ray cluster at {address}: no answer within 8 s" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert elapsed < 8 + 20, elapsed  # the bound, plus the CLI's own start on a loaded machine
    assert model_dirs(ktrdr_home) == []


def test_ctrl_c_while_connecting_exits_at_once_and_leaves_no_driver(
    silent_port: int, ktrdr_home: Path
) -> None:
    env = _env(ktrdr_home, KTRDR_RAY_ADDRESS=f"127.0.0.1:{silent_port}", KTRDR_CLOUD_CONNECT_TIMEOUT="120")
    proc = subprocess.Popen(
        [KTRDR, "train", "neuro_mean_reversion", "--mode", "cloud", "--epochs", "1", "--no-progress"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        drivers = wait_for(lambda: _driver_children(proc.pid), 60, "the driver process to start")
        time.sleep(1.0)  # let it get into ray.init
        proc.send_signal(signal.SIGINT)
        interrupted_at = time.monotonic()
        out, err = proc.communicate(timeout=30)  # far less than the 127 s connect bound
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert time.monotonic() - interrupted_at < 10
    assert proc.returncode == 130, (out, err)
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("mode:")]
    assert len(lines) == 1, err
    assert out == ""
    wait_for(lambda: not any(alive(pid) for pid in drivers), 10, "the driver process to be gone")


# --------------------------------------------------------------------------- no address


LOCAL = """
import json, sys
from ktrdr_core import TrainingManager, TrainingRequest
result = TrainingManager().train(
    TrainingRequest(strategy="neuro_mean_reversion", overrides={"seed": 7, "epochs": 1},
                    start_date="2023-01-01", end_date="2023-03-15"),
    mode="cloud",
)
print(json.dumps({"status": result.status, "error": result.error, "ray_imported": "ray" in sys.modules,
                  "address": result.metadata.get("cloud", {}).get("ray_address")}))
"""


def test_without_an_address_the_driver_process_starts_a_local_instance(ktrdr_home: Path) -> None:
    env = _env(ktrdr_home, KTRDR_RAY_NUM_CPUS="1")
    proc = subprocess.run([sys.executable, "-c", LOCAL], env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    assert answer["status"] == "success", answer
    assert answer["address"] == "local"
    assert answer["ray_imported"] is False  # Ray lives in the driver process only
