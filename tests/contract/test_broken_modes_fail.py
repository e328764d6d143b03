"""The contract suite fails each broken mode, with a message that says what to fix.

Each case runs the real suite (only the checks that concern the break, to
keep it quick) against one mode from broken_modes.py and asserts that the
run fails in the expected check with the expected advice. The last case runs
the whole suite on QuickMode, unbroken, and asserts that it passes.
"""

from __future__ import annotations

from typing import Any

import pytest

from ktrdr_core.testing import ExecutionModeContract

# (mode, -k expression, the check that must fail, phrases the failure must contain, class attributes);
# every mode but the last case's is not installed through an entry point, so `installed` is off there

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
        "cancellation_is_within_the_bound",
        "test_cancellation_is_within_the_bound",
        (
            "after token.cancel() at the 95th percentile of 7 cancels",
            "the bound is 100 ms (docs/contract.md#cancellation)",
            "check cancel.is_cancelled() more often",
        ),
        {"max_cancel_delay": 0.2, "cancel_epochs": 100},
    ),
    (
        "SlowSetUp()",
        "setup_cancellation_is_within_the_bound",
        "test_setup_cancellation_is_within_the_bound",
        (
            "at the 95th percentile of 7 cancels sent 0.001-0.05 s after execute() started (during set-up)",
            "the bound is 100 ms (docs/contract.md#cancellation)",
            "between the units of set-up work too",
        ),
        {"cancel_epochs": 100},
    ),
    (
        "WorksBeforeLookingAtTheToken()",
        "cancelled_before_start",
        "test_cancelled_before_start",
        ("the mode still sent 1 progress update(s)", "check the token before any work"),
        {},
    ),
    (
        "ForgetsTheModel()",
        "saved_model",
        "test_a_saved_model_is_a_complete_folder",
        ("model_path is None although the request saves a model",),
        {},
    ),
    (
        "QuickMode('not-installed')",
        "entry_point",
        "test_the_mode_is_reachable_through_its_entry_point",
        (
            "no installed `ktrdr` entry point registers a mode named 'not-installed'",
            "docs/plugin-authors.md#2-declare-the-entry-point",
        ),
        {},
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
            "the 'epoch' update lacks val_loss, val_accuracy (docs/contract.md#progress-updates)",
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


#: the capability flag whose group each check belongs to (the first a failure names)
CAPABILITY_OF = {
    "test_the_mode_is_reachable_through_its_entry_point": "installed",
    "test_progress_follows_the_callback_contract": "reports_progress",
    "test_a_raising_progress_callback_does_not_kill_the_training": "reports_progress",
    "test_cancelled_before_start": "cancellable_before_start",
    "test_cancellation_from_another_thread": "cancellable",
    "test_cancellation_at_a_progress_update": "cancellable",
    "test_cancellation_is_within_the_bound": "cancellable",
    "test_setup_cancellation_is_within_the_bound": "cancellable_during_setup",
    "test_the_same_seed_gives_the_same_metrics": "deterministic",
    "test_a_saved_model_is_a_complete_folder": "stores_models",
}


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
    if check != "test_the_mode_is_reachable_through_its_entry_point":
        attributes = {"installed": False, **attributes}
    run = run_contract(mode, "-k", select, **attributes)
    assert run.exit_code == 1, f"the contract suite passed {mode}: {run.outcomes}"
    assert check in run.failed, f"expected {check} to fail, got {run.outcomes}"
    text = run.failures[check]
    assert "ContractViolation" in text
    for phrase in phrases:
        assert phrase in text, f"the failure of {check} lacks {phrase!r}:\n{text[-3000:]}"
    flag = CAPABILITY_OF.get(check)
    if flag is not None:  # a capability's failure names the flag and the page that states it
        assert f"(capability `{flag}`, declared by default — docs/contract.md#{flag};" in text, text[-3000:]
        assert f"sets `{flag} = False`" in text


def test_a_class_that_names_no_mode_is_told_how_to(run_contract: Any) -> None:
    run = run_contract(None, "-k", "has_a_name or health", imports="")
    assert run.failed == ["test_mode_has_a_name", "test_health_answers_quickly_with_a_mode_health"]
    assert "does not say which mode to test: define a `mode` fixture" in run.text


def test_a_mode_without_a_name_is_told_what_the_name_is_for(run_contract: Any) -> None:
    run = run_contract("object()", "-k", "has_a_name", imports="")
    assert run.failed == ["test_mode_has_a_name"]
    assert "it is what KTRDR_ROLLOUT_CANDIDATE and --mode refer to" in run.failures["test_mode_has_a_name"]


def test_a_correct_mode_passes_the_whole_suite(run_contract: Any) -> None:
    run = run_contract(
        "QuickMode()", imports="from ktrdr_core.testing import QuickMode", cancel_epochs=100, installed=False
    )
    assert run.exit_code == 0, run.text
    assert set(run.outcomes.values()) == {"passed", "skipped"}
    assert [name for name, outcome in run.outcomes.items() if outcome == "skipped"] == [
        "test_the_mode_is_reachable_through_its_entry_point"
    ]
    assert len(run.outcomes) == len([name for name in dir(ExecutionModeContract) if name.startswith("test_")])


def test_one_slow_cancel_in_seven_is_within_the_p95_bound(run_contract: Any) -> None:
    """The latency check judges the 95th percentile: a single cancel a busy machine delays is tolerated."""
    run = run_contract(
        "SlowToCancelOnce()",
        "-k",
        "within_the_bound and not setup",
        installed=False,
        max_cancel_delay=0.2,
        cancel_epochs=100,
    )
    assert run.outcomes == {"test_cancellation_is_within_the_bound": "passed"}, run.text


@pytest.mark.parametrize(
    ("mode", "flag", "select"),
    [
        ("IgnoresTheSeed()", "deterministic", "same_seed"),
        ("ForgetsTheModel()", "stores_models", "saved_model or schema"),
        ("IgnoresCancellation()", "cancellable", "cancellation and not before_start"),
        ("SlowSetUp()", "cancellable_during_setup", "setup_cancellation"),
        ("WorksBeforeLookingAtTheToken()", "cancellable_before_start", "before_start"),
        ("LetsCallbackErrorsEscape()", "reports_progress", "progress"),
    ],
)
def test_a_mode_that_declares_a_flag_off_skips_its_checks_and_passes(
    run_contract: Any, mode: str, flag: str, select: str
) -> None:
    """The same broken modes pass once they say they do not promise what they break."""
    attributes = {"installed": False, flag: False}
    if flag == "cancellable":
        attributes["reports_progress"] = True
    run = run_contract(mode, "-k", select, **attributes)
    assert run.exit_code == 0, run.text
    skipped = {name for name, outcome in run.outcomes.items() if outcome == "skipped"}
    group = {name for name, of in CAPABILITY_OF.items() if of == flag}
    if flag == "reports_progress":  # a cancel at a progress update needs progress updates
        group.add("test_cancellation_at_a_progress_update")
    if flag == "cancellable":  # a set-up cancel's speed is judged only for a cancellable mode
        group.add("test_setup_cancellation_is_within_the_bound")
    assert skipped == group & set(run.outcomes), run.outcomes
    assert set(run.outcomes.values()) <= {"passed", "skipped"}


def test_the_entry_point_check_passes_an_installed_mode_and_names_a_stale_class(
    run_contract: Any, viaentry_installed: Any
) -> None:
    """pip installed a plugin registering QuickMode as 'viaentry': that passes, another class fails."""
    good = run_contract(
        "QuickMode('viaentry')", "-k", "entry_point", imports="from ktrdr_core.testing import QuickMode"
    )
    assert good.outcomes == {"test_the_mode_is_reachable_through_its_entry_point": "passed"}, good.text
    stale = run_contract("IgnoresCancellation('viaentry')", "-k", "entry_point")
    assert stale.failed == ["test_the_mode_is_reachable_through_its_entry_point"]
    assert (
        "registers mode 'viaentry' as ktrdr_core.testing.modes.QuickMode, but the suite tests "
        "broken_modes.IgnoresCancellation: users get the installed one" in stale.text
    )
    assert "(capability `installed`" in stale.text
