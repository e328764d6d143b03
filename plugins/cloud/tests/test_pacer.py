"""The driver-side pacer: order kept, never two updates closer than 100 ms but the final."""

from __future__ import annotations

import time

from ktrdr_cloud.mode import ProgressPacer
from ktrdr_core import CancellationError


def test_a_burst_is_spread_out_and_the_last_one_goes_at_once() -> None:
    seen: list[tuple[float, int]] = []
    pacer = ProgressPacer(lambda e, t, m: seen.append((time.monotonic(), e)), min_interval=0.05)
    for epoch in range(1, 5):  # four updates arrive in one pull
        pacer.add(epoch, 4, {"progress_type": "epoch"})
    assert [e for _, e in seen] == [1]  # the rest wait their turn
    pacer.flush()
    assert [e for _, e in seen] == [1, 2, 3, 4]
    gaps = [b - a for (a, _), (b, _) in zip(seen, seen[1:], strict=False)]
    assert all(gap >= 0.05 - 1e-3 for gap in gaps[:-1])
    assert gaps[-1] < 0.04  # the final update is not held back


def test_pump_delivers_what_is_due() -> None:
    seen: list[int] = []
    pacer = ProgressPacer(lambda e, t, m: seen.append(e), min_interval=0.03)
    pacer.add(1, 2, {})
    pacer.add(2, 2, {})
    assert seen == [1]
    time.sleep(0.035)
    pacer.pump()
    assert seen == [1, 2]


def test_a_failing_callback_is_isolated_and_a_cancelling_one_is_obeyed() -> None:
    calls: list[int] = []
    asked: list[str] = []

    def callback(epoch: int, total: int, metrics: object) -> None:
        calls.append(epoch)
        if epoch == 1:
            raise RuntimeError("sink bug")
        raise CancellationError("the consumer had enough")

    pacer = ProgressPacer(callback, min_interval=0.0, on_cancel_request=asked.append)
    pacer.add(1, 2, {})
    pacer.add(2, 2, {})
    assert calls == [1, 2]
    assert asked == ["the consumer had enough"]
