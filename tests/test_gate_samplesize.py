"""The runbook's table of runs each gate needs is the one the statistics give."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ktrdr_core.rollout.confidence import judge_rate
from ktrdr_core.rollout.samplesize import runs_per_side_for_ratio, table

RUNBOOK = Path(__file__).resolve().parents[1] / "docs" / "runbook.md"


def test_runbook_table_is_the_computed_one() -> None:
    text = RUNBOOK.read_text()
    found = re.search(r"<!-- samplesize:begin -->\n(.*?)\n<!-- samplesize:end -->", text, re.S)
    assert found, "docs/runbook.md lost its sample-size table markers"
    assert found[1] == table(), "rerun `python -m ktrdr_core.rollout.samplesize` into docs/runbook.md"


@pytest.mark.parametrize("limit", [0.05, 0.01, 0.005, 0.001])
def test_runs_to_pass_at_zero_errors_is_the_first_sample_that_passes(limit: float) -> None:
    rows = {row.split(" | ")[0].strip("| "): row for row in table().splitlines()[2:]}
    stage = {0.05: "off", 0.01: "canary", 0.005: "expanded", 0.001: "full"}[limit]
    needed = int(rows[stage].split(" | ")[2])
    assert judge_rate(0, needed, limit).verdict == "PASS"
    assert judge_rate(0, needed - 1, limit).verdict == "UNDECIDED"


def test_ratio_sample_size_grows_with_noise_and_shrinks_with_room() -> None:
    assert runs_per_side_for_ratio(1.10, sigma=0.10) > runs_per_side_for_ratio(1.10, sigma=0.05)
    assert runs_per_side_for_ratio(1.02, sigma=0.05) > runs_per_side_for_ratio(1.10, sigma=0.05)
    assert runs_per_side_for_ratio(1.10, ratio=1.2, sigma=0.05) is None
