"""Legacy and unified give the same val_loss on every upstream-format test strategy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from real_prices import add_resampled_eurusd, fetch_real_prices

from ktrdr_core.request import TrainingRequest
from ktrdr_core.training import pipeline

FILES = Path(__file__).parents[1] / "training" / "strategies_upstream"


@pytest.fixture(scope="module")
def prices(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Path:
    cache = getattr(pytestconfig, "cache", None)
    wheels = (
        cache.mkdir("backtesting-wheel")
        if cache is not None
        else tmp_path_factory.mktemp("backtesting-wheel")
    )
    return add_resampled_eurusd(fetch_real_prices(wheels, tmp_path_factory.mktemp("prices")))


@pytest.mark.parametrize("name", ["v3_single", "eurusd_mtf", "v3_multi_symbol", "goog_v1", "eurusd_v15"])
def test_legacy_and_unified_agree(
    name: str, prices: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ktrdr_home: Path
) -> None:
    from ktrdr_legacy.strategy_trainer import StrategyTrainer

    folder = tmp_path / "strategies"
    folder.mkdir()
    shutil.copy(FILES / f"{name}.yaml", folder)
    monkeypatch.setenv("KTRDR_STRATEGIES_DIR", str(folder))
    overrides = {"data_dir": str(prices), "save_model": False}
    unified = pipeline.run_training(TrainingRequest(strategy=name, overrides=overrides))
    legacy = StrategyTrainer().train_multi_symbol_strategy(name, None, None, None, None, **overrides)
    assert legacy["training_metrics"]["val_loss"] == unified.training_metrics["val_loss"]
    assert legacy["feature_names"] == list(unified.feature_names)
    assert legacy["metadata"]["discarded"] == unified.metadata["discarded"]
    assert legacy["data_summary"]["series"] == unified.data_summary["series"]
