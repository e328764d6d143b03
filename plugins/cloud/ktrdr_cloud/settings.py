"""The cloud mode's settings, read from the environment (no Ray, no torch here).

- ``KTRDR_RAY_ADDRESS`` (unset): ``auto``, ``ray://host:port`` (Ray client) or
  ``host:port`` (the head's GCS); unset: a local Ray instance.
- ``KTRDR_RAY_NUM_CPUS`` (``os.cpu_count()``): CPUs of that local instance.
- ``KTRDR_CLOUD_TASK_CPUS`` (1): CPUs one training task asks for (and its torch threads).
- ``KTRDR_CLOUD_TASK_GPUS`` (0): GPUs one training task asks for; the worker trains on
  the GPU Ray assigns it (none: on the CPU).
- ``KTRDR_CLOUD_RUNTIME_ENV`` (unset): a JSON object with ``pip``, ``py_modules`` and/or
  ``working_dir``, Ray's runtime environment for the job's tasks and actors (for
  clusters whose nodes lack ktrdr).
- ``KTRDR_CLOUD_DATA_CACHE_MB`` (256): how much data the driver keeps in Ray's object
  store for later jobs (least recently used dropped beyond it; 0: none kept).
- ``KTRDR_CLOUD_GRACE_SECONDS`` (5): how long a cancelled worker may take to stop
  before ``ray.cancel(force=True)``.
- ``KTRDR_CLOUD_START_TIMEOUT`` (300): a task not started by then (no free CPUs) fails.
- ``KTRDR_CLOUD_CONNECT_TIMEOUT`` (3): seconds a reachability probe may take.
- ``KTRDR_CLOUD_HEALTH_TTL`` (10): seconds a ``health()`` answer is reused.
- ``KTRDR_CLOUD_LOG_TO_DRIVER`` (false): forward the workers' output to this process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ktrdr_core.errors import ConfigurationError

if TYPE_CHECKING:
    from ktrdr_core.request import TrainingRequest

__all__ = ["RUNTIME_ENV_KEYS", "CloudSettings", "parse_ray_address", "parse_runtime_env", "task_name"]

#: the runtime-environment keys ``KTRDR_CLOUD_RUNTIME_ENV`` may set
RUNTIME_ENV_KEYS = ("pip", "py_modules", "working_dir")


def _number(
    env: Mapping[str, str],
    name: str,
    default: float,
    *,
    integer: bool = False,
    minimum: float = 0.0,
    strict: bool = True,
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise ConfigurationError(f"{name} must be {kind}, got {raw!r}") from None
    if value < minimum or (strict and value == minimum):
        bound = f"greater than {minimum:g}" if strict else f"at least {minimum:g}"
        raise ConfigurationError(f"{name} must be {bound}, got {raw!r}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigurationError(f"{name} must be true or false, got {raw!r}")


def parse_ray_address(address: str) -> tuple[str, str, int | None]:
    """``(kind, host, port)`` for a Ray address; kind is ``auto``, ``client`` or ``gcs``.

    ``auto`` has no host yet (it is found when connecting); ``ray://host`` uses
    the Ray client's default port 10001, a bare ``host`` the GCS's 6379.
    """
    text = address.strip()
    if text == "auto":
        return "auto", "", None
    kind = "gcs"
    rest = text
    if text.startswith("ray://"):
        kind, rest = "client", text[len("ray://") :]
    elif "://" in text:
        raise ConfigurationError(
            f"KTRDR_RAY_ADDRESS {address!r} is not a Ray address: use 'auto', "
            "'ray://host:port' (Ray client) or 'host:port' (the head node's GCS); "
            "a dashboard URL (http://...:8265) does not work here"
        )
    rest = rest.rstrip("/")
    if rest.startswith("["):  # [ipv6]:port
        host, _, tail = rest[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    elif rest.count(":") == 1:
        host, port_text = rest.split(":")
    else:
        host, port_text = rest, ""
    if not host or any(c in host for c in " /?#@"):
        raise ConfigurationError(f"KTRDR_RAY_ADDRESS {address!r} has no usable host name")
    default_port = 10001 if kind == "client" else 6379
    if not port_text:
        return kind, host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigurationError(
            f"KTRDR_RAY_ADDRESS {address!r}: port {port_text!r} is not a number between 1 and 65535"
        )
    return kind, host, int(port_text)


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigurationError(f"KTRDR_CLOUD_RUNTIME_ENV: {what} must be a list of non-empty strings")
    return list(value)


def parse_runtime_env(raw: str) -> dict[str, Any] | None:
    """The checked runtime environment of ``KTRDR_CLOUD_RUNTIME_ENV`` (None when unset).

    Only the keys that bring code or packages to a node are accepted: ``pip``
    (a list of requirement strings, or the path of a requirements file),
    ``py_modules`` (a list of local folders, wheels or URIs) and
    ``working_dir`` (a folder or URI). Anything else (``env_vars``, ``conda``,
    ``container``) is refused so that a typo cannot silently change what runs.
    """
    text = raw.strip()
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"KTRDR_CLOUD_RUNTIME_ENV is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigurationError(
            f"KTRDR_CLOUD_RUNTIME_ENV must be a JSON object with {', '.join(RUNTIME_ENV_KEYS)}, "
            f"got a {type(value).__name__}"
        )
    unknown = sorted(k for k in value if k not in RUNTIME_ENV_KEYS)
    if unknown:
        raise ConfigurationError(
            f"KTRDR_CLOUD_RUNTIME_ENV: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"only {', '.join(RUNTIME_ENV_KEYS)} are accepted"
        )
    out: dict[str, Any] = {}
    if "pip" in value:
        pip = value["pip"]
        if isinstance(pip, str) and pip.strip():
            out["pip"] = pip
        else:
            out["pip"] = _strings(pip, "pip (requirements, or a requirements file's path)")
    if "py_modules" in value:
        out["py_modules"] = _strings(value["py_modules"], "py_modules (folders, wheels or URIs)")
    if "working_dir" in value:
        working_dir = value["working_dir"]
        if not isinstance(working_dir, str) or not working_dir.strip():
            raise ConfigurationError("KTRDR_CLOUD_RUNTIME_ENV: working_dir must be a non-empty string")
        out["working_dir"] = working_dir
    return out or None


def task_name(request: TrainingRequest) -> str:
    """The Ray task's name: the strategy and the request id, never the user id."""
    return f"ktrdr-train-{request.strategy}-{request.request_id}"


