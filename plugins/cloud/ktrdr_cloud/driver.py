"""The Ray driver process: ``python -m ktrdr_cloud.driver FD`` holds the only ``ray.init``.

Ray's driver is fragile in ways a service cannot accept: when the cluster's
GCS goes away it exits the whole process (after
``gcs_rpc_server_reconnect_timeout_s``), and ``ray.init`` against something
that is not Ray can block for ever. So the ktrdr process never imports Ray
for a training: it starts this process (:mod:`ktrdr_cloud.driver_client`),
in a session of its own, and talks to it over the socket ``FD`` it
inherited, one pickled message at a time (``multiprocessing.connection``).

Messages in (tuples): ``("connect", settings)`` once, then
``("submit", job_id, request, payload, settings)``,
``("cancel", job_id, reason)``, ``("jobs", token)``, ``("stop",)``.
Messages out: ``("connected", info)`` / ``("connect_failed", sentence)``,
``("heartbeat", node_cpus)`` every second, per job ``("progress", job_id,
epoch, total, metrics)`` then one of ``("output", job_id, output)``,
``("failed", job_id, sentence)``, ``("cancelled", job_id, reason)``;
``("jobs", token, answer)``; ``("lost", sentence)`` just before it exits
because the cluster is gone.

Losing the cluster: a watchdog probes the GCS port every second and, after
:data:`LOST_AFTER_SECONDS` without an answer, says ``lost`` and exits; Ray's
own reconnect timeout (set to :data:`RAY_RECONNECT_SECONDS` for this process)
is the backstop for a GCS that accepts connections but no longer answers.
Either way the ktrdr process fails the jobs in flight and carries on. This
process also exits when its parent dies or closes the socket.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from ktrdr_cloud.settings import CloudSettings
from ktrdr_core.errors import CancellationError, KtrdrError

__all__ = ["LOST_AFTER_SECONDS", "RAY_RECONNECT_SECONDS", "main"]

logger = logging.getLogger("ktrdr_cloud.driver")

#: the GCS port refusing (or not answering) this long means the cluster is lost
LOST_AFTER_SECONDS = 5.0
#: ``RAY_gcs_rpc_server_reconnect_timeout_s`` of the driver process (Ray's default: 60)
RAY_RECONNECT_SECONDS = 20
#: how often the heartbeat refreshes the cluster's nodes (for the service's admission)
NODES_EVERY_SECONDS = 5.0


class Driver:
    """The driver process's state: the socket, the Ray connection, the running jobs."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._send_lock = threading.Lock()
        self.jobs: dict[str, Any] = {}
        self.jobs_lock = threading.Lock()
        self.connection: Any = None
        self.settings: CloudSettings | None = None
        self.gcs_address: str | None = None
        self.node_cpus: list[float] | None = None
        self.stopping = threading.Event()

    # -- sending -------------------------------------------------------------------------

    def send(self, *message: Any) -> None:
        try:
            with self._send_lock:
                self.conn.send(message)
        except (OSError, ValueError):  # the parent is gone: nothing left to do
            os._exit(0)

    # -- connecting ----------------------------------------------------------------------

    def connect(self, settings: CloudSettings) -> None:
        import ray

        from ktrdr_cloud.cluster import get_connection

        started = time.monotonic()
        connection = get_connection()
        try:
            connection.connect(settings)
        except KtrdrError as exc:
            self.send("connect_failed", str(exc))
            return
        self.connection, self.settings = connection, settings
        with contextlib.suppress(Exception):
            self.gcs_address = ray.get_runtime_context().gcs_address
        self.node_cpus = _node_cpus()
        self.send(
            "connected",
            {
                "address": settings.address or "local",
                "gcs_address": self.gcs_address,
                "seconds": time.monotonic() - started,
                "node_cpus": self.node_cpus,
                "pid": os.getpid(),
            },
        )
        threading.Thread(target=self._heartbeat, name="ktrdr-driver-heartbeat", daemon=True).start()
        threading.Thread(target=self._refresh_nodes, name="ktrdr-driver-nodes", daemon=True).start()
        if settings.address and self.gcs_address and not settings.address.startswith("ray://"):
            threading.Thread(target=self._watch_gcs, name="ktrdr-driver-gcs", daemon=True).start()

    def _heartbeat(self) -> None:
        """One message a second, whatever Ray does: the ktrdr process takes silence for death."""
        while not self.stopping.is_set():
            self.send("heartbeat", self.node_cpus)
            self.stopping.wait(1.0)

    def _refresh_nodes(self) -> None:
        """The alive nodes' CPUs every few seconds (a slow GCS delays this, never the heartbeat)."""
        while not self.stopping.wait(NODES_EVERY_SECONDS):
            cpus = _node_cpus()
            if cpus is not None:
                self.node_cpus = cpus

    def _watch_gcs(self) -> None:
        """Say ``lost`` and exit once the GCS port has not answered for LOST_AFTER_SECONDS."""
        from ktrdr_cloud.probe import probe_address

        assert self.gcs_address is not None and self.settings is not None
        failing_since: float | None = None
        while not self.stopping.is_set():
            probe = probe_address(self.gcs_address, 1.0)
            if probe.reachable:
                failing_since = None
            else:
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since >= LOST_AFTER_SECONDS:
                    self.send(
                        "lost",
                        f"lost the Ray cluster at {self.settings.address}: its GCS at "
                        f"{self.gcs_address} has not answered for {LOST_AFTER_SECONDS:g} s ({probe.detail})",
                    )
                    os._exit(3)
            self.stopping.wait(1.0)

    # -- jobs ----------------------------------------------------------------------------

    def submit(self, job_id: str, request: Any, payload: Any, settings: CloudSettings) -> None:
        from ktrdr_cloud.driver_job import RayJob

        def emit(epoch: int, total: int, metrics: dict[str, Any]) -> None:
            self.send("progress", job_id, epoch, total, metrics)

        job = RayJob(self.connection, settings, job_id, request, payload, emit)
        with self.jobs_lock:
            self.jobs[job_id] = job
        threading.Thread(target=self._run, args=(job,), name=f"ktrdr-job-{job_id}", daemon=True).start()

    def _run(self, job: Any) -> None:
        try:
            output = job.run()
        except CancellationError as exc:
            self.send("cancelled", job.job_id, exc.reason)
        except KtrdrError as exc:
            self.send("failed", job.job_id, str(exc))
        except Exception as exc:  # noqa: BLE001 - reported as the job's failure, never lost
            logger.exception("cloud job %s failed in the driver", job.job_id)
            self.send("failed", job.job_id, f"the Ray driver failed: {type(exc).__name__}: {exc}")
        else:
            self.send("output", job.job_id, output)
        finally:
            with self.jobs_lock:
                self.jobs.pop(job.job_id, None)

    def cancel(self, job_id: str, reason: str) -> None:
        with self.jobs_lock:
            job = self.jobs.get(job_id)
        if job is not None:
            job.cancel(reason)

    def describe_jobs(self) -> dict[str, Any]:
        """The control actor's view of the open jobs (operators and tests)."""
        import ray

        answer: dict[str, Any] = {"pid": os.getpid(), "control": None, "jobs": {}}
        if self.connection is None:
            return answer
        control = self.connection.control()
        answer["control"] = self.connection.control_name
        try:
            answer["jobs"] = ray.get(control.jobs.remote(), timeout=10)
        except Exception as exc:  # noqa: BLE001
            answer["error"] = f"{type(exc).__name__}: {exc}"
        return answer

    def _answer_jobs(self, token: str) -> None:
        self.send("jobs", token, self.describe_jobs())

    # -- the loop ------------------------------------------------------------------------

    def serve(self) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                break  # the parent closed the socket or died
            if message[0] == "stop":
                break
            try:
                self.handle(message)
            except Exception as exc:  # noqa: BLE001 - one bad message must not end the others' jobs
                logger.exception("cannot handle %r", message[0])
                if message[0] == "submit":
                    self.send("failed", message[1], f"the Ray driver failed: {type(exc).__name__}: {exc}")
        self.stopping.set()

    def handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "connect":
            self.connect(message[1])
        elif kind == "submit":
            self.submit(*message[1:])
        elif kind == "cancel":
            self.cancel(message[1], message[2])
        elif kind == "jobs":
            threading.Thread(target=self._answer_jobs, args=(message[1],), daemon=True).start()


def _node_cpus() -> list[float] | None:
    import ray

    try:
        return [float(n.get("Resources", {}).get("CPU", 0)) for n in ray.nodes() if n.get("Alive")]
    except Exception:  # noqa: BLE001 - capacity is advisory
        return None


def _watch_parent(parent: int) -> None:
    """Exit when the ktrdr process is gone (even while Ray blocks the main thread)."""
    while True:
        if os.getppid() != parent:
            os._exit(0)
        time.sleep(0.5)


def main(argv: list[str]) -> int:
    fd, parent = int(argv[0]), int(argv[1])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    threading.Thread(target=_watch_parent, args=(parent,), name="ktrdr-driver-parent", daemon=True).start()
    driver = Driver(Connection(fd))
    driver.serve()
    with contextlib.suppress(Exception):
        import ray

        if ray.is_initialized():
            ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
