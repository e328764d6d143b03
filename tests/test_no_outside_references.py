"""Nothing in the repository sends a reader to a document the repository lacks.

The design and the migration plan ktrdr was built from are not shipped, so a
message, comment or page that cites them ("DESIGN.md §5", "the migration
plan's Risk 1") leaves a user or plugin author with nowhere to look. Each
such place points at a page under docs/ (docs/contract.md for the contract)
instead; this test keeps it that way for every text file in the checkout.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# This file names the citations it looks for, so it is the one file not searched.
OUTSIDE = re.compile(
    "|".join(
        [
            r"DESIGN\.md",
            r"MIGRATION_PLAN",
            r"§",  # "§5" only ever meant a section of the design
            r"\bmigration[ -]plan\b",
            r"\bthe plan\b",
            r"\bplan's\b",
            r"\bRisk \d",
            r"\bplan step\b",
        ]
    ),
    re.IGNORECASE,
)

SKIPPED_DIRS = {
    ".git",
    ".venv",
    ".venv-tools",
    ".tox",
    "node_modules",
    "__pycache__",
    ".hypothesis",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    "build",
    "dist",
}


def text_files() -> list[Path]:
    found = []
    for path in ROOT.rglob("*"):
        relative = path.relative_to(ROOT)
        if any(part in SKIPPED_DIRS or part.endswith(".egg-info") for part in relative.parts):
            continue
        if path.is_file() and not path.is_symlink() and path != Path(__file__).resolve():
            found.append(path)
    return found


def read_text(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data[:4096]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def test_the_pattern_catches_the_old_citations() -> None:
    for text in (
        "see DESIGN.md §5",
        "the migration plan's Risk 1",
        "MIGRATION_PLAN.md",
        "as in the plan",
        "(Risk 5)",
    ):
        assert OUTSIDE.search(text), text
    for text in ("by design", "docs/contract.md, 'Results'", "the rollout's stages", "a planner"):
        assert not OUTSIDE.search(text), text


def test_no_file_cites_a_document_outside_the_repository() -> None:
    files = text_files()
    assert len(files) > 50, "the walk found too few files to be the checkout"
    hits = []
    for path in files:
        text = read_text(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            match = OUTSIDE.search(line)
            if match:
                hits.append(f"{path.relative_to(ROOT)}:{number}: {match.group(0)!r} in {line.strip()[:100]}")
    assert not hits, (
        "these lines cite a document that is not in the repository; point at a page "
        "under docs/ instead (docs/contract.md for the contract):\n" + "\n".join(hits)
    )
