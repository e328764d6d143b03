"""The cloud mode's real health check, run in a child process with a hard time limit.

A TCP connect only says a port is open. The real question is whether Ray
answers there, runs a task, has a node big enough for a training and runs
the same ``ktrdr-cloud`` as the driver. ``ray.init`` against something that
accepts connections but is not Ray can block far longer than any timeout we
pass it, so the check runs in a child (``python -m ktrdr_cloud.healthcheck``)
that :func:`run_check` kills when its time is up: the ktrdr process never
hangs and Ctrl-C keeps working. The child prints one JSON line.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import signal
import subprocess
import sys
import time
from typing import Any

import attrs

__all__ = ["CheckResult", "driver_version", "run_check", "HEADROOM_SECONDS"]

#: the child's time for starting Python and importing Ray, on top of the connect timeout
HEADROOM_SECONDS = 2.0


@attrs.frozen
class CheckResult:
    healthy: bool
    detail: str
    seconds: float


def driver_version() -> str:
    """The ``ktrdr-cloud`` version installed here: the cluster must run the same one."""
    return importlib.metadata.version("ktrdr-cloud")


def run_check(
    address: str, task_cpus: float, timeout: float, expected_version: str | None = None
) -> CheckResult:
    """Run the check in a child; at most ``timeout + HEADROOM_SECONDS`` seconds, whatever Ray does."""
    started = time.monotonic()
    bound = timeout + HEADROOM_SECONDS
    version = expected_version or driver_version()
    command = [
        sys.executable,
        "-m",
        "ktrdr_cloud.healthcheck",
        address,
        repr(task_cpus),
        repr(timeout),
        version,
    ]
    # own session: a Ctrl-C meant for ktrdr does not hit the child, and on timeout the
    # whole group goes (a grandchild holding the pipe would otherwise block communicate)
    child = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = child.communicate(timeout=bound)
    except subprocess.TimeoutExpired:
        _kill_group(child)
        return CheckResult(
            False,
            f"the Ray cluster at {address} did not answer within {bound:g} s (is it a Ray head node?)",
            time.monotonic() - started,
        )
    except BaseException:  # KeyboardInterrupt included: never leave the child behind
        _kill_group(child)
        raise
    seconds = time.monotonic() - started
    line = out.strip().splitlines()[-1] if out.strip() else ""
    try:
        answer = json.loads(line)
        return CheckResult(bool(answer["healthy"]), str(answer["detail"]), seconds)
    except (ValueError, KeyError, TypeError):
        last = err.strip().splitlines()[-1] if err.strip() else f"exit status {child.returncode}"
        return CheckResult(False, f"the health check of the Ray cluster at {address} failed: {last}", seconds)


def _kill_group(child: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        child.communicate(timeout=5)


# -- the child's side --------------------------------------------------------------------------


def _worker_version() -> str | None:
    """Runs on a cluster worker (shipped by value): its ``ktrdr-cloud``, None if it has none."""
    try:
        import importlib.metadata as metadata

        import ktrdr_cloud  # noqa: F401 - the import is what is checked

        return metadata.version("ktrdr-cloud")
    except Exception:  # noqa: BLE001 - any failure means "not usable there"
        return None


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0].strip()}" if lines else type(exc).__name__


def _gpu_problem(address: str, nodes: list[dict[str, Any]], task_cpus: float, task_gpus: float) -> str | None:
    """Why no node fits a task asking for GPUs (``KTRDR_CLOUD_TASK_GPUS``), or None."""
    if not task_gpus:
        return None
    resources = [n.get("Resources", {}) for n in nodes]
    if any(float(r.get("CPU", 0)) >= task_cpus and float(r.get("GPU", 0)) >= task_gpus for r in resources):
        return None
    largest = max(float(r.get("GPU", 0)) for r in resources)
    return (
        f"no alive node of the Ray cluster at {address} has {task_gpus:g} GPU(s) "
        f"(KTRDR_CLOUD_TASK_GPUS) and {task_cpus:g} CPU(s); the most GPUs on a node is {largest:g}"
    )


def check(address: str, task_cpus: float, timeout: float, expected: str) -> tuple[bool, str]:
    """Connect, look for a big-enough node, run a trivial task; ``(healthy, sentence)``."""
    import ray

    from ktrdr_cloud.settings import CloudSettings

    settings = CloudSettings.from_env()  # this child inherits the driver's environment
    try:
        ray.init(
            address=address,
            namespace="ktrdr",
            log_to_driver=False,
            configure_logging=False,
            logging_level=logging.ERROR,
            **settings.init_options(),  # the jobs' runtime env (KTRDR_CLOUD_RUNTIME_ENV)
        )
    except Exception as exc:  # noqa: BLE001 - Ray raises many kinds here
        return False, f"cannot connect to the Ray cluster at {address}: {_first_line(exc)}"
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        cpus = [float(n.get("Resources", {}).get("CPU", 0)) for n in nodes]
        if not cpus or max(cpus) < task_cpus:
            largest = f"the largest has {max(cpus):g}" if cpus else "there is none"
            return False, (
                f"no alive node of the Ray cluster at {address} has "
                f"{task_cpus:g} CPU(s) (KTRDR_CLOUD_TASK_CPUS); {largest}"
            )
        gpu_problem = _gpu_problem(address, nodes, task_cpus, settings.task_gpus)
        if gpu_problem:
            return False, gpu_problem
        ref = ray.remote(_worker_version).options(num_cpus=0, max_retries=0).remote()
        try:
            version = ray.get(ref, timeout=timeout)
        except ray.exceptions.GetTimeoutError:
            return False, (f"the Ray cluster at {address} did not run a trivial task within {timeout:g} s")
        if version is None:
            return False, (
                f"ktrdr-cloud cannot be imported on the workers of the Ray cluster "
                f"at {address}: install ktrdr-cloud {expected} there"
            )
        if version != expected:
            return False, (
                f"version mismatch: the Ray cluster at {address} runs ktrdr-cloud "
                f"{version}, this driver {expected}; install the same version on both"
            )
        return True, (
            f"Ray cluster {address}: {len(nodes)} alive node(s), ktrdr-cloud {version} on the workers"
        )
    except Exception as exc:  # noqa: BLE001
        return False, f"the Ray cluster at {address} failed the health check: {_first_line(exc)}"
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()


def main(argv: list[str]) -> int:
    address, task_cpus, timeout, expected = argv
    healthy, detail = check(address, float(task_cpus), float(timeout), expected)
    sys.stdout.write(json.dumps({"healthy": healthy, "detail": detail}) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
