"""Checks on who the mode is: its name, its ``health()``, how ktrdr finds it (docs/contract.md#the-mode)."""

from __future__ import annotations

import threading
import time
from typing import Any

from ktrdr_core.modes import ModeHealth
from ktrdr_core.rollout.settings import MODE_NAME_PATTERN
from ktrdr_core.testing.checks import ContractViolation, fail_with
from ktrdr_core.testing.contract.base import ContractBase
from ktrdr_core.testing.entrypoints import entry_point_problems

__all__ = ["IdentityChecks"]


class IdentityChecks(ContractBase):
    def test_mode_has_a_name(self, mode: Any) -> None:
        name = getattr(mode, "name", None)
        if not isinstance(name, str) or not MODE_NAME_PATTERN.match(name):
            raise ContractViolation(
                f"the mode's `name` is {name!r}; give it a short name such as 'cloud' (letters, digits, "
                "'.', '_', '-'): it is what KTRDR_ROLLOUT_CANDIDATE and --mode refer to"
            )
        for method in ("health", "execute"):
            if not callable(getattr(mode, method, None)):
                raise ContractViolation(f"the mode has no {method}() method (ktrdr_core.ExecutionMode)")

    def test_the_mode_is_reachable_through_its_entry_point(self, mode: Any) -> None:
        with self.capability("installed"):
            fail_with(entry_point_problems(mode), "ktrdr cannot find the mode under test")

    def test_health_answers_quickly_with_a_mode_health(self, mode: Any) -> None:
        bound = self.health_bound_seconds
        for attempt in (1, 2):  # the selector asks before every decision, not only once
            answer: dict[str, Any] = {}

            def ask(answer: dict[str, Any] = answer) -> None:
                try:
                    answer["health"] = mode.health()
                except BaseException as exc:  # noqa: BLE001
                    answer["error"] = exc

            started = time.monotonic()
            thread = threading.Thread(target=ask, daemon=True)
            thread.start()
            thread.join(bound)
            took = time.monotonic() - started
            if thread.is_alive():
                raise ContractViolation(
                    f"health() did not answer within {bound:g} s (call {attempt}); the selector asks it "
                    "before every decision: answer from cached state and bound any network probe"
                )
            if "error" in answer:
                error = answer["error"]
                raise ContractViolation(
                    f"health() raised {type(error).__name__}: {error}; return "
                    "ModeHealth.unhealthy(reason) instead"
                ) from error
            health = answer["health"]
            if not isinstance(health, ModeHealth):
                raise ContractViolation(
                    f"health() returned {health!r}, not a ktrdr_core.ModeHealth; return "
                    "ModeHealth.ok() or ModeHealth.unhealthy('why')"
                )
            if not health.healthy:
                raise ContractViolation(
                    f"health() says the mode is unhealthy ({health.detail}); the contract suite trains "
                    "with it, so the test environment must provide what the mode needs"
                )
            if took > bound:
                raise ContractViolation(
                    f"health() took {took:.2f} s (call {attempt}); the bound is {bound:g} s"
                )
