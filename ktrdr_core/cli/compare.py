"""``ktrdr compare``: run two modes side by side on one request and say whether they agree.

The side-by-side validation of the rollout's first phase (docs/compare.md): both modes
train the same request with the same seed through the TrainingManager (mode
forced, distinct request ids, same user); results are compared field by
field within a tolerance; durations, progress and (with ``--check-cancel``)
cancellation latency are reported. The outcome is recorded in the run ledger
— the rollout gate's side-by-side criterion reads the latest one — and
written to a report folder (markdown, JSON, a PNG of the curves).

Exit codes: 0 equivalent, 1 different (the differing fields on stderr),
2 bad input (unknown mode, bad strategy name, a request no mode can run),
130 cancelled.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import click

from ktrdr_core.cli.options import check_date_options, run_options
from ktrdr_core.cli.output import echo_json
from ktrdr_core.errors import BadInputError

EXIT_EQUIVALENT, EXIT_DIFFERENT, EXIT_BAD_INPUT = 0, 1, 2


def _summary(data: dict[str, Any]) -> None:
    control, candidate = data["control"], data["candidate"]
    verdict = "equivalent" if data["equivalent"] else "DIFFERENT"
    click.echo(
        f"{data['strategy']}: {control['mode']} vs {candidate['mode']}: {verdict} "
        f"(tolerance {data['tolerance']:g})"
    )
    for obs in (control, candidate):
        tm, te = obs["training_metrics"], obs["test_metrics"]
        line = f"  {obs['role']:9} {obs['mode']:10} {obs['status']:9} {obs['duration_seconds']:6.2f} s"
        if "val_loss" in tm:
            line += (
                f"  val_loss {tm['val_loss']:.4f}  val_acc {tm.get('val_accuracy', 0):.4f}"
                f"  test_acc {te.get('test_accuracy', float('nan')):.4f}"
                f"  f1 {te.get('f1', float('nan')):.4f}"
            )
        prog = obs["progress"]
        p50 = prog["intervals"]["p50"]
        line += f"  {prog['updates']} updates" + (f" (p50 {p50 * 1000:.0f} ms)" if p50 is not None else "")
        click.echo(line)
    if data["duration_ratio"] is not None:
        click.echo(f"  duration ratio candidate/control: {data['duration_ratio']:.3f}")
    cancel = data.get("cancellation")
    if cancel:
        for role in ("control", "candidate"):
            check = cancel[role]
            latency = check["latency_seconds"]
            click.echo(
                f"  cancel {role}: {check['status']}"
                + (f" in {latency * 1000:.1f} ms" if latency is not None else "")
            )
    click.echo(f"  report: {Path(data['report_dir']) / 'report.md'}")


def _record(
    strategy: str,
    control: str,
    candidate: str,
    equivalent: bool,
    differences: list[dict[str, Any]],
    report_path: Path,
) -> int | None:
    from ktrdr_core.ledger.plugin import ledger_enabled
    from ktrdr_core.ledger.store import RunLedger

    if not ledger_enabled(os.environ):
        return None
    try:
        record = RunLedger().record_comparison(
            strategy=strategy,
            control=control,
            candidate=candidate,
            equivalent=equivalent,
            differences=differences,
            report_path=report_path,
        )
    except Exception as exc:  # noqa: BLE001 - the report still gets written
        click.echo(f"ktrdr: warning: could not record the comparison in the ledger: {exc}", err=True)
        return None
    return record.id


@click.command()
@click.argument("strategy")
@click.option(
    "--control", default=None, help="Control mode (default: the rollout's control, normally legacy)."
)
@click.option(
    "--candidate", default=None, help="Candidate mode (default: the rollout's candidate, normally unified)."
)
@click.option("--seed", type=click.IntRange(min=0), default=42, show_default=True, help="Seed of both runs.")
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0),
    default=0.01,
    show_default=True,
    help="Largest allowed |control - candidate| of each metric.",
)
@run_options
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder of {SYMBOL}_{timeframe}.csv files.",
)
@click.option("--user", "user_id", default="default", show_default=True, help="User id of both runs.")
@click.option(
    "--report",
    "report_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Report folder (default: KTRDR_HOME/reports/compare-<timestamp>).",
)
@click.option(
    "--check-cancel", is_flag=True, help="Also cancel one run of each mode and compare the latency."
)
@click.option(
    "--cancel-after",
    type=click.FloatRange(min=0),
    default=0.25,
    show_default=True,
    help="With --check-cancel: seconds after the first progress update to cancel.",
)
@click.option(
    "--max-duration-ratio",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Also require candidate/control duration <= RATIO (default: reported only).",
)
@click.option(
    "--warm-up/--no-warm-up",
    default=True,
    show_default=True,
    help="One untimed 1-epoch run per mode first, so the duration ratio is fair.",
)
@click.option("--save-models", is_flag=True, help="Save both models (default: train and evaluate only).")
@click.option("--json", "as_json", is_flag=True, help="Print the report JSON on stdout.")
def compare(
    strategy: str,
    control: str | None,
    candidate: str | None,
    seed: int,
    tolerance: float,
    epochs: int | None,
    batch_size: int | None,
    symbols: str | None,
    timeframes: str | None,
    start_date: str | None,
    end_date: str | None,
    data_dir: Path | None,
    set_items: tuple[str, ...],
    user_id: str,
    report_dir: Path | None,
    check_cancel: bool,
    cancel_after: float,
    max_duration_ratio: float | None,
    warm_up: bool,
    save_models: bool,
    as_json: bool,
) -> int:
    """Train STRATEGY with two modes side by side and compare the results.

    Exit 0 when equivalent, 1 when not (differing fields on stderr and in the
    report), 2 for bad input.
    """
    from ktrdr_core.cli.sinks import CliPlugin
    from ktrdr_core.extras import require_extra

    # the report (its curves.png) is always written: say what is missing before any training
    require_extra("report", "ktrdr compare's report")
    from ktrdr_core.compare.experiment import Experiment
    from ktrdr_core.compare.report import default_report_dir, write_report
    from ktrdr_core.manager import TrainingManager
    from ktrdr_core.request import TrainingRequest, check_strategy_name
    from ktrdr_core.rollout.policy import RolloutPolicy
    from ktrdr_core.runtime import configure_torch_threads
    from ktrdr_core.training.strategy import load_strategy

    logging.basicConfig(
        level=os.environ.get("KTRDR_LOG_LEVEL", "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    check_strategy_name(strategy)
    check_date_options(start_date, end_date)
    from ktrdr_core.training.overrides import parse_set_options

    settings = parse_set_options(set_items)
    # a missing or invalid strategy file (or setting) is bad input, found before any training
    load_strategy(strategy, settings=settings)
    policy = RolloutPolicy.from_env()
    control = control or policy.control
    candidate = candidate or policy.candidate
    overrides: dict[str, Any] = {
        "seed": seed,
        "save_model": save_models,
        **({"set": settings} if settings else {}),
    }
    if data_dir is not None:
        if not data_dir.is_dir():
            raise BadInputError(f"data directory {data_dir} does not exist")
        overrides["data_dir"] = str(data_dir.resolve())
    for key, value in (("epochs", epochs), ("batch_size", batch_size)):
        if value is not None:
            overrides[key] = value
    request = TrainingRequest(
        strategy=strategy,
        user_id=user_id,
        symbols=symbols,
        timeframes=timeframes,
        start_date=start_date,
        end_date=end_date,
        overrides=overrides,
    )

    # Like ``ktrdr train``: one torch thread unless KTRDR_TORCH_THREADS says otherwise, so the two
    # modes' durations measure the modes and not contention between threads for the cores.
    configure_torch_threads()
    manager = TrainingManager()
    experiment = Experiment(
        manager,
        control=control,
        candidate=candidate,
        tolerance=tolerance,
        max_duration_ratio=max_duration_ratio,
        run_plugin=lambda req: CliPlugin(req, sinks=(), timeout=None),
        on_event=lambda message: click.echo(f"compare: {message}", err=True),
    )
    experiment.check_modes()  # an unknown mode is a configuration error (exit 2)
    target = report_dir if report_dir is not None else default_report_dir()
    try:  # before training: an unwritable report folder is bad input, found in a second, not after
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"cannot create the report folder {target}: {exc.strerror or exc}") from None
    outcome = experiment.run(request, check_cancel=check_cancel, cancel_delay=cancel_after, warm_up=warm_up)

    ctl = outcome.control
    if not ctl.succeeded and ctl.result is not None and ctl.result.metadata.get("error_kind") == "bad_input":
        # The request cannot work at all: nothing was compared, nothing is recorded.
        with contextlib.suppress(OSError):
            target.rmdir()  # only if still empty
        raise BadInputError(f"the control mode {control} refused the request: {ctl.error}")

    comparison_id = _record(
        strategy, control, candidate, outcome.equivalent, outcome.differences, target / "report.md"
    )
    data = write_report(outcome, target, ledger_comparison_id=comparison_id)

    if as_json:
        echo_json(data)
    else:
        _summary(data)
    if outcome.equivalent:
        return EXIT_EQUIVALENT
    click.echo(
        f"ktrdr: compare: {control} and {candidate} differ in: {', '.join(outcome.differing_fields)}",
        err=True,
    )
    for diff in outcome.differences:
        detail = diff.get("note") or ""
        if not detail and diff.get("tolerance") is not None:
            detail = (
                f"control {diff.get('control')!r}, candidate {diff.get('candidate')!r}, "
                f"difference {diff.get('difference')!r} > {diff.get('tolerance')!r}"
            )
        elif not detail:
            detail = f"control {diff.get('control')!r}, candidate {diff.get('candidate')!r}"
        click.echo(f"  {diff['field']}: {detail}", err=True)
    return EXIT_DIFFERENT
