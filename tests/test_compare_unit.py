"""Unit tests of ``ktrdr_core.compare``: statistics, field comparison, the experiment's rules.

The experiment runs fake modes (no torch) through a real TrainingManager.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ktrdr_core import (
    BadInputError,
    CancellationError,
    ModeHealth,
    TrainingManager,
    TrainingRequest,
    TrainingResult,
    hookimpl,
)
from ktrdr_core.compare.diff import compare_numbers, compare_results
from ktrdr_core.compare.experiment import Experiment
from ktrdr_core.compare.report import default_report_dir, render_markdown, report_data, write_report
from ktrdr_core.compare.stats import (
    interleaved_order,
    interval_stats,
    paired_ratios,
    percentiles,
    share_within,
)
from ktrdr_core.testing import plugin_manager_with

# --------------------------------------------------------------------------- stats


def test_interleaved_order_alternates_so_each_name_goes_first_equally_often() -> None:
    order = interleaved_order(["a", "b"], 4)
    assert order == [["a", "b"], ["b", "a"], ["a", "b"], ["b", "a"]]
    firsts = [r[0] for r in interleaved_order(["a", "b", "c"], 6)]
    assert firsts.count("a") == firsts.count("c") == 3 and "b" not in firsts  # ABC / CBA
    assert interleaved_order(["a", "b"], 0) == []


def test_interleaved_order_with_a_seed_is_reproducible_and_each_round_is_a_permutation() -> None:
    first = interleaved_order(["a", "b", "c"], 20, seed=5)
    assert first == interleaved_order(["a", "b", "c"], 20, seed=5)
    assert all(sorted(r) == ["a", "b", "c"] for r in first)
    assert len({tuple(r) for r in first}) > 1


@pytest.mark.parametrize("names, rounds", [(["a", "a"], 2), (["a", "b"], -1)])
def test_interleaved_order_refuses_bad_arguments(names: list[str], rounds: int) -> None:
    with pytest.raises(ValueError):
        interleaved_order(names, rounds)


def test_paired_ratios_divide_round_by_round_and_skip_zero() -> None:
    assert paired_ratios([2.0, 3.0, 4.0], [1.0, 0.0, 8.0]) == [2.0, 0.5]
    with pytest.raises(ValueError):
        paired_ratios([1.0], [1.0, 2.0])


def test_percentiles_interpolate_linearly() -> None:
    values = [float(v) for v in range(1, 101)]
    got = percentiles(values)
    assert got["p50"] == pytest.approx(50.5)
    assert got["p95"] == pytest.approx(95.05)
    assert got["p99"] == pytest.approx(99.01)
    assert percentiles([]) == {"p50": None, "p95": None, "p99": None}


def test_interval_stats_judges_against_300_ms_plus_minus_15_percent() -> None:
    stats = interval_stats([0.3] * 8 + [0.255, 1.2])
    assert stats["p50"] == pytest.approx(0.3)
    assert stats["over_ceiling"] == 1
    assert stats["median_in_band"] is True
    assert stats["share_in_target_band"] == pytest.approx(0.9)  # 0.255 is the band's inclusive edge
    assert interval_stats([0.1, 0.12, 0.5])["median_in_band"] is False
    assert interval_stats([])["median_in_band"] is None
    assert share_within([0.2, 0.4], 0.25, 0.35) == 0.0


# --------------------------------------------------------------------------- field comparison


def test_compare_numbers_tolerance_is_inclusive_and_absolute() -> None:
    assert compare_numbers("x", 0.5, 0.5 + 0.0099, 0.01).equal
    assert not compare_numbers("x", 0.5, 0.5 + 0.0101, 0.01).equal
    assert not compare_numbers("x", 0.5, 0.5 - 0.0101, 0.01).equal
    assert compare_numbers("x", 1.0, 1.0, 0.0).equal
    assert compare_numbers("x", 0.5, 0.52, 0.01).difference == pytest.approx(0.02)


def test_whole_numbers_compare_exactly_whatever_the_tolerance() -> None:
    found = compare_numbers("epochs_trained", 2, 3, 5.0)
    assert not found.equal and found.difference == 1 and found.tolerance is None
    assert not compare_numbers("x", 1.0, 1.5, 5.0, exact=True).equal


def test_missing_and_nan_values() -> None:
    assert not compare_numbers("x", 0.5, None, 0.01).equal
    assert "missing in the candidate" in compare_numbers("x", 0.5, None, 0.01).note
    assert compare_numbers("x", None, None, 0.01).equal
    assert compare_numbers("x", math.nan, math.nan, 0.01).equal
    assert not compare_numbers("x", math.nan, 0.5, 0.01).equal


def result(
    val_loss: float = 0.9,
    *,
    f1: float = 0.5,
    epochs: int = 2,
    extra: dict[str, Any] | None = None,
    features: tuple[str, ...] = ("a", "b"),
) -> TrainingResult:
    return TrainingResult(
        success=True,
        training_metrics={
            "val_loss": val_loss,
            "val_accuracy": 0.55,
            "train_loss": 0.8,
            "train_accuracy": 0.6,
            "epochs_trained": epochs,
            "best_epoch": epochs,
            "history": {
                "val_loss": [val_loss + 0.1, val_loss][:epochs],
                "val_accuracy": [0.5, 0.55][:epochs],
            },
        },
        test_metrics={
            "test_accuracy": 0.57,
            "test_loss": 0.84,
            "f1": f1,
            "precision": 0.55,
            "recall": 0.57,
            "test_samples": 1000,
            "confusion_matrix": [[1, 2], [3, 4]],
            **(extra or {}),
        },
        feature_names=features,
    )


def test_compare_results_covers_every_scalar_test_metric_and_the_features() -> None:
    found = {c.field: c for c in compare_results(result(), result(extra={"mcc": 0.2}), 0.01)}
    assert {
        "training_metrics.val_loss",
        "test_metrics.f1",
        "test_metrics.test_samples",
        "feature_names",
        "training_metrics.epochs_trained",
    } <= set(found)
    assert "test_metrics.confusion_matrix" not in found  # not a scalar
    assert not found["test_metrics.mcc"].equal  # present on one side only
    differing = [
        c.field for c in compare_results(result(), result(f1=0.6, features=("a", "c")), 0.01) if not c.equal
    ]
    assert differing == ["test_metrics.f1", "feature_names"]


# --------------------------------------------------------------------------- the experiment (fake modes)


class FakeMode:
    def __init__(self, name: str, outcome: TrainingResult | Exception, updates: int = 3) -> None:
        self.name = name
        self.outcome = outcome
        self.updates = updates
        self.requests: list[TrainingRequest] = []

    def health(self) -> ModeHealth:
        return ModeHealth.ok()

    def execute(self, request: TrainingRequest, progress: Any, cancel: Any) -> TrainingResult:
        self.requests.append(request)
        for index in range(self.updates):
            progress(1, 1, {"progress_type": "batch", "batch": index + 1})
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


def manager_with(*modes: FakeMode) -> TrainingManager:
    return TrainingManager(plugin_manager=plugin_manager_with(*modes))


REQUEST = TrainingRequest(strategy="s", user_id="erin", overrides={"seed": 1})


def test_both_runs_get_the_same_request_under_distinct_ids_and_the_reports_are_caught() -> None:
    control, candidate = FakeMode("old", result(), updates=5), FakeMode("new", result(), updates=2)
    outcome = Experiment(manager_with(control, candidate), control="old", candidate="new").run(
        REQUEST, warm_up=False
    )
    assert outcome.equivalent and outcome.differences == []
    (a,), (b,) = control.requests, candidate.requests
    assert a.request_id != b.request_id and REQUEST.request_id not in (a.request_id, b.request_id)
    assert (
        (a.user_id, a.overrides, a.strategy)
        == (b.user_id, b.overrides, b.strategy)
        == ("erin", {"seed": 1}, "s")
    )
    assert outcome.control.report is not None and outcome.control.report.progress_updates == 5
    assert outcome.candidate.progress()["updates"] == 2
    assert outcome.duration_ratio is not None


def test_warm_up_runs_each_mode_once_for_one_epoch_without_saving() -> None:
    control, candidate = FakeMode("old", result()), FakeMode("new", result())
    Experiment(manager_with(control, candidate), control="old", candidate="new").run(REQUEST)
    assert [r.overrides for r in control.requests] == [
        {"seed": 1, "epochs": 1, "save_model": False},
        {"seed": 1},
    ]


def test_a_candidate_that_raises_is_recorded_and_the_control_value_returned() -> None:
    kept = result()
    outcome = Experiment(
        manager_with(FakeMode("old", kept), FakeMode("new", RuntimeError("kaput"))),
        control="old",
        candidate="new",
    ).run(REQUEST, warm_up=False)
    assert outcome.value is not None and outcome.value.training_metrics == kept.training_metrics
    assert outcome.candidate.status == "error" and "kaput" in (outcome.candidate.error or "")
    assert outcome.differing_fields == ["candidate.status"] and not outcome.equivalent


class RaisingManager(TrainingManager):
    def __init__(self, fail_mode: str, *modes: FakeMode) -> None:
        super().__init__(plugin_manager=manager_with(*modes).plugin_manager)
        self.fail_mode = fail_mode

    def train(
        self,
        request: Any,
        progress: Any = None,
        cancel: Any = None,
        *,
        mode: Any = None,
        decision: Any = None,
    ) -> TrainingResult:
        if mode == self.fail_mode:
            raise OSError("disk full")
        return super().train(request, progress, cancel, mode=mode, decision=decision)


def test_an_exception_outside_the_candidate_mode_is_recorded_but_the_controls_propagates() -> None:
    modes = (FakeMode("old", result()), FakeMode("new", result()))
    outcome = Experiment(RaisingManager("new", *modes), control="old", candidate="new").run(
        REQUEST, warm_up=False
    )
    assert outcome.candidate.exception == "OSError: disk full" and outcome.candidate.result is None
    assert outcome.value is not None and outcome.value.success
    with pytest.raises(OSError):
        Experiment(RaisingManager("old", *modes), control="old", candidate="new").run(REQUEST, warm_up=False)


class CancelOnStart:
    """A cancellation source that fires as soon as it is attached (Ctrl-C at the worst moment)."""

    def attach(self, token: Any) -> None:
        token.cancel(reason="ctrl-c")

    def detach(self) -> None:
        pass


class CancellingPlugin:
    @hookimpl
    def cancellation_sources(self, request: Any) -> list[Any]:
        return [CancelOnStart()]


class StopWhenCancelled(FakeMode):
    def execute(self, request: TrainingRequest, progress: Any, cancel: Any) -> TrainingResult:
        self.requests.append(request)
        if cancel.is_cancelled():
            raise CancellationError(cancel.reason)
        return result()


def test_a_cancellation_source_firing_stops_the_experiment() -> None:
    modes = (StopWhenCancelled("old", result()), FakeMode("new", result()))
    manager = manager_with(*modes)
    manager.plugin_manager.register(CancellingPlugin(), name="ctrl-c")
    with pytest.raises(CancellationError, match="ctrl-c"):
        Experiment(manager, control="old", candidate="new").run(REQUEST, warm_up=False)
    assert modes[1].requests == []  # the candidate never ran


def test_a_mode_that_stops_as_cancelled_on_its_own_is_a_recorded_difference() -> None:
    modes = (FakeMode("old", result()), FakeMode("new", CancellationError("spurious")))
    outcome = Experiment(manager_with(*modes), control="old", candidate="new").run(REQUEST, warm_up=False)
    assert outcome.candidate.status == "cancelled"
    assert outcome.differing_fields == ["candidate.status"]


def test_differences_duration_limit_and_bad_arguments() -> None:
    modes = (FakeMode("old", result(0.9)), FakeMode("new", result(0.95)))
    outcome = Experiment(manager_with(*modes), control="old", candidate="new", max_duration_ratio=1e-9).run(
        REQUEST, warm_up=False
    )
    assert outcome.differing_fields[0] == "training_metrics.val_loss"
    assert "duration_ratio" in outcome.differing_fields
    with pytest.raises(BadInputError):
        Experiment(manager_with(), control="x", candidate="x")
    with pytest.raises(BadInputError):
        Experiment(manager_with(), tolerance=-1)


def test_the_report_names_the_differences_and_writes_three_files(tmp_path: Path) -> None:
    modes = (FakeMode("old", result(0.9)), FakeMode("new", result(0.95)))
    outcome = Experiment(manager_with(*modes), control="old", candidate="new").run(REQUEST, warm_up=False)
    md = render_markdown(report_data(outcome, tmp_path))
    assert "DIFFERENT" in md and "| training_metrics.val_loss | 0.9000 | 0.9500 |" in md
    data = write_report(outcome, tmp_path / "r", ledger_comparison_id=7)
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["curves.png", "report.json", "report.md"]
    assert data["ledger_comparison_id"] == 7 and data["differing_fields"] == ["training_metrics.val_loss"]


def test_default_report_dir_never_reuses_a_folder(tmp_path: Path) -> None:
    first = default_report_dir(tmp_path, now=0)
    first.mkdir(parents=True)
    second = default_report_dir(tmp_path, now=0)
    assert first.parent == tmp_path / "reports" and first.name.startswith("compare-")
    assert second == first.with_name(first.name + "-2")


def test_the_compare_command_imports_neither_torch_nor_matplotlib() -> None:
    code = (
        "import sys, ktrdr_core.cli.compare, ktrdr_core.compare.report; "
        "heavy = [m for m in ('torch', 'matplotlib') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
