"""Framework overhead: ``ModelTrainer`` as the unified mode runs it vs a bare torch loop.

The data is built once with the engine's own step functions (strategy → data →
indicators → fuzzy → features → labels → balance → split), on the sample
strategy, and turned into tensors. Then two loops train the same MLP (same
initial weights: ``build_model`` with the same seed) on the same tensors, with
the same batches (a ``torch.Generator`` seeded alike draws the same
permutation each epoch), for the same number of epochs (early stopping off):

- **unified**: ``ModelTrainer(settings, callback, token).train(...)`` with the
  callback the unified mode hands it — ``ProgressBridge`` wrapping the
  manager's ``ProgressTimer`` and ``ProgressFanout`` with one no-op sink — and
  a ``ThreadingCancellationToken`` checked every batch;
- **plain**: the minimal hand-written loop: Adam (fused where available, as
  ModelTrainer builds it), cross-entropy, ``zero_grad / backward / step``,
  one full-batch validation per epoch;
- **plain_metrics**: the plain loop plus a running loss and accuracy read every
  batch (``loss.item()``, an argmax): what ModelTrainer paid per batch before it
  deferred those numbers to the updates a consumer reads; unified / plain_metrics
  shows what deferring saves.

What the ratio prices: the per-batch bookkeeping of the deferred running
loss/accuracy (a detach, a few list appends; the sums are folded on the rare
updates the bridge delivers), the progress call and the token check, the
best-epoch state copy and the chunked validation. Both loops compute the same
model: the JSON records the largest gap between their per-epoch validation
losses (float rounding only, ~1e-7).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

STRATEGY = "neuro_mean_reversion"


def build_tensors(strategy_name: str = STRATEGY, seed: int = 42) -> dict[str, Any]:
    """Run the engine's data steps once; return tensors, trainer settings and a model factory."""
    import torch

    from ktrdr_core import TrainingRequest
    from ktrdr_core.training import pipeline as p
    from ktrdr_core.training.data import resolve_data_dir

    request = TrainingRequest(strategy=strategy_name, overrides={"seed": seed})
    options = p.resolve_options(request.overrides)
    strategy = p.load_strategy_step(request, options)
    symbols, timeframes = p.select_series(request, strategy)
    data_dir, _source = resolve_data_dir({"data_dir": None}, None)
    data = p.load_data(symbols, timeframes, data_dir)
    values = p.compute_indicators(strategy, data)
    memberships = p.compute_memberships(strategy, values)
    matrices, names = p.build_features(strategy, memberships)
    labelled = p.build_labels(strategy, data, matrices)
    split = p.split_step(strategy, p.balance_step(labelled), options.seed)
    settings = p.trainer_settings(strategy, options)
    settings["early_stopping"] = {"enabled": False}
    settings["device"] = "cpu"

    def new_model() -> Any:
        return p.build_model(strategy, len(names), options.seed)

    return {
        "X": torch.as_tensor(split.X_train, dtype=torch.float32),
        "y": torch.as_tensor(split.y_train, dtype=torch.long),
        "Xv": torch.as_tensor(split.X_val, dtype=torch.float32),
        "yv": torch.as_tensor(split.y_val, dtype=torch.long),
        "settings": settings,
        "new_model": new_model,
        "features": len(names),
    }


def unified_loop(data: dict[str, Any], epochs: int) -> tuple[float, list[float]]:
    """Seconds for ``ModelTrainer`` with the unified mode's callback; per-epoch val losses."""
    from ktrdr_core import ThreadingCancellationToken
    from ktrdr_core.manager import ProgressTimer
    from ktrdr_core.progress import ProgressFanout
    from ktrdr_core.training.trainer import ModelTrainer
    from ktrdr_unified.progress_bridge import ProgressBridge

    model = data["new_model"]()
    settings = {**data["settings"], "epochs": epochs}
    callback = ProgressBridge(ProgressTimer(ProgressFanout([lambda _e, _t, _m: None])))
    started = time.perf_counter()
    trainer = ModelTrainer(settings, callback, ThreadingCancellationToken())
    metrics = trainer.train(model, data["X"], data["y"], data["Xv"], data["yv"])
    elapsed = time.perf_counter() - started
    return elapsed, list(metrics["history"]["val_loss"])


