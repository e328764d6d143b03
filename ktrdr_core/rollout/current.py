"""The gate of the rollout in force: what ``ktrdr rollout gate`` and the dashboard both judge.

One place reads the policy, the rollout file's gate thresholds, the audit
log's last rollout change and the run ledger, and hands them to
:func:`~ktrdr_core.rollout.gates.evaluate_gate`, so the command line and the
service can never judge the same rollout differently.
"""

from __future__ import annotations

import attrs

from ktrdr_core.errors import BadInputError
from ktrdr_core.ledger.store import RunLedger
from ktrdr_core.ledger.times import parse_duration
from ktrdr_core.rollout.autorollback import last_rollout_change
from ktrdr_core.rollout.gates import GateConfig, GateReport, evaluate_gate
from ktrdr_core.rollout.policy import RolloutPolicy
from ktrdr_core.rollout.store import RolloutStore


def gate_config(store: RolloutStore) -> GateConfig:
    """Every stage's thresholds: the defaults with the rollout file's ``"gates"`` on top."""
    return GateConfig.from_mapping(store.read_raw().get("gates"), source=str(store.settings_path))


def current_stage(policy: RolloutPolicy) -> str:
    """The stage the settings stand at; a percentage between stages is a :class:`BadInputError`."""
    stage = policy.settings.stage
    if stage == "custom":
        raise BadInputError(
            f"the rollout is at {policy.settings.percentage} %, between stages; name the gate with "
            "--stage, or move to a stage with `ktrdr rollout stage NAME`"
        )
    return stage


def evaluate_current(
    policy: RolloutPolicy,
    *,
    stage: str | None = None,
    window: str | None = None,
    store: RolloutStore | None = None,
    ledger: RunLedger | None = None,
) -> GateReport:
    """Judge the gate of ``stage`` (default: the current one), optionally over another window."""
    store = store if store is not None else RolloutStore()
    config = gate_config(store)
    stage = stage or current_stage(policy)
    if window is not None:
        parse_duration(window, what="--window")
        config = GateConfig({**config.stages, stage: attrs.evolve(config[stage], window=window)})
    return evaluate_gate(
        stage,
        ledger=ledger if ledger is not None else RunLedger(),
        settings=policy.settings,
        config=config,
        stage_since=last_rollout_change(store),
    )
