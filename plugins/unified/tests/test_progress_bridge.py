"""The progress bridge's rules (docs/modes.md), checked with a fake clock."""

from __future__ import annotations

import inspect
import statistics
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from unified_support import FakeClock

from ktrdr_unified.progress_bridge import (
    INITIAL_STRIDE,
    MAX_STRIDE,
    MIN_INTERVAL,
    SLOW_INTERVAL,
    TARGET_INTERVAL,
    ProgressBridge,
)


class Sink:
    """Keeps each delivered update with the fake time it arrived at."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.got: list[tuple[float, int, int, dict[str, Any]]] = []

    def __call__(self, epoch: int, total_epochs: int, metrics: Any) -> None:
        self.got.append((self.clock.now, epoch, total_epochs, dict(metrics)))

    @property
    def times(self) -> list[float]:
        return [t for t, *_ in self.got]

    def intervals(self) -> list[float]:
        return [b - a for a, b in zip(self.times, self.times[1:], strict=False)]


def batch(epoch: int, index: int, per_epoch: int) -> dict[str, Any]:
    return {
        "progress_type": "batch",
        "epoch": epoch,
        "batch": index,
        "total_batches_per_epoch": per_epoch,
        "train_loss": 1.0,
        "train_accuracy": 0.5,
    }


def epoch_end(epoch: int, total: int, *, stopped_early: bool = False) -> dict[str, Any]:
    return {
        "progress_type": "epoch",
        "epoch": epoch,
        "total_batches_per_epoch": 10,
        "train_loss": 1.0,
        "train_accuracy": 0.5,
        "val_loss": 1.0 / epoch,
        "val_accuracy": 0.1 * epoch,
        "best_epoch": epoch,
        "stopped_early": stopped_early,
    }


def simulate(
    bridge: ProgressBridge,
    clock: FakeClock,
    epochs: int,
    batches: int,
    batch_seconds: float,
    val_seconds: float = 0.0,
) -> None:
    """Feed a whole training's updates: ``batches`` per epoch, each taking ``batch_seconds``."""
    for e in range(1, epochs + 1):
        for b in range(1, batches + 1):
            clock.advance(batch_seconds)
            bridge(e, epochs, batch(e, b, batches))
        clock.advance(val_seconds)
        bridge(e, epochs, epoch_end(e, epochs))
    bridge.flush()


def make(clock: FakeClock) -> tuple[ProgressBridge, Sink]:
    sink = Sink(clock)
    return ProgressBridge(sink, clock=clock), sink


def test_bridge_is_a_progress_callback_with_the_exact_signature() -> None:
    params = list(inspect.signature(ProgressBridge.__call__).parameters)
    assert params == ["self", "epoch", "total_epochs", "metrics"]
    clock = FakeClock()
    bridge, sink = make(clock)
    bridge(1, 3, batch(1, 1, 10))  # positional, as ModelTrainer calls it
    assert sink.got == [(clock.now, 1, 3, batch(1, 1, 10))]


def test_first_batch_passes_at_once() -> None:
    clock = FakeClock()
    bridge, sink = make(clock)
    bridge(1, 5, batch(1, 1, 100))
    assert len(sink.got) == 1 and sink.got[0][3]["batch"] == 1
    for b in range(2, 50):  # the next ones, 1 ms apart, are throttled
        clock.advance(0.001)
        bridge(1, 5, batch(1, b, 100))
    assert len(sink.got) == 1


def test_stride_doubles_up_to_100_when_updates_come_fast() -> None:
    clock = FakeClock()
    bridge, _ = make(clock)
    assert bridge.stride == INITIAL_STRIDE == 10
    strides = [bridge.stride]
    for b in range(1, 3000):
        clock.advance(0.0005)
        bridge(1, 1, batch(1, b, 5000))
        if bridge.stride != strides[-1]:
            strides.append(bridge.stride)
    assert strides == [10, 20, 40, 80, 100]
    assert bridge.stride == MAX_STRIDE


