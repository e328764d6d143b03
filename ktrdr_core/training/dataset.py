"""Samples: balancing across symbols and the train / validation / test split.

Balancing: every series (one symbol at one timeframe) keeps the same number of
samples, the smallest series' count, taking each series' most recent samples,
so no symbol dominates the loss.

Split policy (``training.data_split``):

- ``chronological`` (default, the honest choice for time series): the cut
  times are chosen once for all series, from the pooled sample timestamps:
  with the ``N`` timestamps of every series sorted together, validation starts
  at ``t1 = pooled[round(N * train)]`` and test at
  ``t2 = pooled[round(N * (train + validation))]``. Every series then trains
  on its samples before ``t1``, validates on ``[t1, t2)`` and tests from
  ``t2`` on, so no series trains on a period another one is validated or
  tested on, even when the series cover different periods (unequal histories,
  1h next to 1d). A series may have no samples in a part (one that ends before
  ``t1``); only an empty part overall is an error. The last ``gap`` samples of
  each series before each boundary (the pipeline passes the labels' horizon)
  are dropped, since their labels look into the next part.
- ``random``: a seeded shuffle of each series before cutting it by sample
  index (no gap). It leaks neighbouring bars across the parts and flatters the
  metrics; use it only to compare with other tools.

Boundaries, per series of ``n`` samples: ``b1`` / ``b2`` are the first
samples at or after ``t1`` / ``t2`` (chronological), or ``round(n * train)`` /
``round(n * (train + validation))`` (random); train is ``[0, b1 - gap)``,
validation ``[b1, b2 - gap)``, test ``[b2, n)``. With series over the same
timestamps this is the same as cutting each series at its own 70 % / 85 %.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np

from ktrdr_core.errors import BadInputError

__all__ = [
    "DatasetSplit",
    "SeriesSamples",
    "balance_series",
    "split_boundaries",
    "split_cut_times",
    "split_series",
]


@attrs.frozen(eq=False)
class SeriesSamples:
    """One series' labelled samples, in time order."""

    symbol: str
    timeframe: str
    X: np.ndarray
    y: np.ndarray
    timestamps: np.ndarray
    bars: int = 0
    """Base bars before any row was dropped (the counts below say why rows went)."""
    warmup: int = 0
    unlabelled: int = 0

    def __len__(self) -> int:
        return len(self.y)

    @property
    def key(self) -> str:
        return f"{self.symbol}_{self.timeframe}"

    def tail(self, count: int) -> SeriesSamples:
        return attrs.evolve(self, X=self.X[-count:], y=self.y[-count:], timestamps=self.timestamps[-count:])


@attrs.frozen(eq=False)
class DatasetSplit:
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "validation": len(self.y_val), "test": len(self.y_test)}


def balance_series(series: Sequence[SeriesSamples]) -> list[SeriesSamples]:
    """Each series cut to the smallest one's length, keeping its most recent samples."""
    if not series:
        raise BadInputError("no data to train on")
    smallest = min(len(s) for s in series)
    if smallest == 0:
        empty = [s.key for s in series if len(s) == 0]
        raise BadInputError(
            f"no labelled samples left for {', '.join(empty)} after indicator "
            "warm-up and labelling; use a longer date range"
        )
    return [s.tail(smallest) for s in series]


def split_boundaries(n: int, train: float, validation: float) -> tuple[int, int]:
    """``(b1, b2)``: where validation and test start."""
    return int(round(n * train)), int(round(n * (train + validation)))


def split_cut_times(
    series: Sequence[SeriesSamples], train: float, validation: float
) -> tuple[np.datetime64 | None, np.datetime64 | None]:
    """``(t1, t2)``: when validation and test start, the same for every series.

    Taken from all series' sample timestamps pooled and sorted; ``None`` when
    the cut falls after the last sample (that part is then empty).
    """
    pooled = np.sort(np.concatenate([np.asarray(s.timestamps, dtype="datetime64[s]") for s in series]))
    k1, k2 = split_boundaries(len(pooled), train, validation)
    t1 = pooled[k1] if k1 < len(pooled) else None
    t2 = pooled[k2] if k2 < len(pooled) else None
    return t1, t2


def split_series(
    series: Sequence[SeriesSamples],
    train: float = 0.7,
    validation: float = 0.15,
    *,
    method: str = "chronological",
    gap: int = 0,
    seed: int = 42,
) -> DatasetSplit:
    """Split every series at the same times and concatenate the parts (see module docstring)."""
    if method not in ("chronological", "random"):
        raise ValueError(f"unknown split method {method!r}")
    if not series:
        raise BadInputError("no data to train on")
    chronological = method == "chronological"
    rng = np.random.default_rng(seed)
    cut_gap = gap if chronological else 0
    if chronological:
        t1, t2 = split_cut_times(series, train, validation)
    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"train": [], "val": [], "test": []}
    for s in series:
        n = len(s)
        if chronological:
            stamps = np.asarray(s.timestamps, dtype="datetime64[s]")
            if len(stamps) > 1 and np.any(stamps[1:] < stamps[:-1]):
                raise ValueError(f"{s.key}: sample timestamps are not in time order")
            order = np.arange(n)
            b1 = n if t1 is None else int(np.searchsorted(stamps, t1, side="left"))
            b2 = n if t2 is None else int(np.searchsorted(stamps, t2, side="left"))
        else:
            order = rng.permutation(n)
            b1, b2 = split_boundaries(n, train, validation)
        ranges = {"train": (0, b1 - cut_gap), "val": (b1, b2 - cut_gap), "test": (b2, n)}
        for part, (lo, hi) in ranges.items():
            if hi <= lo and not chronological:
                raise _too_few(s.key, part, n, train, validation, cut_gap)
            index = order[lo : max(lo, hi)]
            parts[part].append((s.X[index], s.y[index]))
    for part, pieces in parts.items():
        if not any(len(y) for _, y in pieces):
            total = sum(len(s) for s in series)
            raise _too_few(", ".join(s.key for s in series), part, total, train, validation, cut_gap)

    def join(part: str) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = zip(*parts[part], strict=True)
        return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64)

    X_train, y_train = join("train")
    X_val, y_val = join("val")
    X_test, y_test = join("test")
    return DatasetSplit(
        X_train=X_train, y_train=y_train, X_val=X_val, y_val=y_val, X_test=X_test, y_test=y_test
    )


def _too_few(what: str, part: str, n: int, train: float, validation: float, gap: int) -> BadInputError:
    return BadInputError(
        f"{what}: only {n} samples, too few for a "
        f"{'validation' if part == 'val' else part} part "
        f"(split {train:g}/{validation:g}/{1 - train - validation:g}"
        f"{f', gap {gap}' if gap else ''}); use a longer date range"
    )
