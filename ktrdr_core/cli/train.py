"""``ktrdr train``: run one training, routed by the rollout, with live progress.

Ctrl-C or SIGTERM cancels: the mode stops at the next batch, no model is
left behind, and the exit code is 130.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from ktrdr_core.cli.options import check_date_options, run_options
from ktrdr_core.cli.output import echo_json
from ktrdr_core.errors import BadInputError
from ktrdr_core.request import TrainingRequest, check_strategy_name, check_user_id
from ktrdr_core.result import TrainingResult

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CANCELLED = 1, 2, 130


def _positive(_ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and value <= 0:
        raise click.BadParameter("must be positive", param=param)
    return value


def _summary(result: TrainingResult) -> None:
    tm, te = result.training_metrics, result.test_metrics
    duration = result.metadata.get("duration_seconds", 0.0)
    click.echo(
        f"trained {result.metadata.get('strategy')} with mode {result.metadata.get('mode')} "
        f"in {duration:.1f} s ({tm.get('epochs_trained', '?')} epochs)"
    )
    if "val_accuracy" in tm:
        click.echo(f"  validation: accuracy {tm['val_accuracy']:.3f}, loss {tm.get('val_loss', 0):.4f}")
    if "test_accuracy" in te:
        baseline = te.get("baseline_accuracy", 0.0)
        click.echo(
            f"  test:       accuracy {te['test_accuracy']:.3f} vs baseline {baseline:.3f} "
            f"({(te['test_accuracy'] - baseline) * 100:+.1f} points), f1 {te.get('f1', 0):.3f}"
        )
    click.echo(f"  model:      {result.model_path or '(not saved)'}")
    for warning in result.metadata.get("warnings") or ():
        click.echo(f"  warning:    {warning}")


@click.command()
@click.argument("strategy")
@click.option("--user", "user_id", default="default", show_default=True, help="User id the rollout hashes.")
@click.option("--mode", default=None, help="Force an execution mode, bypassing the rollout.")
@run_options
@click.option("--seed", type=int, default=None, help="Random seed (default 42).")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder of {SYMBOL}_{timeframe}.csv files (default: $KTRDR_DATA_DIR, else the sample set).",
)
@click.option("--timeout", type=float, default=None, callback=_positive, help="Cancel after SECONDS.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option(
    "--progress-jsonl",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also write every progress update to FILE, one JSON object per line.",
)
@click.option("--no-progress", is_flag=True, help="Do not draw the progress bar.")
def train(
    strategy: str,
    user_id: str,
    mode: str | None,
    symbols: str | None,
    timeframes: str | None,
    start_date: str | None,
    end_date: str | None,
    epochs: int | None,
    seed: int | None,
    batch_size: int | None,
    data_dir: Path | None,
    set_items: tuple[str, ...],
    timeout: float | None,
    as_json: bool,
    progress_jsonl: Path | None,
    no_progress: bool,
) -> int:
    """Train STRATEGY (a name such as neuro_mean_reversion)."""
    from ktrdr_core.cli.sinks import CliPlugin, JsonLinesSink, LogSummarySink
    from ktrdr_core.home import writable_home
    from ktrdr_core.manager import TrainingManager
    from ktrdr_core.runtime import configure_torch_threads

    logging.basicConfig(
        level=os.environ.get("KTRDR_LOG_LEVEL", "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    check_strategy_name(strategy)
    check_user_id(user_id)
    check_date_options(start_date, end_date)
    # Validate the strategy file before routing: a broken file is the user's to fix (exit 2),
    # found in milliseconds, and never counted as an error of whichever mode would have run it.
    from ktrdr_core.training.overrides import parse_set_options
    from ktrdr_core.training.strategy import load_strategy

    settings = parse_set_options(set_items)
    config = load_strategy(strategy, settings=settings)
    if config.not_used:
        click.echo(
            f"strategy {strategy} ({config.source_format} format): not used for training: "
            f"{', '.join(config.not_used)}",
            err=True,
        )
    overrides: dict[str, object] = {"set": settings} if settings else {}
    if data_dir is not None:
        if not data_dir.is_dir():
            raise BadInputError(f"data directory {data_dir} does not exist")
        overrides["data_dir"] = str(data_dir.resolve())
    for key, value in (("epochs", epochs), ("seed", seed), ("batch_size", batch_size)):
        if value is not None:
            overrides[key] = value
    if progress_jsonl is not None and not progress_jsonl.parent.is_dir():
        raise BadInputError(f"cannot write {progress_jsonl}: folder {progress_jsonl.parent} does not exist")
    request = TrainingRequest(
        strategy=strategy,
        user_id=user_id,
        symbols=symbols,
        timeframes=timeframes,
        start_date=start_date,
        end_date=end_date,
        overrides=overrides,
    )

    _recover(writable_home())
    configure_torch_threads()
    manager = TrainingManager()
    decision = manager.decide(request, mode)
    click.echo(f"mode: {decision.mode} — {decision.reason}", err=True)

    sinks: list = [LogSummarySink()]
    if not no_progress:
        from ktrdr_core.cli.progressbar import ConsoleProgressBar

        sinks.append(ConsoleProgressBar())
    if progress_jsonl is not None:
        try:
            sinks.append(JsonLinesSink(progress_jsonl))
        except OSError as exc:
            raise BadInputError(f"cannot write {progress_jsonl}: {exc.strerror or exc}") from None
    plugin = CliPlugin(request, sinks=sinks, timeout=timeout)
    pm = manager.plugin_manager
    pm.register(plugin, name=f"ktrdr-cli-{request.request_id}")
    try:
        result = manager.train(request, decision=decision)
    finally:
        pm.unregister(plugin)

    if as_json:
        echo_json(result.to_dict())
        for warning in result.metadata.get("warnings") or ():  # stdout stays pure JSON
            click.echo(f"ktrdr: warning: {warning}", err=True)
    if result.status == "cancelled":
        click.echo(f"ktrdr: cancelled ({result.error}); no model was saved", err=True)
        return EXIT_CANCELLED
    if not result.success:
        if result.metadata.get("error_kind") == "bad_input":
            click.echo(f"ktrdr: error: {result.error}", err=True)
            return EXIT_BAD_INPUT
        click.echo(f"ktrdr: error: training failed: {result.error}", err=True)
        return EXIT_FAILED
    if not as_json:
        _summary(result)
    return 0


def _recover(home: Path) -> None:
    """Close the ledger rows of crashed runs before this one starts (ktrdr_core.recovery)."""
    from ktrdr_core.recovery import interrupted_note, recover_at_startup

    note = interrupted_note(recover_at_startup(home))
    if note:
        click.echo(note, err=True)
