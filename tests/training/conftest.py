"""Fixtures for the training-engine tests (tests/training)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")

from ktrdr_core.training.strategy import BUILTIN_STRATEGIES_DIR  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> None:
    """Share the CPU politely and keep float results reproducible."""
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's own strategies or data."""
    monkeypatch.delenv("KTRDR_STRATEGIES_DIR", raising=False)
    monkeypatch.delenv("KTRDR_DATA_DIR", raising=False)


@pytest.fixture
def ktrdr_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "ktrdr-home"
    monkeypatch.setenv("KTRDR_HOME", str(home))
    return home


@pytest.fixture
def strategies_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "strategies"
    folder.mkdir()
    monkeypatch.setenv("KTRDR_STRATEGIES_DIR", str(folder))
    return folder


def builtin_raw(name: str = "neuro_mean_reversion") -> dict[str, Any]:
    """The raw YAML data of a built-in strategy, to modify in a test."""
    return yaml.safe_load((BUILTIN_STRATEGIES_DIR / f"{name}.yaml").read_text())


@pytest.fixture
def write_strategy(strategies_dir: Path) -> Callable[..., Path]:
    """Write a strategy file: ``write_strategy(name, data=None, edit=None, text=None)``."""

    def write(
        name: str,
        data: dict[str, Any] | None = None,
        edit: Callable[[dict[str, Any]], None] | None = None,
        text: str | None = None,
    ) -> Path:
        path = strategies_dir / f"{name}.yaml"
        if text is None:
            raw = copy.deepcopy(data) if data is not None else {**builtin_raw(), "name": name}
            if edit is not None:
                edit(raw)
            text = yaml.safe_dump(raw, sort_keys=False)
        path.write_text(text)
        return path

    return write


def write_csv(
    folder: Path,
    symbol: str,
    timeframe: str = "1h",
    *,
    bars: int = 50,
    rows: list[str] | None = None,
    header: str = "timestamp,open,high,low,close,volume",
    start: str = "2024-01-01T00:00:00",
    seed: int = 0,
) -> Path:
    """A small, valid OHLCV CSV (or the given rows) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    if rows is None:
        rng = np.random.default_rng(seed)
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, bars)))
        stamps = np.datetime64(start, "s") + np.arange(bars) * np.timedelta64(3600, "s")
        rows = [
            f"{np.datetime_as_string(t)}Z,{c:.4f},{c * 1.01:.4f},{c * 0.99:.4f},{c:.4f},100"
            for t, c in zip(stamps, close, strict=True)
        ]
    path = folder / f"{symbol}_{timeframe}.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture(name="write_csv")
def write_csv_fixture() -> Callable[..., Path]:
    """The :func:`write_csv` helper, as a fixture (test modules cannot import conftest)."""
    return write_csv


@pytest.fixture(scope="session")
def real_prices(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Path:
    """A data folder with EURUSD hourly (5,000 bars) and GOOG daily (2,148 bars), real prices.

    Their header is pandas' (``,Open,High,Low,Close,Volume``), so loading them
    also exercises the unnamed time column.
    """
    from real_prices import fetch_real_prices

    cache = getattr(pytestconfig, "cache", None)
    wheels = (
        cache.mkdir("backtesting-wheel")
        if cache is not None
        else tmp_path_factory.mktemp("backtesting-wheel")
    )
    return fetch_real_prices(wheels, tmp_path_factory.mktemp("real-prices"))
