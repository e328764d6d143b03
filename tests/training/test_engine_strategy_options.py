"""Strategy files: label sources and training options, parsed or refused naming the key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ktrdr_core.errors import BadInputError
from ktrdr_core.training.strategy import load_strategy, parse_strategy


def _put(raw: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    for key in keys[:-1]:
        raw = raw.setdefault(key, {})
    raw[keys[-1]] = value


def _with(write_strategy: Callable[..., Path], **values: Any) -> Any:
    """Load the built-in strategy with ``values`` (dotted keys, ``__`` for ``.``) written in."""

    def edit(raw: dict[str, Any]) -> None:
        for key, value in values.items():
            _put(raw, key.replace("__", "."), value)

    write_strategy("opts", edit=edit)
    return load_strategy("opts")


def test_triple_barrier_labels_parse_with_upstream_names(write_strategy: Callable[..., Path]) -> None:
    config = _with(
        write_strategy,
        training__labels={
            "source": "triple_barrier",
            "pt_multiplier": 2.0,
            "sl_multiplier": 1.5,
            "max_holding_period": 24,
            "vol_span": 30,
            "vol_method": "close",
            "compute_weights": False,
        },
    )
    labels = config.labels
    assert (
        labels.source,
        labels.pt_multiplier,
        labels.sl_multiplier,
        labels.max_holding_period,
        labels.vol_span,
        labels.vol_method,
    ) == ("triple_barrier", 2.0, 1.5, 24, 30, "close")
    assert labels.horizon == 24  # the split's gap
    assert config.to_dict()["training"]["labels"] == {
        "source": "triple_barrier",
        "pt_multiplier": 2.0,
        "sl_multiplier": 1.5,
        "max_holding_period": 24,
        "vol_span": 30,
        "vol_method": "close",
    }
    assert load_strategy("neuro_mean_reversion").labels.horizon == 12  # zigzag: label_lookahead


def test_training_options_parse_and_round_trip(write_strategy: Callable[..., Path]) -> None:
    config = _with(
        write_strategy,
        model__training__lr_scheduler={"type": "reduce_on_plateau", "factor": 0.2},
        model__training__gradient_clip=1.0,
        model__training__loss="focal",
        model__training__focal_gamma=1.5,
        model__training__class_weights="balanced",
    )
    training = config.model.training
    assert training.lr_scheduler == {"type": "reduce_on_plateau", "factor": 0.2, "patience": 5, "min_lr": 0.0}
    assert (training.gradient_clip, training.loss, training.focal_gamma, training.class_weights) == (
        1.0,
        "focal",
        1.5,
        "balanced",
    )
    data = config.to_dict()
    assert data["model"]["training"]["focal_gamma"] == 1.5
    raw_fuzzy = yaml.safe_load(Path(str(config.source_path)).read_text())["fuzzy_sets"]
    again = parse_strategy({**data, "fuzzy_sets": raw_fuzzy}, "roundtrip")
    assert again.model == config.model and again.labels == config.labels


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, {"type": "reduce_on_plateau", "factor": 0.5, "patience": 5, "min_lr": 0.0}),
        ("step", {"type": "step", "step_size": 30, "gamma": 0.1}),
        ({"type": "exponential", "gamma": 0.9}, {"type": "exponential", "gamma": 0.9}),
        (False, None),
    ],
)
def test_lr_scheduler_forms(write_strategy: Callable[..., Path], value: Any, expected: Any) -> None:
    assert _with(write_strategy, model__training__lr_scheduler=value).model.training.lr_scheduler == expected


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "model.training.lr_scheduler",
            {"type": "cosine"},
            "lr_scheduler.type must be one of reduce_on_plateau",
        ),
        (
            "model.training.lr_scheduler",
            {"type": "step", "factor": 0.5},
            "lr_scheduler.factor is not a setting of step",
        ),
        (
            "model.training.lr_scheduler",
            {"type": "reduce_on_plateau", "factor": 1.5},
            "lr_scheduler.factor must be between 0 and 1",
        ),
        (
            "model.training.lr_scheduler",
            {"type": "reduce_on_plateau", "min_lr": -1},
            "min_lr must be a finite",
        ),
        ("model.training.lr_scheduler", {"type": "step", "step_size": 0}, "step_size must be at least 1"),
        ("model.training.lr_scheduler", {"factor": 0.5}, "lr_scheduler.type is required"),
        ("model.training.gradient_clip", -1, "gradient_clip must be a finite number ≥ 0"),
        ("model.training.gradient_clip", "big", "gradient_clip must be a number"),
        ("model.training.loss", "hinge", "model.training.loss must be one of cross_entropy, focal"),
        ("model.training.focal_gamma", 2.0, "focal_gamma is used only with loss: focal"),
        ("model.training.class_weights", [1, 2], "class_weights must be balanced, none, or a list of 3"),
        ("model.training.class_weights", [0, 0, 0], "not all 0"),
        ("model.training.class_weights", "inverse", "class_weights must be one of balanced, none"),
        ("model.training.warmup", 5, "unknown key 'model.training.warmup'"),
        (
            "training.labels.source",
            "regression",
            "training.labels.source must be one of zigzag, triple_barrier",
        ),
        ("training.labels.pt_multiplier", 2.0, "pt_multiplier is not used by source: zigzag"),
        ("training.labels.compute_weights", True, "compute_weights is not supported"),
    ],
)
def test_option_errors_name_file_and_key(
    write_strategy: Callable[..., Path], key: str, value: Any, message: str
) -> None:
    with pytest.raises(BadInputError, match=message) as err:
        _with(write_strategy, **{key.replace(".", "__"): value})
    assert str(err.value).startswith(str(write_strategy("opts").parent / "opts.yaml") + ": ")


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"label_lookahead": 5}, "label_lookahead is not used by source: triple_barrier"),
        ({"max_holding_period": 0}, "max_holding_period must be at least 1"),
        ({"pt_multiplier": 0}, "pt_multiplier must be a finite number > 0"),
        ({"vol_method": "parkinson"}, "vol_method must be one of atr, close, fixed"),
        (
            {"vol_method": "fixed", "sl_multiplier": 1.5},
            "sl_multiplier must be below 1 with vol_method: fixed",
        ),
        (
            {"vol_method": "fixed", "vol_span": 20, "sl_multiplier": 0.01},
            "vol_span is not used by vol_method",
        ),
        ({"vol_span": 1}, "vol_span must be at least 2"),
    ],
)
def test_triple_barrier_errors(
    write_strategy: Callable[..., Path], labels: dict[str, Any], message: str
) -> None:
    with pytest.raises(BadInputError, match=message):
        _with(write_strategy, training__labels={"source": "triple_barrier", **labels})