def test_stride_halves_down_to_1_when_updates_come_slowly() -> None:
    clock = FakeClock()
    bridge, sink = make(clock)
    strides = [bridge.stride]
    for b in range(1, 60):
        clock.advance(0.5)  # every batch takes longer than SLOW_INTERVAL
        bridge(1, 1, batch(1, b, 100))
        if bridge.stride != strides[-1]:
            strides.append(bridge.stride)
    assert strides == [10, 5, 2, 1]
    # at stride 1 every (slow) batch gets through
    tail = [m["batch"] for *_x, m in sink.got][-10:]
    assert tail == list(range(50, 60))


@pytest.mark.parametrize("batch_seconds", [0.0002, 0.0013, 0.005, 0.02, 0.06, 0.12, 0.2])
def test_delivered_intervals_aim_at_300_ms(batch_seconds: float) -> None:
    clock = FakeClock()
    bridge, sink = make(clock)
    batches = int(20 / batch_seconds)  # 20 s of training in one long epoch
    simulate(bridge, clock, 1, batches, batch_seconds)
    steady = sink.intervals()[10:-1]
    assert 0.2 <= statistics.median(steady) <= 0.45, statistics.median(steady)
    assert min(steady) >= MIN_INTERVAL


def test_epoch_end_too_soon_is_folded_into_the_next_update() -> None:
    clock = FakeClock()
    bridge, sink = make(clock)
    bridge(1, 3, batch(1, 1, 10))  # delivered (first)
    clock.advance(0.05)
    bridge(1, 3, epoch_end(1, 3))  # 50 ms later: folded
    assert len(sink.got) == 1 and bridge.folded == 1
    clock.advance(0.01)
    bridge(2, 3, batch(2, 1, 10))  # not a candidate (stride 10)
    for b in range(2, 11):
        clock.advance(0.04)
        bridge(2, 3, batch(2, b, 10))
    assert len(sink.got) >= 2
    # an epoch of unknown length (no candidate yet) is folded only for the 100 ms floor,
    # so the first batch past the floor carries it, candidate or not (rule 6)
    t, epoch, _total, carried = sink.got[1]
    assert epoch == 2 and carried["progress_type"] == "batch" and carried["batch"] == 3
    assert t - sink.got[0][0] == pytest.approx(0.14)
    assert carried["val_loss"] == 1.0 and carried["val_accuracy"] == pytest.approx(0.1)
    assert carried["epochs_completed"] == 1
    assert [f["epoch"] for f in carried["folded_epochs"]] == [1]
    assert carried["folded_epochs"][0]["val_loss"] == 1.0


def test_epoch_end_near_the_target_passes_on_its_own() -> None:
    clock = FakeClock()
    bridge, sink = make(clock)
    bridge(1, 3, batch(1, 1, 10))
    clock.advance(0.3)
    bridge(1, 3, epoch_end(1, 3))
    assert [m["progress_type"] for *_x, m in sink.got] == ["batch", "epoch"]
    assert sink.got[1][3]["epochs_completed"] == 1
    assert "folded_epochs" not in sink.got[1][3]


def test_epoch_end_short_of_the_target_is_folded_even_after_100_ms() -> None:
    # The epoch end follows the candidates' rule: 150 ms after the last delivered update,
    # with the next chance ~150 ms away, waiting lands nearer 300 ms, so it is folded
    # (before, any epoch end 100 ms or more after the last update passed).
    clock = FakeClock()
    bridge, sink = make(clock)
    bridge(1, 3, batch(1, 1, 30))
    for b in range(2, 16):
        clock.advance(0.01)
        bridge(1, 3, batch(1, b, 30))
    clock.advance(0.01)
    bridge(1, 3, epoch_end(1, 3))
    assert len(sink.got) == 1 and bridge.folded == 1
    for b in range(1, 31):  # the next delivered update carries epoch 1
        clock.advance(0.01)
        bridge(2, 3, batch(2, b, 30))
    assert len(sink.got) == 2
    carried = sink.got[1][3]
    assert carried["progress_type"] == "batch" and carried["epochs_completed"] == 1
    assert carried["val_loss"] == 1.0 and [f["epoch"] for f in carried["folded_epochs"]] == [1]
    assert 0.25 <= sink.intervals()[0] <= SLOW_INTERVAL


