"""``ktrdr strategies``: the strategies a training can name, and which are broken.

Lists ``KTRDR_STRATEGIES_DIR`` first (its files win over built-ins of the same
name), then the built-in strategies. A file that fails validation is listed
with its error; it never stops the listing. Imports no torch.
"""

from __future__ import annotations

import click

from ktrdr_core.cli.output import echo_json


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def strategies(as_json: bool) -> None:
    """List strategies: name, description, source (built-in or path), symbols, timeframes."""
    from ktrdr_core.training.strategy import list_strategies, strategies_dir

    rows = list_strategies()
    user_dir = strategies_dir()
    if as_json:
        echo_json({
            "strategies_dir": str(user_dir) if user_dir else None,
            "strategies": [row.to_dict() for row in rows],
        })
        return
    if user_dir is not None and not user_dir.is_dir():
        click.echo(click.style(f"KTRDR_STRATEGIES_DIR {user_dir} is not a folder", fg="yellow"))
    for row in rows:
        shadowed = not row.active and row.source == "built-in"
        title = f"{row.name} (shadowed by KTRDR_STRATEGIES_DIR)" if shadowed else row.name
        click.echo(f"{title}  [{row.source}]")
        if row.error:
            click.echo(click.style(f"    error: {row.error}", fg="red"))
            continue
        if row.description:
            click.echo(f"    {row.description}")
        click.echo(f"    symbols: {', '.join(row.symbols)}   timeframes: {', '.join(row.timeframes)}")
    if not rows:
        click.echo("No strategies found.")
