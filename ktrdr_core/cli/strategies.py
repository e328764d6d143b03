"""``ktrdr strategies``: list the strategies, ``check`` one, ``migrate`` an older file to v3.

Listing shows ``KTRDR_STRATEGIES_DIR`` first (its files win over built-ins of
the same name), then the built-ins; a broken file is listed with its error and
never stops the listing. ``check`` prints every problem of a file at once
(exit 0 when it loads, 2 when not); ``migrate`` writes the v3 form of a v1,
v1.5 or native file, never over its input, atomically. Imports no torch.
"""

from __future__ import annotations

from pathlib import Path

import click

from ktrdr_core.cli.output import echo_json
from ktrdr_core.errors import BadInputError

EXIT_BAD_INPUT = 2


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def strategies(ctx: click.Context, as_json: bool) -> None:
    """List strategies: name, description, source (built-in or path), symbols, timeframes.

    Subcommands: check NAME|PATH, migrate PATH [-o OUT].
    """
    if ctx.invoked_subcommand is None:
        _list(as_json)


def _list(as_json: bool) -> None:
    from ktrdr_core.training.strategy import list_strategies, strategies_dir

    rows = list_strategies()
    user_dir = strategies_dir()
    if as_json:
        echo_json(
            {
                "strategies_dir": str(user_dir) if user_dir else None,
                "strategies": [row.to_dict() for row in rows],
            }
        )
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


def _is_path(target: str) -> bool:
    return "/" in target or target.endswith((".yaml", ".yml")) or Path(target).is_file()


@strategies.command()
@click.argument("target", metavar="NAME|PATH")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def check(target: str, as_json: bool) -> int:
    """Validate a strategy (by name, or a file path) and list every problem at once."""
    from ktrdr_core.training.strategy import (
        StrategyProblems,
        load_strategy_file,
        resolve_strategy_path,
    )

    path = Path(target) if _is_path(target) else resolve_strategy_path(target)
    if not path.is_file():
        raise BadInputError(f"{path}: no such strategy file")
    try:
        config = load_strategy_file(path)
    except StrategyProblems as exc:
        if as_json:
            echo_json({"file": exc.display, "ok": False, "problems": list(exc.problems)})
        else:
            click.echo(f"{exc.display}: {len(exc.problems)} problem(s):")
            for problem in exc.problems:
                click.echo(f"  - {problem}")
        click.get_current_context().exit(EXIT_BAD_INPUT)
    features = sum(len(sets) for sets in config.fuzzy_sets.values())
    if as_json:
        echo_json(
            {
                "file": str(path),
                "ok": True,
                "name": config.name,
                "format": config.source_format,
                "symbols": list(config.training_data.symbols),
                "timeframes": list(config.training_data.timeframes),
                "not_used_for_training": sorted(config.not_used),
                "notes": list(config.notes),
            }
        )
        return 0
    click.echo(
        f"{path}: OK — {config.name} ({config.source_format} format): "
        f"{len(config.indicators)} indicator(s), {features} fuzzy set(s), "
        f"symbols {', '.join(config.training_data.symbols)}, "
        f"timeframes {', '.join(config.training_data.timeframes)}"
    )
    if config.not_used:
        click.echo(f"  not used for training: {', '.join(config.not_used)}")
    for note in config.notes:
        click.echo(f"  note: {note}")
    return 0


@strategies.command()
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "-o",
    "--output",
    "out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the v3 file here (default: print it).",
)
@click.option("--force", is_flag=True, help="Replace OUT if it exists (never the input).")
def migrate(path: Path, out: Path | None, force: bool) -> int:
    """Write the v3 form of an older strategy file PATH (v1, v1.5 or native)."""
    from ktrdr_core.fileutil import write_text_atomic
    from ktrdr_core.training.formats.migrate import to_v3
    from ktrdr_core.training.strategy import read_strategy_data

    if not path.is_file():
        raise BadInputError(f"{path}: no such strategy file")
    raw, display = read_strategy_data(path)
    if out is None:
        click.echo(to_v3(raw, display), nl=False)
        return 0
    if out.exists() and out.resolve() == path.resolve():
        raise BadInputError(
            f"{out} is the input file; migrate never overwrites its input (choose another -o)"
        )
    if out.exists() and not force:
        raise BadInputError(f"{out} exists; choose another -o or add --force")
    if not out.parent.is_dir():
        raise BadInputError(f"cannot write {out}: folder {out.parent} does not exist")
    text = to_v3(raw, display, name=out.stem if out.suffix in (".yaml", ".yml") else None)
    try:
        write_text_atomic(out, text)
    except OSError as exc:
        raise BadInputError(f"cannot write {out}: {exc.strerror or exc}") from None
    click.echo(f"wrote {out} (v3)")
    return 0
