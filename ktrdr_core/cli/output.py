"""Small helpers shared by the CLI commands."""

from __future__ import annotations

import json
from typing import Any

import click


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout (machine-readable output)."""
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
