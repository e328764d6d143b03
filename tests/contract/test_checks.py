"""The contract's checks as functions: each wrong thing gets its own sentence."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ktrdr_core import TrainingRequest, TrainingResult
from ktrdr_core.testing import ProgressProbe, leftover_model_dirs, result_problems

REQUEST = TrainingRequest(strategy="s", overrides={"epochs": 2, "seed": 3, "save_model": False})


def good_result(**changes: Any) -> TrainingResult:
    data: dict[str, Any] = {
        "success": True,
        "training_metrics": {
            "val_loss": 0.9,
            "val_accuracy": 0.5,
            "epochs_trained": 2,
            "history": {"val_loss": [1.0, 0.9]},
        },
        "test_metrics": {
            "test_accuracy": 0.5,
            "test_loss": 0.9,
            "precision": 0.5,
            "recall": 0.5,
            "f1": 0.5,
            "baseline_accuracy": 0.4,
        },
        "feature_names": ["a"],
        "feature_importance": {"a": 0.1},
        "metadata": {"seed": 3, "duration_seconds": 1.0},
    }
    data.update(changes)
    return TrainingResult(**data)


def test_a_good_result_has_no_problems() -> None:
    assert result_problems(good_result(), REQUEST) == []


def test_result_problems_name_what_is_wrong() -> None:
    assert "not a ktrdr_core.TrainingResult" in result_problems({"success": True}, REQUEST)[0]
    wrong = good_result(
        metadata={"seed": 4, "duration_seconds": 1.0}, feature_importance={"a": 0.1, "zz": 0.2}
    )
    text = "\n".join(result_problems(wrong, REQUEST))
    assert "metadata.seed is 4 but the request asked for seed 3" in text
    assert "feature_importance names features not in feature_names: 'zz'" in text
    too_long = good_result(training_metrics={**good_result().training_metrics, "epochs_trained": 5})
    assert "allowed at most 2 epochs" in "\n".join(result_problems(too_long, REQUEST))
    not_json = good_result(config={"when": object()})
    assert "not JSON-ready" in "\n".join(result_problems(not_json, REQUEST))
    saving = TrainingRequest(strategy="s", overrides={"epochs": 2, "seed": 3})
    assert "model_path is None although the request saves a model" in "\n".join(
        result_problems(good_result(), saving)
    )


@settings(max_examples=25, deadline=None)
@given(accuracy=st.one_of(st.floats(1.0001, 10), st.floats(-10, -0.0001), st.just(float("nan"))))
def test_a_fraction_outside_zero_to_one_is_reported(accuracy: float) -> None:
    bad = good_result(test_metrics={**good_result().test_metrics, "f1": accuracy})
    assert any("test_metrics.f1 must be a fraction in [0, 1]" in p for p in result_problems(bad, REQUEST))


def test_the_probe_reports_each_kind_of_bad_call_once_with_a_count() -> None:
    probe = ProgressProbe()
    probe(1, {"progress_type": "batch"})
    probe(1, {"progress_type": "batch"})
    probe(epoch=1, total_epochs=2, metrics={"progress_type": "batch"})
    probe(1.0, 2, {"progress_type": "batch"})
    probe(3, 2, {"progress_type": "epoch"})
    probe(1, 3, {"progress_type": "step"})
    problems = "\n".join(probe.problems)
    assert "got 2 positional argument(s)" in problems and "(and 1 more update(s) like it)" in problems
    assert "keyword argument(s) epoch, metrics, total_epochs; call it positionally" in problems
    assert "epoch and total_epochs must be ints, got float 1.0" in problems
    assert "epoch 3 is outside 1..total_epochs (2)" in problems
    assert "total_epochs changed from 2 to 3" in problems
    assert "metrics['progress_type'] is 'step'" in problems


BATCH = {
    "progress_type": "batch",
    "batch": 1,
    "total_batches_per_epoch": 4,
    "train_loss": 1.0,
    "train_accuracy": 0.4,
}
EPOCH = {
    "progress_type": "epoch",
    "total_batches_per_epoch": 4,
    "train_loss": 1.0,
    "train_accuracy": 0.4,
    "val_loss": 1.1,
    "val_accuracy": 0.35,
}


def test_the_probe_accepts_design_metrics_and_a_throttles_extra_keys() -> None:
    probe = ProgressProbe()
    probe(1, 2, BATCH)
    probe(1, 2, EPOCH)
    folded = {
        **BATCH,
        "epoch": 2,
        "batch": 2,
        "epochs_completed": 1,
        "folded_epochs": [{**EPOCH, "epoch": 1}],
        "val_loss": 1.1,
        "val_accuracy": 0.35,
    }
    probe(2, 2, folded)
    probe(2, 2, {**EPOCH, "best_epoch": 2, "stopped_early": False, "train_loss": float("nan")})
    assert probe.problems == []


def test_the_probe_requires_the_design_progress_keys() -> None:
    probe = ProgressProbe()
    probe(1, 2, {"progress_type": "batch", "batch": 1, "train_loss": 1.0})
    probe(1, 2, {key: value for key, value in EPOCH.items() if key != "val_loss"})
    probe(1, 2, {**EPOCH, "val_accuracy": "0.3"})
    probe(1, 2, {**BATCH, "batch": 1.0})
    probe(2, 2, {**BATCH, "folded_epochs": [{"epoch": 1, "train_loss": 1.0}]})
    problems = "\n".join(probe.problems)
    assert (
        "update 1: the 'batch' update lacks total_batches_per_epoch, train_accuracy (docs/contract.md#progress-updates)"
        in problems
    )
    assert "pass ModelTrainer's batch metrics on whole" in problems
    assert "update 2: the 'epoch' update lacks val_loss (docs/contract.md#progress-updates)" in problems
    assert "must keep the validation metrics" in problems
    assert "update 3: metrics['val_accuracy'] must be a number, got str '0.3'" in problems
    assert "(and 1 more update(s) like it)" in problems  # update 4's float batch number
    assert (
        "update 5: metrics['folded_epochs'] must be a list of the folded epochs' full epoch metrics"
        in problems
    )


def test_the_probe_checks_the_run_as_a_whole() -> None:
    assert "never called the progress callback" in ProgressProbe().final_problems(good_result(), REQUEST)[0]
    probe = ProgressProbe()
    probe(1, 3, {"progress_type": "epoch"})
    text = "\n".join(probe.final_problems(good_result(), REQUEST))
    assert "the last progress update reports epoch 1, but the result says epochs_trained=2" in text
    assert "total_epochs is 3 but the request asked for epochs=2" in text


def test_leftover_model_dirs_sees_temporaries_and_versions(tmp_path: Any) -> None:
    assert leftover_model_dirs(tmp_path) == []
    (tmp_path / "models" / "s" / ".tmp-123").mkdir(parents=True)
    (tmp_path / "models" / "s" / ".lock").write_text("")
    assert leftover_model_dirs(tmp_path) == ["models/s/.tmp-123"]
