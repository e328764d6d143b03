"""The progress bridge's rules (DESIGN.md §6), checked with a fake clock."""

from __future__ import annotations

import inspect
import statistics
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from unified_support import FakeClock

from ktrdr_unified.progress_bridge import (
    INITIAL_STRIDE,
    MAX_STRIDE,
    MIN_INTERVAL,
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
    return {"progress_type": "batch", "epoch": epoch, "batch": index,
            "total_batches_per_epoch": per_epoch, "train_loss": 1.0, "train_accuracy": 0.5}


def epoch_end(epoch: int, total: int, *, stopped_early: bool = False) -> dict[str, Any]:
    return {"progress_type": "epoch", "epoch": epoch, "total_batches_per_epoch": 10,
            "train_loss": 1.0, "train_accuracy": 0.5, "val_loss": 1.0 / epoch,
            "val_accuracy": 0.1 * epoch, "best_epoch": epoch, "stopped_early": stopped_early}


def simulate(bridge: ProgressBridge, clock: FakeClock, epochs: int, batches: int,
             batch_seconds: float, val_seconds: float = 0.0) -> None:
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
    assert len(sink.got) == 2
    _t, epoch, _total, carried = sink.got[1]
    assert epoch == 2 and carried["progress_type"] == "batch"
    assert carried["val_loss"] == 1.0 and carried["val_accuracy"] == pytest.approx(0.1)
    assert carried["epochs_completed"] == 1
    assert [f["epoch"] for f in carried["folded_epochs"]] == [1]
    assert carried["folded_epochs"][0]["val_loss"] == 1.0


def test_epoch_end_after_100_ms_passes_on_its_own() -> None:
    clock = FakeClock()
    bridge, sink = make(clock)
    bridge(1, 3, batch(1, 1, 10))
    clock.advance(0.1)
    bridge(1, 3, epoch_end(1, 3))
    assert [m["progress_type"] for *_x, m in sink.got] == ["batch", "epoch"]
    assert sink.got[1][3]["epochs_completed"] == 1
    assert "folded_epochs" not in sink.got[1][3]


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
def test_rules_hold_for_any_training_shape(epochs: int, batches: int, batch_seconds: float,
                                           val_seconds: float, jitter: list[float]) -> None:
    clock = FakeClock()
    bridge, sink = make(clock)
    received = 0
    for e in range(1, epochs + 1):
        for b in range(1, batches + 1):
            clock.advance(batch_seconds + jitter[(e * b) % len(jitter)] * batch_seconds)
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
    seen = {}
    for _t, _e, _tot, m in sink.got:
        if m["progress_type"] == "epoch":
            seen[m["epoch"]] = m["val_loss"]
        for folded in m.get("folded_epochs", []):
            seen[folded["epoch"]] = folded["val_loss"]
    assert seen == {e: 1.0 / e for e in range(1, epochs + 1)}
    assert 1 <= bridge.stride <= MAX_STRIDE
    assert bridge.received == epochs * (batches + 1)


def test_target_constant_is_300_ms() -> None:
    assert TARGET_INTERVAL == 0.3 and MIN_INTERVAL == 0.1
