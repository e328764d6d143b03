"""The bucket and the rollout decision: the exact semantics README documents."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from ktrdr_core import RolloutPolicy, bucket_for
from ktrdr_core.modes import ModeHealth
from ktrdr_core.rollout.settings import RolloutSettings

user_ids = st.text(min_size=1, max_size=40)
percentages = st.integers(min_value=0, max_value=100)
BOTH = ("legacy", "unified")


def policy(pct: int, *, enabled: bool = True, excluded: frozenset[str] = frozenset()) -> RolloutPolicy:
    return RolloutPolicy(settings=RolloutSettings(enabled=enabled, percentage=pct, excluded_users=excluded))


@given(user_ids)
def test_bucket_is_the_documented_formula(uid: str) -> None:
    assert bucket_for(uid) == int(hashlib.md5(uid.encode()).hexdigest(), 16) % 100


def test_known_buckets_never_move() -> None:
    # Pinned values: if these change, every user's assignment has moved.
    assert [bucket_for(u) for u in ("alice", "bob", "default", "user123")] == [
        int(hashlib.md5(u.encode()).hexdigest(), 16) % 100 for u in ("alice", "bob", "default", "user123")
    ]
    assert bucket_for("alice") == 0


@given(user_ids, percentages, percentages)
def test_enabled_at_p_stays_enabled_at_every_higher_q(uid: str, p: int, q: int) -> None:
    low, high = sorted((p, q))
    if policy(low).decide(uid, BOTH).mode == "unified":
        assert policy(high).decide(uid, BOTH).mode == "unified"


@given(user_ids, percentages)
def test_exclusion_list_wins_over_any_percentage(uid: str, pct: int) -> None:
    decision = policy(pct, excluded=frozenset({uid})).decide(uid, BOTH)
    assert decision.mode == "legacy"
    assert "rollback list" in decision.reason


@given(user_ids)
def test_zero_enables_nobody_and_hundred_everybody(uid: str) -> None:
    assert policy(0).decide(uid, BOTH).mode == "legacy"
    assert policy(100).decide(uid, BOTH).mode == "unified"


@given(user_ids, percentages)
def test_flag_off_means_control_for_everyone(uid: str, pct: int) -> None:
    assert policy(pct, enabled=False).decide(uid, BOTH).mode == "legacy"


@given(user_ids, percentages)
def test_decision_matches_bucket_rule(uid: str, pct: int) -> None:
    decision = policy(pct).decide(uid, BOTH)
    assert decision.bucket == bucket_for(uid)
    assert (decision.mode == "unified") == (bucket_for(uid) < pct)


def test_each_decile_holds_eight_to_twelve_percent_of_ten_thousand_ids() -> None:
    counts = [0] * 10
    for i in range(10_000):
        counts[bucket_for(f"user-{i}") // 10] += 1
    assert all(800 <= c <= 1200 for c in counts), counts


def test_missing_user_id_is_default() -> None:
    decision = policy(50).decide(None, BOTH)
    assert decision.user_id == "default"
    assert decision.bucket == bucket_for("default")


def test_missing_candidate_falls_back_to_control_and_says_so() -> None:
    decision = policy(100).decide("alice", ["legacy"])
    assert decision.mode == "legacy"
    assert decision.fallback
    assert "not installed" in decision.reason and "'unified'" in decision.reason


def test_unhealthy_candidate_falls_back_with_its_detail() -> None:
    modes = {"legacy": ModeHealth.ok(), "unified": ModeHealth.unhealthy("GPU is on fire")}
    decision = policy(100).decide("alice", modes)
    assert decision.mode == "legacy"
    assert "GPU is on fire" in decision.reason


def test_reason_is_a_sentence_naming_bucket_and_percentage() -> None:
    decision = policy(50).decide("alice", BOTH)
    assert decision.mode == "unified"
    assert decision.reason.endswith(".")
    assert "bucket 0" in decision.reason and "50" in decision.reason
