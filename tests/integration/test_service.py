"""``ktrdr serve`` against a real server: a subprocess on a free loopback port, spoken to with httpx.

Each server has its own KTRDR_HOME and KTRDR_API_TOKEN. Trainings are short
(1–2 epochs on part of the sample data) except the ones a test cancels.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ktrdr_core.result import RESULT_KEYS

TOKEN = "test-token-123"
STRATEGY = "neuro_mean_reversion"
SHORT = {"start_date": "2023-01-02", "end_date": "2023-02-20"}
QUICK = {"strategy": STRATEGY, **SHORT, "overrides": {"epochs": 2, "seed": 7}}
# enough batches for several throttled (~300 ms) unified updates on any machine: small
# batches make each epoch last about a second, so three epochs give ~10 updates
MEDIUM = {
    "strategy": STRATEGY,
    "start_date": "2023-01-02",
    "end_date": "2023-05-31",
    "overrides": {"epochs": 3, "seed": 7, "batch_size": 8},
}
LONG = {"strategy": STRATEGY, "overrides": {"epochs": 200, "seed": 7}}
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TERMINAL = {"completed", "failed", "cancelled"}
FIVE_METRICS = (
    "training_requests_total",
    "training_duration_seconds",
    "active_training_sessions",
    "progress_update_interval_seconds",
    "cancellation_latency_seconds",
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``python -m ktrdr_core.cli.main serve`` in a subprocess."""

    def __init__(self, home: Path, *args: str, token: str | None = TOKEN) -> None:
        self.home = home
        self.log_path = home.parent / f"{home.name}-server.log"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("KTRDR_", "USE_UNIFIED", "UNIFIED_TRAINING", "ROLLBACK"))
        }
        env.update(KTRDR_HOME=str(home), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        if token:
            env["KTRDR_API_TOKEN"] = token
        for _attempt in range(3):
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ktrdr_core.cli.main",
                    "serve",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "info",
                    *args,
                ],
                env=env,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
            if self._wait_up(30):
                return
            self.stop()
        raise RuntimeError(f"the server did not start:\n{self.output()}")

    def _wait_up(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                httpx.get(self.url + "/api/v1/health", timeout=1)
                return True
            except httpx.TransportError:
                time.sleep(0.1)
        return False

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("serve") / "home", "--max-concurrent", "2", "--queue-size", "8")
    yield srv
    srv.stop()


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c
        # leave the module's server as each test found it: rollout off, nothing running
        c.put("/api/v1/rollout", json={"stage": "off", "reason": "test cleanup"}, headers=AUTH)
        for item in c.get("/api/v1/trainings").json()["trainings"]:
            if item["status"] in ("queued", "running"):
                c.post(f"/api/v1/trainings/{item['id']}/cancel")


