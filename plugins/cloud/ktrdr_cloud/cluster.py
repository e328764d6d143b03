"""The driver's side of Ray: connect once per process, one control actor, the remote task.

Ray is imported here, and this module is imported only in the driver process
(:mod:`ktrdr_cloud.driver`), never in the ktrdr process itself.

Connecting: ``ray.init`` once: with ``KTRDR_RAY_ADDRESS`` after a bounded
reachability probe (``ray.init`` itself may retry for a minute), or a local
instance with the dashboard off and an explicit CPU count.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

from ktrdr_cloud.probe import probe_address
from ktrdr_cloud.settings import CloudSettings
from ktrdr_core.errors import TrainingFailedError

__all__ = ["RayConnection", "get_connection"]

logger = logging.getLogger(__name__)

NAMESPACE = "ktrdr"


class RayConnection:
    """This process's Ray connection, control actor and remote function (see the module doc)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._control: Any = None
        self._control_session: str | None = None
        self._remote_run: Any = None
        self.control_name: str | None = None
        self.started_here = False
        self.connect_seconds: float | None = None
        self.address: str | None = None

    # -- connecting --------------------------------------------------------------------------

    def connect(self, settings: CloudSettings) -> None:
        """Make sure this process is connected to a Ray cluster (see the module docstring)."""
        import ray

        with self._lock:
            if ray.is_initialized():
                return
            started = time.monotonic()
            options: dict[str, Any] = {
                "namespace": NAMESPACE,
                "log_to_driver": settings.log_to_driver,
                "configure_logging": False,
            }
            options.update(settings.init_options())  # the job's runtime env: tasks and control actor
            if settings.address:
                probe = probe_address(settings.address, settings.connect_timeout)
                if not probe.reachable:
                    raise TrainingFailedError(f"the Ray cluster is unreachable: {probe.detail}")
                try:
                    ray.init(address=settings.address, **options)
                except Exception as exc:  # noqa: BLE001 - Ray raises many kinds here
                    raise TrainingFailedError(
                        f"cannot connect to the Ray cluster at "
                        f"{settings.address}: {type(exc).__name__}: {exc}"
                    ) from exc
            else:
                try:
                    # "local": a new instance even when RAY_ADDRESS is set in the environment
                    ray.init(address="local", num_cpus=settings.num_cpus, include_dashboard=False, **options)
                except Exception as exc:  # noqa: BLE001
                    raise TrainingFailedError(
                        f"cannot start a local Ray instance: {type(exc).__name__}: {exc}"
                    ) from exc
                self.started_here = True
            self.connect_seconds = time.monotonic() - started
            self.address = settings.address
            logger.info("connected to %s in %.2f s", settings.describe(), self.connect_seconds)

    @staticmethod
    def _session() -> str:
        import ray

        return str(ray.get_runtime_context().get_job_id())

    # -- the control actor ------------------------------------------------------------------

    def control(self, *, renew: bool = False) -> Any:
        """The control actor of this driver process (created on first use, then reused).

        ``renew`` replaces it (after it died); a new Ray session (``ray.shutdown``
        and ``ray.init`` again) gets a new one too.
        """
        import ray

        from ktrdr_cloud.control import ControlActor

        with self._lock:
            session = self._session()
            if self._control is None or renew or session != self._control_session:
                name = f"ktrdr-cloud-control-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
                actor_class = ray.remote(ControlActor)
                self._control = actor_class.options(
                    name=name, namespace=NAMESPACE, num_cpus=0, max_restarts=0, max_concurrency=1000
                ).remote()
                self._control_session = session
                self.control_name = name
                self._remote_run = None
            return self._control

    def remote_run(self) -> Any:
        """``ray.remote(run_job)``, made once per session."""
        import ray

        from ktrdr_cloud.worker import run_job

        with self._lock:
            if self._remote_run is None or self._control_session != self._session():
                self._remote_run = ray.remote(run_job)
            return self._remote_run


_connection: RayConnection | None = None
_connection_lock = threading.Lock()


def get_connection() -> RayConnection:
    """The process-wide :class:`RayConnection`."""
    global _connection
    with _connection_lock:
        if _connection is None:
            _connection = RayConnection()
        return _connection
