"""``ktrdr rollout``: see, explain and change who gets the candidate mode.

Changes go to the rollout file under ``KTRDR_HOME`` and its audit log. An
environment variable, when set, wins over the file; the commands say so
rather than let an operator believe a change took effect when it did not.

``stage`` jumps to a stage; ``gate`` judges the quality gate of the stage
being left (exit 0 PASS, 1 FAIL, 3 INSUFFICIENT DATA); ``advance`` moves one
stage forward only when that gate passes (``--force --reason`` overrides it,
audited). See ``ktrdr_core.rollout.gates`` and docs/runbook.md.
"""

from __future__ import annotations

import os

import attrs
import click

from ktrdr_core.cli.output import echo_json
from ktrdr_core.errors import BadInputError
from ktrdr_core.request import TrainingRequest
from ktrdr_core.rollout.autorollback import auto_rollback_state
from ktrdr_core.rollout.current import current_stage, evaluate_current
from ktrdr_core.rollout.gates import NEXT_STAGE, PASS, GateReport
from ktrdr_core.rollout.policy import Decision, RolloutPolicy
from ktrdr_core.rollout.settings import ENV_FOR_FIELD, STAGES, parse_percentage
from ktrdr_core.rollout.shadow import ShadowConfig, set_shadow_percentage
from ktrdr_core.rollout.store import AuditEntry, RolloutStore

REASON_OPTION = click.option(
    "--reason",
    default="changed from the CLI",
    show_default=True,
    help="Why; written to the audit log.",
)


def explain_decision(user_id: str) -> tuple[RolloutPolicy, Decision]:
    """The decision the installed selector would make for ``user_id`` right now."""
    from ktrdr_core.plugins import get_plugin_manager

    policy = RolloutPolicy.from_env()
    pm = get_plugin_manager()
    request = TrainingRequest(strategy="(explain)", user_id=user_id)
    decision = pm.calls.select_mode(request=request, policy=policy, modes=pm.execution_modes())
    return policy, decision


def _warn_env_override(field: str) -> None:
    name = ENV_FOR_FIELD[field]
    if os.environ.get(name, "").strip():
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
    auto = auto_rollback_state(store)
    described["auto_rollback"] = auto
    shadow_config = ShadowConfig.read(store)
    described["shadow"] = attrs.asdict(shadow_config)
    from ktrdr_core.rollout.completion import rollback_points

    described["rollback_points"] = sorted(rollback_points(store))
    if as_json:
        echo_json(described)
        return
    s, src = policy.settings, policy.sources
    click.echo(
        f"stage:      {s.stage}"
        + ("  (migration complete: the control is the only mode)" if s.completed else "")
    )
    click.echo(f"enabled:    {s.enabled}  [{src['enabled']}]")
    click.echo(f"percentage: {s.percentage} %  [{src['percentage']}]")
    click.echo(f"control:    {s.control}  [{src['control']}]")
    click.echo(f"candidate:  {s.candidate}  [{src['candidate']}]")
    excluded = ", ".join(sorted(s.excluded_users)) or "-"
    click.echo(f"excluded:   {excluded}  [{src['excluded_users']}]")
    click.echo(
        f"shadow:     {shadow_config.percentage} % of control-routed trainings also run "
        f"{s.candidate} in the background (at most {shadow_config.max_concurrent} at once)"
    )
    if described["rollback_points"]:
        click.echo(
            f"rollback points: {', '.join(described['rollback_points'])} (`ktrdr rollout restore NAME`)"
        )
    if history:
        last = history[-1]
        click.echo(
            f"last change: {last.timestamp} by {last.actor}: {last.action} "
            f"{last.old!r} -> {last.new!r} ({last.reason})"
        )
    if auto["rolled_back"]:
        click.echo(f"AUTO-ROLLED BACK at {auto['last']['timestamp']}: {auto['last']['reason']}")
    click.echo(
        f"auto-rollback: {'enabled' if auto['enabled'] else 'disabled'}"
        + (f" (window {auto['window_runs']} runs)" if auto["enabled"] else "")
    )


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
        click.echo(
            "note: the rollout is disabled, so nobody gets the candidate yet; run `ktrdr rollout enable`.",
            err=True,
        )


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
    from ktrdr_core.request import check_user_id

    _report(RolloutStore().exclude(check_user_id(user_id), reason=reason), "excluded_users")


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


@rollout.command("shadow")
@click.argument("percentage")
@REASON_OPTION
def shadow(percentage: str, reason: str) -> None:
    """Shadow PERCENTAGE % of control-routed trainings with the candidate (0 turns it off).

    The user keeps the control's result; the candidate runs the same request in
    the background at low priority, saves no model, and the pair is compared and
    recorded in the ledger for the gates. Only `ktrdr serve` shadows (a CLI run
    ends with its training).
    """
    value = parse_percentage(percentage, source="the shadow percentage")
    entry = set_shadow_percentage(RolloutStore(), value, reason=reason)
    if entry is None:
        click.echo(f"No change: the shadow is already at {value} %.")
    else:
        click.echo(
            f"Shadow: {value} % of control-routed trainings also run the candidate (by {entry.actor})."
        )


