"""``ktrdr plugins``: what is installed, what it provides, and what is broken."""

from __future__ import annotations

from typing import Any

import click

from ktrdr_core.cli.output import echo_json
from ktrdr_core.plugins import get_plugin_manager, safe_health


def rollout_references(registered: Any) -> dict[str, str]:
    """For each installed mode, what the rollout does with it, in a sentence (Phase 3's check)."""
    from ktrdr_core.errors import ConfigurationError
    from ktrdr_core.rollout.completion import rollback_points
    from ktrdr_core.rollout.policy import RolloutPolicy
    from ktrdr_core.rollout.store import RolloutStore

    try:
        settings = RolloutPolicy.from_env().settings
        points = rollback_points(RolloutStore())
    except ConfigurationError:
        return {}
    roles: dict[str, str] = {}
    for mode in registered:
        named_by = sorted(
            name
            for name, point in points.items()
            if mode
            in ((point.get("settings") or {}).get("control"), (point.get("settings") or {}).get("candidate"))
        )
        if mode == settings.control:
            roles[mode] = "the rollout's control" + (
                " and only mode (the migration is complete)" if settings.completed else ""
            )
        elif mode == settings.candidate and not settings.completed:
            roles[mode] = "the rollout's candidate"
        elif named_by:
            roles[mode] = (
                f"no longer referenced by the rollout; its plugin can be uninstalled "
                f"(rollback point {', '.join(named_by)} would need it back)"
            )
        else:
            roles[mode] = "not referenced by the rollout"
    return roles


def _indicators_by_plugin() -> tuple[dict[str, list[str]], dict[str, str]]:
    """``({plugin: indicator types}, {plugin: error of its register_indicators})``."""
    from ktrdr_core.training.indicators import default_registry

    registry = default_registry()
    types: dict[str, list[str]] = {}
    for name in registry.names():
        types.setdefault(registry.plugin_of(name), []).append(name)
    return types, dict(registry.errors)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def plugins(as_json: bool) -> None:
    """List plugins: distribution, version, modes (with health), hooks, load errors."""
    pm = get_plugin_manager()
    registered = pm.registered_modes()
    indicators = _indicators_by_plugin()
    rows: list[dict[str, Any]] = []
    for info in pm.plugin_infos():
        modes = []
        for name in info.modes:
            health = safe_health(registered[name].mode)
            modes.append({"name": name, "healthy": health.healthy, "detail": health.detail})
        rows.append(
            {
                "name": info.name,
                "distribution": info.distribution,
                "version": info.version,
                "module": info.module,
                "modes": modes,
                "hooks": list(info.hooks),
                "indicators": indicators[0].get(info.name, []),
                "error": info.error or indicators[1].get(info.name),
                "disabled": info.disabled,
            }
        )
    conflicts = pm.conflicts
    references = rollout_references(registered)
    if as_json:
        echo_json({"plugins": rows, "conflicts": conflicts, "rollout_references": references})
        return
    for row in rows:
        click.echo(f"{row['name']}  ({row['distribution']} {row['version']})")
        if row["disabled"]:
            click.echo(f"    disabled: {row['disabled']}")
            continue
        if row["error"]:
            click.echo(click.style(f"    error: {row['error']}", fg="red"))
            continue
        for mode in row["modes"]:
            state = "healthy" if mode["healthy"] else "UNHEALTHY"
            click.echo(f"    mode {mode['name']}: {state} - {mode['detail']}")
        if row["indicators"]:
            click.echo(f"    indicators ({len(row['indicators'])}): {', '.join(row['indicators'])}")
        click.echo(f"    hooks: {', '.join(row['hooks']) or '-'}")
    for conflict in conflicts:
        click.echo(click.style(f"conflict: {conflict}", fg="red"))
    for mode, role in sorted(references.items()):
        click.echo(f"mode {mode}: {role}")
    if not registered:
        click.echo(
            "No execution mode is installed: pip install ktrdr-legacy ktrdr-unified "
            "(or a third-party mode plugin)."
        )
