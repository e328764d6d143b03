"""The ktrdr process's side of the Ray driver process: start it, talk to it, survive it.

One driver process (:mod:`ktrdr_cloud.driver`) per ktrdr process and cluster
setting, started lazily by the first cloud training and started again after
it died. It runs in a session of its own (a Ctrl-C meant for ktrdr never
reaches it: ktrdr cancels through the socket instead), its stdout/stderr go
to ``KTRDR_HOME/logs/cloud-driver-*.log`` (Ray's log lines never reach
ktrdr's stdout), and every wait on it is bounded:

- connecting: the driver must say ``connected`` within
  ``KTRDR_CLOUD_CONNECT_TIMEOUT`` + :data:`CONNECT_HEADROOM_SECONDS` (a
  cluster) or + :data:`LOCAL_START_SECONDS` (a local instance), else it is
  killed and the training fails with a sentence; a cancel (Ctrl-C) during
  the wait ends the wait at once;
- running: the driver sends a heartbeat every second; silence for
  :data:`SILENCE_SECONDS`, its exit, or its ``lost`` message ends every job
  in flight as failed ("lost the Ray cluster at ADDR: ...") and counts in
  :func:`losses`, which the mode's health cache watches.

Nothing here imports Ray.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import IO, Any

from ktrdr_cloud.settings import CloudSettings
from ktrdr_core.errors import CancellationError, TrainingFailedError

__all__ = ["DriverProcess", "capacity", "driver_for", "losses", "shutdown_all"]

logger = logging.getLogger(__name__)

#: a cluster's driver: Python start-up, importing Ray and its handshake, on top of the connect timeout
CONNECT_HEADROOM_SECONDS = 7.0
#: a local instance: starting Ray itself takes a while on a loaded machine
LOCAL_START_SECONDS = 90.0
#: a connected driver that has sent nothing for this long is taken for dead
SILENCE_SECONDS = 15.0
#: the parent's loop tick while it waits for the driver's messages
TICK_SECONDS = 0.02
#: after the cancel was sent, how long the parent waits beyond the driver's own force-cancel bound
CANCEL_SLACK_SECONDS = 15.0
#: the driver's force-cancel wait (``ktrdr_cloud.driver_job.FORCE_WAIT_SECONDS``)
FORCE_WAIT_SECONDS = 10.0

_losses = 0
_losses_lock = threading.Lock()


def losses() -> int:
    """How many driver processes of this ktrdr process ended while connected or connecting."""
    return _losses


def _count_loss() -> None:
    global _losses
    with _losses_lock:
        _losses += 1


def _key(settings: CloudSettings) -> tuple[Any, ...]:
    """What ``ray.init`` is called with: a driver serves only jobs whose settings agree on it."""
    runtime_env = (
        json.dumps(settings.runtime_env, sort_keys=True, default=str) if settings.runtime_env else None
    )
    return (
        settings.address,
        None if settings.address else settings.num_cpus,
        settings.log_to_driver,
        runtime_env,
    )


def _where(settings: CloudSettings) -> str:
    return settings.address or f"a local Ray instance ({settings.num_cpus} CPUs)"


_log_numbers = itertools.count(1)


def _log_file() -> IO[bytes] | None:
    from ktrdr_core.home import ktrdr_home

    folder = ktrdr_home() / "logs"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return (folder / f"cloud-driver-{os.getpid()}-{next(_log_numbers)}.log").open("ab")
    except OSError:
        return None  # the driver writes to ktrdr's stderr instead


class DriverProcess:
    """One driver process and the socket to it (see the module docstring)."""

    def __init__(self, settings: CloudSettings) -> None:
        self.settings = settings
        self.key = _key(settings)
        self.where = _where(settings)
        self.process: subprocess.Popen[bytes] | None = None
        self.conn: Connection | None = None
        self.log_path: str | None = None
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        self._queues: dict[str, queue.Queue[tuple[Any, ...]]] = {}
        self.connected = threading.Event()
        self.ended = threading.Event()
        self.end_reason: str | None = None
        self.info: dict[str, Any] = {}
        self.node_cpus: list[float] | None = None
        self.started_at = 0.0
        self.waiters = 0

    # -- the process ---------------------------------------------------------------------

    def start(self) -> None:
        parent_end, child_end = socket.socketpair()
        log = _log_file()
        self.log_path = getattr(log, "name", None)
        env = dict(os.environ)
        # Ray's driver exits when it cannot reach the GCS for this long (default 60 s)
        env.setdefault("RAY_gcs_rpc_server_reconnect_timeout_s", str(_ray_reconnect_seconds()))
        env["PYTHONUNBUFFERED"] = "1"
        command = [sys.executable, "-m", "ktrdr_cloud.driver", str(child_end.fileno()), str(os.getpid())]
        try:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log if log is not None else sys.stderr,
                stderr=subprocess.STDOUT,
                pass_fds=(child_end.fileno(),),
                env=env,
                start_new_session=True,  # Ctrl-C reaches ktrdr only; killed as a group
            )
        finally:
            child_end.close()
            if log is not None:
                log.close()
        self.started_at = time.monotonic()
        self.conn = Connection(parent_end.detach())
        threading.Thread(target=self._read, name="ktrdr-cloud-driver-reader", daemon=True).start()
        self.send("connect", self.settings)

    def send(self, *message: Any) -> bool:
        """Send a message; False when the driver is gone (its end is then already reported)."""
        if self.conn is None or self.ended.is_set():
            return False
        try:
            with self._send_lock:
                self.conn.send(message)
            return True
        except (OSError, ValueError):
            self._end(self._exit_sentence())
            return False

    def kill(self) -> None:
        process = self.process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)

    def stop(self) -> None:
        """Ask the driver to disconnect and exit; kill it if it has not after 3 s."""
        self.send("stop")
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=3)
        self.kill()
        self._end(f"the Ray driver for {self.where} was stopped", loss=False)

    def _exit_sentence(self) -> str:
        code = None
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self.process.wait(timeout=2)
        status = f"exited with status {code}" if code is not None else "stopped answering"
        log = f"; its log: {self.log_path}" if self.log_path else ""
        return f"lost the Ray cluster at {self.where}: the Ray driver process {status}{log}"

    def _end(self, reason: str, *, loss: bool = True) -> None:
        with self._lock:
            if self.ended.is_set():
                return
            self.end_reason = reason
            self.ended.set()
            queues = list(self._queues.values())
        if loss:
            _count_loss()
            if queues:
                logger.warning("%s; failing %d cloud job(s) in flight", reason, len(queues))
        for q in queues:
            q.put(("lost", reason))
        self.kill()

    def _read(self) -> None:
        assert self.conn is not None
        while True:
            try:
                silent_for = SILENCE_SECONDS if self.connected.is_set() else None
                if not self.conn.poll(silent_for):
                    pid = self.process.pid if self.process else "?"
                    self._end(
                        f"lost the Ray cluster at {self.where}: the Ray driver process (pid {pid}) "
                        f"sent nothing for {SILENCE_SECONDS:g} s"
                    )
                    return
                message = self.conn.recv()
            except (EOFError, OSError):
                self._end(self._exit_sentence())
                return
            except Exception as exc:  # noqa: BLE001 - a message that does not unpickle
                self._end(f"lost the Ray cluster at {self.where}: bad message from the Ray driver: {exc}")
                return
            self._dispatch(message)

    def _dispatch(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "heartbeat":
            if message[1] is not None:
                self.node_cpus = list(message[1])
        elif kind == "connected":
            self.info = dict(message[1])
            self.node_cpus = self.info.get("node_cpus")
            self.connected.set()
        elif kind in ("connect_failed", "lost"):
            self._end(str(message[1]))
        else:  # per job (or per request): progress, output, failed, cancelled, jobs
            with self._lock:
                q = self._queues.get(message[1])
            if q is not None:
                q.put(message)

    # -- connecting ----------------------------------------------------------------------

    def connect_bound(self) -> float:
        extra = CONNECT_HEADROOM_SECONDS if self.settings.address else LOCAL_START_SECONDS
        return self.settings.connect_timeout + extra

    def wait_connected(self, is_cancelled: Callable[[], bool], cancel_reason: Callable[[], str]) -> None:
        """Return once connected; raise a sentence on failure, :class:`CancellationError` on cancel."""
        bound = self.connect_bound()
        with self._lock:
            self.waiters += 1
        try:
            while not self.connected.wait(TICK_SECONDS):
                if self.ended.is_set():
                    raise TrainingFailedError(self.end_reason or f"cannot connect to {self.where}")
                if is_cancelled():
                    with self._lock:
                        alone = self.waiters == 1
                    if alone:  # nobody else waits for this connection: do not leave it behind
                        self._end(f"connecting to {self.where} was cancelled", loss=False)
                    raise CancellationError(cancel_reason())
                if time.monotonic() - self.started_at > bound:
                    self._end(
                        f"cannot connect to the Ray cluster at {self.where}: no answer within {bound:g} s "
                        "(is it a Ray head node? KTRDR_CLOUD_CONNECT_TIMEOUT)"
                    )
                    raise TrainingFailedError(self.end_reason or "")
        except BaseException:
            with self._lock:
                self.waiters -= 1
            if isinstance(sys.exc_info()[1], KeyboardInterrupt) and self.waiters == 0:
                self._end(f"connecting to {self.where} was interrupted", loss=False)
            raise
        with self._lock:
            self.waiters -= 1

    # -- requests ------------------------------------------------------------------------

    def open_queue(self, name: str) -> queue.Queue[tuple[Any, ...]]:
        q: queue.Queue[tuple[Any, ...]] = queue.Queue()
        with self._lock:
            self._queues[name] = q
            if self.ended.is_set():
                q.put(("lost", self.end_reason or f"lost the Ray cluster at {self.where}"))
        return q

    def close_queue(self, name: str) -> None:
        with self._lock:
            self._queues.pop(name, None)

    def jobs(self, timeout: float = 15.0) -> dict[str, Any]:
        """The control actor's view of the open jobs: ``{"pid", "control", "jobs": {...}}``."""
        token = f"jobs-{uuid.uuid4().hex}"
        q = self.open_queue(token)
        try:
            if not self.send("jobs", token):
                raise TrainingFailedError(self.end_reason or "the Ray driver is gone")
            message = q.get(timeout=timeout)
        except queue.Empty:
            raise TrainingFailedError(f"the Ray driver did not answer within {timeout:g} s") from None
        finally:
            self.close_queue(token)
        if message[0] == "lost":
            raise TrainingFailedError(str(message[1]))
        return dict(message[2])

    def capacity(self, task_cpus: float) -> int | None:
        cpus = self.node_cpus
        if not self.connected.is_set() or self.ended.is_set() or not cpus:
            return None
        slots = sum(int(c // task_cpus) for c in cpus)
        return slots if slots >= 1 else None


def _ray_reconnect_seconds() -> int:
    from ktrdr_cloud.driver import RAY_RECONNECT_SECONDS

    return RAY_RECONNECT_SECONDS


# -- the process-wide registry ----------------------------------------------------------------

_drivers: dict[tuple[Any, ...], DriverProcess] = {}
_registry_lock = threading.Lock()
_atexit_registered = False


def driver_for(
    settings: CloudSettings, is_cancelled: Callable[[], bool], cancel_reason: Callable[[], str]
) -> DriverProcess:
    """The connected driver for ``settings``' cluster, started (again) if need be."""
    global _atexit_registered
    key = _key(settings)
    with _registry_lock:
        driver = _drivers.get(key)
        if driver is None or driver.ended.is_set():
            for other_key, other in list(_drivers.items()):  # an idle driver of another cluster goes
                if other_key != key and (other.ended.is_set() or not other._queues):
                    other.stop()
                    del _drivers[other_key]
            driver = DriverProcess(settings)
            driver.start()
            _drivers[key] = driver
            if not _atexit_registered:
                atexit.register(shutdown_all)
                _atexit_registered = True
    driver.wait_connected(is_cancelled, cancel_reason)
    return driver


def current(settings: CloudSettings) -> DriverProcess | None:
    """The driver for ``settings``' cluster if one is running (never starts one)."""
    with _registry_lock:
        driver = _drivers.get(_key(settings))
    return driver if driver is not None and not driver.ended.is_set() else None


def capacity(settings: CloudSettings) -> int | None:
    """Slots of the cluster as the live driver last saw it; None without one."""
    driver = current(settings)
    return driver.capacity(settings.task_cpus) if driver is not None else None


def shutdown_all() -> None:
    """Stop every driver process of this ktrdr process (at exit, and for tests)."""
    with _registry_lock:
        drivers = list(_drivers.values())
        _drivers.clear()
    for driver in drivers:
        driver.stop()
