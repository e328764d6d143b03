"""``ktrdr strategies``, lazy imports, and the sample-data script."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from ktrdr_core.cli.strategies import strategies

REPO = Path(__file__).resolve().parents[2]


def test_lists_builtins_as_text() -> None:
    result = CliRunner().invoke(strategies, [])
    assert result.exit_code == 0, result.output
    assert "neuro_mean_reversion  [built-in]" in result.output
    assert "trend_momentum  [built-in]" in result.output
    assert "symbols: SYNTH_A, SYNTH_B, SYNTH_C" in result.output


def test_json_lists_user_strategies_and_broken_ones(
    write_strategy: Callable[..., Path], strategies_dir: Path
) -> None:
    write_strategy("neuro_mean_reversion", edit=lambda raw: raw.update(description="mine"))
    write_strategy("broken", text="name: broken\nmodel: {type: lstm}\n")
    result = CliRunner().invoke(strategies, ["--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["strategies_dir"] == str(strategies_dir)
    rows = {(row["name"], row["source"]): row for row in data["strategies"]}
    mine = rows[("neuro_mean_reversion", str(strategies_dir / "neuro_mean_reversion.yaml"))]
    assert mine["active"] and mine["description"] == "mine"
    assert rows[("neuro_mean_reversion", "built-in")]["active"] is False
    assert "training_data is required" in rows[("broken", str(strategies_dir / "broken.yaml"))]["error"]
    text = CliRunner().invoke(strategies, []).output
    assert "neuro_mean_reversion (shadowed by KTRDR_STRATEGIES_DIR)  [built-in]" in text
    assert "error:" in text


def test_listing_and_the_package_do_not_import_torch() -> None:
    code = (
        "import sys, ktrdr_core.training, ktrdr_core.training.strategy as s, "
        "ktrdr_core.cli.strategies; s.list_strategies(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"


def test_lazy_names_resolve() -> None:
    import ktrdr_core.training as training

    assert training.run_training.__name__ == "run_training"
    assert training.ModelTrainer.__name__ == "ModelTrainer"
    assert (training.BUY, training.HOLD, training.SELL) == (0, 1, 2)


def test_sample_data_matches_its_script() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_sample_data.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    assert "up to date" in out.stdout
