"""The CLI's built-in sinks: JSON lines and the per-epoch log summary."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from ktrdr_core.cli.sinks import JsonLinesSink, LogSummarySink


def epoch_update(epoch: int, val_loss: float) -> dict[str, object]:
    return {
        "progress_type": "epoch",
        "epoch": epoch,
        "train_loss": 1.0,
        "val_loss": val_loss,
        "val_accuracy": 0.5,
    }


def test_log_summary_logs_each_epoch_once_never_batches(caplog: pytest.LogCaptureFixture) -> None:
    sink = LogSummarySink()
    with caplog.at_level(logging.INFO, logger="ktrdr.progress"):
        sink(1, 3, {"progress_type": "batch", "batch": 1, "train_loss": 1.0})
        sink(1, 3, epoch_update(1, 0.9))
        sink(1, 3, epoch_update(1, 0.9))
    assert [r.getMessage() for r in caplog.records] == [
        "epoch 1/3: train_loss=1.0000 val_loss=0.9000 val_accuracy=0.500"
    ]


def test_folded_epochs_are_logged_under_their_own_numbers(caplog: pytest.LogCaptureFixture) -> None:
    sink = LogSummarySink()
    folded = {
        "progress_type": "batch",
        "batch": 3,
        "val_loss": 0.8,
        "epochs_completed": 1,
        "folded_epochs": [epoch_update(1, 0.8)],
    }
    with caplog.at_level(logging.INFO, logger="ktrdr.progress"):
        sink(2, 3, folded)  # epoch 1's end rides on a batch of epoch 2
        sink(2, 3, epoch_update(2, 0.7))
    messages = [r.getMessage() for r in caplog.records]
    assert [m.split(":")[0] for m in messages] == ["epoch 1/3", "epoch 2/3"]
    assert "val_loss=0.8000" in messages[0] and "val_loss=0.7000" in messages[1]


def test_json_lines_sink_writes_one_object_per_update(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    sink = JsonLinesSink(path)
    sink(1, 2, {"progress_type": "batch", "batch": 1, "train_loss": 0.5})
    sink(2, 2, epoch_update(2, 0.4))
    sink.close()
    sink(2, 2, epoch_update(2, 0.4))  # after close: ignored, not an error
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["epoch"], r["total_epochs"], r["progress_type"]) for r in records] == [
        (1, 2, "batch"),
        (2, 2, "epoch"),
    ]
    assert records[0]["timestamp"] <= records[1]["timestamp"]


def test_console_bar_counts_batches_and_finishes_on_early_stop() -> None:
    import io

    from rich.console import Console

    from ktrdr_core.cli.progressbar import ConsoleProgressBar

    bar = ConsoleProgressBar(Console(file=io.StringIO(), force_terminal=False))
    bar(1, 10, {"progress_type": "batch", "batch": 5, "total_batches_per_epoch": 5, "train_loss": 1.0})
    bar(2, 10, {"progress_type": "batch", "batch": 3, "total_batches_per_epoch": 5, "train_loss": 0.9})
    task = bar._progress.tasks[0]
    assert (task.completed, task.total) == (8, 50)
    bar.close()  # early stopping after 8 of 50 batches: the bar ends full, with no ETA left
    assert (task.completed, task.total) == (8, 8)
