"""Shadow overhead: how much slower the user's run gets while its shadow runs.

    python benchmarks/bench_shadow.py                  # 5 rounds, 5 epochs, all sample data
    python benchmarks/bench_shadow.py --rounds 7 --epochs 10

Each round trains the sample strategy through a real TrainingManager (the
rollout off, so the user gets the control, legacy) three ways, in rotating
order: with the shadow off, with the shadow at 100 % at its own low priority
(``nice 19``, the default), and at 100 % without lowering the priority. The
figure is the user's wall time from ``train()`` to its result; after a
shadowed run the benchmark waits for the shadow to be recorded before the next
run, so each shadow overlaps only its own user's run — the worst case: the
shadow's process start (Python, torch) lands entirely inside the user's run.
Ratios are medians of per-round ratios (shadowed / off).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

STRATEGY = "neuro_mean_reversion"
VARIANTS = ("off", "shadow nice 19", "shadow nice 0")
RESULTS = Path(__file__).resolve().parent / "results"


def run(rounds: int, epochs: int, log: Any = print) -> dict[str, Any]:
    from ktrdr_core import TrainingManager, TrainingRequest
    from ktrdr_core.plugins import get_plugin_manager
    from ktrdr_core.rollout.shadow import set_shadow_percentage
    from ktrdr_core.rollout.store import RolloutStore
    from ktrdr_core.service.shadow import ShadowPlugin, ShadowRunner

    pm = get_plugin_manager()
    manager = TrainingManager(pm)
    outcomes: list[str] = []
    plugins = {
        "shadow nice 19": ShadowPlugin(ShadowRunner(on_outcome=lambda r, _x: outcomes.append(r))),
        "shadow nice 0": ShadowPlugin(ShadowRunner(on_outcome=lambda r, _x: outcomes.append(r), niceness=0)),
    }
    set_shadow_percentage(RolloutStore(), 100, reason="benchmark")
    overrides = {"epochs": epochs, "seed": 1, "save_model": False}
    manager.train(TrainingRequest(strategy=STRATEGY, overrides={**overrides, "epochs": 1}))  # warm-up
    walls: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for index in range(rounds):
        order = VARIANTS[index % 3 :] + VARIANTS[: index % 3]
        for variant in order:
            plugin = plugins.get(variant)
            if plugin is not None:
                pm.register(plugin, name="ktrdr-shadow")
            started = time.perf_counter()
            result = manager.train(
                TrainingRequest(strategy=STRATEGY, user_id=f"bench{index}", overrides=overrides)
            )
            walls[variant].append(time.perf_counter() - started)
            assert result.success, result.error
            if plugin is not None:
                pm.unregister(name="ktrdr-shadow")
                assert plugin.runner.wait(600), "a shadow run did not finish"
        log(f"round {index + 1}/{rounds}: " + ", ".join(f"{v} {walls[v][-1]:.2f} s" for v in VARIANTS))
    ratios = {
        v: statistics.median(a / b for a, b in zip(walls[v], walls["off"], strict=True)) for v in VARIANTS[1:]
    }
    return {
        "rounds": rounds,
        "epochs": epochs,
        "walls": walls,
        "medians": {v: statistics.median(w) for v, w in walls.items()},
        "ratios": ratios,
        "best_of": {v: min(walls[v]) / min(walls["off"]) for v in VARIANTS[1:]},
        "outcomes": {o: outcomes.count(o) for o in sorted(set(outcomes))},
        "target": 1.05,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args(argv)
    os.environ["KTRDR_HOME"] = tempfile.mkdtemp(prefix="ktrdr-bench-shadow-")
    import torch

    torch.set_num_threads(1)
    load = os.getloadavg()
    report = run(args.rounds, args.epochs, log=lambda m: print(m, file=sys.stderr, flush=True))
    report["load_average"] = {"start": load, "end": os.getloadavg()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench_shadow-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        json.dumps(
            {k: report[k] for k in ("medians", "ratios", "best_of", "outcomes", "load_average")}, indent=2
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
