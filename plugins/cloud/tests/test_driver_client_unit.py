"""Which driver process a training uses, and what capacity it reports (no Ray cluster needed)."""

from __future__ import annotations

from ktrdr_cloud.driver_client import DriverProcess, _key
from ktrdr_cloud.settings import CloudSettings


def test_one_driver_per_ray_init_setting_and_only_those() -> None:
    base = CloudSettings.from_env({"KTRDR_RAY_ADDRESS": "127.0.0.1:6379"})
    # what ray.init is called with: another driver
    assert _key(base) != _key(CloudSettings.from_env({"KTRDR_RAY_ADDRESS": "127.0.0.1:6380"}))
    env = CloudSettings.from_env(
        {"KTRDR_RAY_ADDRESS": "127.0.0.1:6379", "KTRDR_CLOUD_RUNTIME_ENV": '{"pip": ["requests"]}'}
    )
    assert _key(base) != _key(env)
    # per-task settings travel with each job: the same driver
    tasks = CloudSettings.from_env(
        {
            "KTRDR_RAY_ADDRESS": "127.0.0.1:6379",
            "KTRDR_CLOUD_TASK_CPUS": "2",
            "KTRDR_CLOUD_GRACE_SECONDS": "9",
        }
    )
    assert _key(base) == _key(tasks)
    # the local instance's CPUs matter only without an address
    assert _key(CloudSettings.from_env({"KTRDR_RAY_NUM_CPUS": "1"})) != _key(
        CloudSettings.from_env({"KTRDR_RAY_NUM_CPUS": "2"})
    )


def test_capacity_is_per_node_slots_and_unknown_until_connected() -> None:
    driver = DriverProcess(CloudSettings.from_env({"KTRDR_RAY_ADDRESS": "127.0.0.1:6379"}))
    driver.node_cpus = [1.0, 3.0]
    assert driver.capacity(1.0) is None  # not connected yet
    driver.connected.set()
    assert driver.capacity(1.0) == 4
    assert driver.capacity(2.0) == 1  # floor per node: 0 + 1
    assert driver.capacity(4.0) is None  # nothing fits
    driver.ended.set()
    assert driver.capacity(1.0) is None  # a lost driver knows nothing
