"""A pip-installed plugin registers an indicator through ``register_indicators``; a strategy trains on it.

The plugins are real distributions installed with pip into a target folder and
found through their entry points, exactly as a user's install would be.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared dist helpers
from plugin_dists import pip_install_target, write_dist  # noqa: E402

RANGE_PLUGIN = """\
import talib

from ktrdr_core import hookimpl
from ktrdr_core.training.indicators import IndicatorSpec, ParamSpec


def _range_position(ohlcv, params):
    top = talib.MAX(ohlcv["high"], params["period"])
    bottom = talib.MIN(ohlcv["low"], params["period"])
    return {"position": (ohlcv["close"] - bottom) / (top - bottom), "width": top - bottom}


@hookimpl
def register_indicators(registry):
    registry.register(IndicatorSpec(
        "range_position", ("position", "width"), (ParamSpec("period", "int", 20, minimum=2),),
        ("high", "low", "close"), aliases=("RangePosition",),
        compute_fn=_range_position, lookback_fn=lambda p: p["period"] - 1))
"""

BROKEN_PLUGIN = """\
from ktrdr_core import hookimpl


@hookimpl
def register_indicators(registry):
    raise RuntimeError("indicator plugin broken on purpose")
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("indicator-dists")
    target = tmp_path_factory.mktemp("indicator-site")
    good = write_dist(src, "ktrdr-test-range", "range_indicators", RANGE_PLUGIN)
    broken = write_dist(src, "ktrdr-test-badind", "bad_indicators", BROKEN_PLUGIN)
    pip_install_target(target, good, broken)
    return target


def strategy(folder: Path, name: str, indicator_type: str) -> None:
    sets = {
        "low": {"type": "trapezoidal", "parameters": [-1.0, -1.0, 0.3, 0.5]},
        "high": {"type": "trapezoidal", "parameters": [0.5, 0.7, 2.0, 2.0]},
    }
    raw = {
        "name": name,
        "training_data": {"symbols": ["SYNTH_A"], "timeframes": ["1h"]},
        "indicators": [
            {"name": indicator_type, "feature_id": "rng", "period": 24},
            {"name": "rsi", "feature_id": "rsi"},
        ],
        "fuzzy_sets": {
            "rng": sets,
            "rng.width": {"any": {"type": "gaussian", "parameters": [3, 3]}},
            "rsi": {"mid": {"type": "gaussian", "parameters": [50, 10]}},
        },
        "model": {
            "type": "mlp",
            "architecture": {"hidden_layers": [8]},
            "training": {"epochs": 2, "batch_size": 128},
        },
        "training": {"labels": {"zigzag_threshold": 0.01, "label_lookahead": 12}},
    }
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def run_ktrdr(
    site: Path, tmp_path: Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    env = {**env, "PYTHONPATH": str(site), "KTRDR_STRATEGIES_DIR": str(tmp_path / "strategies")}
    return subprocess.run(
        [sys.executable, "-m", "ktrdr_core.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_a_plugin_indicator_trains_and_a_broken_plugin_is_isolated(
    site: Path, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    folder = tmp_path / "strategies"
    folder.mkdir()
    strategy(folder, "uses_plugin", "RangePosition")
    strategy(folder, "uses_broken", "broken_thing")
    listing = run_ktrdr(site, tmp_path, cli_env, "plugins", "--json")
    assert listing.returncode == 0, listing.stderr
    rows = {row["name"]: row for row in json.loads(listing.stdout)["plugins"]}
    assert rows["range_indicators"]["hooks"] == ["register_indicators"]
    assert rows["range_indicators"]["indicators"] == ["range_position"]
    assert rows["range_indicators"]["error"] is None
    assert rows["ktrdr-indicators"]["hooks"] == ["register_indicators"]
    assert len(rows["ktrdr-indicators"]["indicators"]) == 31
    assert (
        rows["bad_indicators"]["error"]
        == "register_indicators: RuntimeError: indicator plugin broken on purpose"
    )

    proc = run_ktrdr(
        site, tmp_path, cli_env, "train", "uses_plugin", "--mode", "legacy", "--json", "--no-progress"
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["success"] is True
    names = result["feature_names"]
    assert {"rng_low", "rng_high", "rng.width_any", "rsi_mid"} <= set(names)
    unified = run_ktrdr(
        site, tmp_path, cli_env, "train", "uses_plugin", "--mode", "unified", "--json", "--no-progress"
    )
    assert unified.returncode == 0, unified.stderr
    assert (
        json.loads(unified.stdout)["training_metrics"]["val_loss"] == result["training_metrics"]["val_loss"]
    )

    proc = run_ktrdr(site, tmp_path, cli_env, "train", "uses_broken", "--mode", "legacy", "--no-progress")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    # the broken plugin is logged once as a warning, like a mode plugin's; the error is one line
    *warnings, error = proc.stderr.strip().splitlines()
    assert len(warnings) == 1 and "WARNING" in warnings[0] and "bad_indicators" in warnings[0]
    assert "unknown indicator type 'broken_thing'" in error
    assert "bad_indicators: RuntimeError: indicator plugin broken on purpose" in error
