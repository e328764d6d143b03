"""The check that one seed gives one set of metrics (docs/contract.md#deterministic)."""

from __future__ import annotations

from typing import Any

from hypothesis import given

from ktrdr_core.request import TrainingRequest
from ktrdr_core.testing.checks import fail_with
from ktrdr_core.testing.contract.base import ContractBase
from ktrdr_core.testing.contract.results import SEEDS

__all__ = ["DeterminismChecks"]

#: the metrics two runs with one seed must agree on
COMPARED = (
    ("training_metrics", "val_loss"),
    ("training_metrics", "val_accuracy"),
    ("training_metrics", "epochs_trained"),
    ("test_metrics", "test_loss"),
    ("test_metrics", "test_accuracy"),
)


class DeterminismChecks(ContractBase):
    def test_the_same_seed_gives_the_same_metrics(self, mode: Any, contract_request: TrainingRequest) -> None:
        @self.hypothesis_settings(max_examples=1)
        @given(seed=SEEDS)
        def check(seed: int) -> None:
            results = []
            for _ in range(2):
                request = self.variant(contract_request, overrides={"seed": seed, "epochs": self.max_epochs})
                run, _ = self.train(mode, request)
                results.append(self.expect_success(run, request, f"seed {seed}"))
            first, second = results
            problems = []
            for section, key in COMPARED:
                a = getattr(first, section).get(key)
                b = getattr(second, section).get(key)
                if not (
                    isinstance(a, (int, float))
                    and isinstance(b, (int, float))
                    and abs(a - b) <= self.seed_tolerance
                ):
                    problems.append(f"{section}.{key}: {a!r} vs {b!r}")
            fail_with(
                problems,
                f"two runs with seed {seed} gave different metrics (tolerance "
                f"{self.seed_tolerance:g}); seed every random source — weights, batch order, "
                "dropout, any random split — from overrides['seed']",
            )

        with self.capability("deterministic"):
            check()
