"""Every hook in the spec module is documented in docs/hooks.md, with its signature."""

from __future__ import annotations

import inspect
from pathlib import Path

from ktrdr_core import hookspecs

DOCS = Path(__file__).resolve().parent.parent / "docs" / "hooks.md"


def hook_names() -> list[str]:
    return [
        name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "ktrdr_spec")
    ]


def test_there_are_the_five_hook_kinds() -> None:
    assert set(hook_names()) == {
        "register_execution_modes",
        "progress_sinks",
        "cancellation_sources",
        "select_mode",
        "training_started",
        "training_finished",
        "register_indicators",
    }


def test_every_hook_has_a_docstring() -> None:
    for name in hook_names():
        assert inspect.getdoc(getattr(hookspecs, name)), f"hook {name} has no docstring"


def test_every_hook_is_documented_with_its_parameters() -> None:
    text = DOCS.read_text()
    for name in hook_names():
        heading = f"### `{name}("
        assert heading in text, f"docs/hooks.md lacks a section for hook {name}"
        section = text.split(heading, 1)[1].split("\n### ", 1)[0]
        for parameter in inspect.signature(getattr(hookspecs, name)).parameters:
            assert parameter in section, f"docs/hooks.md: {name} does not mention {parameter!r}"
