"""Entry point of the ``ktrdr`` command.

Subcommands are imported only when used (``--help`` imports each one's module
for its summary, so command modules keep heavy imports such as torch inside
their functions). Errors ktrdr raises on purpose become one line on stderr and
the exit codes of docs/contract.md: 2 bad input, 1 failed training, 130 cancelled.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

import click

from ktrdr_core._version import __version__
from ktrdr_core.errors import KtrdrError

COMMANDS: dict[str, str] = {
    "compare": "ktrdr_core.cli.compare:compare",
    "plugins": "ktrdr_core.cli.plugins:plugins",
    "rollout": "ktrdr_core.cli.rollout:rollout",
    "strategies": "ktrdr_core.cli.strategies:strategies",
    "runs": "ktrdr_core.cli.runs:runs",
    "serve": "ktrdr_core.cli.serve:serve",
    "train": "ktrdr_core.cli.train:train",
}


class LazyGroup(click.Group):
    """A click group whose commands are ``module:attribute`` strings, imported on use."""

    def __init__(self, *args: object, lazy_commands: dict[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy_commands = lazy_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands:
            module_name, attribute = self.lazy_commands[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attribute)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="ktrdr")
def cli() -> None:
    """ktrdr: train neural trading strategies, and migrate between training
    implementations safely (side by side, rolled out by user hash, rolled back
    in seconds)."""


def error_line(message: str) -> None:
    click.echo(f"ktrdr: error: {message}", err=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI and exit with ktrdr's exit codes."""
    try:
        result = cli.main(
            args=list(argv) if argv is not None else None, prog_name="ktrdr", standalone_mode=False
        )
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("ktrdr: cancelled", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KtrdrError as exc:
        error_line(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("ktrdr: cancelled", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - a bug still gets one line, unless debugging
        if os.environ.get("KTRDR_DEBUG"):
            raise
        error_line(f"internal error: {type(exc).__name__}: {exc} (set KTRDR_DEBUG=1 for a traceback)")
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