# -- stages and gates ------------------------------------------------------------


def _warn_stage_env() -> None:
    for field in ("enabled", "percentage"):
        _warn_env_override(field)


def _print_gate(report: GateReport) -> None:
    click.echo(f"gate of stage {report.stage}: {report.title}")
    click.echo(
        f"candidate {report.candidate!r} vs control {report.control!r}, window {report.window} "
        f"(runs started {report.to_dict()['since'][:19]} .. {report.to_dict()['until'][:19]} UTC)"
    )
    click.echo("estimates with their one-sided 95 % bounds as [low, high]")
    rows = [("criterion", "threshold", "estimate [interval]", "verdict")]
    for c in report.criteria:
        rows.append((c.name, c.threshold, c.measured_text(), c.verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for index, row in enumerate(rows):
        click.echo("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if index and report.criteria[index - 1].detail:
            click.echo("      " + report.criteria[index - 1].detail)
    click.echo(f"verdict: {report.verdict}")


@rollout.command("stage")
@click.argument("name", type=click.Choice(list(STAGES)))
@REASON_OPTION
def set_stage(name: str, reason: str) -> None:
    """Jump to stage NAME (off 0 %, canary 10 %, expanded 50 %, full 100 %) without a gate.

    `ktrdr rollout advance` is the gated way forward; `stage off` is the quick rollback.
    """
    enabled, percentage = STAGES[name]
    entry = RolloutStore().set_fields(
        "set_stage", {"enabled": enabled, "percentage": percentage}, reason=f"stage {name}: {reason}"
    )
    if entry is None:
        click.echo(f"No change: the rollout file is already at stage {name}.")
    else:
        click.echo(f"Stage {name}: enabled={enabled}, percentage={percentage} (by {entry.actor}).")
    _warn_stage_env()


@rollout.command("gate")
@click.option(
    "--stage",
    "stage_name",
    type=click.Choice(list(NEXT_STAGE)),
    default=None,
    help="The stage whose gate to judge (default: the current stage).",
)
@click.option("--window", default=None, help="Override the gate's window, e.g. 7d, 12h.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def gate(stage_name: str | None, window: str | None, as_json: bool) -> int:
    """Judge the quality gate for leaving the current stage (exit 0 PASS, 1 FAIL, 3 INSUFFICIENT DATA)."""
    report = _evaluate(stage_name, window)
    if as_json:
        echo_json(report.to_dict())
    else:
        _print_gate(report)
    return report.exit_code


def _evaluate(stage_name: str | None, window: str | None) -> GateReport:
    from ktrdr_core.recovery import recover_at_startup

    recover_at_startup()  # the gate counts runs of crashed processes as interrupted
    return evaluate_current(RolloutPolicy.from_env(), stage=stage_name, window=window)


def _gate_refuses(report: GateReport, as_json: bool, force: bool, what: str) -> bool:
    """Print the gate; say and return True when it stops the change (not PASS, not forced)."""
    if as_json:
        echo_json(report.to_dict())
    else:
        _print_gate(report)
    if report.verdict == PASS or force:
        return False
    click.echo(
        f"ktrdr: refusing to {what} says {report.summary()}; nothing was changed "
        "(use --force --reason to override)",
        err=True,
    )
    return True


@rollout.command("advance")
@click.option("--force", is_flag=True, help="Advance even though the gate does not pass (needs --reason).")
@click.option("--reason", default=None, help="Why; written to the audit log. Required with --force.")
@click.option("--json", "as_json", is_flag=True, help="Print the gate as JSON.")
def advance(force: bool, reason: str | None, as_json: bool) -> int:
    """Move to the next stage, only if the current stage's gate passes.

    Exit 0 when advanced; 1 (FAIL) or 3 (INSUFFICIENT DATA) when the gate
    refused; 2 for bad usage (--force without --reason, a custom percentage).
    """
    if force and not (reason and reason.strip()):
        raise BadInputError("--force needs --reason: say why the gate is overridden (it is audited)")
    policy = RolloutPolicy.from_env()
    _refuse_if_completed(policy)
    stage = current_stage(policy)
    nxt = NEXT_STAGE[stage]
    if nxt is None:
        raise BadInputError(
            "the rollout is already at the last stage, full; `ktrdr rollout gate` says whether "
            "Phase 3 (removing the control mode) may begin"
        )
    report = _evaluate(stage, None)
    if _gate_refuses(report, as_json, force, f"advance {stage} -> {nxt}: the gate"):
        return report.exit_code
    enabled, percentage = STAGES[nxt]
    if report.verdict == PASS:
        action = "advance"
        why = f"advance {stage} -> {nxt}: gate {stage} PASS" + (f"; {reason}" if reason else "")
    else:
        action = "advance_forced"
        why = f"FORCED advance {stage} -> {nxt} although gate {stage} said {report.summary()}: {reason}"
    entry = RolloutStore().set_fields(action, {"enabled": enabled, "percentage": percentage}, reason=why)
    if entry is None:
        click.echo(f"No change: the rollout file is already at stage {nxt}.")
    else:
        click.echo(
            f"Advanced {stage} -> {nxt} (percentage {percentage}, by {entry.actor})"
            + (" [FORCED]" if action == "advance_forced" else "")
            + "."
        )
    _warn_stage_env()
    return 0


# -- Phase 3 ----------------------------------------------------------------------


def _refuse_if_completed(policy: RolloutPolicy) -> None:
    if policy.settings.completed:
        raise BadInputError(
            f"the migration is complete: {policy.settings.control!r} is the only mode; "
            "`ktrdr rollout restore NAME` goes back to a rollback point"
        )


@rollout.command("complete")
@click.option("--name", default=None, help="The rollback point's name (default: before-complete-MODE-TIME).")
@click.option(
    "--force", is_flag=True, help="Complete even though the full gate does not pass (needs --reason)."
)
@click.option("--reason", default=None, help="Why; written to the audit log. Required with --force.")
@click.option("--json", "as_json", is_flag=True, help="Print the gate as JSON.")
def complete_command(name: str | None, force: bool, reason: str | None, as_json: bool) -> int:
    """Phase 3: the candidate becomes the control and the rollout goes off, if the full gate passes.

    The settings replaced are kept as a named rollback point (`ktrdr rollout
    restore NAME`). Exit 0 when completed; 1 or 3 when the gate refused; 2 for
    bad usage. Afterwards the old control mode is no longer referenced.
    """
    from ktrdr_core.rollout.completion import check_point_name, complete, default_point_name

    if force and not (reason and reason.strip()):
        raise BadInputError("--force needs --reason: say why the gate is overridden (it is audited)")
    policy = RolloutPolicy.from_env()
    _refuse_if_completed(policy)
    point = check_point_name(name) if name else default_point_name(policy.settings)
    report = evaluate_current(policy, stage="full")
    if _gate_refuses(report, as_json, force, "complete the migration: the full gate"):
        return report.exit_code
    old, new = policy.settings.control, policy.settings.candidate
    if report.verdict == PASS:
        action, why = (
            "complete",
            f"complete: {new} replaces {old}; gate full PASS" + (f"; {reason}" if reason else ""),
        )
    else:
        action = "complete_forced"
        why = f"FORCED complete: {new} replaces {old} although gate full said {report.summary()}: {reason}"
    entry = complete(RolloutStore(), name=point, reason=why, action=action)
    assert entry is not None  # completing always changes the file
    click.echo(
        f"Completed: {new!r} is now the control and the only mode; the rollout is off "
        f"(by {entry.actor}){' [FORCED]' if action == 'complete_forced' else ''}."
    )
    click.echo(f"Rollback point: {point}  (`ktrdr rollout restore {point}` goes back)")
    click.echo(
        f"{old!r} is no longer referenced by the rollout: `ktrdr plugins` confirms it before "
        f"its plugin is uninstalled."
    )
    for field in ("enabled", "percentage", "control", "candidate"):
        _warn_env_override(field)
    return 0


@rollout.command("restore")
@click.argument("name", required=False)
@REASON_OPTION
def restore_command(name: str | None, reason: str) -> None:
    """Put back the rollout settings kept as rollback point NAME (without NAME: list them)."""
    from ktrdr_core.rollout.completion import restore, rollback_points

    store = RolloutStore()
    if name is None:
        points = rollback_points(store)
        if not points:
            click.echo("No rollback points (`ktrdr rollout complete` makes one).")
        for key, point in sorted(points.items()):
            settings = point.get("settings") or {}
            click.echo(
                f"{key}  {point.get('created_at', '?')}  control {settings.get('control')!r}, "
                f"candidate {settings.get('candidate')!r}, enabled {settings.get('enabled')}, "
                f"percentage {settings.get('percentage')}"
            )
        return
    entry = restore(store, name, reason=reason)
    if entry is None:
        click.echo(f"No change: the rollout already has the settings of {name}.")
        return
    settings = store.read()
    click.echo(
        f"Restored {name}: control {settings.control!r}, candidate {settings.candidate!r}, "
        f"stage {settings.stage} (by {entry.actor})."
    )
    from ktrdr_core.plugins import get_plugin_manager

    installed = get_plugin_manager().execution_modes()
    missing = [m for m in {settings.control, settings.candidate} if m not in installed]
    if missing:
        click.echo(
            f"warning: mode(s) {', '.join(sorted(missing))} not installed here; reinstall before "
            "traffic reaches them (e.g. pip install ktrdr-legacy).",
            err=True,
        )