def plain_loop(
    data: dict[str, Any], epochs: int, *, batch_metrics: bool = False
) -> tuple[float, list[float]]:
    """Seconds for the minimal hand-written loop; per-epoch val losses.

    ``batch_metrics``: also keep the running loss and accuracy per batch, as
    ModelTrainer must for its progress contract (``loss.item()``, an argmax),
    which tells the cost of those numbers apart from the rest of the framework.
    """
    import torch
    from torch import nn

    model = data["new_model"]()
    cfg = data["settings"]
    X, y, Xv, yv = data["X"], data["y"], data["Xv"], data["yv"]
    batch_size, seed = int(cfg["batch_size"]), int(cfg["seed"])
    started = time.perf_counter()
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    try:
        optimizer = torch.optim.Adam(model.parameters(), lr=float(cfg["learning_rate"]), fused=True)
    except (RuntimeError, TypeError, ValueError):
        optimizer = torch.optim.Adam(model.parameters(), lr=float(cfg["learning_rate"]))
    loss_fn = nn.CrossEntropyLoss()
    n = len(y)
    val_losses = []
    seen, loss_sum, correct = 0, 0.0, 0
    for _epoch in range(epochs):
        model.train()
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            yb = y[index]
            logits = model(X[index])
            loss = loss_fn(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if batch_metrics:
                seen += len(index)
                loss_sum += loss.item() * len(index)
                correct += int((logits.argmax(1) == yb).sum())
        model.eval()
        with torch.no_grad():
            val_losses.append(float(loss_fn(model(Xv), yv)))
    return time.perf_counter() - started, val_losses


def plain_metrics_loop(data: dict[str, Any], epochs: int) -> tuple[float, list[float]]:
    """:func:`plain_loop` with per-batch running loss and accuracy."""
    return plain_loop(data, epochs, batch_metrics=True)


LOOPS: dict[str, Callable[[dict[str, Any], int], tuple[float, list[float]]]] = {
    "unified": unified_loop,
    "plain": plain_loop,
    "plain_metrics": plain_metrics_loop,
}


def run(rounds: int, epochs: int, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """``rounds`` interleaved rounds (ABBA) of both loops; medians and ratios."""
    from ktrdr_core.compare.stats import interleaved_order, median_or_none, paired_ratios, ratio

    data = build_tensors()
    log(
        f"overhead: {len(data['y'])} training samples x {data['features']} features, "
        f"batch {data['settings']['batch_size']}, {epochs} epochs, {rounds} rounds"
    )
    for loop in LOOPS.values():  # warm-up, untimed
        loop(data, 1)
    times: dict[str, list[float]] = {name: [] for name in LOOPS}
    curves: dict[str, list[float]] = {}
    for order in interleaved_order(list(LOOPS), rounds):
        for name in order:
            elapsed, losses = LOOPS[name](data, epochs)
            times[name].append(elapsed)
            curves.setdefault(name, losses)
        log(f"  round {len(times['plain'])}: " + ", ".join(f"{n} {times[n][-1]:.3f} s" for n in LOOPS))
    gap = max((abs(a - b) for a, b in zip(curves["unified"], curves["plain"], strict=True)), default=None)
    paired = paired_ratios(times["unified"], times["plain"])
    return {
        "rounds": rounds,
        "epochs": epochs,
        "train_samples": len(data["y"]),
        "batch_size": data["settings"]["batch_size"],
        "seconds": times,
        "median_seconds": {name: median_or_none(v) for name, v in times.items()},
        "ratio_of_medians": ratio(median_or_none(times["unified"]), median_or_none(times["plain"])),
        "paired_ratios": paired,
        "ratio": median_or_none(paired),
        "ratio_of_best": ratio(min(times["unified"], default=None), min(times["plain"], default=None)),
        "metrics_ratio": median_or_none(paired_ratios(times["plain_metrics"], times["plain"])),
        "framework_ratio": median_or_none(paired_ratios(times["unified"], times["plain_metrics"])),
        "max_val_loss_gap": gap,
    }
