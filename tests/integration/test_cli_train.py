"""``ktrdr train`` as a user runs it: exit codes, output, Ctrl-C.

Most calls run ktrdr's ``main`` in-process (tests/cli_inprocess.py); a real
process where it is the point: Ctrl-C, and ``--json`` on the real stdout (nothing
else may write there, torch and the progress bar included).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cli_inprocess import run_ktrdr
from integration_support import SHORT

from ktrdr_core.result import RESULT_KEYS
from ktrdr_core.testing import leftover_model_dirs as model_dirs

SHORT_ARGS = ["--start", SHORT["start_date"], "--end", SHORT["end_date"]]


def run(
    cmd: list[str], env: dict[str, str], *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_train_prints_the_decision_and_a_summary(ktrdr_home: Path) -> None:
    done = run_ktrdr(
        "train",
        "neuro_mean_reversion",
        "--user",
        "alice",
        "--epochs",
        "2",
        "--no-progress",
    )
    assert done.returncode == 0, done.stderr
    assert "mode: legacy" in done.stderr and "alice" in done.stderr  # the decision and why
    assert "trained neuro_mean_reversion with mode legacy" in done.stdout
    assert "validation: accuracy" in done.stdout and "test:" in done.stdout
    assert len(model_dirs(ktrdr_home)) == 1


def test_json_prints_the_result_dict(ktrdr_cmd: list[str], cli_env: dict[str, str]) -> None:
    done = run(
        ktrdr_cmd,
        cli_env,
        "train",
        "neuro_mean_reversion",
        "--mode",
        "unified",
        "--epochs",
        "2",
        "--json",
        "--no-progress",
        *SHORT_ARGS,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(RESULT_KEYS) <= set(result)
    assert result["success"] is True and result["metadata"]["mode"] == "unified"
    for key in ("val_loss", "val_accuracy", "epochs_trained", "history"):
        assert key in result["training_metrics"]
    for key in ("mode", "decision", "duration_seconds", "seed"):
        assert key in result["metadata"]


@pytest.mark.parametrize("mode", ["legacy", "unified"])
def test_progress_jsonl_writes_one_object_per_update(mode: str, tmp_path: Path) -> None:
    out = tmp_path / "progress.jsonl"
    done = run_ktrdr(
        "train",
        "neuro_mean_reversion",
        "--mode",
        mode,
        "--epochs",
        "2",
        "--no-progress",
        "--progress-jsonl",
        str(out),
        "--json",
        *SHORT_ARGS,
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records, "no progress written"
    for record in records:
        assert {"timestamp", "epoch", "total_epochs", "progress_type"} <= set(record)
        assert record["total_epochs"] == 2
    stamps = [r["timestamp"] for r in records]
    assert stamps == sorted(stamps)
    result = json.loads(done.stdout)
    batches = result["training_metrics"]["batches_per_epoch"] * 2
    if mode == "legacy":
        assert len(records) == batches + 2  # every batch and every epoch
    else:
        assert len(records) < batches / 10  # throttled
        gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
        assert all(gap >= 0.1 for gap in gaps[:-1]), (gaps, records)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "../neuro_mean_reversion"], "strategy"),
        (["train", "/etc/passwd"], "strategy"),
        (["train", "no_such_strategy"], "no_such_strategy"),
        (["train", "neuro_mean_reversion", "--data-dir", "/nonexistent/ktrdr-data"], "/nonexistent"),
        (["train", "neuro_mean_reversion", "--mode", "warp_drive"], "warp_drive"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], needle: str, ktrdr_home: Path) -> None:
    done = run_ktrdr(*args, "--epochs", "1", "--no-progress")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    assert len(errors) == 1, done.stderr
    assert needle in errors[0]
    assert model_dirs(ktrdr_home) == []


@pytest.mark.parametrize("mode", ["legacy", "unified"])
def test_sigint_exits_130_and_leaves_no_model(
    mode: str, ktrdr_cmd: list[str], cli_env: dict[str, str], ktrdr_home: Path, tmp_path: Path
) -> None:
    progress = tmp_path / "progress.jsonl"
    proc = subprocess.Popen(
        [
            *ktrdr_cmd,
            "train",
            "neuro_mean_reversion",
            "--mode",
            mode,
            "--epochs",
            "200",
            "--no-progress",
            "--progress-jsonl",
            str(progress),
        ],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (progress.exists() and progress.read_text().strip()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no progress within 120 s"
            time.sleep(0.02)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert took < 10, f"took {took:.1f} s to stop"
    assert "Traceback" not in err and "cancelled" in err
    assert model_dirs(ktrdr_home) == []


def _hopeless_strategy(folder: Path) -> None:
    """The sample strategy with labels that are all HOLD (a 50 % move in 2 bars never happens)."""
    import yaml

    from ktrdr_core.training.strategy import BUILTIN_STRATEGIES_DIR

    raw = yaml.safe_load((BUILTIN_STRATEGIES_DIR / "neuro_mean_reversion.yaml").read_text())
    raw["name"] = "hopeless"
    raw["training"]["labels"] = {"source": "zigzag", "zigzag_threshold": 0.5, "label_lookahead": 2}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hopeless.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


@pytest.mark.parametrize("mode", ["legacy", "unified"])
def test_warnings_are_printed_and_in_the_json(mode: str, tmp_path: Path) -> None:
    _hopeless_strategy(tmp_path / "strategies")
    env = {"KTRDR_STRATEGIES_DIR": str(tmp_path / "strategies")}
    args = ("train", "hopeless", "--mode", mode, "--epochs", "1", "--no-progress", *SHORT_ARGS)
    done = run_ktrdr(*args, env=env)
    assert done.returncode == 0, done.stderr  # warnings are not errors
    assert "  warning:    every one of the" in done.stdout and "labels is HOLD" in done.stdout
    assert "  warning:    the model predicts HOLD for every one of the" in done.stdout
    as_json = run_ktrdr(*args, "--json", env=env)
    assert as_json.returncode == 0, as_json.stderr
    warnings = json.loads(as_json.stdout)["metadata"]["warnings"]
    assert any(w.startswith("no gain over the majority baseline") for w in warnings)
    assert all(f"ktrdr: warning: {w}" in as_json.stderr for w in warnings)
    ledger = json.loads(run_ktrdr("runs", "--json", env=env).stdout)  # the ledger keeps them too
    assert [r["warnings"] for r in ledger][0] == warnings and all(r["warnings"] for r in ledger)
