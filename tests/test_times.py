"""One ISO date/time rule and one stage list, and every face that reads them agreeing."""

from __future__ import annotations

import datetime as dt
import typing

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from ktrdr_core.errors import BadInputError
from ktrdr_core.ledger.times import parse_audit_timestamp, parse_since
from ktrdr_core.rollout.gates import NEXT_STAGE
from ktrdr_core.rollout.settings import STAGES, StageName
from ktrdr_core.service.models import RolloutUpdate, TrainingCreate
from ktrdr_core.times import ISO_FORMS, parse_iso, try_parse_iso
from ktrdr_core.training.data import parse_date_bound

UTC = dt.timezone.utc
ACCEPTED = {
    "2023-03-01": dt.datetime(2023, 3, 1, tzinfo=UTC),
    "2023-03-01T12:00": dt.datetime(2023, 3, 1, 12, tzinfo=UTC),
    "2023-03-01T12:00:30": dt.datetime(2023, 3, 1, 12, 0, 30, tzinfo=UTC),
    "2023-03-01T12:00:00Z": dt.datetime(2023, 3, 1, 12, tzinfo=UTC),
    "2023-03-01T12:00Z": dt.datetime(2023, 3, 1, 12, tzinfo=UTC),
    "2023-03-01T13:00:00+01:00": dt.datetime(2023, 3, 1, 12, tzinfo=UTC),
    "2023-03-01T07:00-0500": dt.datetime(2023, 3, 1, 12, tzinfo=UTC),
    "2023-03-01 12:00:00": dt.datetime(2023, 3, 1, 12, tzinfo=UTC),
    "2023-03-01T12:00:00.250000+00:00": dt.datetime(2023, 3, 1, 12, 0, 0, 250000, tzinfo=UTC),
}
REFUSED = [
    "yesterday",
    "2023-02-30",
    "2023-13-01",
    "2023W01",
    "20230301",
    "2023-03-01T25:00",
    "2023-3-1",
    "",
    "2023-03-01T12",
]


@pytest.mark.parametrize(("text", "moment"), ACCEPTED.items())
def test_the_accepted_forms(text: str, moment: dt.datetime) -> None:
    assert parse_iso(text) == moment
    assert parse_iso(text).tzinfo == UTC


@pytest.mark.parametrize("text", REFUSED)
def test_everything_else_is_one_message(text: str) -> None:
    with pytest.raises(BadInputError) as caught:
        parse_iso(text, what="start_date")
    assert str(caught.value) == f"start_date must be {ISO_FORMS}; got {text!r}"


def test_a_bare_end_date_includes_the_whole_day() -> None:
    assert parse_iso("2023-03-01", end_of_day=True) == dt.datetime(2023, 3, 1, 23, 59, 59, tzinfo=UTC)
    assert parse_iso("2023-03-01T06:00", end_of_day=True) == dt.datetime(2023, 3, 1, 6, tzinfo=UTC)


@pytest.mark.parametrize("text", [*ACCEPTED, *REFUSED])
def test_engine_http_api_and_ledger_judge_a_date_alike(text: str) -> None:
    """The engine's start/end, the HTTP body's start_date and ``ktrdr runs --since`` accept the same."""
    expected = try_parse_iso(text)
    try:
        engine = parse_date_bound(text, what="start_date")
    except BadInputError:
        engine = None
    try:
        TrainingCreate(strategy="s", start_date=text)
        api = True
    except ValidationError as exc:
        api = False
        assert ISO_FORMS in str(exc)
    try:
        since: float | None = parse_since(text)
    except BadInputError as exc:
        since = None
        assert ISO_FORMS in str(exc)
    if expected is None and text == "":
        return  # an empty bound means "no bound" to the engine, and the API allows no empty string either
    assert api == (expected is not None)
    assert (engine is not None) == (expected is not None)
    assert (since is not None) == (expected is not None)
    if expected is not None:
        assert since == expected.timestamp() and int(engine.astype("int64")) == int(expected.timestamp())  # type: ignore[union-attr]


def test_the_z_form_the_messages_suggest_is_accepted_everywhere() -> None:
    text = "2023-03-01T12:00:00Z"
    assert text in ISO_FORMS
    assert parse_date_bound(text) is not None
    assert TrainingCreate(strategy="s", start_date=text).start_date == text
    assert (
        parse_since(text)
        == parse_audit_timestamp(text)
        == dt.datetime(2023, 3, 1, 12, tzinfo=UTC).timestamp()
    )


def test_an_api_range_ending_on_a_bare_date_includes_that_day() -> None:
    """As the engine reads it: an end of 2023-03-01 is that whole day, so a start at noon is before it."""
    TrainingCreate(strategy="s", start_date="2023-03-01T12:00", end_date="2023-03-01")
    with pytest.raises(ValidationError, match="start_date is after end_date"):
        TrainingCreate(strategy="s", start_date="2023-03-02", end_date="2023-03-01")


@given(st.text(max_size=30))
def test_any_text_parses_or_gets_the_one_message(text: str) -> None:
    try:
        moment = parse_iso(text, what="end_date")
    except BadInputError as exc:
        assert str(exc).startswith(f"end_date must be {ISO_FORMS}")
    else:
        assert moment.tzinfo == UTC


# -- the stage list ------------------------------------------------------------------------------


def test_one_stage_list() -> None:
    assert typing.get_args(StageName) == tuple(STAGES) == ("off", "canary", "expanded", "full")
    assert list(NEXT_STAGE.items()) == [
        ("off", "canary"),
        ("canary", "expanded"),
        ("expanded", "full"),
        ("full", None),
    ]
    schema = RolloutUpdate.model_json_schema()
    stage = schema["properties"]["stage"]
    assert tuple(stage["anyOf"][0]["enum"]) == tuple(STAGES)
    assert stage["description"] == "off (0 %, disabled), canary (10 %), expanded (50 %), full (100 %)"


def test_the_cli_offers_the_same_stages() -> None:
    from ktrdr_core.cli.rollout import set_stage

    choice = next(param for param in set_stage.params if param.name == "name")
    assert tuple(choice.type.choices) == tuple(STAGES)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["train", "neuro_mean_reversion", "--start", "soon"], "--start"),
        (["train", "neuro_mean_reversion", "--end", "2023-02-30"], "--end"),
        (["compare", "neuro_mean_reversion", "--start", "20230301"], "--start"),
        (["runs", "--since", "2023W01"], "--since"),
    ],
)
def test_the_cli_refuses_a_bad_date_in_one_line_before_training(
    argv: list[str], option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from ktrdr_core.cli.main import main

    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ktrdr: error: {option} must be {ISO_FORMS}") and err.count("\n") == 1


def test_the_http_api_says_what_is_accepted_without_echoing_the_value() -> None:
    with pytest.raises(ValidationError) as caught:
        TrainingCreate(strategy="s", start_date="QQQQ-01-01")
    message = caught.value.errors()[0]["msg"]
    assert message == f"Value error, start_date must be {ISO_FORMS}"  # the value itself is not repeated
