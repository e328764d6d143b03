"""The pages the kit's messages point at exist, and docs/contract.md describes every capability flag.

A failure message that cites ``docs/PAGE.md#anchor`` must lead somewhere: the
page is in the repository and has a heading with that anchor (GitHub's rule:
lower case, punctuation dropped, spaces to hyphens).
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from ktrdr_core.testing import ExecutionModeContract
from ktrdr_core.testing.contract.capabilities import CAPABILITIES

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / "ktrdr_core" / "testing"
CITATION = re.compile(r"docs/([a-z_-]+\.md)(?:#([a-z0-9_-]+))?")


def anchors(page: Path) -> set[str]:
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", page.read_text(encoding="utf-8"), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def kit_citations() -> list[tuple[str, str, str | None]]:
    cited = []
    for source in sorted(KIT.rglob("*.py")):
        for page, anchor in CITATION.findall(source.read_text(encoding="utf-8")):
            cited.append((source.relative_to(ROOT).as_posix(), page, anchor or None))
    return cited


def test_the_kit_cites_pages_with_anchors() -> None:
    cited = kit_citations()
    assert len({(page, anchor) for _, page, anchor in cited if anchor}) >= 5


@pytest.mark.parametrize(("source", "page", "anchor"), kit_citations())
def test_each_page_the_kit_cites_exists_with_its_anchor(source: str, page: str, anchor: str | None) -> None:
    path = ROOT / "docs" / page
    assert path.is_file(), f"{source} cites docs/{page}, which is not in the repository"
    if anchor is not None:
        assert anchor in anchors(path), f"{source} cites docs/{page}#{anchor}: no such heading"


def checks_of(flag: str) -> set[str]:
    """The checks whose body runs under ``self.capability(flag)``."""
    return {
        name
        for name in dir(ExecutionModeContract)
        if name.startswith("test_")
        and f'self.capability("{flag}")' in inspect.getsource(getattr(ExecutionModeContract, name))
    }


def capability_section(name: str) -> str:
    text = (ROOT / "docs" / "contract.md").read_text(encoding="utf-8")
    match = re.search(rf"^### `{name}`\n(.*?)(?=^##|\Z)", text, re.S | re.M)
    assert match, f"docs/contract.md has no '### `{name}`' heading under Capabilities"
    return match.group(1)


@pytest.mark.parametrize("name", sorted(CAPABILITIES))
def test_each_capability_is_documented_with_its_default_and_checks(name: str) -> None:
    capability = CAPABILITIES[name]
    assert getattr(ExecutionModeContract, name) is capability.default
    text = capability_section(name)
    assert f"Default `{capability.default}`." in text
    documented = set(re.findall(r"`(test_[a-z_]+)`", text.split("Checked by", 1)[-1]))
    assert documented == checks_of(name), f"docs/contract.md#{name} lists the wrong checks"


def test_every_flag_on_the_class_is_a_documented_capability() -> None:
    flags = {
        name
        for klass in ExecutionModeContract.__mro__
        for name, value in vars(klass).items()
        if isinstance(value, bool) and not name.startswith("_")
    }
    assert flags - {"derandomize"} == set(CAPABILITIES)
