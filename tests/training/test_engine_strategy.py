"""Strategy files: name-only resolution and validation naming the file and the key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ktrdr_core.errors import BadInputError
from ktrdr_core.training.strategy import (
    StrategyConfig,
    list_strategies,
    load_strategy,
    parse_strategy,
    resolve_strategy_path,
)


def test_builtins_load_as_frozen_attrs() -> None:
    config = load_strategy("neuro_mean_reversion")
    assert isinstance(config, StrategyConfig)
    assert config.model.hidden_layers == (50, 25) and config.model.dropout == 0.2
    # old native names map onto the registry: the type, and the output a bare feature_id means
    assert [(i.name, i.output) for i in config.indicators] == [
        ("rsi", None),
        ("macd", "histogram"),
        ("bollinger_bands", "percent_b"),
    ]
    with pytest.raises(AttributeError):
        config.name = "other"  # type: ignore[misc]
    trend = load_strategy("trend_momentum")
    assert trend.training_data.timeframes == ("1h",)
    # to_dict round-trips through the validator
    from ktrdr_core.training.strategy import parse_strategy

    again = parse_strategy(config.to_dict() | {"fuzzy_sets": _inf_back(config.to_dict())}, "roundtrip")
    assert again == config


def _inf_back(data: dict[str, Any]) -> dict[str, Any]:
    def fix(v: Any) -> Any:
        return float(v) if isinstance(v, str) else v

    return {
        fid: {
            name: {"type": s["type"], "parameters": [fix(p) for p in s["parameters"]]}
            for name, s in sets.items()
        }
        for fid, sets in data["fuzzy_sets"].items()
    }


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/b", "x.yaml", "", "-x", "a b"])
def test_paths_and_odd_names_are_refused(name: str) -> None:
    with pytest.raises(BadInputError, match="invalid strategy name"):
        load_strategy(name)


def test_unknown_name_lists_what_exists() -> None:
    with pytest.raises(BadInputError, match="unknown strategy 'nope'.*neuro_mean_reversion"):
        resolve_strategy_path("nope")


def test_strategies_dir_wins_over_builtin(write_strategy: Callable[..., Path]) -> None:
    path = write_strategy("neuro_mean_reversion", edit=lambda raw: raw.update(description="mine"))
    assert resolve_strategy_path("neuro_mean_reversion") == path
    assert load_strategy("neuro_mean_reversion").description == "mine"


def _set(raw: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    for key in keys[:-1]:
        raw = raw[key]
    raw[keys[-1]] = value


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("model.architecture.dropout", 1.5, "model.architecture.dropout must be between 0 and 1"),
        ("model.architecture.hidden_layers", [50, 0], r"hidden_layers\[1\] must be at least 1"),
        ("model.architecture.activation", "swish", "activation must be one of"),
        ("model.training.batch_size", "big", "model.training.batch_size must be an integer"),
        ("model.training.learning_rate", -1, "learning_rate must be between 0 and 10"),
        ("model.training.early_stopping.monitor", "loss", "early_stopping.monitor must be one of"),
        ("model.type", "lstm", "model.type must be one of mlp"),
        ("training.labels.zigzag_threshold", 2, "zigzag_threshold must be between 0 and 1"),
        ("training.data_split.train", 0.9, "training.data_split fractions must add up to 1"),
        ("training_data.symbols", ["A/B"], r"training_data.symbols\[0\] is not a valid symbol"),
        ("training_data.timeframes", [], "training_data.timeframes must be a non-empty list"),
        (
            "fuzzy_sets.rsi.neutral",
            {"type": "triangular", "parameters": [1, 2]},
            r"fuzzy_sets.rsi.neutral.parameters must be a list of 3 numbers",
        ),
        (
            "fuzzy_sets.rsi.neutral",
            {"type": "triangular", "parameters": [3, 2, 1]},
            "must be in ascending order",
        ),
        ("fuzzy_sets.rsi.neutral", {"type": "gaussian", "parameters": [0, 0]}, "sigma > 0"),
        (
            "fuzzy_sets.rsi.neutral",
            {"type": "blob", "parameters": [0, 1]},
            "fuzzy_sets.rsi.neutral.type must be one of",
        ),
        (
            "fuzzy_sets.volume",
            {"high": {"type": "gaussian", "parameters": [0, 1]}},
            "fuzzy_sets.volume names no indicator",
        ),
        ("name", "other", "name is 'other' but the file is named 'bad'"),
    ],
)
def test_schema_errors_name_file_and_key(
    write_strategy: Callable[..., Path], key: str, value: Any, message: str
) -> None:
    path = write_strategy("bad", edit=lambda raw: _set(raw, key, value))
    with pytest.raises(BadInputError, match=message) as err:
        load_strategy("bad")
    assert str(err.value).startswith(f"{path}: ")


def test_indicator_errors(write_strategy: Callable[..., Path]) -> None:
    def edit(raw: dict[str, Any]) -> None:
        raw["indicators"][0]["period"] = 0

    write_strategy("bad", edit=edit)
    with pytest.raises(BadInputError, match=r"indicators\[0\] \(rsi\): period must be at least 2, got 0"):
        load_strategy("bad")

    def edit2(raw: dict[str, Any]) -> None:
        raw["indicators"][1]["params"]["wobble"] = 3

    write_strategy("bad", edit=edit2)
    with pytest.raises(
        BadInputError,
        match=r"indicators\[1\] \(macd\): wobble is not a parameter "
        r"of macd \(parameters: fast_period, slow_period",
    ):
        load_strategy("bad")

    def edit3(raw: dict[str, Any]) -> None:
        del raw["fuzzy_sets"]["rsi"]

    write_strategy("bad", edit=edit3)
    with pytest.raises(BadInputError, match="fuzzy_sets has no sets for indicator 'rsi'"):
        load_strategy("bad")


def test_indicator_parameters_report_every_problem(write_strategy: Callable[..., Path]) -> None:
    def edit(raw: dict[str, Any]) -> None:
        raw["indicators"][1]["params"].update(fast_period=40, signal_period=0, colour="red")

    write_strategy("bad", edit=edit)
    with pytest.raises(BadInputError) as err:
        load_strategy("bad")
    message = str(err.value)
    assert "indicators[1] (macd): " in message
    assert "signal_period must be at least 1, got 0" in message
    assert "colour is not a parameter of macd" in message
    assert "\n" not in message


def test_unknown_indicator_type_lists_the_known_ones(write_strategy: Callable[..., Path]) -> None:
    def edit(raw: dict[str, Any]) -> None:
        raw["indicators"][0]["name"] = "rsx"

    write_strategy("bad", edit=edit)
    with pytest.raises(
        BadInputError,
        match=r"indicators\[0\].name unknown indicator type 'rsx' "
        r"\(known: ad_line, adx, ",
    ):
        load_strategy("bad")


def test_fuzzy_sets_reference_indicator_outputs(write_strategy: Callable[..., Path]) -> None:
    """Several keys may read one indicator: ``ID`` (its primary) and ``ID.OUTPUT``."""
    low_high = {
        "low": {"type": "triangular", "parameters": [0, 15, 30]},
        "high": {"type": "trapezoidal", "parameters": [20, 40, ".inf", ".inf"]},
    }

    def edit(raw: dict[str, Any]) -> None:
        raw["indicators"] = [
            {"name": "ADX", "feature_id": "adx_14", "period": 14},
            {"name": "BollingerBands", "feature_id": "bb", "params": {"multiplier": 2.5}},
        ]
        raw["fuzzy_sets"] = {
            "adx_14.plus_di": low_high,
            "adx_14": low_high,
            "bb.percent_b": {"in": {"type": "gaussian", "parameters": [0.5, 0.3]}},
            "adx_14.minus_di": low_high,
        }

    path = write_strategy("refs", edit=edit)
    text = path.read_text().replace("'.inf'", ".inf")
    path.write_text(text)
    config = load_strategy("refs")
    assert [i.name for i in config.indicators] == ["adx", "bollinger_bands"]
    assert config.indicators[1].params["multiplier"] == 2.5
    # grouped by indicator, in file order within one
    assert list(config.fuzzy_sets) == ["adx_14.plus_di", "adx_14", "adx_14.minus_di", "bb.percent_b"]
    again = parse_strategy(config.to_dict() | {"fuzzy_sets": _inf_back(config.to_dict())}, "again")
    assert again.indicators == config.indicators and list(again.fuzzy_sets) == list(config.fuzzy_sets)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (
            "adx_14.plus",
            r"fuzzy_sets.adx_14.plus names no indicator output \(adx_14's references: "
            r"adx_14, adx_14.adx, adx_14.plus_di, adx_14.minus_di\)",
        ),
        ("rsi.rsi.x", r"fuzzy_sets.rsi.rsi.x names no indicator output"),
        ("volume", r"fuzzy_sets.volume names no indicator output \(feature_ids: adx_14"),
    ],
)
def test_bad_fuzzy_references(write_strategy: Callable[..., Path], key: str, message: str) -> None:
    def edit(raw: dict[str, Any]) -> None:
        raw["indicators"].append({"name": "adx", "feature_id": "adx_14"})
        raw["fuzzy_sets"]["adx_14"] = {"weak": {"type": "gaussian", "parameters": [10, 5]}}
        raw["fuzzy_sets"][key] = {"weak": {"type": "gaussian", "parameters": [10, 5]}}

    write_strategy("bad", edit=edit)
    with pytest.raises(BadInputError, match=message):
        load_strategy("bad")


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("top", "unknown key 'colour'"),
        ("model", "unknown key 'model.colour'"),
        ("early", "unknown key 'model.training.early_stopping.colour'"),
        ("indicator", r"unknown key 'indicators\[0\].colour'"),
    ],
)
def test_unknown_keys_are_errors(write_strategy: Callable[..., Path], where: str, message: str) -> None:
    def edit(raw: dict[str, Any]) -> None:
        target = {
            "top": raw,
            "model": raw["model"],
            "early": raw["model"]["training"]["early_stopping"],
            "indicator": raw["indicators"][0],
        }[where]
        target["colour"] = "blue"

    path = write_strategy("typo", edit=edit)
    with pytest.raises(BadInputError, match=message) as err:
        load_strategy("typo")
    assert str(path) in str(err.value)


def test_malformed_yaml_names_file_and_line(write_strategy: Callable[..., Path]) -> None:
    path = write_strategy("broken", text="name: broken\ndescription: x\nmodel: [1, 2\n")
    with pytest.raises(BadInputError, match=r"line \d+, column \d+: invalid YAML") as err:
        load_strategy("broken")
    assert str(path) in str(err.value)


def test_duplicate_keys_are_errors(write_strategy: Callable[..., Path]) -> None:
    write_strategy("dup", text="name: dup\nname: dup\n")
    with pytest.raises(BadInputError, match=r"line 2, column 1: invalid YAML: duplicate key"):
        load_strategy("dup")


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("name: odd\n? [a, b]\n: 1\n", r"line 2, column 3: invalid YAML: found unhashable key"),
        ("name: odd\nx: " + "[" * 3000 + "]" * 3000 + "\n", "invalid YAML: nested too deeply"),
        ("name: odd\nx: a\x00b\n", r"character 15: invalid YAML: unacceptable character #x0000"),
        ("name: odd\nx: [1\n", r"line 3, column 1: invalid YAML: expected ',' or ']'"),
    ],
)
def test_bad_yaml_is_one_line_bad_input(write_strategy: Callable[..., Path], text: str, pattern: str) -> None:
    path = write_strategy("odd", text=text)
    with pytest.raises(BadInputError, match=pattern) as err:
        load_strategy("odd")
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message


def test_bad_yaml_exits_2_with_one_line(
    write_strategy: Callable[..., Path], ktrdr_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ktrdr_core.cli.main import main

    write_strategy("odd", text="name: odd\n? [a, b]\n: 1\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "odd", "--no-progress"])
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "found unhashable key" in errors[0]


@pytest.mark.parametrize(
    ("where", "value", "pattern"),
    [
        ("name", "odd\n", "name must match"),
        ("training_data.symbols", ["SYNTH_A\n"], r"symbols\[0\] is not a valid symbol"),
        ("training_data.timeframes", ["1h\n"], r"timeframes\[0\] is not a valid timeframe"),
    ],
)
def test_names_with_a_trailing_newline_are_refused(
    write_strategy: Callable[..., Path], where: str, value: Any, pattern: str
) -> None:
    write_strategy("odd", edit=lambda raw: _set(raw, where, value))
    with pytest.raises(BadInputError, match=pattern):
        load_strategy("odd")


def test_not_a_mapping(write_strategy: Callable[..., Path]) -> None:
    write_strategy("list", text="- 1\n- 2\n")
    with pytest.raises(BadInputError, match="must be a mapping of keys"):
        load_strategy("list")


def test_list_strategies_reports_broken_files(
    write_strategy: Callable[..., Path], strategies_dir: Path
) -> None:
    write_strategy("good")
    write_strategy("broken", text="name: [\n")
    (strategies_dir / "bad name.yaml").write_text("name: x\n")
    rows = {(row.name, row.source): row for row in list_strategies()}
    assert rows[("good", str(strategies_dir / "good.yaml"))].error is None
    assert "invalid YAML" in rows[("broken", str(strategies_dir / "broken.yaml"))].error
    assert "not a valid strategy name" in rows[("bad name", str(strategies_dir / "bad name.yaml"))].error
    builtin = rows[("neuro_mean_reversion", "built-in")]
    assert builtin.active and builtin.symbols == ("SYNTH_A", "SYNTH_B", "SYNTH_C")


@pytest.mark.parametrize(
    ("parameters", "ok"),
    [
        ([float("-inf"), float("-inf"), 0, 1], True),
        ([0, 1, float("inf"), float("inf")], True),
        ([float("-inf"), 0, 1, 2], False),  # a sloped side cannot start at infinity
        ([0, 1, 2, float("inf")], False),
        ([float("-inf"), float("-inf"), float("inf"), float("inf")], False),  # 1 everywhere
    ],
)
def test_trapezoid_infinities_only_as_one_shoulder(
    write_strategy: Callable[..., Path], parameters: list[float], ok: bool
) -> None:
    write_strategy(
        "inf",
        edit=lambda raw: _set(
            raw, "fuzzy_sets.rsi.neutral", {"type": "trapezoidal", "parameters": parameters}
        ),
    )
    if ok:
        sets = load_strategy("inf").fuzzy_sets["rsi"]
        assert next(s for s in sets if s.name == "neutral").parameters == tuple(parameters)
    else:
        with pytest.raises(BadInputError, match="infinities only as one shoulder"):
            load_strategy("inf")


def test_early_stopping_shorthand_and_defaults(write_strategy: Callable[..., Path]) -> None:
    def edit(raw: dict[str, Any]) -> None:
        raw["model"]["training"] = {"early_stopping": False}
        del raw["training"]

    write_strategy("short", edit=edit)
    config = load_strategy("short")
    assert config.model.training.early_stopping.enabled is False
    assert config.model.training.epochs == 100 and config.labels.label_lookahead == 20
    assert (config.data_split.train, config.data_split.method) == (0.7, "chronological")


def test_params_output_picks_what_a_bare_id_means(write_strategy: Callable[..., Path]) -> None:
    def edit(raw: dict[str, Any]) -> None:
        raw["indicators"][1]["params"].pop("output")  # macd without output: its histogram, as before
        raw["indicators"][2] = {
            "name": "bollinger_percent_b",
            "feature_id": "bb_pct_b",
            "period": 20,
            "params": {"num_std": 2.5},
        }
        raw["indicators"].append({"name": "stochastic", "feature_id": "stoch", "params": {"output": "d"}})
        raw["fuzzy_sets"]["stoch"] = {"mid": {"type": "gaussian", "parameters": [50, 20]}}

    write_strategy("outputs", edit=edit)
    config = load_strategy("outputs")
    macd, bb, stoch = config.indicators[1:]
    assert (macd.name, macd.output) == ("macd", "histogram")
    assert (bb.name, bb.output, bb.params["multiplier"]) == ("bollinger_bands", "percent_b", 2.5)
    assert (stoch.name, stoch.output) == ("stochastic", "d")

    def bad(raw: dict[str, Any]) -> None:
        raw["indicators"][0]["params"] = {"output": "value"}

    write_strategy("outputs", edit=bad)
    with pytest.raises(
        BadInputError,
        match=r"indicators\[0\] \(rsi\): params.output must be one of "
        r"rsi, got 'value'",
    ):
        load_strategy("outputs")
