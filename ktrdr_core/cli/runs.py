"""``ktrdr runs``: the run ledger, newest first, filtered.

Reads ``KTRDR_HOME/ledger.sqlite3`` only (no torch, no plugin loading), so it
answers instantly on a machine with no mode installed.
"""

from __future__ import annotations

from typing import Any

import click

from ktrdr_core.cli.output import echo_json
from ktrdr_core.ledger.store import STATUSES, RunLedger, RunRecord
from ktrdr_core.ledger.times import parse_since

COLUMNS = (
    "started",
    "request",
    "user",
    "strategy",
    "mode",
    "status",
    "duration",
    "cpu",
    "peak_mem",
    "val_loss",
    "val_acc",
    "updates",
    "warnings",
    "flags",
)


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _flags(run: RunRecord) -> str:
    """``shadow`` marks a background candidate run on a user's request: not user traffic."""
    flags = [name for name in ("shadow", "candidate", "forced", "fallback") if getattr(run, name)]
    if run.shadow and run.shadow_of:
        flags[0] = f"shadow-of:{run.shadow_of[:12]}"
    return ",".join(flags) or "-"


def _memory(run: RunRecord) -> str:
    return "-" if run.peak_rss_bytes is None else f"{run.peak_rss_bytes / 2**20:.0f}MiB"


def _row(run: RunRecord) -> tuple[str, ...]:
    return (
        run.started_at[:19].replace("T", " "),
        run.request_id[:12],
        run.user_id,
        run.strategy,
        run.mode,
        run.status,
        _num(run.duration_seconds, ".2f") + ("s" if run.duration_seconds is not None else ""),
        _num(run.cpu_seconds, ".2f") + ("s" if run.cpu_seconds is not None else ""),
        _memory(run),
        _num(run.val_loss, ".4f"),
        _num(run.val_accuracy, ".3f"),
        "-" if run.progress_updates is None else str(run.progress_updates),
        str(len(run.warnings)) if run.warnings else "-",
        _flags(run),
    )


def render_table(runs: list[RunRecord]) -> str:
    rows = [COLUMNS, *(_row(run) for run in runs)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


@click.command()
@click.option("--mode", default=None, help="Only runs of this execution mode.")
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only runs with this status.")
@click.option(
    "--since",
    default=None,
    help="Only runs started since: an ISO date/date-time (UTC unless an offset is given) "
    "or an age such as 7d, 12h, 30m.",
)
@click.option("--user", default=None, help="Only runs of this user id.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="At most N runs (newest first).",
)
@click.option(
    "--shadow/--no-shadow",
    "shadow",
    default=None,
    help="Only shadow runs (background candidate runs on users' requests), or none of them.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of runs.")
def runs(
    mode: str | None,
    status: str | None,
    since: str | None,
    user: str | None,
    limit: int,
    shadow: bool | None,
    as_json: bool,
) -> None:
    """List training runs from the run ledger, newest first (shadow runs are flagged as such)."""
    from ktrdr_core.recovery import recover_at_startup

    since_epoch = parse_since(since) if since is not None else None
    ledger = RunLedger()
    recover_at_startup()  # rows of crashed processes show as interrupted, not running forever
    found = ledger.runs(mode=mode, status=status, since=since_epoch, user=user, limit=limit, shadow=shadow)
    if as_json:
        data: list[dict[str, Any]] = [run.to_dict() for run in found]
        echo_json(data)
        return
    if not found:
        where = "" if ledger.exists() else f" (no ledger yet at {ledger.path})"
        click.echo(f"No runs match{where}.")
        return
    click.echo(render_table(found))
    errors = [run for run in found if run.status == "error" and run.error]
    for run in errors[:5]:
        click.echo(f"error {run.request_id[:12]}: {run.error.splitlines()[0] if run.error else ''}")
    warned = [run for run in found if run.warnings]
    for run in warned[:5]:
        more = f" (+{len(run.warnings) - 1} more: ktrdr runs --json)" if len(run.warnings) > 1 else ""
        click.echo(f"warning {run.request_id[:12]}: {run.warnings[0]}{more}")
