"""docs/contract.md states the code's own constants: this keeps the two in step.

Each table of the page is read back and compared with the constant it names,
so a key added to the code without the doc (or the other way) fails here.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest

from ktrdr_core import errors
from ktrdr_core.cancellation import CANCELLATION_BOUND_SECONDS
from ktrdr_core.ledger.store import STATUSES as LEDGER_STATUSES
from ktrdr_core.result import RESULT_KEYS, Status, TrainingResult
from ktrdr_core.service.models import TrainingStatus
from ktrdr_core.service.sessions import STATUS_FOR_RESULT
from ktrdr_core.testing import ExecutionModeContract
from ktrdr_core.testing.checks import (
    METADATA_KEYS,
    PROGRESS_KEYS,
    PROGRESS_TYPES,
    TEST_METRIC_KEYS,
    TRAINING_METRIC_KEYS,
)

DOC = Path(__file__).resolve().parents[1] / "docs" / "contract.md"


def section(title: str) -> str:
    """The text under the ``## title`` heading, up to the next ``## `` heading."""
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"docs/contract.md has no '## {title}' section"
    return match.group(1)


def table_rows(text: str) -> list[list[str]]:
    """The body rows of the markdown tables in ``text``, as lists of cells."""
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.strip().startswith("|")
    ]
    return [row for row in rows if not all(set(cell) <= set("-: ") for cell in row)][1:] if rows else []


def names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_result_keys_are_to_dict_keys() -> None:
    documented = [names(row[0])[0] for row in table_rows(section("Results").split("A successful")[0])]
    assert documented == list(TrainingResult(success=True).to_dict())
    assert set(RESULT_KEYS) <= set(documented)


def test_result_section_keys() -> None:
    rows = {
        names(row[0])[0]: names(row[1]) for row in table_rows(section("Results").split("A successful")[1])
    }
    assert rows == {
        "training_metrics": list(TRAINING_METRIC_KEYS),
        "test_metrics": list(TEST_METRIC_KEYS),
        "metadata": list(METADATA_KEYS),
    }


def test_progress_types_and_keys() -> None:
    text = section("Progress updates")
    tables = text.split("The keys each kind")
    assert [names(row[0])[0] for row in table_rows(tables[0])] == list(PROGRESS_TYPES)
    rows = table_rows(tables[1])
    for kind, column in (("batch", 1), ("epoch", 2)):
        documented = [names(row[0])[0] for row in rows if row[column] == "yes"]
        assert documented == list(PROGRESS_KEYS[kind]), kind


def test_cancellation_bound() -> None:
    bound_ms = round(CANCELLATION_BOUND_SECONDS * 1000)
    assert ExecutionModeContract.cancellation_bound_seconds == CANCELLATION_BOUND_SECONDS
    text = section("Cancellation")
    assert f"**{bound_ms} ms**" in text
    assert f"**95th percentile of {ExecutionModeContract.cancel_samples} cancels**" in text


def test_statuses() -> None:
    rows = table_rows(section("Statuses"))
    result_col = [name for row in rows for name in names(row[0])]
    ledger_col = [name for row in rows for name in names(row[1])]
    service_col = [name for row in rows for name in names(row[2])]
    assert result_col == list(typing.get_args(Status))
    assert sorted(ledger_col) == sorted(LEDGER_STATUSES)
    assert sorted(service_col) == sorted(typing.get_args(TrainingStatus))
    for row in rows:
        if names(row[0]):
            assert names(row[2]) == [STATUS_FOR_RESULT[names(row[0])[0]]]


def _error_classes() -> list[type[errors.KtrdrError]]:
    found: list[type[errors.KtrdrError]] = [errors.KtrdrError]
    for cls in found:
        found.extend(cls.__subclasses__())
    return [cls for cls in found if cls.__module__ == errors.__name__]


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda cls: cls.__name__)
def test_each_error_is_listed_under_its_exit_code(cls: type[errors.KtrdrError]) -> None:
    codes = {int(row[0]): names(row[2]) for row in table_rows(section("Exit codes"))}
    assert cls.__name__ in codes.get(cls.exit_code, []), (
        f"docs/contract.md must list {cls.__name__} under exit code {cls.exit_code}"
    )


def test_exit_codes_are_the_cli_ones() -> None:
    codes = [int(row[0]) for row in table_rows(section("Exit codes"))]
    assert codes == [0, 1, 2, 130]
