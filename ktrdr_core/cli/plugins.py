"""``ktrdr plugins``: what is installed, what it provides, and what is broken."""

from __future__ import annotations

from typing import Any

import click

from ktrdr_core.cli.output import echo_json
from ktrdr_core.plugins import get_plugin_manager, safe_health


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def plugins(as_json: bool) -> None:
    """List plugins: distribution, version, modes (with health), hooks, load errors."""
    pm = get_plugin_manager()
    registered = pm.registered_modes()
    rows: list[dict[str, Any]] = []
    for info in pm.plugin_infos():
        modes = []
        for name in info.modes:
            health = safe_health(registered[name].mode)
            modes.append({"name": name, "healthy": health.healthy, "detail": health.detail})
        rows.append({
            "name": info.name,
            "distribution": info.distribution,
            "version": info.version,
            "module": info.module,
            "modes": modes,
            "hooks": list(info.hooks),
            "error": info.error,
            "disabled": info.disabled,
        })
    conflicts = pm.conflicts
    if as_json:
        echo_json({"plugins": rows, "conflicts": conflicts})
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
        click.echo(f"    hooks: {', '.join(row['hooks']) or '-'}")
    for conflict in conflicts:
        click.echo(click.style(f"conflict: {conflict}", fg="red"))
    if not registered:
        click.echo("No execution mode is installed: pip install ktrdr-legacy ktrdr-unified "
                   "(or a third-party mode plugin).")
