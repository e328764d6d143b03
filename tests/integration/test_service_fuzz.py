"""A bounded schemathesis pass over the service's OpenAPI schema: no input may give a 500.

The server is real (uvicorn on a loopback port, in a thread) but its modes
are fakes that only sleep, so a generated valid body costs milliseconds, not
a training: the pass exercises validation, routing, the queue (429), the
rollout store (with the token, so PUTs get past authentication) and 404s.
At most ``MAX_EXAMPLES`` cases per operation. Needs ``schemathesis`` (a test
dependency of this file only; skipped without it).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
uvicorn = pytest.importorskip("uvicorn")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from ktrdr_core.cancellation import CancellationToken  # noqa: E402
from ktrdr_core.errors import CancellationError  # noqa: E402
from ktrdr_core.modes import ModeHealth  # noqa: E402
from ktrdr_core.plugins import KtrdrPluginManager  # noqa: E402
from ktrdr_core.progress import ProgressCallback  # noqa: E402
from ktrdr_core.request import TrainingRequest  # noqa: E402
from ktrdr_core.result import TrainingResult  # noqa: E402
from ktrdr_core.service import create_app  # noqa: E402
from ktrdr_core.testing import plugin_manager_with  # noqa: E402

MAX_EXAMPLES = 50
TOKEN = "fuzz-token"


class SleepyMode:
    def __init__(self, name: str) -> None:
        self.name = name

    def health(self) -> ModeHealth:
        return ModeHealth.ok()

    def execute(
        self, request: TrainingRequest, progress: ProgressCallback, cancel: CancellationToken
    ) -> TrainingResult:
        epochs = min(int(request.overrides.get("epochs", 1)), 20)
        for epoch in range(1, epochs + 1):
            if cancel.is_cancelled():
                raise CancellationError(cancel.reason or "cancelled")
            time.sleep(0.005)
            progress(epoch, epochs, {"progress_type": "epoch", "val_loss": 0.1})
        return TrainingResult(success=True)


def fake_pm() -> KtrdrPluginManager:
    return plugin_manager_with(SleepyMode("legacy"), SleepyMode("unified"), distribution="sleepy")


@pytest.fixture
def live_url(ktrdr_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("KTRDR_LEDGER", "off")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_app(
        plugin_manager=fake_pm(),
        api_token=TOKEN,
        max_concurrent=2,
        queue_size=4,
        metrics=False,
        preload=False,
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    app.state.service.begin_shutdown()
    server.should_exit = True
    thread.join(30)


def test_no_generated_request_gives_a_server_error(live_url: str) -> None:
    schema = schemathesis.openapi.from_url(live_url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    failures: list[str] = []
    counts: dict[str, int] = {}
    statuses: dict[str, set[int]] = {}

    def fuzz(operation: schemathesis.APIOperation) -> None:
        """Valid and invalid cases (schemathesis' positive and negative modes) for one operation."""
        label = f"{operation.method.upper()} {operation.path}"

        strategy = operation.as_strategy(schemathesis.GenerationMode.POSITIVE) | operation.as_strategy(
            schemathesis.GenerationMode.NEGATIVE
        )

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def run(case: schemathesis.Case) -> None:
            headers = {"Authorization": f"Bearer {TOKEN}"} if case.method.upper() == "PUT" else None
            response = case.call(base_url=live_url, headers=headers, timeout=10)
            counts[label] = counts.get(label, 0) + 1
            statuses.setdefault(label, set()).add(response.status_code)
            if response.status_code >= 500 and not (response.status_code == 503 and "/health" in label):
                failures.append(
                    f"{label} -> {response.status_code}: {response.text[:300]} "
                    f"(body {case.body!r}, path {case.path_parameters!r})"
                )

        run()

    for operation in operations:
        fuzz(operation)
    assert not failures, "\n".join(failures[:10])
    assert all(counts.values())
    print({label: (counts[label], sorted(codes)) for label, codes in statuses.items()})
    # the generator reached past validation: some trainings were accepted, some bodies refused
    assert {202, 422} <= statuses["POST /api/v1/trainings"]
