"""The service's pieces that need no real execution mode: a fake mode on a private plugin manager.

These run in the core-only tox env (no plugin installed): trainings are a
loop of short sleeps that report progress and honour the cancellation token.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ktrdr_core.cancellation import CancellationToken
from ktrdr_core.errors import CancellationError
from ktrdr_core.hookspecs import hookimpl
from ktrdr_core.modes import ExecutionMode, ModeHealth
from ktrdr_core.plugins import KtrdrPluginManager
from ktrdr_core.progress import ProgressCallback
from ktrdr_core.request import TrainingRequest
from ktrdr_core.result import TrainingResult
from ktrdr_core.rollout.policy import Decision
from ktrdr_core.service import create_app
from ktrdr_core.service.app import _validation_message
from ktrdr_core.service.sessions import (
    AlreadyFinishedError,
    QueueFullError,
    ThreadSafeProgress,
    TrainingService,
    TrainingSession,
    UnknownTrainingError,
)
from ktrdr_core.testing import plugin_manager_with

TOKEN = "unit-token"


class FakeMode:
    """``epochs`` steps of 20 ms, one progress update each; strategy ``boom`` raises."""

    def __init__(self, name: str, healthy: bool = True) -> None:
        self.name = name
        self.healthy = healthy
        self.calls: list[str] = []

    def health(self) -> ModeHealth:
        return ModeHealth.ok() if self.healthy else ModeHealth.unhealthy("broken on purpose")

    def execute(
        self, request: TrainingRequest, progress: ProgressCallback, cancel: CancellationToken
    ) -> TrainingResult:
        self.calls.append(request.request_id)
        if request.strategy == "boom":
            raise RuntimeError("the fake mode exploded")
        epochs = int(request.overrides.get("epochs", 3))
        for epoch in range(1, epochs + 1):
            for batch in range(1, 3):
                if cancel.is_cancelled():
                    raise CancellationError(cancel.reason or "cancelled")
                time.sleep(0.01)
                progress(
                    epoch,
                    epochs,
                    {
                        "progress_type": "batch",
                        "batch": batch,
                        "total_batches_per_epoch": 2,
                        "train_loss": 1.0 / epoch,
                    },
                )
            progress(epoch, epochs, {"progress_type": "epoch", "val_loss": 0.5, "nan": float("nan")})
        return TrainingResult(success=True, training_metrics={"epochs_trained": epochs})


def make_pm(*modes: ExecutionMode) -> KtrdrPluginManager:
    return plugin_manager_with(*modes, distribution="fake-modes")


@pytest.fixture
def fake_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KTRDR_ROLLOUT_CONTROL", "fake")
    monkeypatch.setenv("KTRDR_ROLLOUT_CANDIDATE", "fake2")
    monkeypatch.setenv("KTRDR_LEDGER", "off")


@pytest.fixture
def app_client(fake_env: None) -> Iterator[tuple[TestClient, FakeMode]]:
    mode = FakeMode("fake")
    app = create_app(
        plugin_manager=make_pm(mode, FakeMode("fake2")),
        api_token=TOKEN,
        max_concurrent=1,
        queue_size=1,
        metrics=False,
        preload=False,
    )
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client, mode


def wait_done(client: TestClient, training_id: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/api/v1/trainings/{training_id}").json()
        if body["status"] in ("completed", "failed", "cancelled"):
            return dict(body)
        assert time.monotonic() < deadline
        time.sleep(0.02)


# -- the session store and scheduler, without HTTP ---------------------------------------


class FakeRunner:
    def __init__(self) -> None:
        self.started: list[str] = []
        self.release = threading.Event()

    def train(
        self,
        request: TrainingRequest,
        progress: ProgressCallback | None = None,
        cancel: Any = None,
        *,
        decision: Decision | None = None,
    ) -> TrainingResult:
        self.started.append(request.request_id)
        assert progress is not None
        progress(1, 1, {"progress_type": "epoch"})
        while not self.release.wait(0.005):
            if cancel.is_cancelled():
                return TrainingResult.cancelled(cancel.reason)
        return TrainingResult(success=True)


DECISION = Decision(mode="fake", reason="test", bucket=1)


def test_service_bounds_queue_cancels_and_forgets() -> None:
    async def scenario() -> None:
        runner = FakeRunner()
        service = TrainingService(runner, max_concurrent=1, queue_size=1, keep_finished=2)
        first = service.submit(TrainingRequest(strategy="s"), DECISION)
        second = service.submit(TrainingRequest(strategy="s"), DECISION)
        assert (first.status, second.status) == ("running", "queued")
        with pytest.raises(QueueFullError, match="--max-concurrent 1"):
            service.submit(TrainingRequest(strategy="s"), DECISION)
        service.cancel(second.id)
        assert second.status == "cancelled" and second.started_at is None
        assert second.result is not None and second.result.metadata["started"] is False
        with pytest.raises(AlreadyFinishedError):
            service.cancel(second.id)
        runner.release.set()
        await asyncio.wait_for(first.done.wait(), 5)
        assert first.status == "completed"
        assert runner.started == [first.id]  # the cancelled queued one never started
        third = service.submit(TrainingRequest(strategy="s"), DECISION)
        await asyncio.wait_for(third.done.wait(), 5)
        # keep_finished=2: the oldest finished session is forgotten
        with pytest.raises(UnknownTrainingError):
            service.get(second.id)
        assert service.get(first.id) is first and service.get(third.id) is third
        await service.shutdown()

    asyncio.run(scenario())


def test_shutdown_cancels_running_and_queued() -> None:
    async def scenario() -> None:
        runner = FakeRunner()
        service = TrainingService(runner, max_concurrent=1, queue_size=3)
        running = service.submit(TrainingRequest(strategy="s"), DECISION)
        queued = service.submit(TrainingRequest(strategy="s"), DECISION)
        await asyncio.sleep(0.05)
        await service.shutdown(timeout=5)
        assert running.status == "cancelled" and queued.status == "cancelled"
        assert running.result is not None and "shutting down" in (running.result.error or "")
        assert runner.started == [running.id]
        with pytest.raises(Exception, match="shutting down"):
            service.submit(TrainingRequest(strategy="s"), DECISION)

    asyncio.run(scenario())


def test_a_mode_with_capacity_is_admitted_by_it_not_by_max_concurrent() -> None:
    """A cluster mode's trainings run by its capacity; local ones stay bounded by max_concurrent."""
    remote = Decision(mode="remote", reason="test", bucket=1)

    async def scenario() -> None:
        runner = FakeRunner()
        capacity = {"remote": 3}
        service = TrainingService(
            runner, max_concurrent=1, queue_size=8, capacity_of=lambda mode: capacity.get(mode)
        )
        local = [service.submit(TrainingRequest(strategy="s"), DECISION) for _ in range(2)]
        cluster = [service.submit(TrainingRequest(strategy="s"), remote) for _ in range(5)]
        assert [s.status for s in local] == ["running", "queued"]
        assert [s.status for s in cluster] == ["running"] * 3 + ["queued"] * 2
        assert service.counts()["running_remote"] == 3
        capacity["remote"] = 4  # the cluster grew: the next finish admits more
        runner.release.set()
        for session in [*local, *cluster]:
            await asyncio.wait_for(session.done.wait(), 5)
        assert all(s.status == "completed" for s in [*local, *cluster])
        assert service.counts()["running_remote"] == 0
        await service.shutdown()

    asyncio.run(scenario())


