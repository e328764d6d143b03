"""The cloud mode's health asks the cluster itself, in a child process, bounded and cached."""

from __future__ import annotations

import importlib.util
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import pytest
from cloud_helpers import alive, children

from ktrdr_cloud.healthcheck import HEADROOM_SECONDS, run_check
from ktrdr_cloud.mode import CloudMode

#: on top of a check's own bound: the machine running the tests may be loaded
SLACK = 5.0


def test_a_port_that_accepts_but_is_not_ray_is_unhealthy_within_the_bound(silent_port: int) -> None:
    mode = CloudMode(
        environ={"KTRDR_RAY_ADDRESS": f"127.0.0.1:{silent_port}", "KTRDR_CLOUD_CONNECT_TIMEOUT": "1"}
    )
    started = time.monotonic()
    health = mode.health()
    elapsed = time.monotonic() - started
    assert not health.healthy
    assert f"127.0.0.1:{silent_port}" in health.detail
    assert elapsed < 1 + HEADROOM_SECONDS + SLACK, elapsed
    assert mode.health_checks == 1


def test_a_refused_port_is_unhealthy_without_a_child_process() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mode = CloudMode(environ={"KTRDR_RAY_ADDRESS": f"127.0.0.1:{port}"})
    health = mode.health()
    assert not health.healthy and "unreachable" in health.detail
    assert mode.health_checks == 0


def test_ray_client_address_without_the_client_extra_names_the_extra() -> None:
    assert importlib.util.find_spec("grpc") is None, "this test needs Ray without ray[client]"
    health = CloudMode(environ={"KTRDR_RAY_ADDRESS": "ray://127.0.0.1:10001"}).health()
    assert not health.healthy
    assert "pip install 'ktrdr-cloud[client]'" in health.detail


def test_the_real_cluster_is_healthy_and_the_answer_is_cached(session_cluster: Any) -> None:
    mode = CloudMode(
        environ={"KTRDR_RAY_ADDRESS": session_cluster.address, "KTRDR_CLOUD_CONNECT_TIMEOUT": "30"}
    )
    health = mode.health()
    assert health.healthy, health.detail
    assert "ktrdr-cloud" in health.detail and f"{len(session_cluster.cpus)} alive node" in health.detail
    started = time.monotonic()
    assert mode.health() is health
    assert mode.health_checks == 1  # the second answer came from the cache, no new child
    assert time.monotonic() - started < 0.5


def test_no_node_with_enough_cpus_is_unhealthy(session_cluster: Any) -> None:
    largest = max(session_cluster.cpus)
    mode = CloudMode(
        environ={
            "KTRDR_RAY_ADDRESS": session_cluster.address,
            "KTRDR_CLOUD_CONNECT_TIMEOUT": "30",
            "KTRDR_CLOUD_TASK_CPUS": f"{largest + 1:g}",
        }
    )
    health = mode.health()
    assert not health.healthy
    assert "no alive node" in health.detail and "KTRDR_CLOUD_TASK_CPUS" in health.detail
    assert f"largest has {largest:g}" in health.detail


def test_a_version_mismatch_is_one_clear_sentence(ray_cluster: str) -> None:
    result = run_check(ray_cluster, 1.0, 30.0, expected_version="0.0.0-other")
    assert not result.healthy
    assert "version mismatch" in result.detail and "0.0.0-other" in result.detail


INTERRUPTED = """
import os, socket, sys
from ktrdr_cloud.mode import CloudMode
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen(16)
mode = CloudMode(environ={"KTRDR_RAY_ADDRESS": f"127.0.0.1:{server.getsockname()[1]}",
                          "KTRDR_CLOUD_CONNECT_TIMEOUT": "120"})
print("checking", flush=True)
try:
    mode.health()
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


def test_ctrl_c_interrupts_a_hanging_check_and_leaves_no_child() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "checking"
    deadline = time.monotonic() + 60
    while not children(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    started = children(process.pid)
    assert started, "the health check's child process never started"
    time.sleep(1.0)  # let it get into ray.init
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=30)  # far less than the check's 122 s bound
    assert process.returncode == 130 and "interrupted" in out
    time.sleep(0.5)
    assert not [pid for pid in started if alive(pid)]


def _cases(silent: int, session: Any) -> dict[str, tuple[dict[str, str], str]]:
    """Every kind of unhealthy answer: the settings that cause it and a phrase of its sentence."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        refused = sock.getsockname()[1]
    return {
        "refused": ({"KTRDR_RAY_ADDRESS": f"127.0.0.1:{refused}"}, "unreachable"),
        "not ray": (
            {"KTRDR_RAY_ADDRESS": f"127.0.0.1:{silent}", "KTRDR_CLOUD_CONNECT_TIMEOUT": "1"},
            "did not answer",
        ),
        "no client": ({"KTRDR_RAY_ADDRESS": "ray://127.0.0.1:10001"}, "pip install 'ktrdr-cloud[client]'"),
        "too small": (
            {"KTRDR_RAY_ADDRESS": session.address, "KTRDR_CLOUD_TASK_CPUS": f"{max(session.cpus) + 1:g}"},
            "no alive node",
        ),
        "malformed": ({"KTRDR_CLOUD_TASK_CPUS": "lots"}, "KTRDR_CLOUD_TASK_CPUS"),
    }


@pytest.mark.parametrize("case", ["refused", "not ray", "no client", "too small", "malformed"])
def test_any_unhealthy_answer_makes_the_rollout_fall_back_to_the_control(
    case: str, silent_port: int, session_cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ktrdr_core import TrainingManager, TrainingRequest

    environ, phrase = _cases(silent_port, session_cluster)[case]
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("USE_UNIFIED_TRAINING", "true")
    monkeypatch.setenv("UNIFIED_TRAINING_ROLLOUT_PERCENTAGE", "100")
    monkeypatch.setenv("KTRDR_ROLLOUT_CONTROL", "unified")
    monkeypatch.setenv("KTRDR_ROLLOUT_CANDIDATE", "cloud")
    decision = TrainingManager().decide(TrainingRequest(strategy="neuro_mean_reversion", user_id="alice"))
    assert decision.mode == "unified" and decision.fallback, decision
    assert phrase in decision.reason, decision.reason
