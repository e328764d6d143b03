"""Settings, address forms and health: no Ray cluster needed (and none started)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from ktrdr_cloud.mode import CloudMode
from ktrdr_cloud.probe import probe_address, resolve_auto_address
from ktrdr_cloud.settings import CloudSettings, parse_ray_address
from ktrdr_core import ConfigurationError, TrainingManager, TrainingRequest


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("auto", ("auto", "", None)),
        ("ray://head.example:10001", ("client", "head.example", 10001)),
        ("ray://head.example", ("client", "head.example", 10001)),
        ("10.0.0.5:6379", ("gcs", "10.0.0.5", 6379)),
        ("head", ("gcs", "head", 6379)),
        ("[::1]:6380", ("gcs", "::1", 6380)),
    ],
)
def test_every_ray_address_form_is_understood(address: str, expected: tuple) -> None:
    assert parse_ray_address(address) == expected


@pytest.mark.parametrize("address", ["http://head:8265", "head:port", "head:70000", "ray://:1"])
def test_a_malformed_address_is_a_configuration_error(address: str) -> None:
    with pytest.raises(ConfigurationError, match="KTRDR_RAY_ADDRESS"):
        CloudSettings.from_env({"KTRDR_RAY_ADDRESS": address})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KTRDR_RAY_NUM_CPUS", "two"),
        ("KTRDR_RAY_NUM_CPUS", "0"),
        ("KTRDR_CLOUD_GRACE_SECONDS", "-1"),
        ("KTRDR_CLOUD_LOG_TO_DRIVER", "maybe"),
    ],
)
def test_malformed_settings_make_the_mode_unhealthy_not_crash(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        CloudSettings.from_env({name: value})
    health = CloudMode(environ={name: value}).health()
    assert not health.healthy and name in health.detail


def test_defaults() -> None:
    settings = CloudSettings.from_env({})
    assert settings.address is None and settings.grace_seconds == 5.0
    assert settings.num_cpus >= 1 and settings.torch_threads == 1
    assert CloudSettings.from_env({"KTRDR_RAY_NUM_CPUS": "3"}).num_cpus == 3


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_cluster_is_unhealthy_quickly_and_cached() -> None:
    mode = CloudMode(
        environ={"KTRDR_RAY_ADDRESS": f"127.0.0.1:{_closed_port()}", "KTRDR_CLOUD_CONNECT_TIMEOUT": "1"}
    )
    started = time.monotonic()
    health = mode.health()
    assert time.monotonic() - started < 1.5
    assert not health.healthy
    assert "unreachable" in health.detail and "127.0.0.1" in health.detail
    assert mode.health() is health  # cached: the selector asks before every decision


def test_a_listening_port_counts_as_reachable_for_the_probe() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert probe_address(f"127.0.0.1:{port}", 1.0).reachable


def test_auto_follows_ray_address_and_says_when_there_is_no_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    assert resolve_auto_address() == "127.0.0.1:1"
    result = probe_address("auto", 0.5)
    assert not result.reachable and "127.0.0.1:1" in result.detail
    monkeypatch.setattr("ktrdr_cloud.probe.resolve_auto_address", lambda: None)
    result = probe_address("auto", 0.5)
    assert not result.reachable and "'auto'" in result.detail


def test_selector_falls_back_to_control_when_the_cluster_is_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KTRDR_RAY_ADDRESS", "127.0.0.1:1")
    monkeypatch.setenv("KTRDR_CLOUD_CONNECT_TIMEOUT", "1")
    monkeypatch.setenv("USE_UNIFIED_TRAINING", "true")
    monkeypatch.setenv("UNIFIED_TRAINING_ROLLOUT_PERCENTAGE", "100")
    monkeypatch.setenv("KTRDR_ROLLOUT_CONTROL", "unified")
    monkeypatch.setenv("KTRDR_ROLLOUT_CANDIDATE", "cloud")
    decision = TrainingManager().decide(TrainingRequest(strategy="neuro_mean_reversion"))
    assert decision.mode == "unified"
    assert decision.fallback
    assert "unreachable" in decision.reason and "127.0.0.1:1" in decision.reason


def test_plugin_module_imports_neither_ray_nor_torch() -> None:
    code = (
        "import sys, ktrdr_cloud.plugin, ktrdr_cloud.mode; "
        "bad = [m for m in ('ray', 'torch') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