def start(c: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = c.post("/api/v1/trainings", json=body)
    assert response.status_code == 202, response.text
    return dict(response.json())


def wait_for(
    c: httpx.Client, training_id: str, statuses: set[str], timeout: float = 60, poll: float = 0.05
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = c.get(f"/api/v1/trainings/{training_id}").json()
        if body["status"] in statuses:
            return dict(body)
        assert time.monotonic() < deadline, f"still {body['status']} after {timeout} s"
        time.sleep(poll)


def wait_for_progress(c: httpx.Client, training_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = c.get(f"/api/v1/trainings/{training_id}").json()
        if body["progress"]["updates"] > 0 or body["status"] in TERMINAL:
            return dict(body)
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.05)


def set_rollout(c: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = c.put("/api/v1/rollout", json=fields, headers=AUTH)
    assert response.status_code == 200, response.text
    return dict(response.json())


def read_events(c: httpx.Client, training_id: str, timeout: float = 90) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    kind = None
    with c.stream("GET", f"/api/v1/trainings/{training_id}/events", timeout=timeout) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line[len("event: ") :]
            elif line.startswith("data: "):
                events.append((str(kind), json.loads(line[len("data: ") :])))
    return events


# -- health ---------------------------------------------------------------------------


def test_health_reports_modes_sessions_and_loop_lag(client: httpx.Client) -> None:
    time.sleep(0.2)  # a few lag samples (one per 50 ms) after start-up
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["version"]
    assert {"legacy", "unified"} <= set(body["modes"])
    assert body["modes"]["legacy"] == {"healthy": True, "detail": "ok", "role": "control"}
    assert body["control"] == "legacy" and body["candidate"] == "unified"
    assert body["active_sessions"] == {}
    assert body["event_loop_lag"]["samples"] > 0
    assert body["event_loop_lag"]["max_recent_seconds"] < body["event_loop_lag"]["threshold_seconds"]


def test_openapi_schema_lists_every_endpoint(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/api/v1/health",
        "/api/v1/trainings",
        "/api/v1/trainings/{training_id}",
        "/api/v1/trainings/{training_id}/events",
        "/api/v1/trainings/{training_id}/cancel",
        "/api/v1/rollout",
        "/metrics",
    } <= set(paths)


# -- the lifecycle --------------------------------------------------------------------


def test_training_lifecycle_over_http(client: httpx.Client) -> None:
    created = start(client, {**QUICK, "user_id": "alice"})
    assert set(created["decision"]) >= {"mode", "reason", "bucket"}
    assert created["decision"]["mode"] == "legacy"
    assert "rollout is off" in created["decision"]["reason"]
    assert created["status"] in ("queued", "running")

    # the loop stays responsive while the training runs on its thread
    slowest = 0.0
    while True:
        t0 = time.perf_counter()
        health = client.get("/api/v1/health")
        slowest = max(slowest, time.perf_counter() - t0)
        # 200, or 503 only if a loaded machine stalled the whole process (then the lag says so)
        assert health.status_code == 200 or all(
            "event loop lagged" in p for p in health.json()["problems"]
        ), health.text
        body = client.get(f"/api/v1/trainings/{created['id']}").json()
        if body["status"] in TERMINAL:
            break
        time.sleep(0.1)
    assert slowest < 1.0

    assert body["status"] == "completed", body["error"]
    assert set(RESULT_KEYS) <= set(body["result"])
    assert body["result"]["success"] is True
    assert body["result"]["metadata"]["mode"] == "legacy"
    assert body["result"]["metadata"]["request_id"] == created["id"]
    assert body["result"]["training_metrics"]["epochs_trained"] >= 1
    assert "test_accuracy" in body["result"]["test_metrics"]
    progress = body["progress"]
    assert progress["updates"] > 2 and progress["total_epochs"] == 2 and progress["percent"] == 100.0
    assert body["started_at"] and body["finished_at"]

    # cancelling a finished training is a clear 409
    response = client.post(f"/api/v1/trainings/{created['id']}/cancel")
    assert response.status_code == 409
    assert "already ended (completed)" in response.json()["message"]

    listed = client.get("/api/v1/trainings", params={"status": "completed"}).json()["trainings"]
    assert created["id"] in [t["id"] for t in listed]


def test_sse_streams_throttled_progress_of_the_unified_mode(client: httpx.Client) -> None:
    set_rollout(client, enabled=True, percentage=100, reason="unified for the SSE test")
    created = start(client, {**MEDIUM, "user_id": "sse-user"})
    assert created["decision"]["mode"] == "unified"
    events = read_events(client, created["id"])

    kinds = [kind for kind, _data in events]
    assert kinds[-1] == "end" and kinds.count("end") == 1
    assert events[-1][1]["status"] == "completed"
    progress = [data for kind, data in events if kind == "progress"]
    assert len(progress) >= 3
    for data in progress:
        assert {"epoch", "total_epochs", "metrics", "timestamp", "percent"} <= set(data)
        assert data["total_epochs"] == 3
    stamps = [data["timestamp"] for data in progress]
    assert stamps == sorted(stamps)
    intervals = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    # the unified bridge never sends two updates closer than 100 ms, the final one aside
    assert all(gap >= 0.095 for gap in intervals[:-1]), intervals
    assert progress[-1]["metrics"]["progress_type"] == "epoch"
    assert "val_loss" in progress[-1]["metrics"]


@pytest.mark.parametrize("mode", ["legacy", "unified"])
def test_cancel_stops_a_running_training_quickly(client: httpx.Client, mode: str) -> None:
    if mode == "unified":
        set_rollout(client, enabled=True, percentage=100)
    created = start(client, {**LONG, "user_id": f"cancel-{mode}"})
    assert created["decision"]["mode"] == mode
    wait_for_progress(client, created["id"])

    t0 = time.monotonic()
    response = client.post(f"/api/v1/trainings/{created['id']}/cancel")
    assert response.status_code == 202
    assert response.json()["cancel_requested"] is True
    body = wait_for(client, created["id"], TERMINAL, timeout=5, poll=0.01)
    elapsed = time.monotonic() - t0
    assert body["status"] == "cancelled"
    assert elapsed < 1.0, f"took {elapsed:.3f} s"
    assert body["result"]["status"] == "cancelled"
    assert body["result"]["metadata"]["mode"] == mode
    assert client.post(f"/api/v1/trainings/{created['id']}/cancel").status_code == 409


def test_unknown_ids_are_404(client: httpx.Client) -> None:
    for method, path in (
        ("GET", "/api/v1/trainings/nope"),
        ("POST", "/api/v1/trainings/nope/cancel"),
        ("GET", "/api/v1/trainings/nope/events"),
    ):
        response = client.request(method, path)
        assert response.status_code == 404, path
        assert "no training with id 'nope'" in response.json()["message"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"strategy": "../x"}, "strategy: invalid strategy name: use a name such as"),
        ({"strategy": "/etc/passwd"}, "invalid strategy name"),
        ({}, "strategy: Field required"),
        ({"user_id": "bob"}, "strategy: Field required"),
        ({"strategy": 42}, "strategy"),
        ({"strategy": STRATEGY, "overrides": {"epochs": "two"}}, "overrides.epochs"),
        ({"strategy": STRATEGY, "overrides": {"epochs": 1.5}}, "overrides.epochs"),
        ({"strategy": STRATEGY, "overrides": {"epochs": 0}}, "overrides.epochs"),
        ({"strategy": STRATEGY, "overrides": {"epochs": True}}, "overrides.epochs"),
        ({"strategy": STRATEGY, "overrides": {"data_dir": "/etc"}}, "overrides.data_dir: unknown field"),
        ({"strategy": STRATEGY, "overrides": {"learning_rate": -1}}, "overrides.learning_rate"),
        ({"strategy": STRATEGY, "nonsense": 1}, "nonsense: unknown field"),
        ({"strategy": STRATEGY, "symbols": ["../../etc/passwd"]}, "invalid symbol"),
        ({"strategy": STRATEGY, "symbols": "SYNTH_A"}, "symbols"),
        ({"strategy": STRATEGY, "start_date": "yesterday"}, "start_date must be an ISO date"),
        ({"strategy": STRATEGY, "start_date": "2023-03-01", "end_date": "2023-01-01"}, "is after end_date"),
    ],
)
def test_bad_input_is_422_with_a_clear_message(
    client: httpx.Client, body: dict[str, Any], needle: str
) -> None:
    response = client.post("/api/v1/trainings", json=body)
    assert response.status_code == 422, response.text
    message = response.json()["message"]
    assert message.startswith("invalid request: ")
    assert needle in message, message


