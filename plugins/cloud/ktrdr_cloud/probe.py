"""Is the Ray cluster there? A bounded TCP probe, without importing Ray.

``ray.init`` against an address nobody answers may retry for a minute or more,
so the mode asks this first: the health check stays quick and an unreachable
cluster fails a training at once with a sentence that says why.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from pathlib import Path

import attrs

from ktrdr_cloud.settings import parse_ray_address

__all__ = ["ProbeResult", "probe_address", "resolve_auto_address"]


@attrs.frozen
class ProbeResult:
    reachable: bool
    detail: str
    seconds: float


def resolve_auto_address() -> str | None:
    """What Ray's ``auto`` would connect to: ``RAY_ADDRESS``, else the last ``ray start``."""
    env = os.environ.get("RAY_ADDRESS", "").strip()
    if env and env != "auto":
        return env
    candidates = [
        Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster",
        Path("/tmp/ray/ray_current_cluster"),
    ]
    for path in candidates:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text:
            return text.splitlines()[0].strip()
    return None


def probe_address(address: str, timeout: float) -> ProbeResult:
    """Open (and close) a TCP connection to the cluster's entry point within ``timeout``."""
    started = time.monotonic()
    kind, host, port = parse_ray_address(address)
    if kind == "auto":
        found = resolve_auto_address()
        if found is None:
            return ProbeResult(
                False,
                "KTRDR_RAY_ADDRESS is 'auto' but no running Ray cluster was "
                "found (no RAY_ADDRESS and no cluster started with `ray start` on "
                "this machine)",
                time.monotonic() - started,
            )
        kind, host, port = parse_ray_address(found)
    assert port is not None
    what = "Ray client server" if kind == "client" else "Ray GCS"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except TimeoutError:
        return ProbeResult(
            False,
            f"the {what} at {host}:{port} did not answer within {timeout:g} s",
            time.monotonic() - started,
        )
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return ProbeResult(
            False, f"cannot reach the {what} at {host}:{port}: {reason}", time.monotonic() - started
        )
    return ProbeResult(True, f"the {what} at {host}:{port} answers", time.monotonic() - started)
