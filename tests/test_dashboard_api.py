"""The dashboard's routes in-process: its JSON reads the ledger, the audit log and the gate as the CLI does.

The page itself is tested in a real browser in tests/integration/test_dashboard_browser.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from inprocess_modes import StepMode, plugin_manager_with

from ktrdr_core.cli.main import main
from ktrdr_core.ledger.store import RunLedger
from ktrdr_core.rollout.current import evaluate_current
from ktrdr_core.rollout.gates import DEFAULT_GATES
from ktrdr_core.rollout.policy import RolloutPolicy
from ktrdr_core.rollout.shadow import set_shadow_percentage
from ktrdr_core.rollout.store import RolloutStore
from ktrdr_core.service import create_app
from ktrdr_core.service.dashboard import data

TOKEN = "dash-token"


@pytest.fixture
def client(ktrdr_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("KTRDR_ROLLOUT_CONTROL", "ctl")
    monkeypatch.setenv("KTRDR_ROLLOUT_CANDIDATE", "cand")
    pm = plugin_manager_with(StepMode("ctl", steps=400, delay=0.01), StepMode("cand"))
    app = create_app(plugin_manager=pm, api_token=TOKEN, metrics=False, preload=False)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


def test_the_page_and_its_files_carry_a_strict_csp(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp
    html = page.text
    assert '<script type="module" src="/dashboard/static/app.js">' in html
    assert "style=" not in html and "onclick" not in html  # nothing inline the CSP would block
    for name in ("app.js", "app.css", "plot.js", "live.js", "dom.js", "api.js"):
        answer = client.get(f"/dashboard/static/{name}")
        assert answer.status_code == 200, name
        assert "http://" not in answer.text.replace("http://www.w3.org/2000/svg", "")  # no CDN
        assert "https://" not in answer.text


@pytest.mark.parametrize("name", ["../router.py", "..%2Frouter.py", "router.py", "__init__.py", "nope.js"])
def test_only_the_shipped_files_are_served(client: TestClient, name: str) -> None:
    answer = client.get(f"/dashboard/static/{name}")
    assert answer.status_code == 404
    assert "router" not in answer.text and "__init__" not in answer.text


def test_gate_is_the_one_the_cli_judges(client: TestClient, capsys: pytest.CaptureFixture[str]) -> None:
    RolloutStore().set_fields("set_stage", {"enabled": True, "percentage": 10}, reason="canary")
    body = client.get("/dashboard/api/gate").json()
    with pytest.raises(SystemExit) as exited:
        main(["rollout", "gate", "--json"])
    assert exited.value.code == 3
    cli = json.loads(capsys.readouterr().out)
    assert body["stage"] == cli["stage"] == "canary"
    assert body["verdict"] == cli["verdict"] == "INSUFFICIENT DATA"
    assert [c["name"] for c in body["criteria"]] == [c["name"] for c in cli["criteria"]]
    assert body["summary"].startswith("INSUFFICIENT DATA (")


def test_gate_between_stages_is_judged_with_the_stage_below(client: TestClient) -> None:
    RolloutStore().set_fields("api_update", {"enabled": True, "percentage": 30}, reason="custom")
    body = client.get("/dashboard/api/gate").json()
    assert body["stage"] == "canary" and "30 %" in body["note"]


def test_a_malformed_gate_setting_is_a_clear_503(client: TestClient) -> None:
    RolloutStore().change("edit", lambda _d: {"gates": {"min_runs": -3}}, reason="typo")
    answer = client.get("/dashboard/api/gate")
    assert answer.status_code == 503
    message = answer.json()["message"]
    assert "min_runs" in message
    assert str(RolloutStore().settings_path) not in message and "KTRDR_HOME/" in message


def test_rollout_says_where_each_setting_comes_from(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    RolloutStore().set_percentage(10, reason="from the file")
    monkeypatch.setenv("USE_UNIFIED_TRAINING", "true")
    body = client.get("/dashboard/api/rollout").json()
    assert body["sources"]["enabled"] == "env" and body["sources"]["percentage"] == "file"
    assert body["env"]["enabled"] == "USE_UNIFIED_TRAINING"
    assert body["last_change"]["reason"] == "from the file"
    assert body["auto_rollback"]["rolled_back"] is False
    assert body["shadow"]["percentage"] == 0
    set_shadow_percentage(RolloutStore(), 25, reason="pairs from real traffic")
    assert client.get("/dashboard/api/rollout").json()["shadow"]["percentage"] == 25


def test_series_buckets_the_gate_window_per_mode() -> None:
    ledger = RunLedger()
    now = time.time()
    gate = DEFAULT_GATES["canary"]  # 7 days in 24 slices of 7 hours
    for i, status in enumerate(["success", "success", "error", "cancelled"]):
        ledger.record_run(
            request_id=f"c{i}",
            user_id="u",
            strategy="s",
            mode="cand",
            status=status,
            started_at=now - 3600 - i,
            duration_seconds=10.0 + i,
            cancellation_latency_seconds=0.05 if status == "cancelled" else None,
            interval_summary={"p50": 0.3},
        )
    ledger.record_run(
        request_id="bad",
        user_id="u",
        strategy="s",
        mode="cand",
        status="error",
        error_kind="bad_input",
        started_at=now - 3600,
    )
    ledger.record_run(
        request_id="shadow",
        user_id="u",
        strategy="s",
        mode="cand",
        status="error",
        started_at=now - 3600,
        shadow=True,
    )
    # the gate's rules: an interrupted run is a failure, one that never started is not traffic
    ledger.record_run(
        request_id="killed",
        user_id="u",
        strategy="s",
        mode="cand",
        status="interrupted",
        started_at=now - 3600,
    )
    ledger.record_run(
        request_id="never",
        user_id="u",
        strategy="s",
        mode="cand",
        status="cancelled",
        error_kind="not_started",
        started_at=now - 3600,
    )
    ledger.record_run(
        request_id="old",
        user_id="u",
        strategy="s",
        mode="ctl",
        status="success",
        started_at=now - 6 * 86400,
        duration_seconds=20.0,
    )
    ledger.record_run(
        request_id="too-old",
        user_id="u",
        strategy="s",
        mode="ctl",
        status="error",
        started_at=now - 8 * 86400,
    )
    series = data.window_series(ledger, gate, now=now)
    assert len(series["starts"]) == 24 and series["bucket_seconds"] == pytest.approx(7 * 3600)
    last = series["modes"]["cand"][-1]
    # bad input, not-started and shadow runs are not user traffic the gate judges
    assert last["runs"] == 5 and last["errors"] == 2 and last["error_rate_pct"] == 40.0
    assert last["duration_s"] == pytest.approx(10.5)
    assert last["cancel_p95_ms"] == pytest.approx(50.0)
    assert last["progress_interval_s"] == pytest.approx(0.3)
    ctl = series["modes"]["ctl"]
    assert [slot["runs"] for slot in ctl].count(1) == 1 and ctl[3]["duration_s"] == 20.0
    assert all(slot["error_rate_pct"] is None for slot in series["modes"]["cand"][:-1])  # gaps, not zeros
    assert series["totals"]["ctl"]["runs"] == 1  # the 8-day-old run is outside the window
    assert series["thresholds"]["error_rate_pct"] == gate.error_rate_pct


def test_series_window_is_validated(client: TestClient) -> None:
    assert client.get("/dashboard/api/series?window=12h").json()["window"] == "12h"
    bad = client.get("/dashboard/api/series?window=../x")
    assert bad.status_code == 422 and "duration" in bad.json()["message"]


def test_comparisons_plot_the_curves_of_their_report(client: TestClient, tmp_path: Path) -> None:
    report = tmp_path / "cmp"
    report.mkdir()
    history = {"val_loss": [0.9, 0.8], "train_loss": [1.0, 0.85], "val_accuracy": [0.5, 0.55]}
    (report / "report.json").write_text(
        json.dumps(
            {
                "kind": "ktrdr-compare",
                "control": {"mode": "ctl", "training_metrics": {"history": history}},
                "candidate": {
                    "mode": "cand",
                    "training_metrics": {"history": {**history, "val_loss": [0.9, "x"]}},
                },
            }
        )
    )
    ledger = RunLedger()
    ledger.record_comparison(
        strategy="s", control="ctl", candidate="cand", equivalent=True, report_path=report / "report.md"
    )
    ledger.record_comparison(
        strategy="s",
        control="ctl",
        candidate="cand",
        equivalent=False,
        report_path=tmp_path / "gone",
        differences=[{"field": "val_loss"}],
    )
    newest, older = client.get("/dashboard/api/comparisons").json()["comparisons"]
    assert newest["has_report"] is False and newest["curves"] is None
    assert older["curves"]["control"]["val_loss"] == [0.9, 0.8]
    assert "val_loss" not in older["curves"]["candidate"]  # a non-number is dropped, not plotted
    assert older["report_path"] is None  # no server path goes to the browser


def test_runs_and_audit_are_newest_first(client: TestClient) -> None:
    store = RolloutStore()
    store.set_percentage(10, reason="first")
    store.set_percentage(50, reason="second")
    assert [e["reason"] for e in client.get("/dashboard/api/audit").json()["entries"]] == ["second", "first"]
    ledger = RunLedger()
    for i in range(3):
        ledger.record_run(
            request_id=f"r{i}",
            user_id="u",
            strategy="s",
            mode="ctl",
            status="success",
            started_at=time.time() - 100 + i,
        )
    runs = client.get("/dashboard/api/runs?limit=2").json()["runs"]
    assert [r["request_id"] for r in runs] == ["r2", "r1"]
    assert client.get("/dashboard/api/runs?limit=0").status_code == 422


def test_cancel_from_the_page_needs_the_token(client: TestClient) -> None:
    started = client.post("/api/v1/trainings", json={"strategy": "s", "user_id": "u"})
    assert started.status_code == 202
    training_id = started.json()["id"]
    url = f"/dashboard/api/trainings/{training_id}/cancel"
    assert client.post(url).status_code == 401
    wrong = client.post(url, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["message"] == "wrong API token"
    assert client.get(f"/api/v1/trainings/{training_id}").json()["cancel_requested"] is False
    ok = client.post(url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 202 and ok.json()["cancel_requested"] is True
    again = client.post(url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert again.status_code in (202, 409)
    assert (
        client.post(
            "/dashboard/api/trainings/unknown/cancel", headers={"Authorization": f"Bearer {TOKEN}"}
        ).status_code
        == 404
    )


def test_without_a_server_token_the_page_cannot_cancel(ktrdr_home: Path) -> None:
    app = create_app(
        plugin_manager=plugin_manager_with(StepMode("legacy")), api_token=None, metrics=False, preload=False
    )
    with TestClient(app, base_url="http://127.0.0.1") as c:
        answer = c.post("/dashboard/api/trainings/x/cancel", headers={"Authorization": "Bearer t"})
    assert answer.status_code == 403 and "KTRDR_API_TOKEN" in answer.json()["message"]


def test_evaluate_current_refuses_a_custom_percentage_unless_a_stage_is_named(ktrdr_home: Path) -> None:
    RolloutStore().set_fields("api_update", {"enabled": True, "percentage": 30}, reason="custom")
    policy = RolloutPolicy.from_env()
    with pytest.raises(Exception, match="between stages"):
        evaluate_current(policy)
    assert evaluate_current(policy, stage="canary", window="1h").window == "1h"


def test_a_judged_gate_is_reused_for_a_few_seconds_by_every_page(client: TestClient) -> None:
    RolloutStore().set_fields("set_stage", {"enabled": True, "percentage": 10}, reason="canary")
    first = client.get("/dashboard/api/gate").json()
    RolloutStore().set_fields("set_stage", {"enabled": True, "percentage": 50}, reason="expanded")
    again = client.get("/dashboard/api/gate").json()
    assert first["stage"] == again["stage"] == "canary" and first["until"] == again["until"]


def test_the_page_obeys_the_services_host_rule(client: TestClient) -> None:
    for path in ("/", "/dashboard/static/app.js", "/dashboard/api/gate"):
        assert client.get(path).status_code == 200, path
        foreign = client.get(path, headers={"Host": "attacker.example"})
        assert 400 <= foreign.status_code < 500, path
        assert "<html" not in foreign.text and "criteria" not in foreign.text
