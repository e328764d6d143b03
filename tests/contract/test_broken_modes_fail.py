"""The contract suite fails each broken mode, with a message that says what to fix.

Each case runs the real suite (only the checks that concern the break, to
keep it quick) against one mode from broken_modes.py and asserts that the
run fails in the expected check with the expected advice. The last case runs
the whole suite on QuickMode, unbroken, and asserts that it passes.
"""

from __future__ import annotations

from typing import Any

import pytest

# (mode, -k expression, the check that must fail, phrases the failure must contain, class attributes)
CASES: list[tuple[str, str, str, tuple[str, ...], dict[str, Any]]] = [
    (
        "IgnoresCancellation()",
        "cancellation_at_a_progress_update",
        "test_cancellation_at_a_progress_update",
        ("ignored the cancellation", "returned success", "raise ktrdr_core.CancellationError"),
        {"cancel_epochs": 100},
    ),
    (
        "SlowToCancel()",
        "cancellation_from_another_thread",
        "test_cancellation_from_another_thread",
        ("after token.cancel(); the bound is 100 ms", "check cancel.is_cancelled() more often"),
        {"max_cancel_delay": 0.2},
    ),
    (
        "TwoArgumentProgress()",
        "progress_follows",
        "test_progress_follows_the_callback_contract",
        (
            "the progress callback got 2 positional argument(s)",
            "the contract is progress(epoch, total_epochs, metrics)",
        ),
        {},
    ),
    (
        "BackwardsEpochs()",
        "progress_follows",
        "test_progress_follows_the_callback_contract",
        ("the epoch went backwards from 2 to 1", "must never decrease"),
        {"max_epochs": 2},
    ),
    (
        "DropsTheFinalUpdate()",
        "progress_follows",
        "test_progress_follows_the_callback_contract",
        ("the last progress update is a 'batch' update", "must always let the final update through"),
        {},
    ),
    (
        "EpochUpdatesWithoutValMetrics()",
        "progress_follows",
        "test_progress_follows_the_callback_contract",
        (
            "the 'epoch' update lacks val_loss, val_accuracy (docs/contract.md, 'Progress updates')",
            "every 'epoch' update carries total_batches_per_epoch, train_loss, train_accuracy, val_loss and "
            "val_accuracy",
            "must keep the validation metrics",
        ),
        {},
    ),
    (
        "PartialResult()",
        "contract_schema",
        "test_result_has_the_contract_schema",
        (
            "training_metrics lacks val_accuracy, epochs_trained, history",
            "test_metrics lacks test_loss, precision, recall, f1, baseline_accuracy",
            "metadata lacks seed",
        ),
        {},
    ),
    (
        "HalfWrittenModel()",
        "cancellation_at_a_progress_update",
        "test_cancellation_at_a_progress_update",
        (
            "the cancelled run left model folder(s) behind: models/neuro_mean_reversion/in_progress_v1",
            "rename it into place only when it is complete",
        ),
        {"cancel_epochs": 100},
    ),
    (
        "LetsCallbackErrorsEscape()",
        "raising_progress",
        "test_a_raising_progress_callback_does_not_kill_the_training",
        ("execute() let it escape", "a failing progress consumer must not kill the training"),
        {},
    ),
    (
        "CrashesOnBadInput()",
        "unknown_or_unsafe_strategy",
        "test_an_unknown_or_unsafe_strategy_is_a_clear_error",
        ("execute() crashed with KeyError", "raise ktrdr_core.BadInputError"),
        {},
    ),
    (
        "IgnoresTheSeed()",
        "same_seed",
        "test_the_same_seed_gives_the_same_metrics",
        ("gave different metrics", "training_metrics.val_loss", "seed every random source"),
        {},
    ),
    (
        "SlowHealth()",
        "health",
        "test_health_answers_quickly_with_a_mode_health",
        ("health() did not answer within 0.2 s", "bound any network probe"),
        {"health_bound_seconds": 0.2},
    ),
    (
        "ReturnsCancelledResult()",
        "cancelled_before_start",
        "test_cancelled_before_start",
        ("returned (cancelled) instead of raising", "must raise ktrdr_core.CancellationError"),
        {},
    ),
]


@pytest.mark.parametrize(
    ("mode", "select", "check", "phrases", "attributes"), CASES, ids=[case[0].rstrip("()") for case in CASES]
)
def test_the_suite_catches_a_broken_mode(
    run_contract: Any,
    mode: str,
    select: str,
    check: str,
    phrases: tuple[str, ...],
    attributes: dict[str, Any],
) -> None:
    run = run_contract(mode, "-k", select, **attributes)
    assert run.exit_code == 1, f"the contract suite passed {mode}: {run.outcomes}"
    assert check in run.failed, f"expected {check} to fail, got {run.outcomes}"
    text = run.failures[check]
    assert "ContractViolation" in text
    for phrase in phrases:
        assert phrase in text, f"the failure of {check} lacks {phrase!r}:\n{text[-3000:]}"


def test_a_class_that_names_no_mode_is_told_how_to(run_contract: Any) -> None:
    run = run_contract(None, "-k", "has_a_name or health", imports="")
    assert run.failed == ["test_mode_has_a_name", "test_health_answers_quickly_with_a_mode_health"]
    assert "does not say which mode to test: define a `mode` fixture" in run.text


def test_a_mode_without_a_name_is_told_what_the_name_is_for(run_contract: Any) -> None:
    run = run_contract("object()", "-k", "has_a_name", imports="")
    assert run.failed == ["test_mode_has_a_name"]
    assert "it is what KTRDR_ROLLOUT_CANDIDATE and --mode refer to" in run.failures["test_mode_has_a_name"]


def test_a_correct_mode_passes_the_whole_suite(run_contract: Any) -> None:
    run = run_contract("QuickMode()", imports="from ktrdr_core.testing import QuickMode", cancel_epochs=100)
    assert run.exit_code == 0, run.text
    assert len(run.outcomes) >= 11 and set(run.outcomes.values()) == {"passed"}