def epochs_seen(sink: Sink) -> dict[int, float]:
    """Each epoch's val_loss as the sink got it, alone or folded."""
    seen: dict[int, float] = {}
    for _t, _e, _tot, m in sink.got:
        if m["progress_type"] == "epoch":
            seen[m["epoch"]] = m["val_loss"]
        for folded in m.get("folded_epochs", []):
            seen[folded["epoch"]] = folded["val_loss"]
    return seen


@pytest.mark.parametrize(
    ("batches", "batch_seconds", "val_seconds"),
    [
        (390, 0.2 / 390, 0.0),  # the sample strategy at batch size 32: ~200 ms epochs
        (390, 0.18 / 390, 0.02),  # the same with some validation time
        (195, 0.1 / 195, 0.01),  # ~110 ms epochs
        (40, 0.15 / 40, 0.005),  # ~155 ms epochs, slower batches
        (5, 0.02, 0.0),  # 100 ms epochs of fewer batches than the stride
    ],
)
def test_short_epochs_do_not_set_the_pace(batches: int, batch_seconds: float, val_seconds: float) -> None:
    clock = FakeClock()
    bridge, sink = make(clock)
    epochs = 60
    simulate(bridge, clock, epochs, batches, batch_seconds, val_seconds)
    intervals = sink.intervals()
    median = statistics.median(intervals[:-1])
    assert TARGET_INTERVAL * 0.85 <= median <= TARGET_INTERVAL * 1.15, median
    assert max(intervals) <= 1.0, max(intervals)
    assert min(intervals[:-1]) >= MIN_INTERVAL - 1e-12
    assert epochs_seen(sink) == {e: 1.0 / e for e in range(1, epochs + 1)}
    assert bridge.folded > 0


def test_flush_delivers_the_last_folded_epoch_of_a_cut_short_training() -> None:
    clock = FakeClock()
    bridge, sink = make(clock)
    epoch = 0
    while True:  # 200 ms epochs until one is folded, then training stops (e.g. cancelled)
        epoch += 1
        for b in range(1, 391):
            clock.advance(0.2 / 390)
            bridge(epoch, 50, batch(epoch, b, 390))
        folded_before = bridge.folded
        bridge(epoch, 50, epoch_end(epoch, 50))
        if bridge.folded > folded_before:
            break
    assert epoch < 50 and not bridge.finished
    assert epochs_seen(sink).keys() < set(range(1, epoch + 1))
    assert bridge.flush() is True
    _t, last_epoch, total, flushed = sink.got[-1]
    assert (last_epoch, total) == (epoch, 50) and flushed["flushed"] is True
    assert flushed["val_loss"] == 1.0 / epoch and bridge.finished
    assert epochs_seen(sink) == {e: 1.0 / e for e in range(1, epoch + 1)}
    assert bridge.flush() is False


def test_long_epochs_of_slow_batches_pass_as_before() -> None:
    # 2 s epochs of one 2 s batch: the next chance to deliver is far, so an epoch end
    # 100 ms after the last update passes on its own, as it always did.
    clock = FakeClock()
    bridge, sink = make(clock)
    for e in range(1, 6):
        clock.advance(2.0)
        bridge(e, 5, batch(e, 1, 1))
        clock.advance(0.1)
        bridge(e, 5, epoch_end(e, 5))
    epoch_updates = [m for *_x, m in sink.got if m["progress_type"] == "epoch"]
    assert [m["epoch"] for m in epoch_updates] == [1, 2, 3, 4, 5]
    assert bridge.folded == 0 and all("folded_epochs" not in m for m in epoch_updates)


