"""The cloud mode's settings, read from the environment (no Ray, no torch here).

- ``KTRDR_RAY_ADDRESS`` (unset): ``auto``, ``ray://host:port`` (Ray client) or
  ``host:port`` (the head's GCS); unset: a local Ray instance.
- ``KTRDR_RAY_NUM_CPUS`` (``os.cpu_count()``): CPUs of that local instance.
- ``KTRDR_CLOUD_TASK_CPUS`` (1): CPUs one training task asks for (and its torch threads).
- ``KTRDR_CLOUD_GRACE_SECONDS`` (5): how long a cancelled worker may take to stop
  before ``ray.cancel(force=True)``.
- ``KTRDR_CLOUD_START_TIMEOUT`` (300): a task not started by then (no free CPUs) fails.
- ``KTRDR_CLOUD_CONNECT_TIMEOUT`` (3): seconds a reachability probe may take.
- ``KTRDR_CLOUD_HEALTH_TTL`` (10): seconds a ``health()`` answer is reused.
- ``KTRDR_CLOUD_LOG_TO_DRIVER`` (false): forward the workers' output to this process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import attrs

from ktrdr_core.errors import ConfigurationError

__all__ = ["CloudSettings", "parse_ray_address"]


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


@attrs.frozen
class CloudSettings:
    """Everything the cloud mode reads from the environment, checked."""

    address: str | None = None
    num_cpus: int = attrs.field(factory=lambda: os.cpu_count() or 1)
    task_cpus: float = 1.0
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

    def describe(self) -> str:
        where = (
            f"the Ray cluster at {self.address}"
            if self.address
            else f"a local Ray instance ({self.num_cpus} CPUs)"
        )
        return where
