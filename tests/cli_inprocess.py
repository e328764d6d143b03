"""Run ``ktrdr ARGS`` inside the test process, as a fresh process would see it.

A subprocess costs a Python start and ktrdr's imports (0.3-1 s on a loaded
machine) per call; most CLI tests only care what the command prints and how
it exits. :func:`run_ktrdr` calls ``ktrdr_core.cli.main.main`` — the same
function the ``ktrdr`` script runs, so the exit codes and the one-line errors
are the real ones — with stdout, stderr and stdin swapped for buffers (click's
``CliRunner.isolation``), environment overrides applied for the call only, and
the plugin manager rebuilt before it (a process starts with none), so
``KTRDR_PLUGINS`` and friends take effect as they would at start-up.

Keep a subprocess where the process itself is under test: signals, import
cost, entry points installed on disk, output on the real stdout.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

import attrs
from click.testing import CliRunner

from ktrdr_core.cli.main import main
from ktrdr_core.plugins import reset_plugin_manager

#: The terminal width a subprocess gets from the tests' environment (rich reads COLUMNS).
COLUMNS = "120"


@attrs.frozen
class CliRun:
    """What one call left, named like :class:`subprocess.CompletedProcess`."""

    returncode: int
    stdout: str
    stderr: str


def run_ktrdr(
    *args: str,
    env: Mapping[str, str | None] | None = None,
    input: str | None = None,
    fresh_plugins: bool = True,
) -> CliRun:
    """``ktrdr ARGS`` in-process; ``env`` values override (``None`` unsets) for this call only.

    ``fresh_plugins=False`` keeps the plugin manager the test has set up (modes it
    registered by hand); otherwise it is rebuilt from the entry points, as at start-up.
    """
    if fresh_plugins:
        reset_plugin_manager()
    runner = CliRunner()
    with runner.isolation(input=input, env={"COLUMNS": COLUMNS, **(env or {})}) as (out, err, _):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code
        else:  # main always exits; returning is a bug worth seeing
            code = "ktrdr's main returned instead of exiting"
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            if fresh_plugins:
                reset_plugin_manager()
    if code is None:
        code = 0
    if not isinstance(code, int):  # sys.exit("message"): Python prints it and exits 1
        err.write(f"{code}\n".encode())
        code = 1
    return CliRun(code, out.getvalue().decode(), err.getvalue().decode("utf-8", "backslashreplace"))
