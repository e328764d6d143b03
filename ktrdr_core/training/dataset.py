"""Samples: balancing across symbols and the train / validation / test split.

Balancing: every series (one symbol at one timeframe) keeps the same number of
samples, the smallest series' count, taking each series' most recent samples,
so no symbol dominates the loss.

Split policy (``training.data_split``), per series, then concatenated:

- ``chronological`` (default, the honest choice for time series): the first
  ``train`` share of each series trains, the next ``validation`` share
  validates, the rest tests; the model never sees the future of what it is
  tested on. The last ``gap`` samples before each boundary (the pipeline passes
  ``label_lookahead``) are dropped, since their labels look into the next part.
- ``random``: a seeded shuffle of each series before cutting (no gap). It leaks
  neighbouring bars across the parts and flatters the metrics; use it only to
  compare with other tools.

Boundaries: ``b1 = round(n * train)``, ``b2 = round(n * (train + validation))``;
train is ``[0, b1 - gap)``, validation ``[b1, b2 - gap)``, test ``[b2, n)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np

from ktrdr_core.errors import BadInputError

__all__ = ["DatasetSplit", "SeriesSamples", "balance_series", "split_boundaries",
           "split_series"]


@attrs.frozen(eq=False)
class SeriesSamples:
    """One series' labelled samples, in time order."""

    symbol: str
    timeframe: str
    X: np.ndarray
    y: np.ndarray
    timestamps: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    @property
    def key(self) -> str:
        return f"{self.symbol}_{self.timeframe}"

    def tail(self, count: int) -> SeriesSamples:
        return attrs.evolve(self, X=self.X[-count:], y=self.y[-count:],
                            timestamps=self.timestamps[-count:])


@attrs.frozen(eq=False)
class DatasetSplit:
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "validation": len(self.y_val),
                "test": len(self.y_test)}


def balance_series(series: Sequence[SeriesSamples]) -> list[SeriesSamples]:
    """Each series cut to the smallest one's length, keeping its most recent samples."""
    if not series:
        raise BadInputError("no data to train on")
    smallest = min(len(s) for s in series)
    if smallest == 0:
        empty = [s.key for s in series if len(s) == 0]
        raise BadInputError(f"no labelled samples left for {', '.join(empty)} after indicator "
                            "warm-up and labelling; use a longer date range")
    return [s.tail(smallest) for s in series]


def split_boundaries(n: int, train: float, validation: float) -> tuple[int, int]:
    """``(b1, b2)``: where validation and test start."""
    return int(round(n * train)), int(round(n * (train + validation)))


def split_series(series: Sequence[SeriesSamples], train: float = 0.7, validation: float = 0.15,
                 *, method: str = "chronological", gap: int = 0, seed: int = 42
                 ) -> DatasetSplit:
    """Split every series the same way and concatenate the parts (see module docstring)."""
    if method not in ("chronological", "random"):
        raise ValueError(f"unknown split method {method!r}")
    rng = np.random.default_rng(seed)
    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"train": [], "val": [], "test": []}
    for s in series:
        n = len(s)
        order = np.arange(n) if method == "chronological" else rng.permutation(n)
        cut_gap = gap if method == "chronological" else 0
        b1, b2 = split_boundaries(n, train, validation)
        ranges = {"train": (0, b1 - cut_gap), "val": (b1, b2 - cut_gap), "test": (b2, n)}
        for part, (lo, hi) in ranges.items():
            if hi <= lo:
                raise BadInputError(
                    f"{s.key}: only {n} samples, too few for a "
                    f"{'validation' if part == 'val' else part} part "
                    f"(split {train:g}/{validation:g}/{1 - train - validation:g}"
                    f"{f', gap {cut_gap}' if cut_gap else ''}); use a longer date range")
            index = order[lo:hi]
            parts[part].append((s.X[index], s.y[index]))

    def join(part: str) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = zip(*parts[part], strict=True)
        return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64)

    X_train, y_train = join("train")
    X_val, y_val = join("val")
    X_test, y_test = join("test")
    return DatasetSplit(X_train=X_train, y_train=y_train, X_val=X_val, y_val=y_val,
                        X_test=X_test, y_test=y_test)
