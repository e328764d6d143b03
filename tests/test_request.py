"""Strategy names (docs/engine.md): names only, never paths; and the request's round trip."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ktrdr_core import BadInputError, TrainingRequest
from ktrdr_core.request import check_strategy_name

DESIGN_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


@pytest.mark.parametrize(
    "name", ["../x", "/etc/passwd", "a/b", "", "-x", "_x", "x.yaml", "neuro_mean_reversion\n", "a b", "x\x00"]
)
def test_paths_and_near_misses_are_refused(name: str) -> None:
    with pytest.raises(BadInputError, match="invalid strategy name"):
        check_strategy_name(name)


@given(st.text(max_size=20))
def test_accepted_exactly_when_the_whole_name_matches(name: str) -> None:
    if DESIGN_PATTERN.fullmatch(name):
        assert check_strategy_name(name) == name
    else:
        with pytest.raises(BadInputError):
            check_strategy_name(name)


def test_request_round_trip_and_unknown_fields() -> None:
    request = TrainingRequest(strategy="s", user_id="alice", symbols="A, B", overrides={"epochs": 2})
    assert request.symbols == ("A", "B")
    assert TrainingRequest.from_dict(request.to_dict()) == request
    with pytest.raises(BadInputError, match="colour"):
        TrainingRequest.from_dict({**request.to_dict(), "colour": "red"})


@pytest.mark.parametrize("name", ["a" * 129, "x" * 5000])
def test_too_long_names_are_refused_in_one_short_line(name: str) -> None:
    with pytest.raises(BadInputError) as info:
        check_strategy_name(name)
    message = str(info.value)
    assert "at most 128 characters" in message and f"({len(name)} characters)" in message
    assert "\n" not in message and len(message) < 200


def test_longest_allowed_name_is_accepted() -> None:
    assert check_strategy_name("a" * 128) == "a" * 128


SYMBOLS = ["EURUSD", "BRK.B", "^GSPC", "EURUSD=X", "SYNTH_A", "../x", "a/b", "", ".hidden", "A B", "x\n"]


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_the_engine_and_the_http_api_judge_a_symbol_alike(symbol: str) -> None:
    """One symbol rule: what the engine trains on, the API accepts, and nothing else."""
    from pydantic import ValidationError

    from ktrdr_core.request import SYMBOL_PATTERN
    from ktrdr_core.service.models import TrainingCreate
    from ktrdr_core.training.pipeline import _checked_names

    try:
        _checked_names([symbol], SYMBOL_PATTERN, "symbol")
        engine_accepts = True
    except BadInputError:
        engine_accepts = False
    try:
        TrainingCreate(strategy="s", symbols=[symbol])
        api_accepts = True
    except ValidationError:
        api_accepts = False
    assert engine_accepts == api_accepts
    assert engine_accepts == (symbol in {"EURUSD", "BRK.B", "^GSPC", "EURUSD=X", "SYNTH_A"})
