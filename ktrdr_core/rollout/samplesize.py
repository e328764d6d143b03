"""How many runs each gate needs to decide, computed from the statistics the gates use.

``python -m ktrdr_core.rollout.samplesize`` prints the table that
docs/runbook.md carries (a test keeps the two equal). Rates use the same
Wilson bounds as the gates. Ratios of medians use the normal approximation
of the bootstrap the gates run: with log-normal run-to-run noise ``sigma``,
a sample median's standard error in log space is ``sqrt(pi / 2) * sigma /
sqrt(n)``, so the ratio's one-sided 95 % upper bound clears ``limit`` when
``n >= 2 * (1.645 * sqrt(pi / 2) * sigma / ln(limit / ratio)) ** 2`` runs per side.
"""

from __future__ import annotations

import math

from ktrdr_core.rollout.confidence import runs_to_fail_rate, runs_to_pass_rate
from ktrdr_core.rollout.gates import DEFAULT_GATES, StageGate

Z_95 = 1.6448536269514722
NOISE_LEVELS = (0.05, 0.10)
"""Run-to-run noise (log-normal sigma) the ratio columns assume: 5 % and 10 %."""


def runs_per_side_for_ratio(limit: float, *, ratio: float = 1.0, sigma: float) -> int | None:
    """Runs per side for a true ``ratio`` of medians to PASS against ``limit``."""
    if ratio >= limit:
        return None
    return math.ceil(2 * (Z_95 * math.sqrt(math.pi / 2) * sigma / math.log(limit / ratio)) ** 2)


def _floor(value: int | None, floor: int) -> str:
    return "never" if value is None else str(max(value, floor))


def stage_row(stage: str, gate: StageGate) -> list[str]:
    limit = gate.error_rate_pct / 100
    ratio_cells = []
    for sigma in NOISE_LEVELS:
        needed = (
            runs_per_side_for_ratio(gate.duration_ratio, sigma=sigma)
            if gate.duration_ratio is not None
            else None
        )
        ratio_cells.append("-" if gate.duration_ratio is None else _floor(needed, gate.min_duration_runs))
    cpu = (
        _floor(runs_per_side_for_ratio(gate.cpu_ratio, sigma=NOISE_LEVELS[1]), gate.min_duration_runs)
        if gate.cpu_ratio is not None
        else "-"
    )
    return [
        stage,
        f"< {gate.error_rate_pct:g} %",
        _floor(runs_to_pass_rate(0.0, limit), gate.min_runs),
        _floor(runs_to_pass_rate(limit / 2, limit), gate.min_runs),
        _floor(runs_to_fail_rate(limit * 2, limit), gate.min_runs),
        "-" if gate.duration_ratio is None else f"<= {gate.duration_ratio:g}",
        *ratio_cells,
        cpu,
        _floor(runs_to_pass_rate(0.0, gate.comparison_different_pct / 100), gate.min_pairs),
        gate.time_in_stage or "-",
    ]


HEADER = [
    "gate of stage",
    "error rate",
    "runs to PASS, 0 errors",
    "runs to PASS at half the limit",
    "runs to FAIL at twice the limit",
    "duration ratio",
    "runs/side to PASS (ratio 1.0, 5 % noise)",
    "runs/side (10 % noise)",
    "runs/side, CPU/memory <= 1.3 (10 % noise)",
    "shadow pairs to PASS, all equivalent",
    "time in stage",
]


def table() -> str:
    """The runbook's markdown table for the default gates."""
    rows = [HEADER, ["---"] * len(HEADER)]
    rows += [stage_row(stage, gate) for stage, gate in DEFAULT_GATES.items()]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


if __name__ == "__main__":
    print(table())