def test_mode_capacity_is_optional_and_checked() -> None:
    from ktrdr_core.plugins import mode_capacity

    class Sized(FakeMode):
        def __init__(self, name: str, answer: Any) -> None:
            super().__init__(name)
            self.answer = answer

        def capacity(self) -> Any:
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer

    pm = plugin_manager_with(
        Sized("two", 2), Sized("bad", "lots"), Sized("boom", RuntimeError("x")), FakeMode("plain")
    )
    assert mode_capacity(pm, "two") == 2
    assert [mode_capacity(pm, m) for m in ("bad", "boom", "plain", "missing")] == [None] * 4


def test_progress_from_another_thread_arrives_in_order_and_coalesced() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        batches: list[list[Any]] = []
        bridge = ThreadSafeProgress(loop, lambda items: batches.append(items))

        def produce() -> None:
            for i in range(500):
                bridge(1, 1, {"i": i})

        await asyncio.to_thread(produce)
        await asyncio.sleep(0.05)
        seen = [item[3]["i"] for batch in batches for item in batch]
        assert seen == list(range(500))
        assert len(batches) < 500  # bursts drained together

    asyncio.run(scenario())


def test_session_progress_percent_subscribers_and_end() -> None:
    async def scenario() -> None:
        session = TrainingSession(TrainingRequest(strategy="s"), DECISION, replay=4)
        early = session.subscribe()
        session.on_progress(
            [
                (
                    1.0,
                    1,
                    4,
                    {"progress_type": "batch", "batch": 1, "total_batches_per_epoch": 2, "x": float("inf")},
                )
            ]
        )
        assert session.progress["percent"] == 12.5
        assert session.progress["metrics"]["x"] is None  # JSON-safe
        session.on_progress([(1.1, 2, 4, {"progress_type": "epoch"})])
        assert session.progress["percent"] == 50.0
        assert [item[0] for item in early.items] == ["progress", "progress"]
        late = session.subscribe(after=1)  # Last-Event-ID: 1
        assert [item[1] for item in late.items] == [2]
        session.finish(TrainingResult(success=True))
        assert early.closed and early.items[-1][0] == "end" and early.items[-1][2]["status"] == "completed"
        after_end = session.subscribe()
        assert after_end.closed and [item[0] for item in after_end.items] == ["progress", "end"]

    asyncio.run(scenario())


