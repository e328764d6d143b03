"""docs/plugin-authors.md lists every hook, links the hook reference, and matches the kit."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from ktrdr_core import hookspecs
from ktrdr_core.testing import ExecutionModeContract

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "plugin-authors.md"


def hook_names() -> list[str]:
    return [
        name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "ktrdr_spec")
    ]


def test_every_hook_is_in_the_guides_hook_list_with_its_parameters() -> None:
    section = GUIDE.read_text().split("## The hooks", 1)[1]
    for name in hook_names():
        parameters = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"`{name}({parameters})`" in section, f"docs/plugin-authors.md: the hook list lacks {name}"


def test_the_guide_links_the_hook_reference_and_the_example() -> None:
    text = GUIDE.read_text()
    assert "](hooks.md)" in text
    assert "examples/ktrdr-mode-example" in text
    assert (ROOT / "examples" / "ktrdr-mode-example" / "tests" / "test_contract.py").is_file()


def test_every_contract_check_is_in_the_guides_table() -> None:
    text = GUIDE.read_text()
    checks = [name for name in dir(ExecutionModeContract) if name.startswith("test_")]
    assert len(checks) >= 11
    for name in checks:
        assert f"| `{name}` |" in text, f"docs/plugin-authors.md does not describe {name}"


def test_every_tuning_attribute_named_in_the_guide_exists() -> None:
    table = GUIDE.read_text().split("Tune the suite with class attributes", 1)[1].split("\n\n", 2)[1]
    for name in re.findall(r"`([a-z_]+)`", table):
        if name in {"neuro_mean_reversion", "epochs", "seed", "home"}:
            continue
        assert hasattr(ExecutionModeContract, name), (
            f"docs name a tuning attribute {name!r} that does not exist"
        )
