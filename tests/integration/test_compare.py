"""``ktrdr compare`` end to end with the real legacy and unified modes (every plugin installed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest
from cli_inprocess import run_ktrdr
from integration_support import SHORT, STRATEGY

from ktrdr_core import ModeHealth, TrainingManager, TrainingRequest, get_plugin_manager
from ktrdr_core.compare import Experiment
from ktrdr_core.ledger.store import RunLedger, ledger_path
from ktrdr_core.testing import ModeProvider

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SHORT_ARGS = ["--epochs", "2", "--start", SHORT["start_date"], "--end", SHORT["end_date"]]


class LearningRateMode:
    """The unified pipeline with a different learning rate: a candidate that must differ."""

    name = "unified-lr"

    def health(self) -> ModeHealth:
        return ModeHealth.ok()

    def execute(self, request: TrainingRequest, progress: Any, cancel: Any) -> Any:
        from ktrdr_unified.executor import TrainingExecutor

        changed = attrs.evolve(request, overrides={**request.overrides, "learning_rate": 0.05})
        return TrainingExecutor().execute(changed, progress, cancel)


class BrokenMode:
    """A candidate whose training raises."""

    name = "broken"

    def health(self) -> ModeHealth:
        return ModeHealth.ok()

    def execute(self, request: TrainingRequest, progress: Any, cancel: Any) -> Any:
        progress(1, 2, {"progress_type": "batch", "batch": 1})
        raise RuntimeError("boom: the candidate fell over")


@pytest.fixture
def test_modes() -> None:
    """Register the two test modes on this test's (fresh) plugin manager."""
    get_plugin_manager().register(ModeProvider(LearningRateMode(), BrokenMode()), name="test-compare-modes")


def run_cli(args: list[str]) -> tuple[int, str, str]:
    """``ktrdr compare ARGS`` in-process, with the modes this test registered."""
    done = run_ktrdr("compare", *args, fresh_plugins=False)
    return done.returncode, done.stdout, done.stderr