def test_malformed_json_is_422(client: httpx.Client) -> None:
    response = client.post(
        "/api/v1/trainings", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


def test_unknown_strategy_fails_the_training_not_the_server(client: httpx.Client) -> None:
    created = start(client, {"strategy": "no_such_strategy", "overrides": {"epochs": 1}})
    body = wait_for(client, created["id"], TERMINAL)
    assert body["status"] == "failed"
    assert "no_such_strategy" in body["error"]


# -- rollout ----------------------------------------------------------------------------


def test_rollout_changes_need_the_token(client: httpx.Client) -> None:
    change = {"percentage": 10}
    no_token = client.put("/api/v1/rollout", json=change)
    assert no_token.status_code == 401
    assert no_token.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in no_token.json()["message"]
    wrong = client.put("/api/v1/rollout", json=change, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert client.get("/api/v1/rollout").json()["percentage"] == 0

    ok = client.put(
        "/api/v1/rollout",
        json={"stage": "canary", "reason": "try it"},
        headers={**AUTH, "X-Ktrdr-Actor": "ops-alice"},
    )
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["changed"] is True
    assert body["audit"]["actor"] == "ops-alice" and body["audit"]["reason"] == "try it"
    assert body["rollout"]["stage"] == "canary" and body["rollout"]["percentage"] == 10
    state = client.get("/api/v1/rollout").json()
    assert state["stage"] == "canary" and state["sources"]["percentage"] == "file"
    assert client.put("/api/v1/rollout", json={}, headers=AUTH).status_code == 422
    assert client.put("/api/v1/rollout", json={"percentage": 150}, headers=AUTH).status_code == 422
    assert (
        client.put("/api/v1/rollout", json={"stage": "full", "percentage": 5}, headers=AUTH).status_code
        == 422
    )


def test_rollout_change_applies_to_the_next_request(client: httpx.Client, server: Server) -> None:
    before = start(client, {**LONG, "user_id": "next-request-user"})
    assert before["decision"]["mode"] == "legacy"
    client.post(f"/api/v1/trainings/{before['id']}/cancel")

    set_rollout(client, percentage=100, enabled=True, reason="full for the test")
    after = start(client, {**LONG, "user_id": "next-request-user"})
    assert after["decision"]["mode"] == "unified"
    assert after["decision"]["candidate"] is True
    assert "100 %" in after["decision"]["reason"]
    client.post(f"/api/v1/trainings/{after['id']}/cancel")

    set_rollout(client, excluded_users=["next-request-user"], reason="partial rollback")
    excluded = start(client, {**LONG, "user_id": "next-request-user"})
    assert excluded["decision"]["mode"] == "legacy"
    assert "rollback list" in excluded["decision"]["reason"]
    client.post(f"/api/v1/trainings/{excluded['id']}/cancel")
    set_rollout(client, excluded_users=[])

    audit = (server.home / "rollout-audit.jsonl").read_text().splitlines()
    assert any(json.loads(line)["actor"] == "api" for line in audit)


# -- metrics ----------------------------------------------------------------------------


def test_metrics_expose_the_training_metrics(client: httpx.Client) -> None:
    done = start(client, {**QUICK, "user_id": "metrics-user", "overrides": {"epochs": 1}})
    stopped = start(client, {**LONG, "user_id": "metrics-user"})
    wait_for_progress(client, stopped["id"])
    client.post(f"/api/v1/trainings/{stopped['id']}/cancel")
    assert wait_for(client, done["id"], TERMINAL)["status"] == "completed"
    assert wait_for(client, stopped["id"], TERMINAL)["status"] == "cancelled"

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, float] = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    for metric in FIVE_METRICS:
        assert any(name.startswith(metric) for name in samples), metric
    assert samples['training_requests_total{implementation="legacy",status="success"}'] >= 1
    assert samples['training_requests_total{implementation="legacy",status="cancelled"}'] >= 1
    assert 'training_requests_total{implementation="unified",status="error"}' in samples
    assert samples['training_duration_seconds_count{implementation="legacy"}'] >= 2
    assert samples['active_training_sessions{implementation="legacy"}'] == 0
    assert samples['progress_update_interval_seconds_count{implementation="legacy"}'] >= 1
    assert samples['cancellation_latency_seconds_count{implementation="legacy"}'] >= 1
    assert "ktrdr_event_loop_lag_seconds_count" in samples
    assert "ktrdr_rollout_percentage" in samples
    assert "user_id" not in response.text and "metrics-user" not in response.text


# -- bounds and shutdown (servers of their own) -----------------------------------------


def test_queue_is_bounded_and_queued_cancels_never_start(tmp_path: Path) -> None:
    srv = Server(tmp_path / "home-429", "--max-concurrent", "1", "--queue-size", "1")
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            first = start(c, {**LONG, "user_id": "q1"})
            second = start(c, {**LONG, "user_id": "q2"})
            assert first["status"] == "running" and second["status"] == "queued"
            for n in range(3):
                refused = c.post("/api/v1/trainings", json={**LONG, "user_id": f"q-extra-{n}"})
                assert refused.status_code == 429, refused.text
                assert "--max-concurrent 1" in refused.json()["message"]
                assert refused.headers["retry-after"]
            health = c.get("/api/v1/health").json()
            assert health["queue"]["running"] == 1 and health["queue"]["queued"] == 1

            cancelled = c.post(f"/api/v1/trainings/{second['id']}/cancel")
            assert cancelled.status_code == 202
            body = c.get(f"/api/v1/trainings/{second['id']}").json()
            assert body["status"] == "cancelled" and body["started_at"] is None
            assert body["progress"]["updates"] == 0
            third = start(c, {**LONG, "user_id": "q3"})  # room again
            assert third["status"] == "queued"
            c.post(f"/api/v1/trainings/{first['id']}/cancel")
            wait_for(c, first["id"], TERMINAL, timeout=5)
            wait_for(c, third["id"], {"running"}, timeout=5)
            c.post(f"/api/v1/trainings/{third['id']}/cancel")
            wait_for(c, third["id"], TERMINAL, timeout=5)
            time.sleep(0.5)
            assert c.get(f"/api/v1/trainings/{second['id']}").json()["started_at"] is None
    finally:
        srv.stop()
    ledger = sqlite3.connect(srv.home / "ledger.sqlite3")
    rows = {row[0]: row[1:] for row in ledger.execute("SELECT request_id, status, error_kind FROM runs")}
    assert rows[second["id"]] == ("cancelled", "not_started")  # accepted, recorded, never ran
    assert rows[first["id"]][0] == rows[third["id"]][0] == "cancelled"
    assert len(rows) == 3  # the refused ones left no trace


def test_rollout_changes_refused_without_a_server_token(tmp_path: Path) -> None:
    srv = Server(tmp_path / "home-notoken", token=None)
    try:
        response = httpx.put(
            srv.url + "/api/v1/rollout", json={"percentage": 10}, headers={"Authorization": "Bearer anything"}
        )
        assert response.status_code == 403
        assert "set KTRDR_API_TOKEN" in response.json()["message"]
        assert httpx.get(srv.url + "/api/v1/rollout").status_code == 200
    finally:
        srv.stop()


def test_sigterm_cancels_running_trainings_and_the_ledger_records_them(tmp_path: Path) -> None:
    srv = Server(tmp_path / "home-term", "--max-concurrent", "1", "--queue-size", "2")
    with httpx.Client(base_url=srv.url, timeout=10) as c:
        running = start(c, {**LONG, "user_id": "term-1"})
        queued = start(c, {**LONG, "user_id": "term-2"})
        wait_for_progress(c, running["id"])
    t0 = time.monotonic()
    code = srv.stop(signal.SIGTERM, timeout=30)
    elapsed = time.monotonic() - t0
    output = srv.output()
    assert code == 0, output
    assert elapsed < 15, output
    assert f"cancelled queued training {queued['id']}" in output
    assert "Application shutdown complete" in output

    ledger = sqlite3.connect(srv.home / "ledger.sqlite3")
    rows = ledger.execute("SELECT request_id, status, error FROM runs").fetchall()
    by_id = {row[0]: row for row in rows}
    assert by_id[running["id"]][1] == "cancelled", rows
    assert "shutting down" in by_id[running["id"]][2]
    assert by_id[queued["id"]][1] == "cancelled" and "before it started" in by_id[queued["id"]][2]
    assert not [row for row in rows if row[1] in ("queued", "running")]
