"""The driver's job closes its job on the control actor however opening it fails (no Ray cluster needed).

``ray.get`` is replaced, and the control actor is a stand-in that records the
calls: opening may register the job on the actor and still time out (the
actor is slow, or the answer is lost), and the job must then be closed.
"""

from __future__ import annotations

from typing import Any

import pytest

from ktrdr_cloud.driver_job import RayJob
from ktrdr_cloud.settings import CloudSettings
from ktrdr_core import TrainingFailedError, TrainingRequest

ray = pytest.importorskip("ray")


class _Method:
    def __init__(self, actor: FakeControl, name: str) -> None:
        self.actor, self.name = actor, name

    def remote(self, *args: Any) -> tuple[str, tuple[Any, ...]]:
        self.actor.calls.append((self.name, args))
        return (self.name, args)


class FakeControl:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.open = _Method(self, "open")
        self.close = _Method(self, "close")


class FakeConnection:
    def __init__(self, broken: bool = False) -> None:
        self.broken = broken
        self.actors: list[FakeControl] = []

    def control(self, *, renew: bool = False) -> FakeControl:
        if self.broken:
            raise RuntimeError("no Ray session")
        self.actors.append(FakeControl())
        return self.actors[-1]


def job(connection: FakeConnection) -> RayJob:
    return RayJob(
        connection,
        CloudSettings(),
        "job-1",
        TrainingRequest(strategy="neuro_mean_reversion"),
        None,
        lambda *a: None,
    )


def test_a_job_whose_open_timed_out_is_still_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    def get(ref: Any, timeout: float | None = None) -> Any:
        raise ray.exceptions.GetTimeoutError("open did not answer")

    monkeypatch.setattr(ray, "get", get)
    connection = FakeConnection()
    driver = job(connection)
    with pytest.raises(TrainingFailedError, match="did not start the ktrdr control actor"):
        driver.run()
    [actor] = connection.actors
    assert actor.calls == [("open", (driver.job_id, driver.request_id)), ("close", (driver.job_id,))]
    assert driver.done


def test_a_job_whose_actor_died_twice_closes_it_on_the_last_actor(monkeypatch: pytest.MonkeyPatch) -> None:
    def get(ref: Any, timeout: float | None = None) -> Any:
        raise ray.exceptions.RayActorError()

    monkeypatch.setattr(ray, "get", get)
    connection = FakeConnection()
    driver = job(connection)
    with pytest.raises(TrainingFailedError, match="died twice in a row"):
        driver.run()
    first, second = connection.actors
    assert [name for name, _ in first.calls] == ["open"]
    assert [name for name, _ in second.calls] == ["open", "close"]


def test_a_job_that_never_reached_an_actor_reports_the_real_error() -> None:
    driver = job(FakeConnection(broken=True))
    with pytest.raises(RuntimeError, match="no Ray session"):
        driver.run()
    assert driver.control is None and driver.done
