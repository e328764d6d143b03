"""An operator's whole migration on real trainings: off -> canary -> expanded -> full -> complete.

Shadow pairs from real requests feed the comparison and model-accuracy
criteria; every advance is gated. The thresholds are loosened for a handful
of runs (the defaults need hundreds, docs/runbook.md); everything else is the
real path: the plugins, the ledger, the shadow processes, the CLI.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_inprocess import CliRun, run_ktrdr
from integration_support import SHORT, STRATEGY

from ktrdr_core import TrainingManager, TrainingRequest, get_plugin_manager
from ktrdr_core.ledger.store import RunLedger
from ktrdr_core.plugins import reset_plugin_manager
from ktrdr_core.rollout.bucket import bucket_for
from ktrdr_core.rollout.store import RolloutStore
from ktrdr_core.service.shadow import ShadowPlugin, ShadowRunner

FEW_RUNS = {
    "min_runs": 3,
    "min_duration_runs": 3,
    "min_pairs": 3,
    "error_rate_pct": 60,
    "comparison_different_pct": 60,
    "duration_ratio": 3.0,
    "cpu_ratio": 3.0,
    "memory_ratio": 3.0,
    "progress_interval_s": None,
    "time_in_stage": None,
}


@pytest.fixture
def service_like(ktrdr_home: Path) -> Iterator[tuple[TrainingManager, ShadowRunner]]:
    reset_plugin_manager()
    pm = get_plugin_manager()
    runner = ShadowRunner()
    pm.register(ShadowPlugin(runner), name="ktrdr-shadow")
    yield TrainingManager(pm), runner
    runner.close()
    pm.unregister(name="ktrdr-shadow")
    reset_plugin_manager()


def train(manager: TrainingManager, user: str, mode: str | None = None) -> str:
    result = manager.train(
        TrainingRequest(strategy=STRATEGY, user_id=user, overrides={"epochs": 1}, **SHORT), mode=mode
    )
    assert result.success, result.error
    return str(result.metadata["mode"])


def test_off_to_complete(service_like: tuple[TrainingManager, ShadowRunner]) -> None:
    manager, runner = service_like

    def ktrdr(*args: str) -> CliRun:
        # the operator's commands, in-process but with a plugin manager of their own like a
        # separate process: the service's manager (and its shadow runner) is not touched
        return run_ktrdr(*args, env={"KTRDR_ACTOR": "operator"})

    RolloutStore().set_fields("setup", {"gates": FEW_RUNS}, reason="a small team's thresholds")
    assert ktrdr("rollout", "shadow", "100", "--reason", "Phase 1 on real traffic").returncode == 0
    # Phase 1: users get legacy, each request is shadowed; manual checks force the candidate
    for i in range(3):  # one shadow slot: each request's shadow ends before the next request
        assert train(manager, f"user{i}") == "legacy"
        assert runner.wait(300)
    for i in range(3):
        train(manager, f"tester{i}", mode="unified")
    gate = json.loads(ktrdr("rollout", "gate", "--json").stdout)
    verdicts = {c["name"]: c["verdict"] for c in gate["criteria"]}
    assert verdicts["shadow comparisons not equivalent"] == "PASS", gate
    assert verdicts["model accuracy: val_loss rise (paired)"] == "PASS", gate
    assert gate["verdict"] == "PASS", gate
    assert ktrdr("rollout", "advance", "--reason", "Phase 1 done").returncode == 0

    # canary: the users whose bucket is below 10 get the candidate
    canary_users = [u for u in (f"u{i}" for i in range(200)) if bucket_for(u) < 10][:3]
    assert [train(manager, u) for u in canary_users] == ["unified"] * 3
    assert runner.wait(300)
    for stage in ("canary", "expanded"):
        proc = ktrdr("rollout", "advance", "--reason", f"{stage} green")
        assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = ktrdr("rollout", "complete", "--name", "pre-phase3", "--reason", "full green")
    assert proc.returncode == 0, proc.stdout + proc.stderr

    actions = [e.action for e in RolloutStore().history()]
    assert actions[-4:] == ["advance", "advance", "advance", "complete"]
    assert train(manager, "user0") == "unified"  # the completed rollout routes everyone to unified
    ledger = RunLedger()
    assert len(ledger.comparisons(source="shadow")) == 3
    assert all(r.mode == "unified" for r in ledger.runs(shadow=True))
