"""Micro-benchmarks: the price of routing one request and of one hook call; CLI start-up.

- ``select_mode``: one call of the selector hook (the core's user-hash rollout,
  50 % rollout on, so the hash, the exclusion list and the candidate's health
  check all run) with the policy already read;
- ``manager.decide``: what the manager pays per request — reading the rollout
  settings (the rollout file under KTRDR_HOME and the environment) plus the
  selector;
- ``hook call``: one ``training_started`` call through a plain pluggy manager
  with one no-op implementation, and the same through ``KtrdrPluginManager.calls``
  (pluggy's machinery with each implementation isolated), which is how the
  manager calls observers;
- ``progress update``: one update through the manager's ``ProgressTimer`` and
  ``ProgressFanout`` to one no-op sink (what legacy pays per batch), and one
  batch update into the unified ``ProgressBridge`` (what unified pays per batch;
  most are dropped without reading the clock).

Each is timed with :mod:`timeit` (``autorange`` picks the loop count), repeated,
and reported as the median microseconds per call.

``ktrdr --help`` start-up: the ``ktrdr`` console script (or ``python -m
ktrdr_core.cli.main``) run as a subprocess, interleaved with a bare ``python -c
pass`` so the interpreter's own start-up is visible; median wall seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any


def per_call_us(func: Callable[[], Any], repeats: int) -> dict[str, Any]:
    """Median (and min) microseconds per call of ``func`` over ``repeats`` timeit runs."""
    from ktrdr_core.compare.stats import median_or_none

    timer = timeit.Timer(func)
    number, _ = timer.autorange()
    samples = [t / number * 1e6 for t in timer.repeat(repeat=repeats, number=number)]
    return {"median_us": median_or_none(samples), "min_us": min(samples), "loops": number, "repeats": repeats}


def run_micro(repeats: int) -> dict[str, Any]:
    import pluggy

    from ktrdr_core import TrainingManager, TrainingRequest, hookimpl, hookspecs
    from ktrdr_core.manager import ProgressTimer
    from ktrdr_core.plugins import KtrdrPluginManager, get_plugin_manager
    from ktrdr_core.progress import ProgressFanout
    from ktrdr_core.rollout.policy import RolloutPolicy

    saved = {k: os.environ.get(k) for k in ("USE_UNIFIED_TRAINING", "UNIFIED_TRAINING_ROLLOUT_PERCENTAGE")}
    os.environ.update(USE_UNIFIED_TRAINING="true", UNIFIED_TRAINING_ROLLOUT_PERCENTAGE="50")
    try:
        pm = get_plugin_manager()
        policy = RolloutPolicy.from_env()
        modes = pm.execution_modes()
        request = TrainingRequest(strategy="neuro_mean_reversion", user_id="bench-user")
        manager = TrainingManager(plugin_manager=pm)
        decision = manager.decide(request)
        out: dict[str, Any] = {
            "select_mode": per_call_us(
                lambda: pm.calls.select_mode(request=request, policy=policy, modes=modes), repeats
            ),
            "manager_decide": per_call_us(lambda: manager.decide(request), repeats),
        }
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    class NoOp:
        @hookimpl
        def training_started(self, request: Any, decision: Any) -> None:
            return None

    bare = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    bare.add_hookspecs(hookspecs)
    bare.register(NoOp(), name="noop")
    out["hook_call"] = per_call_us(
        lambda: bare.hook.training_started(request=request, decision=decision), repeats
    )
    isolated = KtrdrPluginManager()
    isolated.register(NoOp(), name="noop")
    out["hook_call_isolated"] = per_call_us(
        lambda: isolated.calls.training_started(request=request, decision=decision), repeats
    )

    metrics = {
        "progress_type": "batch",
        "epoch": 1,
        "batch": 1,
        "total_batches_per_epoch": 390,
        "train_loss": 1.0,
        "train_accuracy": 0.5,
    }
    fanout = ProgressTimer(ProgressFanout([lambda _e, _t, _m: None]))
    out["progress_update_fanout"] = per_call_us(lambda: fanout(1, 10, metrics), repeats)
    try:
        from ktrdr_unified.progress_bridge import ProgressBridge

        bridge = ProgressBridge(ProgressTimer(ProgressFanout([lambda _e, _t, _m: None])))
        out["progress_update_bridge"] = per_call_us(lambda: bridge(1, 10, metrics), repeats)
    except ImportError:
        out["progress_update_bridge"] = None
    return out


def ktrdr_help_command() -> list[str]:
    script = Path(sys.executable).parent / "ktrdr"
    if script.exists():
        return [str(script), "--help"]
    found = shutil.which("ktrdr")
    return [found, "--help"] if found else [sys.executable, "-m", "ktrdr_core.cli.main", "--help"]


def run_startup(runs: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``ktrdr --help`` and ``python -c pass``, interleaved, ``runs`` times each."""
    from ktrdr_core.compare.stats import interleaved_order, median_or_none

    commands = {"ktrdr --help": ktrdr_help_command(), "python -c pass": [sys.executable, "-c", "pass"]}
    times: dict[str, list[float]] = {name: [] for name in commands}
    for name in commands:  # warm the file cache, untimed
        subprocess.run(commands[name], env=env, capture_output=True, check=True)
    for order in interleaved_order(list(commands), runs):
        for name in order:
            started = time.perf_counter()
            subprocess.run(commands[name], env=env, capture_output=True, check=True)
            times[name].append(time.perf_counter() - started)
    return {
        "command": " ".join(commands["ktrdr --help"]),
        "runs": runs,
        "seconds": times,
        "median_seconds": {name: median_or_none(v) for name, v in times.items()},
    }
