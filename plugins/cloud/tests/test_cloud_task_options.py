"""Task options: GPUs, the runtime environment, names; one clear message for each bad value."""

from __future__ import annotations

import json

import pytest

from ktrdr_cloud.settings import CloudSettings, parse_runtime_env
from ktrdr_cloud.worker import task_device
from ktrdr_core import ConfigurationError, TrainingManager, TrainingRequest


def test_task_options_carry_resources_no_retries_and_a_name_without_the_user() -> None:
    request = TrainingRequest(strategy="neuro_mean_reversion", user_id="alice.secret@example.com")
    options = CloudSettings.from_env({"KTRDR_CLOUD_TASK_CPUS": "2"}).task_options(request)
    assert options == {
        "num_cpus": 2.0,
        "max_retries": 0,
        "retry_exceptions": False,
        "name": f"ktrdr-train-neuro_mean_reversion-{request.request_id}",
    }
    gpu = CloudSettings.from_env(
        {"KTRDR_CLOUD_TASK_GPUS": "1", "KTRDR_CLOUD_RUNTIME_ENV": '{"pip": ["ktrdr-cloud"]}'}
    ).task_options(request)
    assert gpu["num_gpus"] == 1.0 and "runtime_env" not in gpu  # the job's (ray.init), inherited
    assert "alice" not in json.dumps(gpu)
    settings = CloudSettings.from_env({"KTRDR_CLOUD_RUNTIME_ENV": '{"py_modules": ["/opt/ktrdr_cloud"]}'})
    assert settings.init_options() == {"runtime_env": {"py_modules": ["/opt/ktrdr_cloud"]}}
    assert CloudSettings.from_env({}).init_options() == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "KTRDR_CLOUD_RUNTIME_ENV is not valid JSON"),
        ('["pip"]', "must be a JSON object with pip, py_modules, working_dir, got a list"),
        ('{"env_vars": {"A": "1"}}', "unknown key(s) 'env_vars'; only pip, py_modules, working_dir"),
        ('{"pip": [1, 2]}', "pip (requirements, or a requirements file's path) must be a list of non-empty"),
        ('{"py_modules": "/opt/ktrdr"}', "py_modules (folders, wheels or URIs) must be a list"),
        ('{"working_dir": ""}', "working_dir must be a non-empty string"),
    ],
)
def test_a_bad_runtime_env_is_one_clear_configuration_error(raw: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        CloudSettings.from_env({"KTRDR_CLOUD_RUNTIME_ENV": raw})
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_good_runtime_env_keeps_its_three_keys() -> None:
    raw = '{"pip": "requirements.txt", "py_modules": ["/w/ktrdr_core-1.whl"], "working_dir": "/w"}'
    assert parse_runtime_env(raw) == {
        "pip": "requirements.txt",
        "py_modules": ["/w/ktrdr_core-1.whl"],
        "working_dir": "/w",
    }
    assert parse_runtime_env("  ") is None and parse_runtime_env("{}") is None


@pytest.mark.parametrize(("raw", "message"), [("-1", "at least 0"), ("two", "must be a number")])
def test_bad_gpu_and_cache_numbers_are_refused(raw: str, message: str) -> None:
    for name in ("KTRDR_CLOUD_TASK_GPUS", "KTRDR_CLOUD_DATA_CACHE_MB"):
        with pytest.raises(ConfigurationError, match=message):
            CloudSettings.from_env({name: raw})


def test_the_device_follows_rays_assignment() -> None:
    assert task_device("auto", [], cuda_available=True) == "cpu"  # no GPU reserved: not ours to use
    assert task_device(None, ["0"], cuda_available=True) == "cuda"  # CUDA_VISIBLE_DEVICES = the assigned one
    assert task_device("cuda:1", [], cuda_available=False) == "cuda:1"  # an explicit request is kept
    with pytest.raises(ConfigurationError, match=r"Ray assigned GPU\(s\) 0 .* cannot use CUDA"):
        task_device("", ["0"], cuda_available=False)


@pytest.mark.usefixtures("on_cluster")
def test_the_task_runs_under_its_name_on_the_cpu(ktrdr_home: object) -> None:
    request = TrainingRequest(
        strategy="neuro_mean_reversion",
        user_id="bob-the-user",
        overrides={"epochs": 1, "seed": 3},
        start_date="2023-01-01",
        end_date="2023-02-15",
    )
    result = TrainingManager().train(request, mode="cloud")
    assert result.status == "success", result.error
    cloud = result.metadata["cloud"]
    assert cloud["task_name"] == f"ktrdr-train-neuro_mean_reversion-{request.request_id}"
    assert "bob" not in cloud["task_name"] and "bob" not in cloud["job_id"]
    assert cloud["gpu_ids"] == [] and result.metadata["device"] == "cpu"


@pytest.mark.usefixtures("on_cluster")
def test_a_gpu_request_no_node_fits_is_unhealthy(monkeypatch: pytest.MonkeyPatch) -> None:
    from ktrdr_cloud.mode import CloudMode

    assert CloudMode().health().healthy
    monkeypatch.setenv("KTRDR_CLOUD_TASK_GPUS", "1")  # the test cluster has no GPU
    health = CloudMode().health()
    assert not health.healthy
    assert "has 1 GPU(s) (KTRDR_CLOUD_TASK_GPUS) and 1 CPU(s); the most GPUs on a node is 0" in health.detail


@pytest.mark.usefixtures("on_cluster")
def test_a_gpu_request_no_node_fits_fails_clearly_after_the_start_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KTRDR_CLOUD_TASK_GPUS", "1")  # the test cluster has no GPU
    monkeypatch.setenv("KTRDR_CLOUD_START_TIMEOUT", "1.5")
    request = TrainingRequest(
        strategy="neuro_mean_reversion",
        overrides={"epochs": 1},
        start_date="2023-01-01",
        end_date="2023-02-15",
    )
    result = TrainingManager().train(request, mode="cloud")
    assert result.status == "error"
    assert "did not start the training within 1.5 s" in (result.error or "")
    assert "1 GPU(s) (KTRDR_CLOUD_TASK_GPUS)" in (result.error or "")