@attrs.frozen
class CloudSettings:
    """Everything the cloud mode reads from the environment, checked."""

    address: str | None = None
    num_cpus: int = attrs.field(factory=lambda: os.cpu_count() or 1)
    task_cpus: float = 1.0
    task_gpus: float = 0.0
    runtime_env: Mapping[str, Any] | None = None
    data_cache_mb: float = 256.0
    grace_seconds: float = 5.0
    start_timeout: float = 300.0
    connect_timeout: float = 3.0
    health_ttl: float = 10.0
    log_to_driver: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CloudSettings:
        """Read and check the variables above; a malformed one is a :class:`ConfigurationError`."""
        env = os.environ if environ is None else environ
        address = env.get("KTRDR_RAY_ADDRESS", "").strip() or None
        if address is not None:
            parse_ray_address(address)
        return cls(
            address=address,
            num_cpus=int(_number(env, "KTRDR_RAY_NUM_CPUS", os.cpu_count() or 1, integer=True)),
            task_cpus=_number(env, "KTRDR_CLOUD_TASK_CPUS", 1.0),
            task_gpus=_number(env, "KTRDR_CLOUD_TASK_GPUS", 0.0, strict=False),
            runtime_env=parse_runtime_env(env.get("KTRDR_CLOUD_RUNTIME_ENV", "")),
            data_cache_mb=_number(env, "KTRDR_CLOUD_DATA_CACHE_MB", 256.0, strict=False),
            grace_seconds=_number(env, "KTRDR_CLOUD_GRACE_SECONDS", 5.0),
            start_timeout=_number(env, "KTRDR_CLOUD_START_TIMEOUT", 300.0),
            connect_timeout=_number(env, "KTRDR_CLOUD_CONNECT_TIMEOUT", 3.0),
            health_ttl=_number(env, "KTRDR_CLOUD_HEALTH_TTL", 10.0, strict=False),
            log_to_driver=_flag(env, "KTRDR_CLOUD_LOG_TO_DRIVER"),
        )

    @property
    def torch_threads(self) -> int:
        """Threads torch may use inside a task: the CPUs the task reserved (at least 1)."""
        return max(1, int(self.task_cpus))

    def task_options(self, request: TrainingRequest) -> dict[str, Any]:
        """The ``.options()`` of one training task: resources, no retries, its name.

        ``max_retries=0``: a training that killed its worker is not silently run again.
        ``runtime_env`` is not here: Ray uploads local ``py_modules``/``working_dir``
        only for the job (``ray.init``), whose tasks and actors all inherit it
        (:meth:`init_options`).
        """
        options: dict[str, Any] = {
            "num_cpus": self.task_cpus,
            "max_retries": 0,
            "retry_exceptions": False,
            "name": task_name(request),
        }
        if self.task_gpus:
            options["num_gpus"] = self.task_gpus
        return options

    def init_options(self) -> dict[str, Any]:
        """What ``ray.init`` gets from these settings: the job's runtime environment, if any."""
        return {"runtime_env": dict(self.runtime_env)} if self.runtime_env else {}

    def resources_text(self) -> str:
        """What one task reserves, in the settings' words (for messages)."""
        text = f"{self.task_cpus:g} CPU(s) (KTRDR_CLOUD_TASK_CPUS)"
        if self.task_gpus:
            text += f" and {self.task_gpus:g} GPU(s) (KTRDR_CLOUD_TASK_GPUS)"
        return text

    @property
    def data_cache_bytes(self) -> int:
        return int(self.data_cache_mb * 1024 * 1024)

    def describe(self) -> str:
        where = (
            f"the Ray cluster at {self.address}"
            if self.address
            else f"a local Ray instance ({self.num_cpus} CPUs)"
        )
        return where
