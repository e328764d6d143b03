"""After `ktrdr rollout complete`, the old control can go: no routing names it, `ktrdr plugins` says so."""

from __future__ import annotations

import json
from pathlib import Path

from cli_inprocess import CliRun, run_ktrdr
from integration_support import SHORT, STRATEGY


def run(env: dict[str, str], *args: str) -> CliRun:
    return run_ktrdr(*args, env=env)


def test_legacy_is_unreferenced_after_complete(ktrdr_home: Path) -> None:
    env = {"KTRDR_ACTOR": "tester"}
    assert run(env, "rollout", "stage", "full").returncode == 0
    before = run(env, "plugins")
    assert "mode legacy: the rollout's control" in before.stdout, before.stdout
    done = run(env, "rollout", "complete", "--force", "--reason", "test", "--name", "p3")
    assert done.returncode == 0, done.stderr

    listing = run(env, "plugins", "--json")
    refs = json.loads(listing.stdout)["rollout_references"]
    assert refs["legacy"].startswith("no longer referenced by the rollout") and "p3" in refs["legacy"]
    assert "only mode" in refs["unified"]

    # without the legacy plugin (as after `pip uninstall ktrdr-legacy`) nothing changes in routing
    gone = {**env, "KTRDR_DISABLE_PLUGINS": "ktrdr-legacy"}
    for environ in (env, gone):
        explained = json.loads(run(environ, "rollout", "explain", "alice", "--json").stdout)
        decision = explained["decision"]
        assert decision["mode"] == "unified" and not decision["fallback"], decision
    trained = run(
        gone,
        "train",
        STRATEGY,
        "--user",
        "alice",
        "--epochs",
        "1",
        "--start",
        SHORT["start_date"],
        "--end",
        SHORT["end_date"],
        "--json",
        "--no-progress",
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert json.loads(trained.stdout)["metadata"]["mode"] == "unified"