def test_legacy_and_unified_are_equivalent(tmp_path: Path, ktrdr_home: Path) -> None:
    report = tmp_path / "report"
    done = run_ktrdr(
        "compare",
        STRATEGY,
        *SHORT_ARGS,
        "--seed",
        "7",
        "--user",
        "carol",
        "--report",
        str(report),
        "--check-cancel",
    )
    assert done.returncode == 0, done.stderr
    assert "legacy vs unified: equivalent" in done.stdout

    png = (report / "curves.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE)
    assert len(png) > 10_000  # two axes with curves and legends, not an empty canvas
    md = (report / "report.md").read_text()
    assert "EQUIVALENT" in md and "training_metrics.val_loss" in md and "curves.png" in md
    data = json.loads((report / "report.json").read_text())
    assert data["equivalent"] is True and data["differing_fields"] == []
    fields = {c["field"]: c for c in data["comparisons"]}
    for name in (
        "training_metrics.val_loss",
        "training_metrics.val_accuracy",
        "test_metrics.test_accuracy",
        "test_metrics.test_loss",
        "test_metrics.f1",
        "training_metrics.epochs_trained",
    ):
        assert fields[name]["equal"] is True, fields[name]
    assert data["control"]["progress"]["updates"] > 10 * data["candidate"]["progress"]["updates"]
    assert data["control"]["request_id"] != data["candidate"]["request_id"]
    assert data["request"]["overrides"]["seed"] == 7
    cancel = data["cancellation"]
    assert cancel["control"]["status"] == cancel["candidate"]["status"] == "cancelled"
    assert cancel["candidate"]["latency_seconds"] < 1.0

    ledger = RunLedger(ledger_path(ktrdr_home))
    latest = ledger.latest_comparison(control="legacy", candidate="unified")
    assert latest is not None and latest.equivalent is True and latest.strategy == STRATEGY
    assert latest.report_path == str(report / "report.md")
    assert data["ledger_comparison_id"] == latest.id
    runs = ledger.runs(user="carol")
    assert sorted((r.mode, r.status) for r in runs) == [
        ("legacy", "cancelled"),
        ("legacy", "success"),
        ("unified", "cancelled"),
        ("unified", "success"),
    ]
    assert all(r.forced for r in runs)
    assert len({r.request_id for r in runs}) == 4
    assert not (ktrdr_home / "models").exists() or not any((ktrdr_home / "models").rglob("model.pt"))


def test_a_differing_candidate_exits_1_and_names_the_fields(test_modes: None, ktrdr_home: Path) -> None:
    code, out, err = run_cli([STRATEGY, "--candidate", "unified-lr", *SHORT_ARGS])
    assert code == 1, err
    assert "legacy and unified-lr differ in:" in err
    assert "training_metrics.val_loss" in err
    reports = list((ktrdr_home / "reports").glob("compare-*"))  # the default report folder
    assert len(reports) == 1
    data = json.loads((reports[0] / "report.json").read_text())
    assert data["equivalent"] is False
    assert "training_metrics.val_loss" in data["differing_fields"]
    assert (reports[0] / "curves.png").read_bytes().startswith(PNG_SIGNATURE)
    assert "DIFFERENT" in (reports[0] / "report.md").read_text()
    latest = RunLedger(ledger_path(ktrdr_home)).latest_comparison(control="legacy", candidate="unified-lr")
    assert latest is not None and latest.equivalent is False
    assert "training_metrics.val_loss" in [d["field"] for d in latest.differences]


def test_a_raising_candidate_is_recorded_and_the_control_result_kept(
    test_modes: None, ktrdr_home: Path
) -> None:
    request = TrainingRequest(
        strategy=STRATEGY, user_id="dave", overrides={"epochs": 1, "seed": 3, "save_model": False}, **SHORT
    )
    outcome = Experiment(TrainingManager(), control="legacy", candidate="broken").run(request)
    assert outcome.value is outcome.control.result and outcome.value.success
    assert outcome.value.training_metrics["epochs_trained"] == 1
    assert outcome.candidate.status == "error" and "boom" in (outcome.candidate.error or "")
    assert outcome.differing_fields == ["candidate.status"]

    code, _out, err = run_cli([STRATEGY, "--candidate", "broken", *SHORT_ARGS])
    assert code == 1
    assert "candidate.status" in err and "boom" in err
    latest = RunLedger(ledger_path(ktrdr_home)).latest_comparison(control="legacy", candidate="broken")
    assert latest is not None and latest.equivalent is False
    statuses = sorted((r.mode, r.status) for r in RunLedger(ledger_path(ktrdr_home)).runs())
    assert statuses == [
        ("broken", "error"),
        ("broken", "error"),
        ("legacy", "success"),
        ("legacy", "success"),
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["../etc/passwd"], "invalid strategy name"),
        (["no_such_strategy"], "no_such_strategy"),
        ([STRATEGY, "--candidate", "nope"], "'nope' is not installed"),
        ([STRATEGY, "--control", "unified"], "both 'unified'"),
        ([STRATEGY, "--start", "2031-01-01", "--epochs", "1"], "refused the request"),
    ],
)
def test_bad_input_exits_2(args: list[str], message: str, ktrdr_home: Path) -> None:
    code, _out, err = run_cli(args)
    assert code == 2, err
    assert message in err
    assert "Traceback" not in err
    assert RunLedger(ledger_path(ktrdr_home)).latest_comparison() is None


def test_compare_sets_torch_threads_like_train(
    ktrdr_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(3)  # what an unconfigured process might have: every core
    monkeypatch.setenv("KTRDR_TORCH_THREADS", "2")
    try:
        code, _out, err = run_cli(
            [
                STRATEGY,
                "--epochs",
                "1",
                "--no-warm-up",
                "--report",
                str(tmp_path / "r"),
                "--start",
                SHORT["start_date"],
                "--end",
                SHORT["end_date"],
            ]
        )
        threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert code == 0, err
    assert threads == 2
    data = json.loads((tmp_path / "r" / "report.json").read_text())
    assert data["environment"]["torch_threads"] == 2


def test_compare_refuses_a_malformed_thread_count(ktrdr_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KTRDR_TORCH_THREADS", "lots")
    code, _out, err = run_cli([STRATEGY, "--epochs", "1"])
    assert code == 2
    assert "KTRDR_TORCH_THREADS" in err and "Traceback" not in err
    assert RunLedger(ledger_path(ktrdr_home)).latest_comparison() is None
