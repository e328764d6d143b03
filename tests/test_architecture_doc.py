"""docs/architecture.md stays true: every part of ktrdr_core is in its table, and everything it names exists."""

from __future__ import annotations

import re
from pathlib import Path

import ktrdr_core

PACKAGE = Path(ktrdr_core.__file__).resolve().parent
DOC = PACKAGE.parent / "docs" / "architecture.md"


def parts_table() -> str:
    text = DOC.read_text(encoding="utf-8")
    return text.split("## The parts", 1)[1].split("\n## ", 1)[0]


def named(table: str) -> set[str]:
    """Every `name.py`, `dir/` or `dir/name.py` the table names (relative to ktrdr_core/)."""
    found = set(re.findall(r"`([A-Za-z_][\w/]*(?:\.py|/))`", table))
    return {name.removeprefix("ktrdr_core/") for name in found} - {""}


def test_every_module_and_subpackage_is_in_the_table() -> None:
    table = named(parts_table())
    modules = {path.name for path in PACKAGE.glob("*.py")} - {"__init__.py"}
    packages = {f"{path.name}/" for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    missing = sorted((modules | packages) - table)
    assert not missing, f"docs/architecture.md does not say where these are: {missing}"


def test_everything_the_table_names_exists() -> None:
    gone = sorted(name for name in named(parts_table()) if not (PACKAGE / name).exists())
    assert not gone, f"docs/architecture.md names what is not in ktrdr_core: {gone}"


def test_the_table_reader_sees_files_folders_and_paths() -> None:
    assert named("| `a.py`, `sub/` | x |\n| `sub/b.py`, `ktrdr_core/c.py` | y (`not a path`) |") == {
        "a.py",
        "sub/",
        "sub/b.py",
        "c.py",
    }
