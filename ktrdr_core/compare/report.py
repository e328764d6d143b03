"""Writing a comparison down: ``report.md``, ``report.json`` and ``curves.png``.

The plot uses matplotlib's Agg canvas directly (no pyplot, no global backend
switch), imported only when a report is written, so ``ktrdr --help`` never
pays for matplotlib.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

from ktrdr_core.compare.experiment import ExperimentResult
from ktrdr_core.fileutil import write_text_atomic
from ktrdr_core.home import ktrdr_home

REPORT_MD = "report.md"
REPORT_JSON = "report.json"
CURVES_PNG = "curves.png"


def default_report_dir(home: Path | None = None, now: float | None = None) -> Path:
    """``KTRDR_HOME/reports/compare-<YYYYmmdd-HHMMSS>`` (``-2``, ``-3``… if taken)."""
    root = (home if home is not None else ktrdr_home()) / "reports"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    candidate = root / f"compare-{stamp}"
    index = 2
    while candidate.exists():
        candidate = root / f"compare-{stamp}-{index}"
        index += 1
    return candidate


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return f"{value:.{digits}f}"
    return str(value)


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:.1f}"


def _environment() -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    try:
        env["load_average"] = list(os.getloadavg())
    except OSError:
        env["load_average"] = None
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
    except ImportError:
        env["torch"] = None
    return env


def report_data(
    outcome: ExperimentResult, report_dir: Path, *, ledger_comparison_id: int | None = None
) -> dict[str, Any]:
    """Everything ``report.json`` holds."""
    return {
        "kind": "ktrdr-compare",
        "version": 1,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "report_dir": str(report_dir),
        "files": {"markdown": REPORT_MD, "json": REPORT_JSON, "plot": CURVES_PNG},
        "ledger_comparison_id": ledger_comparison_id,
        "environment": _environment(),
        **outcome.to_dict(),
    }


def render_markdown(data: dict[str, Any]) -> str:
    """The human report, from :func:`report_data` output."""
    control, candidate = data["control"], data["candidate"]
    cm, dm = control["mode"], candidate["mode"]
    verdict = "EQUIVALENT" if data["equivalent"] else "DIFFERENT"
    req = data["request"]
    lines = [
        f"# ktrdr compare: {data['strategy']} — {cm} vs {dm}: {verdict}",
        "",
        f"- created: {data['created_at']}",
        f"- control: `{cm}` (request `{control['request_id']}`), candidate: `{dm}` "
        f"(request `{candidate['request_id']}`), user `{req['user_id']}`",
        f"- request: symbols {', '.join(req['symbols']) or '(strategy)'}, timeframes "
        f"{', '.join(req['timeframes']) or '(strategy)'}, {req['start_date'] or 'start'} → "
        f"{req['end_date'] or 'end'}, overrides `{json.dumps(req['overrides'], sort_keys=True)}`",
        f"- tolerance: |control − candidate| ≤ {data['tolerance']:g} for metrics; whole numbers exactly",
        "",
    ]
    if data["differences"]:
        lines += ["## Differences", "", "| field | control | candidate | note |", "| --- | --- | --- | --- |"]
        for diff in data["differences"]:
            note = diff.get("note") or (
                f"diff {_fmt(diff.get('difference'))} > tolerance {_fmt(diff.get('tolerance'))}"
                if diff.get("tolerance") is not None
                else ""
            )
            lines.append(
                f"| {diff['field']} | {_fmt(diff.get('control'))} | {_fmt(diff.get('candidate'))} | {note} |"
            )
        lines.append("")
    lines += [
        "## Outcome",
        "",
        "| | control | candidate |",
        "| --- | --- | --- |",
        f"| mode | {cm} | {dm} |",
        f"| status | {control['status']} | {candidate['status']} |",
    ]
    if control["error"] or candidate["error"]:
        lines.append(f"| error | {control['error'] or ''} | {candidate['error'] or ''} |")
    lines.append(
        f"| duration (s) | {_fmt(control['duration_seconds'], 2)} | "
        f"{_fmt(candidate['duration_seconds'], 2)} |"
    )
    lines += [
        "",
        f"Duration ratio candidate/control: {_fmt(data['duration_ratio'], 3)}"
        + (
            f" (limit {data['max_duration_ratio']:g})"
            if data["max_duration_ratio"]
            else " (informational: one run each; `benchmarks/` measures medians)"
        ),
        "",
    ]
    if data["comparisons"]:
        lines += [
            "## Results",
            "",
            "| field | control | candidate | difference | verdict |",
            "| --- | --- | --- | --- | --- |",
        ]
        for comp in data["comparisons"]:
            verdict_cell = "same" if comp["equal"] else "**differs**"
            if comp.get("note"):
                verdict_cell += f" ({comp['note']})"
            lines.append(
                f"| {comp['field']} | {_fmt(comp['control'])} | {_fmt(comp['candidate'])} | "
                f"{_fmt(comp['difference'])} | {verdict_cell} |"
            )
        gaps = data.get("history_max_gap") or {}
        if gaps:
            lines += [
                "",
                "Largest per-epoch gap of the curves: "
                + ", ".join(f"{k} {_fmt(v)}" for k, v in gaps.items()),
            ]
        lines.append("")
    lines += [
        "## Progress",
        "",
        "| | updates | interval p50 (ms) | p95 | p99 | max | median in 300 ms ± 15 % | over 1 s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for obs in (control, candidate):
        prog = obs["progress"]
        iv = prog["intervals"]
        lines.append(
            f"| {obs['role']} ({obs['mode']}) | {prog['updates']} | {_ms(iv['p50'])} | "
            f"{_ms(iv['p95'])} | {_ms(iv['p99'])} | {_ms(iv['max'])} | "
            f"{_fmt(iv['median_in_band'])} | {iv['over_ceiling']} |"
        )
    lines += [
        "",
        "Progress behaviour differs by design (legacy reports every batch, unified "
        "throttles to ~300 ms): it is reported, not judged.",
        "",
    ]
    cancel = data.get("cancellation")
    if cancel:
        lines += [
            "## Cancellation",
            "",
            "| | mode | status | latency (ms) | fired after first update (s) |",
            "| --- | --- | --- | --- | --- |",
        ]
        for role in ("control", "candidate"):
            check = cancel.get(role)
            if check:
                lines.append(
                    f"| {role} | {check['mode']} | {check['status']} | "
                    f"{_ms(check['latency_seconds'])} | {check['delay_seconds']:g} |"
                )
        lines += [
            "",
            f"Candidate limit: under {cancel['limit_seconds'] * 1000:.0f} ms; latency ratio "
            f"candidate/control {_fmt(cancel.get('latency_ratio'), 2)}.",
            "",
        ]
    lines += ["## Curves", "", f"![loss and accuracy per epoch]({CURVES_PNG})", ""]
    if data.get("ledger_comparison_id") is not None:
        lines += [f"Recorded in the run ledger as comparison #{data['ledger_comparison_id']}.", ""]
    return "\n".join(lines)


def write_plot(outcome: ExperimentResult, path: Path) -> Path:
    """Loss and accuracy over epochs for both modes (train dotted, validation solid)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(11, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)
    styles = {"control": ("tab:blue", "o"), "candidate": ("tab:orange", "x")}
    plotted = False
    for obs in (outcome.control, outcome.candidate):
        history = (obs.result.training_metrics.get("history") or {}) if obs.result is not None else {}
        color, marker = styles[obs.role]
        for axis, key in ((ax_loss, "loss"), (ax_acc, "accuracy")):
            for split, line in (("val", "-" if obs.role == "control" else "--"), ("train", ":")):
                values = history.get(f"{split}_{key}") or []
                if not values:
                    continue
                epochs = list(range(1, len(values) + 1))
                axis.plot(
                    epochs,
                    values,
                    line,
                    color=color,
                    marker=marker,
                    markersize=4,
                    label=f"{obs.role} {obs.mode} {split}",
                )
                plotted = True
    for axis, title in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        axis.set_title(title)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("epoch")
        axis.grid(True, alpha=0.3)
        if plotted:
            axis.legend(fontsize=8)
        else:
            axis.text(
                0.5, 0.5, "no successful run to plot", ha="center", va="center", transform=axis.transAxes
            )
    verdict = "equivalent" if outcome.equivalent else "different"
    fig.suptitle(f"{outcome.strategy}: {outcome.control.mode} vs {outcome.candidate.mode} ({verdict})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png")
    os.replace(tmp, path)
    return path


def write_report(
    outcome: ExperimentResult, report_dir: Path, *, ledger_comparison_id: int | None = None
) -> dict[str, Any]:
    """Write the three files into ``report_dir``; returns the JSON data."""
    report_dir.mkdir(parents=True, exist_ok=True)
    data = report_data(outcome, report_dir, ledger_comparison_id=ledger_comparison_id)
    write_plot(outcome, report_dir / CURVES_PNG)
    write_text_atomic(
        report_dir / REPORT_JSON, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    )
    write_text_atomic(report_dir / REPORT_MD, render_markdown(data))
    return data
