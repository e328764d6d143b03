"""Every label source and training option gives legacy and unified the same numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from integration_support import SHORT, STRATEGY

from ktrdr_core import TrainingManager, TrainingRequest
from ktrdr_core.training.strategy import BUILTIN_STRATEGIES_DIR

VARIANTS: dict[str, dict[str, Any]] = {
    "tb_focal_plateau_clip": {
        "labels": {
            "source": "triple_barrier",
            "pt_multiplier": 2.0,
            "sl_multiplier": 1.5,
            "max_holding_period": 24,
            "vol_span": 30,
            "vol_method": "atr",
        },
        "training": {
            "loss": "focal",
            "focal_gamma": 2.0,
            "class_weights": "balanced",
            "gradient_clip": 0.5,
            "lr_scheduler": {"type": "reduce_on_plateau", "factor": 0.5, "patience": 0},
        },
    },
    "tb_close_step_weights": {
        "labels": {
            "source": "triple_barrier",
            "pt_multiplier": 1.0,
            "sl_multiplier": 1.0,
            "max_holding_period": 12,
            "vol_span": 20,
            "vol_method": "close",
        },
        "training": {
            "class_weights": [1.0, 0.5, 1.0],
            "lr_scheduler": {"type": "step", "step_size": 1, "gamma": 0.5},
        },
    },
    "zigzag_fixed_exponential": {
        "labels": {"source": "zigzag", "zigzag_threshold": 0.01, "label_lookahead": 12},
        "training": {"gradient_clip": 2.0, "lr_scheduler": {"type": "exponential", "gamma": 0.8}},
    },
}


@pytest.fixture
def options_strategies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "strategies"
    folder.mkdir()
    base = yaml.safe_load((BUILTIN_STRATEGIES_DIR / f"{STRATEGY}.yaml").read_text())
    for name, variant in VARIANTS.items():
        raw = {**base, "name": name}
        raw["training"] = {**base["training"], "labels": variant["labels"]}
        raw["model"] = {**base["model"], "training": {**base["model"]["training"], **variant["training"]}}
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("KTRDR_STRATEGIES_DIR", str(folder))
    return folder


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_legacy_and_unified_agree_exactly(name: str, options_strategies: Path, ktrdr_home: Path) -> None:
    manager = TrainingManager()
    results = {}
    for mode in ("legacy", "unified"):
        request = TrainingRequest(
            strategy=name, user_id="opts", overrides={"epochs": 3, "seed": 5, "save_model": False}, **SHORT
        )
        results[mode] = manager.train(request, mode=mode)
        assert results[mode].success, results[mode].error
    legacy, unified = results["legacy"], results["unified"]
    assert legacy.training_metrics["val_loss"] == unified.training_metrics["val_loss"]
    assert legacy.training_metrics["history"] == unified.training_metrics["history"]
    assert legacy.test_metrics["test_accuracy"] == unified.test_metrics["test_accuracy"]
    assert legacy.data_summary["split_sizes"] == unified.data_summary["split_sizes"]
    rates = unified.training_metrics["history"]["learning_rate"]
    assert all(b <= a for a, b in zip(rates, rates[1:], strict=False))
    if "plateau" not in name:  # the step and exponential schedules lower it every epoch
        assert rates[-1] < rates[0]
    assert unified.config["training"]["labels"] == VARIANTS[name]["labels"]


def test_both_modes_apply_the_same_settings(ktrdr_home: Path) -> None:
    """A whole section may be set: here the labels become triple barrier for this run only."""
    results = {}
    for mode in ("legacy", "unified"):
        request = TrainingRequest(
            strategy=STRATEGY,
            user_id="opts",
            overrides={
                "epochs": 2,
                "seed": 5,
                "save_model": False,
                "set": {"training.labels": {"source": "triple_barrier", "max_holding_period": 12}},
            },
            **SHORT,
        )
        results[mode] = TrainingManager().train(request, mode=mode)
        assert results[mode].success, results[mode].error
    legacy, unified = results["legacy"], results["unified"]
    assert legacy.config == unified.config
    assert unified.config["training"]["labels"]["max_holding_period"] == 12
    assert legacy.metadata["strategy_settings"] == unified.metadata["strategy_settings"]
    assert legacy.training_metrics["val_loss"] == unified.training_metrics["val_loss"]
