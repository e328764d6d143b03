"""Every ktrdr benchmark in one command, with one table at the end.

    python -m benchmarks                 # default (~4-6 min on 2 shared cores)
    python -m benchmarks --quick         # ~2 min: fewer rounds, shorter trainings
    python -m benchmarks --thorough      # ~15 min: more rounds, the strategy's own epochs
    python -m benchmarks --only overhead micro startup
    python benchmarks/run_all.py ...     # the same

Measures (benchmarks/README.md says what each number means):

1. framework overhead — ModelTrainer as the unified mode runs it / a plain
   torch loop, same tensors, model, batches and epochs (bench_overhead.py);
2. unified / legacy wall time of whole trainings (bench_modes.training_run);
3. cancellation latency p50/p95/p99 per mode over >= 30 cancels
   (bench_modes.cancel_run);
4. progress interval percentiles per mode (from the runs of 2);
5. one selector decision and one hook call, in microseconds (bench_micro.py);
6. ``ktrdr --help`` start-up time (bench_micro.py);
7. loading + indicators + features + labels for 10 symbols at three sizes, and
   whether the cost grows linearly with bars (bench_features.py);
8. shadow overhead: the user's wall time with the shadow at 100 % / off, at the
   shadow's own low priority and without it (bench_shadow.py).

A/B measurements are interleaved (ABBA) so that drift in machine load falls
on both sides; each figure is a median. Writes
``benchmarks/results/run_all-<time>.json`` and ``.md`` (git-ignored), prints
the table, and with ``--update-results-md`` also writes ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import (  # noqa: E402
    bench_features,
    bench_micro,
    bench_modes,
    bench_overhead,
    bench_shadow,
)
from ktrdr_core.cancellation import CANCELLATION_BOUND_SECONDS  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
RESULTS_MD = HERE / "RESULTS.md"
SECTIONS = ("overhead", "modes", "cancel", "micro", "startup", "features", "shadow")
MODES = ("legacy", "unified")

PROFILES: dict[str, dict[str, Any]] = {
    # rounds: interleaved A/B rounds; epochs: per timed training (0: the strategy's own, with early stopping)
    "quick": {
        "overhead_rounds": 3,
        "overhead_epochs": 2,
        "mode_rounds": 3,
        "mode_epochs": 3,
        "cancels": 30,
        "micro_repeats": 5,
        "startup_runs": 5,
        "feature_sizes": [10_000, 20_000, 40_000],
    },
    "default": {
        "overhead_rounds": 7,
        "overhead_epochs": 4,
        "mode_rounds": 5,
        "mode_epochs": 5,
        "cancels": 30,
        "micro_repeats": 7,
        "startup_runs": 10,
        "feature_sizes": [25_000, 50_000, 100_000],
    },
    "thorough": {
        "overhead_rounds": 9,
        "overhead_epochs": 10,
        "mode_rounds": 7,
        "mode_epochs": 0,
        "cancels": 100,
        "micro_repeats": 15,
        "startup_runs": 25,
        "feature_sizes": [25_000, 50_000, 100_000, 200_000],
    },
}

TARGETS = {
    "overhead": 1.03,
    "mode_ratio": 1.00,
    "cancel_p99_ms": CANCELLATION_BOUND_SECONDS * 1000,  # the contract's bound, not a copy of it
    "progress_target_s": 0.3,
    "progress_band": 0.15,
    "progress_ceiling_s": 1.0,
    "help_s": 0.3,
    "shadow_ratio": 1.05,
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


# --------------------------------------------------------------------------- sections


def run_modes(rounds: int, epochs: int) -> dict[str, Any]:
    """Whole trainings per mode, interleaved; wall times and progress intervals."""
    from ktrdr_core import ThreadingCancellationToken, TrainingRequest
    from ktrdr_core.compare.stats import (
        interleaved_order,
        interval_stats,
        median_or_none,
        paired_ratios,
        ratio,
    )
    from ktrdr_core.plugins import get_plugin_manager

    pm = get_plugin_manager()
    modes = {name: pm.get_mode(name) for name in MODES}
    overrides: dict[str, Any] = {"epochs": epochs} if epochs else {}
    warm = TrainingRequest(
        strategy=bench_modes.STRATEGY, overrides={"epochs": 1, "save_model": False}, **bench_modes.SHORT
    )
    for mode in modes.values():
        mode.execute(warm, bench_modes.TimingSink(), ThreadingCancellationToken())
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in MODES}
    for index, order in enumerate(interleaved_order(list(MODES), rounds), start=1):
        for name in order:
            runs[name].append(bench_modes.training_run(modes[name], overrides))
        log(f"  round {index}: " + ", ".join(f"{n} {runs[n][-1]['wall_seconds']:.2f} s" for n in MODES))
    walls = {name: [r["wall_seconds"] for r in runs[name]] for name in MODES}
    paired = paired_ratios(walls["unified"], walls["legacy"])
    progress = {}
    for name in MODES:
        intervals = [i for r in runs[name] for i in r["intervals"]]
        progress[name] = {
            "updates_per_run": [r["updates"] for r in runs[name]],
            **interval_stats(
                intervals,
                target=TARGETS["progress_target_s"],
                band=TARGETS["progress_band"],
                ceiling=TARGETS["progress_ceiling_s"],
            ),
        }
    same = all(
        abs(a["val_loss"] - b["val_loss"]) < 1e-9
        for a, b in zip(runs["legacy"], runs["unified"], strict=True)
    )
    return {
        "rounds": rounds,
        "overrides": overrides,
        "wall_seconds": walls,
        "median_seconds": {name: median_or_none(v) for name, v in walls.items()},
        "paired_ratios": paired,
        "ratio": median_or_none(paired),
        "ratio_of_best": ratio(min(walls["unified"], default=None), min(walls["legacy"], default=None)),
        "epochs_trained": {name: [r["epochs_trained"] for r in runs[name]] for name in MODES},
        "same_val_loss": same,
        "progress": progress,
    }


def run_cancels(cancels: int, seed: int, home: Path) -> dict[str, Any]:
    from ktrdr_core.compare.stats import interleaved_order, percentiles
    from ktrdr_core.plugins import get_plugin_manager

    pm = get_plugin_manager()
    modes = {name: pm.get_mode(name) for name in MODES}
    rng = random.Random(seed)
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in MODES}
    for index, order in enumerate(interleaved_order(list(MODES), cancels), start=1):
        for name in order:
            found[name].append(bench_modes.cancel_run(modes[name], rng, 0.4, 1.4, home))
        if index % 10 == 0:
            log(f"  {index}/{cancels} cancels per mode")
    out = {}
    for name in MODES:
        latencies = [c["latency"] for c in found[name] if c["outcome"] == "cancelled"]
        out[name] = {
            "tried": len(found[name]),
            "cancelled": len(latencies),
            **{key: (None if v is None else v * 1000) for key, v in percentiles(latencies).items()},
            "max": max(latencies, default=0) * 1000 if latencies else None,
            "model_dirs_left": max((c["model_dirs_left"] for c in found[name]), default=0),
            "latencies_ms": [v * 1000 for v in latencies],
        }
    return out


# --------------------------------------------------------------------------- the table


def _f(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def _meets(ok: bool | None) -> str:
    return "–" if ok is None else ("yes" if ok else "**no**")


def render_table(report: dict[str, Any]) -> str:
    env = report["environment"]
    rows: list[tuple[str, str, str, str]] = []
    ov = report.get("overhead")
    if ov:
        r = ov["ratio"]
        rows.append(
            (
                f"1. framework overhead: ModelTrainer via unified / plain torch loop "
                f"({ov['rounds']} rounds × {ov['epochs']} epochs, {ov['train_samples']} samples)",
                f"{_f(r, '.3f')} (medians {_f(ov['median_seconds']['unified'], '.2f')} s vs "
                f"{_f(ov['median_seconds']['plain'], '.2f')} s; best-of ratio "
                f"{_f(ov.get('ratio_of_best'), '.3f')})",
                f"≤ {TARGETS['overhead']:.2f}",
                _meets(None if r is None else r <= TARGETS["overhead"]),
            )
        )
    md = report.get("modes")
    if md:
        r = md["ratio"]
        epochs = md["overrides"].get("epochs", "strategy's")
        rows.append(
            (
                f"2. unified / legacy wall time ({md['rounds']} interleaved runs each, {epochs} epochs, "
                "all sample data)",
                f"{_f(r, '.3f')} (medians {_f(md['median_seconds']['unified'], '.2f')} s vs "
                f"{_f(md['median_seconds']['legacy'], '.2f')} s; best-of ratio "
                f"{_f(md.get('ratio_of_best'), '.3f')})",
                f"< {TARGETS['mode_ratio']:.2f}",
                _meets(None if r is None else r < TARGETS["mode_ratio"]),
            )
        )
    cl = report.get("cancel")
    if cl:
        for name in MODES:
            c = cl[name]
            stopped = (
                c["p99"] is not None and c["p99"] < TARGETS["cancel_p99_ms"] and c["cancelled"] == c["tried"]
            )
            rows.append(
                (
                    f"3. cancel latency {name}, p50 / p95 / p99 ms ({c['cancelled']}/{c['tried']} cancelled)",
                    f"{_f(c['p50'], '.2f')} / {_f(c['p95'], '.2f')} / {_f(c['p99'], '.2f')}",
                    f"p99 < {TARGETS['cancel_p99_ms']:.0f} ms",
                    _meets(stopped),
                )
            )
    if md:
        for name in MODES:
            p = md["progress"][name]
            ms = {k: None if p[k] is None else p[k] * 1000 for k in ("p50", "p95", "p99", "max")}
            if name == "unified":
                ok: bool | None = bool(p["median_in_band"]) and p["over_ceiling"] == 0
                target = "median 300 ms ± 15 %, none > 1 s"
            else:
                ok, target = None, "– (the control: every batch)"
            rows.append(
                (
                    f"4. progress interval {name}, p50 / p95 / p99 / max ms ({p['count']} intervals)",
                    f"{_f(ms['p50'], '.1f')} / {_f(ms['p95'], '.1f')} / {_f(ms['p99'], '.1f')} / "
                    f"{_f(ms['max'], '.1f')}",
                    target,
                    _meets(ok),
                )
            )
    mi = report.get("micro")
    if mi:
        labels = {
            "select_mode": "5. one selector decision (select_mode hook, 50 % rollout)",
            "manager_decide": "5. TrainingManager.decide (reads rollout settings + selector)",
            "hook_call": "5. one hook call (pluggy, one no-op impl)",
            "hook_call_isolated": "5. one hook call as the manager makes it (isolated)",
            "progress_update_fanout": "5. one progress update via the manager's fanout (legacy per batch)",
            "progress_update_bridge": "5. one batch update into the ProgressBridge (unified per batch)",
        }
        for key, label in labels.items():
            value = mi.get(key)
            if value:
                rows.append((label, f"{value['median_us']:.2f} µs", "–", "–"))
    st = report.get("startup")
    if st:
        med = st["median_seconds"]
        value = med["ktrdr --help"]
        rows.append(
            (
                f"6. `ktrdr --help` start-up (median of {st['runs']}; bare `python -c pass`: "
                f"{_f(med['python -c pass'], '.3f')} s)",
                f"{_f(value, '.3f')} s",
                f"< {TARGETS['help_s']:.1f} s",
                _meets(None if value is None else value < TARGETS["help_s"]),
            )
        )
    fe = report.get("features")
    if fe:
        for run in fe["runs"]:
            rows.append(
                (
                    f"7. load + indicators + features + labels, {fe['symbols']} symbols × "
                    f"{run['bars_per_symbol']:,} 1h bars, {fe['indicators']} indicators",
                    f"{run['total_s']:.2f} s ({run['total_s'] / run['bars'] * 1e6:.2f} µs/bar), "
                    f"peak RSS {run['peak_rss_mb']:.0f} MB",
                    "–",
                    "–",
                )
            )
        rows.append(
            (
                "7. per-bar time, largest / smallest size",
                f"{fe['per_bar_growth']:.2f}",
                f"≤ {fe['linear_tolerance']:.2f} (linear)",
                _meets(fe["linear"]),
            )
        )
    sh = report.get("shadow")
    if sh:
        for variant, label in (
            ("shadow nice 19", "at nice 19 (the default)"),
            ("shadow nice 0", "at normal priority (for comparison)"),
        ):
            ratio = sh["ratios"][variant]
            rows.append(
                (
                    f"8. shadow overhead: user's wall time, shadow 100 % / off, {label} "
                    f"({sh['rounds']} rounds, {sh['epochs']} epochs)",
                    f"{ratio:.3f} (medians {sh['medians'][variant]:.2f} s vs "
                    f"{sh['medians']['off']:.2f} s; best-of {sh['best_of'][variant]:.3f})",
                    f"≤ {TARGETS['shadow_ratio']:.2f}" if variant == "shadow nice 19" else "–",
                    _meets(ratio <= TARGETS["shadow_ratio"]) if variant == "shadow nice 19" else "–",
                )
            )
    lines = [
        f"Measured {report['finished_at']} with `{report['command']}` "
        f"(profile {report['profile']}): {env['cpus']} CPUs, load average "
        f"{env['load_average_start']} at the start and {env['load_average_end']} at the end, "
        f"Python {env['python']}, torch {env['torch']} on {env['torch_threads']} thread(s), "
        f"{env['platform']}. Took {report['bench_seconds']:.0f} s.",
        "",
        "| benchmark | measured | target | meets |",
        "| --- | --- | --- | --- |",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows),
    ]
    notes = []
    if ov and ov.get("metrics_ratio") is not None:
        notes.append(
            f"Overhead split: the plain loop reading its running loss/accuracy every batch "
            f"(`.item()`, an argmax: what ModelTrainer did before it deferred them) costs "
            f"{_f(ov['metrics_ratio'], '.3f')}× the plain loop; unified with deferred numbers costs "
            f"{_f(ov.get('framework_ratio'), '.3f')}× that per-batch loop."
        )
    if ov and ov.get("max_val_loss_gap") is not None:
        notes.append(
            f"Overhead loops compute the same model: largest per-epoch val_loss gap "
            f"{ov['max_val_loss_gap']:.1e}."
        )
    if md:
        notes.append(f"Legacy and unified gave the same val_loss in every round: {md['same_val_loss']}.")
    notes.append(
        "Ratios are the median of per-round ratios (each round runs both sides back to back, "
        "in alternating order); the best-of ratio divides the fastest runs, which on a shared "
        "machine is the least disturbed estimate of the intrinsic cost."
    )
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=(__doc__ or "").split("\n\n")[0]
    )
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument("--quick", action="store_true", help="fewer rounds, shorter trainings (~2 min)")
    speed.add_argument("--thorough", action="store_true", help="more rounds, the strategy's epochs (~15 min)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        default=list(SECTIONS),
        help="run only these sections (modes gives both 2 and 4)",
    )
    parser.add_argument("--rounds", type=int, default=None, help="override the interleaved rounds of 1 and 2")
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="override the epochs of 1 and 2 (0 for 2: the strategy's own)",
    )
    parser.add_argument("--cancels", type=int, default=None, help="override cancels per mode (>= 30 advised)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the cancel times")
    parser.add_argument(
        "--update-results-md",
        action="store_true",
        help=f"also write the table to {RESULTS_MD.relative_to(HERE.parent)}",
    )
    args = parser.parse_args(argv)
    profile_name = "quick" if args.quick else "thorough" if args.thorough else "default"
    profile = dict(PROFILES[profile_name])
    if args.rounds is not None:
        profile["overhead_rounds"] = profile["mode_rounds"] = args.rounds
    if args.epochs is not None:
        profile["overhead_epochs"] = max(args.epochs, 1)
        profile["mode_epochs"] = args.epochs
    if args.cancels is not None:
        profile["cancels"] = args.cancels

    home = Path(tempfile.mkdtemp(prefix="ktrdr-bench-all-"))
    os.environ["KTRDR_HOME"] = str(home)
    os.environ.setdefault("KTRDR_LEDGER", "off")
    started_at = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    load_start = load_average()
    bench_started = time.perf_counter()

    import torch

    torch.set_num_threads(args.threads)
    report: dict[str, Any] = {
        "benchmark": "run_all",
        "command": " ".join(
            [
                "python -m benchmarks" if __package__ else "python benchmarks/run_all.py",
                *(argv if argv is not None else sys.argv[1:]),
            ]
        ),
        "profile": profile_name,
        "settings": profile,
        "started_at": started_at,
        "targets": TARGETS,
    }
    sections = set(args.only)
    if "startup" in sections:  # first, before this process fills the page cache with torch
        log(f"startup: ktrdr --help x {profile['startup_runs']}")
        env = {**os.environ, "KTRDR_HOME": str(home)}
        report["startup"] = bench_micro.run_startup(profile["startup_runs"], env)
    if "micro" in sections:
        log("micro: selector, hooks, progress updates")
        report["micro"] = bench_micro.run_micro(profile["micro_repeats"])
    if "overhead" in sections:
        log("overhead: ModelTrainer via unified vs a plain torch loop")
        report["overhead"] = bench_overhead.run(
            profile["overhead_rounds"], profile["overhead_epochs"], log=log
        )
    if "modes" in sections:
        log(f"modes: legacy vs unified, {profile['mode_rounds']} rounds")
        report["modes"] = run_modes(profile["mode_rounds"], profile["mode_epochs"])
    if "cancel" in sections:
        log(f"cancel: {profile['cancels']} cancels per mode")
        report["cancel"] = run_cancels(profile["cancels"], args.seed, home)

    if "features" in sections:
        log(f"features: 10 symbols x {profile['feature_sizes']} bars")
        report["features"] = bench_features.run(profile["feature_sizes"], 10)
    if "shadow" in sections:
        log(f"shadow: user's run with the shadow off / at 100 %, {profile['mode_rounds']} rounds")
        report["shadow"] = bench_shadow.run(profile["mode_rounds"], profile["mode_epochs"] or 5, log=log)

    report["bench_seconds"] = time.perf_counter() - bench_started
    report["finished_at"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    report["environment"] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "load_average_start": load_start,
        "load_average_end": load_average(),
    }
    table = render_table(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"run_all-{time.strftime('%Y%m%d-%H%M%S')}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    stem.with_suffix(".md").write_text(table)
    if args.update_results_md:
        RESULTS_MD.write_text(
            "## Benchmarks\n\n" + table + "\nWhat each number means: "
            "[benchmarks/README.md](benchmarks/README.md).\n"
        )
    print()
    print(table)
    log(f"JSON: {stem.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