def test_long_epochs_of_fast_batches_reach_the_sink_at_once() -> None:
    # 2 s epochs of fast batches: the batch throttle sets the pace; an epoch end is
    # delivered on its own when it is on target, else carried by the next candidate,
    # at most one candidate gap (~50 ms here) later.
    clock = FakeClock()
    sink = Sink(clock)
    bridge = ProgressBridge(sink, clock=clock)
    epochs, batches = 8, 4000
    ends: dict[int, float] = {}
    for e in range(1, epochs + 1):
        for b in range(1, batches + 1):
            clock.advance(2.0 / batches)
            bridge(e, epochs, batch(e, b, batches))
        ends[e] = clock.now
        bridge(e, epochs, epoch_end(e, epochs))
    arrived: dict[int, float] = {}
    for t, _e, _tot, m in sink.got:
        if m["progress_type"] == "epoch":
            arrived[m["epoch"]] = t
        for folded in m.get("folded_epochs", []):
            arrived[folded["epoch"]] = t
    assert arrived.keys() == ends.keys()
    assert all(arrived[e] - ends[e] <= 0.06 for e in ends), {e: arrived[e] - ends[e] for e in ends}
    median = statistics.median(sink.intervals()[1:-1])
    assert TARGET_INTERVAL * 0.85 <= median <= TARGET_INTERVAL * 1.15, median


def test_a_folded_epoch_waits_no_longer_than_the_slow_bound() -> None:
    # The epoch end is folded expecting a candidate 100 ms on, but then the batches
    # slow down 20-fold: the first batch 450 ms after the last update carries it.
    clock = FakeClock()
    bridge, sink = make(clock)
    bridge(1, 3, batch(1, 1, 11))
    for b in range(2, 12):
        clock.advance(0.005)
        bridge(1, 3, batch(1, b, 11))
    clock.advance(0.01)
    bridge(1, 3, epoch_end(1, 3))
    assert bridge.folded == 1 and len(sink.got) == 1 and bridge.stride == 20
    for b in range(1, 21):
        clock.advance(0.1)
        bridge(2, 3, batch(2, b, 20))
    assert len(sink.got) >= 2
    carried = sink.got[1][3]
    assert carried["batch"] == 4 and [f["epoch"] for f in carried["folded_epochs"]] == [1]
    assert SLOW_INTERVAL <= sink.intervals()[0] <= SLOW_INTERVAL + 0.1


def test_final_update_always_passes_and_carries_folded_epochs() -> None:
    clock = FakeClock()
    bridge, sink = make(clock)
    bridge(1, 2, batch(1, 1, 10))
    clock.advance(0.01)
    bridge(1, 2, epoch_end(1, 2))  # folded
    clock.advance(0.01)
    bridge(2, 2, epoch_end(2, 2))  # final: 20 ms after the last delivered, still passes
    assert len(sink.got) == 2
    _t, epoch, _total, final = sink.got[-1]
    assert epoch == 2 and final["val_loss"] == 0.5 and final["epochs_completed"] == 2
    assert [f["epoch"] for f in final["folded_epochs"]] == [1]
    assert bridge.finished
    assert bridge.flush() is False  # nothing left


def test_early_stop_epoch_is_final() -> None:
    clock = FakeClock()
    bridge, sink = make(clock)
    bridge(1, 50, batch(1, 1, 10))
    clock.advance(0.001)
    bridge(3, 50, epoch_end(3, 50, stopped_early=True))
    assert sink.got[-1][3]["stopped_early"] is True and bridge.finished


def test_flush_delivers_an_epoch_still_folded_at_the_end() -> None:
    clock = FakeClock()
    bridge, sink = make(clock)
    bridge(1, 5, batch(1, 1, 10))
    clock.advance(0.02)
    bridge(1, 5, epoch_end(1, 5))  # folded; then training stops (e.g. cancelled)
    assert len(sink.got) == 1
    assert bridge.flush() is True
    _t, epoch, total, flushed = sink.got[-1]
    assert (epoch, total) == (1, 5)
    assert flushed["progress_type"] == "epoch" and flushed["val_loss"] == 1.0
    assert flushed["flushed"] is True
    assert bridge.flush() is False


def test_no_downstream_only_counts() -> None:
    clock = FakeClock()
    bridge = ProgressBridge(None, clock=clock)
    simulate(bridge, clock, 2, 100, 0.01)
    assert bridge.received == 202 and 0 < bridge.delivered < 202