# -- the app, through a TestClient ---------------------------------------------------------


def test_health_is_503_without_any_mode(fake_env: None) -> None:
    app = create_app(plugin_manager=make_pm(), api_token=TOKEN, metrics=False, preload=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        response = client.get("/api/v1/health")
        assert response.status_code == 503
        assert response.json()["status"] == "unhealthy"
        assert "no execution mode is installed" in response.json()["problems"][0]
        refused = client.post("/api/v1/trainings", json={"strategy": "s"})
        assert refused.status_code == 503
        assert "no execution mode is installed" in refused.json()["message"]


def test_health_503_when_the_control_mode_is_unhealthy(fake_env: None) -> None:
    app = create_app(
        plugin_manager=make_pm(FakeMode("fake", healthy=False), FakeMode("fake2")),
        metrics=False,
        preload=False,
    )
    with TestClient(app, base_url="http://127.0.0.1") as client:
        response = client.get("/api/v1/health")
        assert response.status_code == 503
        assert "control mode 'fake' is unhealthy" in response.json()["problems"][0]


def test_health_degraded_when_the_candidate_is_unhealthy(fake_env: None) -> None:
    app = create_app(
        plugin_manager=make_pm(FakeMode("fake"), FakeMode("fake2", healthy=False)),
        metrics=False,
        preload=False,
    )
    with TestClient(app, base_url="http://127.0.0.1") as client:
        response = client.get("/api/v1/health")
        assert response.status_code == 200
        assert response.json()["status"] == "degraded"
        assert response.json()["modes"]["fake2"]["role"] == "candidate"


def test_health_503_when_the_event_loop_lags(app_client: tuple[TestClient, FakeMode]) -> None:
    client, _mode = app_client
    assert client.get("/api/v1/health").status_code == 200
    client.app.state.lag["lag"].samples.append(2.0)  # type: ignore[attr-defined]
    response = client.get("/api/v1/health")
    assert response.status_code == 503
    assert "event loop lagged 2000 ms" in response.json()["problems"][0]


def test_lifecycle_with_a_fake_mode(app_client: tuple[TestClient, FakeMode]) -> None:
    client, mode = app_client
    response = client.post(
        "/api/v1/trainings", json={"strategy": "s", "user_id": "u", "overrides": {"epochs": 2}}
    )
    assert response.status_code == 202
    created = response.json()
    assert response.headers["location"] == f"/api/v1/trainings/{created['id']}"
    assert created["decision"]["mode"] == "fake"
    body = wait_done(client, created["id"])
    assert body["status"] == "completed"
    assert body["progress"]["percent"] == 100.0 and body["progress"]["updates"] == 6
    assert body["result"]["metadata"]["mode"] == "fake"
    assert mode.calls == [created["id"]]
    # the stream of a finished training: its last progress, then end
    with client.stream("GET", f"/api/v1/trainings/{created['id']}/events") as stream:
        text = "".join(stream.iter_text())
    assert text.count("event: progress") == 1 and "event: end" in text
    assert '"status":"completed"' in text


def test_a_failing_mode_fails_the_training_only(app_client: tuple[TestClient, FakeMode]) -> None:
    client, _mode = app_client
    created = client.post("/api/v1/trainings", json={"strategy": "boom"}).json()
    body = wait_done(client, created["id"])
    assert body["status"] == "failed"
    assert "the fake mode exploded" in body["error"]
    assert client.get("/api/v1/health").status_code == 200


def test_rollout_token_rules(app_client: tuple[TestClient, FakeMode]) -> None:
    client, _mode = app_client
    assert client.put("/api/v1/rollout", json={"enabled": True}).status_code == 401
    bad = client.put("/api/v1/rollout", json={"enabled": True}, headers={"Authorization": "Bearer x"})
    assert bad.status_code == 401
    ok = client.put(
        "/api/v1/rollout",
        json={"enabled": True, "percentage": 100},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["audit"]["actor"] == "api"
    created = client.post("/api/v1/trainings", json={"strategy": "s", "user_id": "u"}).json()
    assert created["decision"]["mode"] == "fake2"
    again = client.put(
        "/api/v1/rollout", json={"enabled": True}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert again.json()["changed"] is False


def test_rollout_change_warns_when_the_environment_wins(
    app_client: tuple[TestClient, FakeMode], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _mode = app_client
    monkeypatch.setenv("UNIFIED_TRAINING_ROLLOUT_PERCENTAGE", "0")
    response = client.put(
        "/api/v1/rollout", json={"percentage": 50}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 200
    assert (
        "UNIFIED_TRAINING_ROLLOUT_PERCENTAGE is set in the server's environment"
        in response.json()["warnings"][0]
    )
    assert response.json()["rollout"]["percentage"] == 0


def test_rollout_refused_when_the_server_has_no_token(fake_env: None) -> None:
    app = create_app(plugin_manager=make_pm(FakeMode("fake")), api_token=None, metrics=False, preload=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        response = client.put(
            "/api/v1/rollout", json={"enabled": True}, headers={"Authorization": "Bearer anything"}
        )
        assert response.status_code == 403
        assert "set KTRDR_API_TOKEN" in response.json()["message"]


def test_validation_message_names_each_field() -> None:
    message = _validation_message(
        [
            {"loc": ["body", "strategy"], "msg": "Value error, invalid strategy name '../x'"},
            {"loc": ["body", "overrides", "epochs"], "msg": "Input should be a valid integer"},
        ]
    )
    assert message == (
        "invalid request: strategy: invalid strategy name '../x'; "
        "overrides.epochs: Input should be a valid integer"
    )


def test_metrics_endpoint_serves_the_registry(app_client: tuple[TestClient, FakeMode]) -> None:
    client, _mode = app_client
    response = client.get("/metrics")
    assert response.status_code == 200
    assert "training_requests_total" in response.text


def _imported_after(*argv: str) -> Mapping[str, bool]:
    code = (
        "import sys\nfrom ktrdr_core.cli.main import main\n"
        f"try:\n    main({list(argv)!r})\nexcept SystemExit:\n    pass\n"
        "import json\nprint(json.dumps({m: m in sys.modules for m in "
        "('fastapi', 'uvicorn', 'torch')}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "120"},
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def test_serve_help_stays_light() -> None:
    for argv in (("--help",), ("serve", "--help")):
        assert _imported_after(*argv) == {"fastapi": False, "uvicorn": False, "torch": False}, argv


def test_a_selector_that_raises_is_503_naming_the_plugin(fake_env: None) -> None:
    class BadRouter:
        @hookimpl(tryfirst=True)
        def select_mode(self, request: Any, policy: Any, modes: Any) -> Any:
            raise RuntimeError("routing table missing")

    pm = make_pm(FakeMode("fake"), FakeMode("fake2"))
    pm.register_checked(BadRouter(), name="router", distribution="r", version="1")
    app = create_app(plugin_manager=pm, api_token=TOKEN, metrics=False, preload=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        response = client.post(
            "/api/v1/trainings", json={"strategy": "s"}, headers={"Authorization": f"Bearer {TOKEN}"}
        )
    assert response.status_code == 503, response.text
    assert (
        "plugin router raised in select_mode: RuntimeError: routing table missing"
        in response.json()["message"]
    )
