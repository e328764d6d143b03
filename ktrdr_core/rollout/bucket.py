"""The deterministic user bucket.

The formula is fixed (README, "Rollout settings"), so a user's assignment never moves
between versions, processes or machines.
"""

from __future__ import annotations

import hashlib


def bucket_for(user_id: str) -> int:
    """The user's bucket, 0–99: ``int(md5(user_id).hexdigest(), 16) % 100``."""
    return int(hashlib.md5(user_id.encode()).hexdigest(), 16) % 100
