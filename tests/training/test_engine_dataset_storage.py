"""Balancing, the split, and versioned, atomic model storage."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from ktrdr_core.errors import BadInputError
from ktrdr_core.training import storage
from ktrdr_core.training.dataset import SeriesSamples, balance_series, split_series
from ktrdr_core.training.model import build_mlp


def series(
    symbol: str,
    n: int,
    offset: float = 0.0,
    *,
    start: str = "2024-01-01T00:00:00",
    step: str = "h",
    timeframe: str = "1h",
) -> SeriesSamples:
    X = (np.arange(n, dtype=np.float32) + offset)[:, None]
    stamps = np.datetime64(start, "s") + np.arange(n) * np.timedelta64(1, step)
    return SeriesSamples(symbol=symbol, timeframe=timeframe, X=X, y=np.arange(n) % 3, timestamps=stamps)


def _stamp_lookup(parts: list[SeriesSamples]) -> dict[float, np.datetime64]:
    """Feature value -> timestamp (the fixtures' X values are unique across series)."""
    return {float(x): t for s in parts for x, t in zip(s.X[:, 0], s.timestamps, strict=True)}


def test_balance_keeps_the_most_recent_samples_of_each_symbol() -> None:
    balanced = balance_series([series("A", 100), series("B", 60), series("C", 80)])
    assert [len(s) for s in balanced] == [60, 60, 60]
    assert balanced[0].X[0, 0] == 40 and balanced[0].X[-1, 0] == 99
    with pytest.raises(BadInputError, match="no labelled samples left for B_1h"):
        balance_series([series("A", 10), series("B", 0)])


def test_chronological_split_sizes_and_order() -> None:
    split = split_series([series("A", 100), series("B", 100, offset=1000)], 0.7, 0.15)
    assert split.sizes() == {"train": 140, "validation": 30, "test": 30}
    # per symbol: train is rows 0..69, validation 70..84, test 85..99
    assert split.X_train[:70, 0].tolist() == list(range(70))
    assert split.X_val[:15, 0].tolist() == list(range(70, 85))
    assert split.X_test[15:, 0].tolist() == [1000 + i for i in range(85, 100)]


def test_gap_drops_samples_before_each_boundary() -> None:
    split = split_series([series("A", 100)], 0.7, 0.15, gap=5)
    assert split.sizes() == {"train": 65, "validation": 10, "test": 15}
    assert split.X_train[-1, 0] == 64 and split.X_val[0, 0] == 70 and split.X_val[-1, 0] == 79


@pytest.mark.parametrize(
    "parts",
    [
        # unequal histories: B starts a month after A, both end later than A's 70 %
        [series("A", 1000), series("B", 400, offset=10_000, start="2024-01-31T00:00:00")],
        # 1h next to 1d over the same number of samples: 1d spans 24 times longer
        [
            series("A", 300),
            series("A", 300, offset=10_000, start="2023-06-01T00:00:00", step="D", timeframe="1d"),
        ],
    ],
)
@pytest.mark.parametrize("gap", [0, 3])
def test_chronological_split_is_time_consistent_across_series(parts: list[SeriesSamples], gap: int) -> None:
    split = split_series(parts, 0.7, 0.15, gap=gap)
    when = _stamp_lookup(parts)
    train, val, test = ([when[float(x)] for x in X[:, 0]] for X in (split.X_train, split.X_val, split.X_test))
    assert train and val and test
    assert max(train) < min(val) and max(val) < min(test)
    total = sum(len(s) for s in parts)
    # the cuts are the pooled 70 % / 85 % timestamps: sizes follow the configured shares
    assert abs(len(train) - 0.7 * total) <= 2 * gap + 2
    assert abs(len(val) - 0.15 * total) <= 2 * gap + 2


def test_chronological_split_allows_a_series_outside_a_part() -> None:
    # B lies entirely after A: A falls wholly in the training part
    split = split_series(
        [series("A", 60), series("B", 40, offset=1000, start="2024-02-01T00:00:00")], 0.7, 0.15
    )
    assert split.X_train[:60, 0].tolist() == list(range(60))
    assert split.X_val[:, 0].min() >= 1000 and split.X_test[:, 0].min() >= 1000
    assert split.sizes() == {"train": 70, "validation": 15, "test": 15}


def test_random_split_is_seeded() -> None:
    one = split_series([series("A", 100)], 0.7, 0.15, method="random", seed=1)
    two = split_series([series("A", 100)], 0.7, 0.15, method="random", seed=1)
    other = split_series([series("A", 100)], 0.7, 0.15, method="random", seed=2)
    assert np.array_equal(one.X_train, two.X_train)
    assert not np.array_equal(one.X_train, other.X_train)
    assert one.sizes() == {"train": 70, "validation": 15, "test": 15}


def test_too_few_samples_for_a_part() -> None:
    with pytest.raises(BadInputError, match="too few for a validation part"):
        split_series([series("A", 12)], 0.7, 0.15, gap=2)


# --------------------------------------------------------------------------- storage


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_mlp(4, [8], "relu", 0.1)


def _save(home: Path, model: torch.nn.Module | None = None) -> storage.SavedModel:
    return storage.save_model(
        model or _model(),
        strategy="strat",
        symbols=["AAA", "BBB"],
        timeframes=["1h"],
        config={"model": {"architecture": {"hidden_layers": [8], "activation": "relu", "dropout": 0.1}}},
        metrics={"test_metrics": {"test_accuracy": 0.5}},
        features={"feature_names": ["a", "b", "c", "d"], "input_size": 4, "num_classes": 3},
        metadata={"seed": 1},
        home=home,
    )


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    model = _model()
    saved = _save(tmp_path, model)
    assert saved.path == tmp_path / "models" / "strat" / "AAA-BBB_1h_v1"
    assert saved.model_id == "strat/AAA-BBB_1h_v1" and saved.version == 1
    assert sorted(p.name for p in saved.path.iterdir()) == sorted(storage.MODEL_FILES)
    loaded = storage.load_model(saved.path)
    assert loaded.metadata["model_id"] == saved.model_id and loaded.metadata["seed"] == 1
    assert loaded.feature_names == ["a", "b", "c", "d"]
    x = torch.randn(5, 4)
    model.eval()
    assert torch.equal(loaded.model(x), model(x))
    assert _save(tmp_path).version == 2


def test_failure_mid_save_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = storage._write_json

    def failing(path: Path, data: object) -> None:
        if path.name == "metadata.json":
            raise OSError("disk full")
        real(path, data)

    monkeypatch.setattr(storage, "_write_json", failing)
    with pytest.raises(OSError, match="disk full"):
        _save(tmp_path)
    leftovers = [p.name for p in (tmp_path / "models" / "strat").iterdir() if p.name != ".lock"]
    assert leftovers == []


def test_concurrent_saves_get_distinct_versions(tmp_path: Path) -> None:
    results: list[storage.SavedModel] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def work() -> None:
        try:
            barrier.wait()
            results.append(_save(tmp_path))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(r.version for r in results) == [1, 2, 3, 4, 5, 6]
    folders = sorted(p.name for p in (tmp_path / "models" / "strat").iterdir() if not p.name.startswith("."))
    assert folders == [f"AAA-BBB_1h_v{i}" for i in range(1, 7)]


def test_a_hand_made_folder_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "models" / "strat" / "AAA-BBB_1h_v1").mkdir(parents=True)
    (tmp_path / "models" / "strat" / "AAA-BBB_1h_v1" / "mine.txt").write_text("keep")
    assert _save(tmp_path).version == 2
    assert (tmp_path / "models" / "strat" / "AAA-BBB_1h_v1" / "mine.txt").read_text() == "keep"


def test_load_model_errors(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no such model folder"):
        storage.load_model(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="config.json is missing"):
        storage.load_model(tmp_path / "empty")
