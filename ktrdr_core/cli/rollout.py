"""``ktrdr rollout``: see, explain and change who gets the candidate mode.

Changes go to the rollout file under ``KTRDR_HOME`` and its audit log. An
environment variable, when set, wins over the file; the commands say so
rather than let an operator believe a change took effect when it did not.
"""

from __future__ import annotations

import os

import click

from ktrdr_core.cli.output import echo_json
from ktrdr_core.request import TrainingRequest
from ktrdr_core.rollout.policy import Decision, RolloutPolicy
from ktrdr_core.rollout.settings import ENV_FOR_FIELD, parse_percentage
from ktrdr_core.rollout.store import AuditEntry, RolloutStore

REASON_OPTION = click.option(
    "--reason", default="changed from the CLI", show_default=True,
    help="Why; written to the audit log.",
)


def explain_decision(user_id: str) -> tuple[RolloutPolicy, Decision]:
    """The decision the installed selector would make for ``user_id`` right now."""
    from ktrdr_core.plugins import get_plugin_manager

    policy = RolloutPolicy.from_env()
    pm = get_plugin_manager()
    request = TrainingRequest(strategy="(explain)", user_id=user_id)
    decision = pm.hook.select_mode(request=request, policy=policy, modes=pm.execution_modes())
    return policy, decision


def _warn_env_override(field: str) -> None:
    name = ENV_FOR_FIELD[field]
    if name in os.environ:
        click.echo(
            f"warning: {name}={os.environ[name]!r} is set in this environment and wins over the "
            "rollout file; unset it for the file's value to apply.",
            err=True,
        )


def _report(entry: AuditEntry | None, field: str) -> None:
    if entry is None:
        click.echo("No change: the rollout file already says so.")
    else:
        click.echo(f"Changed {entry.action}: {entry.old!r} -> {entry.new!r} (by {entry.actor}).")
    _warn_env_override(field)


@click.group()
def rollout() -> None:
    """See and change the rollout of the candidate mode."""


@rollout.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def status(as_json: bool) -> None:
    """Show the rollout settings in force and where each comes from."""
    policy = RolloutPolicy.from_env()
    store = RolloutStore()
    history = store.history()
    described = policy.describe()
    described["last_change"] = history[-1].to_dict() if history else None
    if as_json:
        echo_json(described)
        return
    s, src = policy.settings, policy.sources
    click.echo(f"stage:      {s.stage}")
    click.echo(f"enabled:    {s.enabled}  [{src['enabled']}]")
    click.echo(f"percentage: {s.percentage} %  [{src['percentage']}]")
    click.echo(f"control:    {s.control}  [{src['control']}]")
    click.echo(f"candidate:  {s.candidate}  [{src['candidate']}]")
    excluded = ", ".join(sorted(s.excluded_users)) or "-"
    click.echo(f"excluded:   {excluded}  [{src['excluded_users']}]")
    if history:
        last = history[-1]
        click.echo(f"last change: {last.timestamp} by {last.actor}: {last.action} "
                   f"{last.old!r} -> {last.new!r} ({last.reason})")


@rollout.command()
@click.argument("user_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def explain(user_id: str, as_json: bool) -> None:
    """Say which mode USER_ID gets now, and why."""
    policy, decision = explain_decision(user_id)
    if as_json:
        echo_json({"decision": decision.to_dict(), "rollout": policy.describe()})
        return
    click.echo(f"{user_id} -> {decision.mode} (bucket {decision.bucket})")
    click.echo(decision.reason)


@rollout.command("set")
@click.argument("percentage")
@REASON_OPTION
def set_percentage(percentage: str, reason: str) -> None:
    """Set the rollout percentage (0-100)."""
    value = parse_percentage(percentage, source="the percentage")
    _report(RolloutStore().set_percentage(value, reason=reason), "percentage")
    if value > 0 and not RolloutPolicy.from_env().settings.enabled:
        click.echo("note: the rollout is disabled, so nobody gets the candidate yet; "
                   "run `ktrdr rollout enable`.", err=True)


@rollout.command()
@REASON_OPTION
def enable(reason: str) -> None:
    """Turn the rollout system on (USE_UNIFIED_TRAINING=true in the file)."""
    _report(RolloutStore().set_enabled(True, reason=reason), "enabled")


@rollout.command()
@REASON_OPTION
def disable(reason: str) -> None:
    """Turn the rollout system off: everybody gets the control mode."""
    _report(RolloutStore().set_enabled(False, reason=reason), "enabled")


@rollout.command()
@click.argument("user_id")
@REASON_OPTION
def exclude(user_id: str, reason: str) -> None:
    """Force USER_ID onto the control mode (a partial rollback)."""
    _report(RolloutStore().exclude(user_id, reason=reason), "excluded_users")


@rollout.command()
@click.argument("user_id")
@REASON_OPTION
def include(user_id: str, reason: str) -> None:
    """Take USER_ID off the exclusion list."""
    _report(RolloutStore().include(user_id, reason=reason), "excluded_users")


@rollout.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the last N changes.")
def history(as_json: bool, limit: int | None) -> None:
    """Show the audit log of rollout changes, oldest first."""
    entries = RolloutStore().history()
    if limit:
        entries = entries[-limit:]
    if as_json:
        echo_json([entry.to_dict() for entry in entries])
        return
    if not entries:
        click.echo("No rollout changes recorded yet.")
    for e in entries:
        click.echo(f"{e.timestamp}  {e.actor}  {e.action}: {e.old!r} -> {e.new!r}  ({e.reason})")
