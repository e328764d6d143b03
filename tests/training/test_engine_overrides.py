"""Per-run strategy settings (``--set KEY=VALUE``, ``overrides["set"]``), validated like the file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ktrdr_core.cli.main import main
from ktrdr_core.errors import BadInputError
from ktrdr_core.request import TrainingRequest
from ktrdr_core.training import pipeline
from ktrdr_core.training.overrides import apply_settings, check_settings, parse_set_options
from ktrdr_core.training.strategy import load_strategy


def test_values_are_yaml_and_a_later_setting_wins() -> None:
    settings = parse_set_options(
        [
            "training.labels.zigzag_threshold=0.002",
            "training.labels.label_lookahead=10",
            "model.architecture.hidden_layers=[32, 16]",
            "model.training.early_stopping.enabled=false",
            "model.training.lr_scheduler={type: step, step_size: 2}",
            "training.labels.label_lookahead=12",
        ]
    )
    assert settings == {
        "training.labels.zigzag_threshold": 0.002,
        "training.labels.label_lookahead": 12,
        "model.architecture.hidden_layers": [32, 16],
        "model.training.early_stopping.enabled": False,
        "model.training.lr_scheduler": {"type": "step", "step_size": 2},
    }


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("training.labels.zigzag_threshold", "expected KEY=VALUE"),
        ("=0.1", "is not a dotted key path"),
        ("training..labels=1", "is not a dotted key path"),
        ("../etc=1", "is not a dotted key path"),
        ("training.labels.zigzag_threshold=", "a value is required"),
        ("model.architecture.hidden_layers=[32, 16", "is not valid YAML"),
    ],
)
def test_malformed_settings(item: str, message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        parse_set_options([item])


def test_request_settings_must_be_a_mapping_of_keys() -> None:
    with pytest.raises(BadInputError, match="override set must be a mapping"):
        check_settings(["training.labels.zigzag_threshold", 0.1])
    with pytest.raises(BadInputError, match="is not a dotted key path"):
        check_settings({"a b": 1})


def test_apply_creates_sections_and_leaves_the_original_alone() -> None:
    raw: dict[str, Any] = {"name": "x", "model": {"training": {"epochs": 5}}}
    out = apply_settings(
        raw, {"model.training.lr_scheduler.type": "step", "training.labels.source": "zigzag"}
    )
    assert out["model"]["training"] == {"epochs": 5, "lr_scheduler": {"type": "step"}}
    assert out["training"] == {"labels": {"source": "zigzag"}}
    assert raw == {"name": "x", "model": {"training": {"epochs": 5}}}
    with pytest.raises(BadInputError, match="cannot set name.first: name is a str, not a section"):
        apply_settings(raw, {"name.first": 1})


def test_settings_change_the_loaded_strategy() -> None:
    config = load_strategy(
        "neuro_mean_reversion",
        settings={"training.labels.zigzag_threshold": 0.002, "training.labels.label_lookahead": 10},
    )
    assert (config.labels.zigzag_threshold, config.labels.label_lookahead) == (0.002, 10)
    assert load_strategy("neuro_mean_reversion").labels.zigzag_threshold == 0.01  # the file is unchanged


def test_a_bad_setting_gets_the_files_message(write_strategy: Callable[..., Path]) -> None:
    def threshold(raw: dict[str, Any]) -> None:
        raw["training"]["labels"]["zigzag_threshold"] = 2

    path = write_strategy("mine", edit=threshold)
    with pytest.raises(BadInputError) as in_file:
        load_strategy("mine")
    write_strategy("mine")
    with pytest.raises(BadInputError) as by_setting:
        load_strategy("mine", settings={"training.labels.zigzag_threshold": 2})
    file_problem = str(in_file.value).removeprefix(f"{path}: ")
    assert str(by_setting.value) == f"{path}, with set training.labels.zigzag_threshold: {file_problem}"
    with pytest.raises(BadInputError, match="unknown key 'training.labels.zigzag_treshold'"):
        load_strategy("mine", settings={"training.labels.zigzag_treshold": 0.002})


def test_the_pipeline_applies_and_records_the_settings(ktrdr_home: Path) -> None:
    settings = {"training.labels.zigzag_threshold": 0.005, "training.labels.label_lookahead": 6}
    request = TrainingRequest(
        strategy="neuro_mean_reversion",
        symbols=("SYNTH_A",),
        start_date="2023-01-02",
        end_date="2023-03-01",
        overrides={"epochs": 1, "save_model": False, "set": settings},
    )
    result = pipeline.run_training(request)
    assert result.config["training"]["labels"] == {
        "source": "zigzag",
        "zigzag_threshold": 0.005,
        "label_lookahead": 6,
    }
    assert result.metadata["strategy_settings"] == settings
    assert result.metadata["ignored_overrides"] == []


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        main(args)
    return int(exited.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "items", "message"),
    [
        (
            "train",
            ["training.labels.zigzag_threshold=1.5"],
            "with set training.labels.zigzag_threshold: training.labels.zigzag_threshold must be between 0 and 1",
        ),
        ("train", ["training.labels.zigzag_treshold=0.002"], "unknown key 'training.labels.zigzag_treshold'"),
        (
            "train",
            ["training.labels.label_lookahead=ten"],
            "training.labels.label_lookahead must be an integer",
        ),
        ("train", ["oops"], "expected KEY=VALUE"),
        ("compare", ["model.training.loss=hinge"], "model.training.loss must be one of cross_entropy, focal"),
    ],
)
def test_cli_refuses_a_bad_setting_with_exit_2(
    command: str, items: list[str], message: str, ktrdr_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [command, "neuro_mean_reversion"]
    for item in items:
        args += ["--set", item]
    code, err = _cli(args, capsys)
    assert code == 2, err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (ktrdr_home / "models").exists()


def test_the_http_body_carries_settings_to_the_request() -> None:
    from pydantic import ValidationError

    from ktrdr_core.service.models import TrainingCreate

    body = TrainingCreate.model_validate(
        {
            "strategy": "neuro_mean_reversion",
            "overrides": {"epochs": 2, "set": {"training.labels.label_lookahead": 8}},
        }
    )
    assert body.overrides is not None
    overrides = body.overrides.model_dump(exclude_none=True)  # what the service hands the request
    assert pipeline.resolve_options(overrides).settings == {"training.labels.label_lookahead": 8}
    with pytest.raises(ValidationError):
        TrainingCreate.model_validate({"strategy": "x", "overrides": {"set": ["not", "a", "mapping"]}})
