"""``PUT /api/v1/rollout/shadow``: the shadow percentage over the API, token-protected and audited."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from test_service_unit import TOKEN, FakeMode, make_pm

from ktrdr_core.rollout.shadow import ShadowConfig
from ktrdr_core.rollout.store import RolloutStore
from ktrdr_core.service.app import SHADOW_PLUGIN_NAME, create_app
from ktrdr_core.service.metrics import REGISTRY

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("KTRDR_ROLLOUT_CONTROL", "fake")
    monkeypatch.setenv("KTRDR_ROLLOUT_CANDIDATE", "fake2")
    pm = make_pm(FakeMode("fake"), FakeMode("fake2"))
    app = create_app(plugin_manager=pm, api_token=TOKEN, metrics=False, preload=False)
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        shadow = pm.get_plugin(SHADOW_PLUGIN_NAME)
        assert shadow is not None  # the service shadows
        yield test_client

        def counted() -> float:
            return (
                REGISTRY.get_sample_value("ktrdr_shadow_comparisons_total", {"result": "equivalent"}) or 0.0
            )

        before = counted()
        shadow.runner.report_outcome("equivalent", {"val_loss_ratio": 1.0, "val_accuracy_ratio": 1.0})
        assert counted() == before + 1  # ... and counts each compared pair
    assert pm.get_plugin(SHADOW_PLUGIN_NAME) is None  # ... and stops with it


def test_shadow_percentage_over_the_api(client: TestClient) -> None:
    assert client.put("/api/v1/rollout/shadow", json={"percentage": 50}).status_code == 401
    ok = client.put(
        "/api/v1/rollout/shadow",
        json={"percentage": 50, "reason": "shadow week"},
        headers={**AUTH, "X-Ktrdr-Actor": "ops-anna"},
    )
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["changed"] is True and body["rollout"]["shadow"] == {"percentage": 50, "max_concurrent": 1}
    assert body["audit"]["action"] == "set_shadow" and body["audit"]["reason"] == "shadow week"
    assert ShadowConfig.read(RolloutStore()).percentage == 50
    assert client.get("/api/v1/rollout").json()["shadow"]["percentage"] == 50
    again = client.put("/api/v1/rollout/shadow", json={"percentage": 50}, headers=AUTH)
    assert again.json()["changed"] is False


@pytest.mark.parametrize("body", [{"percentage": 150}, {"percentage": "50"}, {}, {"percentage": 5, "x": 1}])
def test_bad_shadow_bodies_are_422_and_change_nothing(client: TestClient, body: dict) -> None:
    response = client.put("/api/v1/rollout/shadow", json=body, headers=AUTH)
    assert response.status_code == 422
    assert ShadowConfig.read(RolloutStore()).percentage == 0