@settings(max_examples=60, deadline=None)
@given(
    epochs=st.integers(1, 6),
    batches=st.integers(1, 400),
    batch_seconds=st.sampled_from([0.0001, 0.001, 0.003, 0.01, 0.05, 0.2, 0.7]),
    val_seconds=st.sampled_from([0.0, 0.002, 0.05, 0.12, 0.4]),
    jitter=st.lists(st.floats(0.0, 0.02), min_size=1, max_size=7),
)
def test_rules_hold_for_any_training_shape(
    epochs: int, batches: int, batch_seconds: float, val_seconds: float, jitter: list[float]
) -> None:
    clock = FakeClock()
    bridge, sink = make(clock)
    received = 0
    longest_silence = 0.0  # the longest time between two updates the bridge received
    for e in range(1, epochs + 1):
        for b in range(1, batches + 1):
            step = batch_seconds + jitter[(e * b) % len(jitter)] * batch_seconds
            longest_silence = max(longest_silence, step + (val_seconds if b == 1 else 0.0))
            clock.advance(step)
            bridge(e, epochs, batch(e, b, batches))
            received += 1
            if received == 1:  # the first update passes at once
                assert len(sink.got) == 1
        clock.advance(val_seconds)
        bridge(e, epochs, epoch_end(e, epochs))
    bridge.flush()
    # the final update passed, and it is the last epoch's
    _t, epoch, _total, last = sink.got[-1]
    assert epoch == epochs and last["progress_type"] == "epoch" and last["val_loss"] == 1.0 / epochs
    # never two updates closer than MIN_INTERVAL, except the final one
    assert all(gap >= MIN_INTERVAL - 1e-12 for gap in sink.intervals()[:-1])
    # every epoch's validation numbers reached the sink, alone or folded
    assert epochs_seen(sink) == {e: 1.0 / e for e in range(1, epochs + 1)}
    # folding never stretches an interval past SLOW_INTERVAL and one silence
    for gap, (_t, _e, _tot, m) in zip(sink.intervals(), sink.got[1:], strict=True):
        if m.get("folded_epochs"):
            assert gap <= SLOW_INTERVAL + longest_silence + 1e-9
    assert 1 <= bridge.stride <= MAX_STRIDE
    assert bridge.received == epochs * (batches + 1)


def test_target_constant_is_300_ms() -> None:
    assert TARGET_INTERVAL == 0.3 and MIN_INTERVAL == 0.1


class SlowToRead(Mapping[str, Any]):
    """A batch update whose loss takes time to read, like the trainer's deferred numbers:
    every other read costs ``read_seconds`` on the fake clock."""

    reads = 0

    def __init__(self, clock: FakeClock, read_seconds: float, **metrics: Any) -> None:
        self._clock, self._read_seconds, self._metrics = clock, read_seconds, metrics

    def __getitem__(self, key: str) -> Any:
        if key == "train_loss":
            SlowToRead.reads += 1
            if SlowToRead.reads % 2:
                self._clock.advance(self._read_seconds)
        return self._metrics[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._metrics)

    def __len__(self) -> int:
        return len(self._metrics)


def test_the_floor_holds_where_the_sinks_are_even_when_reading_an_update_takes_time() -> None:
    """Reading a delivered update's numbers counts before the next interval starts: with the
    target at the floor and every batch looked at, an update that took 50 ms to read is not
    followed by one 50 ms after it reached the sink."""
    clock = FakeClock()
    sink = Sink(clock)
    bridge = ProgressBridge(
        sink,
        clock=clock,
        target_interval=MIN_INTERVAL,
        min_interval=MIN_INTERVAL,
        initial_stride=1,
        max_stride=1,
    )
    for b in range(1, 400):
        clock.advance(0.01)
        bridge(1, 1, SlowToRead(clock, 0.05, **batch(1, b, 1000)))
    gaps = [b - a for a, b in zip(sink.times, sink.times[1:], strict=False)]
    assert len(gaps) >= 5 and SlowToRead.reads == len(sink.got)
    assert min(gaps) >= MIN_INTERVAL - 1e-9, gaps
