"""The 'cloud' execution mode: the unified executor, run as a Ray task.

Importing this module imports neither Ray nor torch (``ktrdr plugins`` and
``ktrdr --help`` stay fast); :meth:`CloudMode.execute` imports them when a
training runs. See ``docs/cloud.md`` for the design; in short:

- the driver resolves the strategy and the data files and ships them with the
  task (:mod:`ktrdr_cloud.payload`); the worker runs
  ``ktrdr_unified.executor.TrainingExecutor`` on its private copy
  (:mod:`ktrdr_cloud.worker`), and the model comes back as bytes that the
  driver saves with the core's atomic storage;
- progress and cancellation go through one long-lived control actor per
  driver process (:mod:`ktrdr_cloud.control`); the driver long-polls progress
  and calls ``progress`` on the thread that runs :meth:`execute`, never two
  updates closer than 100 ms but the final one;
- a cancelled worker that has not stopped after ``KTRDR_CLOUD_GRACE_SECONDS``
  is killed with ``ray.cancel(force=True)``; a cancelled job always ends in
  :class:`CancellationError` and never saves a model;
- a worker that dies ends in :class:`TrainingFailedError` ("the Ray worker
  died: ..."), never in a hang.
"""

from __future__ import annotations

import collections
import contextlib
import importlib.util
import io
import logging
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from ktrdr_cloud.healthcheck import run_check
from ktrdr_cloud.probe import probe_address
from ktrdr_cloud.settings import CloudSettings
from ktrdr_core import (
    BadInputError,
    CancellationError,
    CancellationToken,
    ConfigurationError,
    ModeHealth,
    ProgressCallback,
    TrainingFailedError,
    TrainingRequest,
    TrainingResult,
)

__all__ = ["CloudMode", "ProgressPacer"]

logger = logging.getLogger(__name__)

#: how often the driver loop wakes to look at the token (when it cannot be told directly)
TICK_SECONDS = 0.02
#: how long one long-poll of the control actor for progress may block
PULL_SECONDS = 0.5
#: after ``ray.cancel(force=True)``, how long to wait for Ray to confirm before giving up
FORCE_WAIT_SECONDS = 10.0
#: after the task returned, how long to wait for progress updates still in flight
DRAIN_SECONDS = 3.0
#: the smallest interval between two progress updates the driver hands on (but the final)
MIN_INTERVAL = 0.1


class ProgressPacer:
    """Hands updates to ``callback`` in order, never two closer than ``min_interval``.

    The worker's progress bridge already spaces them ~300 ms apart; the pacer
    only absorbs transport jitter (two updates arriving in one pull). The last
    update of a run goes out at once (``flush``), as in the unified mode.
    """

    def __init__(
        self,
        callback: ProgressCallback | None,
        min_interval: float = MIN_INTERVAL,
        on_cancel_request: Any = None,
    ) -> None:
        self._callback = callback
        self._min_interval = min_interval
        self._queue: collections.deque[tuple[int, int, Mapping[str, Any]]] = collections.deque()
        self._last: float | None = None
        self._failed = False
        self._on_cancel_request = on_cancel_request
        self.delivered = 0

    def add(self, epoch: int, total_epochs: int, metrics: Mapping[str, Any]) -> None:
        self._queue.append((epoch, total_epochs, metrics))
        self.pump()

    def pump(self) -> None:
        """Deliver whatever is due now."""
        while self._queue and (self._last is None or time.monotonic() - self._last >= self._min_interval):
            self._deliver(*self._queue.popleft())

    def flush(self) -> None:
        """Deliver everything left: paced, except the very last update."""
        while self._queue:
            if len(self._queue) > 1 and self._last is not None:
                wait = self._min_interval - (time.monotonic() - self._last)
                if wait > 0:
                    time.sleep(wait)
            self._deliver(*self._queue.popleft())

    def _deliver(self, epoch: int, total_epochs: int, metrics: Mapping[str, Any]) -> None:
        self._last = time.monotonic()
        self.delivered += 1
        if self._callback is None:
            return
        try:
            self._callback(epoch, total_epochs, metrics)
        except CancellationError as exc:  # the consumer asks to stop, as in ModelTrainer
            if self._on_cancel_request is not None:
                self._on_cancel_request(exc.reason)
        except Exception:  # noqa: BLE001 - a progress consumer's bug is not the training's
            if not self._failed:
                self._failed = True
                logger.exception(
                    "progress callback %r raised; training continues and its later errors are not logged",
                    self._callback,
                )


def _ray_initialised() -> bool:
    ray = sys.modules.get("ray")
    return bool(ray is not None and getattr(ray, "is_initialized", lambda: False)())


class CloudMode:
    """Runs the unified executor on a Ray cluster (``KTRDR_RAY_ADDRESS``, else a local Ray)."""

    name = "cloud"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ
        self._health_lock = threading.Lock()
        self._health_cache: tuple[Any, float, ModeHealth] | None = None
        self._check_lock = threading.Lock()  # one check at a time; the others reuse its answer
        #: how many real cluster checks (child processes) this mode has run
        self.health_checks = 0
        self._slots: int | None = None

    def capacity(self) -> int | None:
        """How many trainings the cluster fits at once, for ``ktrdr serve``'s admission.

        Per alive node, ``floor(CPU / KTRDR_CLOUD_TASK_CPUS)``, summed; learnt
        each time a training connects (never a cluster call here: the service
        asks on its event loop). None before the first connection: the
        service then counts cloud trainings against its local limit.
        """
        return self._slots

    def _learn_slots(self, settings: CloudSettings) -> None:
        import ray

        try:
            nodes = [n for n in ray.nodes() if n.get("Alive")]
        except Exception:  # noqa: BLE001 - capacity is advisory
            return
        slots = sum(int(float(n.get("Resources", {}).get("CPU", 0)) // settings.task_cpus) for n in nodes)
        self._slots = slots if slots >= 1 else None

    def settings(self) -> CloudSettings:
        return CloudSettings.from_env(self._environ)

    # -- health ------------------------------------------------------------------------------

    def health(self) -> ModeHealth:
        """Asks the cluster itself (in a child process, killed after ``KTRDR_CLOUD_CONNECT_TIMEOUT``
        + 2 s); the answer, healthy or not, is reused for ``KTRDR_CLOUD_HEALTH_TTL`` seconds.

        The selector asks before every decision, so a request must not pay for a check.
        """
        try:
            settings = self.settings()
        except ConfigurationError as exc:
            return ModeHealth.unhealthy(str(exc))
        key = (settings.address, settings.num_cpus, settings.connect_timeout, settings.task_cpus)
        with self._check_lock:
            cached = self._cached(key, settings.health_ttl)
            if cached is not None:
                return cached
            health = self._check_health(settings)
            with self._health_lock:
                self._health_cache = (key, time.monotonic(), health)
        return health

    def _cached(self, key: Any, ttl: float) -> ModeHealth | None:
        with self._health_lock:
            cached = self._health_cache
        if cached is not None and cached[0] == key and time.monotonic() - cached[1] < ttl:
            return cached[2]
        return None

    def _check_health(self, settings: CloudSettings) -> ModeHealth:
        if importlib.util.find_spec("ray") is None:
            return ModeHealth.unhealthy("Ray is not installed (pip install ktrdr-cloud pulls it in)")
        if settings.address is None:
            if _ray_initialised():
                return ModeHealth.ok("runs on this process's Ray connection")
            return ModeHealth.ok(
                f"runs on a local Ray instance ({settings.num_cpus} CPUs), started on first use"
            )
        if settings.address.startswith("ray://") and importlib.util.find_spec("grpc") is None:
            return ModeHealth.unhealthy(
                f"KTRDR_RAY_ADDRESS {settings.address} needs the Ray client, which is not "
                "installed: pip install 'ktrdr-cloud[client]' (Ray's ray[client] extra)"
            )
        # a refused port or an unknown host is answered here at once, without a child process
        probe = probe_address(settings.address, settings.connect_timeout)
        if not probe.reachable:
            return ModeHealth.unhealthy(f"the Ray cluster is unreachable: {probe.detail}")
        self.health_checks += 1
        result = run_check(settings.address, settings.task_cpus, settings.connect_timeout)
        if not result.healthy:
            return ModeHealth.unhealthy(result.detail)
        return ModeHealth.ok(result.detail)

    # -- execute -----------------------------------------------------------------------------

    def execute(
        self, request: TrainingRequest, progress: ProgressCallback, cancel: CancellationToken
    ) -> TrainingResult:
        settings = self.settings()
        _raise_if_cancelled(cancel)
        from ktrdr_cloud.payload import build_payload

        payload = build_payload(request, torch_threads=settings.torch_threads, environ=self._environ)
        from ktrdr_cloud.cluster import get_connection

        connection = get_connection()
        connection.connect(settings)
        self._learn_slots(settings)
        _raise_if_cancelled(cancel)
        return _DriverJob(connection, settings, request, payload, progress, cancel).run()


def _raise_if_cancelled(cancel: CancellationToken) -> None:
    if cancel.is_cancelled():
        raise CancellationError(cancel.reason or "cancelled")


class _DriverJob:
    """One job seen from the driver: submit, pump progress, forward cancel, collect, save."""

    def __init__(
        self,
        connection: Any,
        settings: CloudSettings,
        request: TrainingRequest,
        payload: Any,
        progress: ProgressCallback,
        cancel: CancellationToken,
    ) -> None:
        self.connection = connection
        self.settings = settings
        self.request = request
        self.payload = payload
        self.cancel = cancel
        self.job_id = f"{request.request_id}-{uuid.uuid4().hex[:8]}"
        self.pacer = ProgressPacer(progress, on_cancel_request=self._consumer_cancel)
        self.control: Any = None
        self.control_alive = True
        self.next_seq = 1
        self.pending: dict[int, tuple[int, int, dict[str, Any]]] = {}
        self._cancel_lock = threading.Lock()
        self.cancel_sent_at: float | None = None
        self.cancel_sent_wall: float | None = None
        self.cancel_reason: str | None = None
        self.forced_at: float | None = None
        self.ref: Any = None
        self.data_puts = 0
        self.done = False
        self.started = False
        self._submitted_at = 0.0
        self._last_start_check = 0.0

    # -- cancellation --------------------------------------------------------------------

    def _consumer_cancel(self, reason: str) -> None:
        self.cancel.cancel(reason=reason)
        self._forward_cancel()

    def _forward_cancel(self, _reason: str | None = None) -> None:
        """Tell the worker (through the actor); safe from any thread, once."""
        with self._cancel_lock:
            if self.cancel_sent_at is not None or self.done:
                return
            self.cancel_sent_at = time.monotonic()
            self.cancel_sent_wall = time.time()
            self.cancel_reason = self.cancel.reason or _reason or "cancelled"
        if self.control_alive:
            try:
                self.control.cancel.remote(self.job_id, self.cancel_reason)
                return
            except Exception:  # noqa: BLE001 - fall through to force
                logger.warning(
                    "cloud job %s: cannot reach the control actor to cancel", self.job_id, exc_info=True
                )
        self._force("cannot be told to stop (its control actor is gone)")

    def _force(self, why: str) -> None:
        import ray

        if self.forced_at is not None or self.ref is None:
            return
        self.forced_at = time.monotonic()
        logger.warning("cloud job %s %s; force-cancelling the Ray task", self.job_id, why)
        try:
            ray.cancel(self.ref, force=True)
        except Exception:  # noqa: BLE001 - it may have ended meanwhile
            logger.debug("ray.cancel failed", exc_info=True)

    # -- progress ------------------------------------------------------------------------

    def _take(self, updates: list[tuple[int, float, int, int, dict[str, Any]]]) -> None:
        for seq, _sent_at, epoch, total, metrics in updates:
            if seq >= self.next_seq:
                self.pending[seq] = (epoch, total, metrics)
        while self.next_seq in self.pending:
            self.pacer.add(*self.pending.pop(self.next_seq))
            self.next_seq += 1

    def _drain(self, pull_ref: Any, expected: int) -> None:
        """After the task: collect the updates still in flight, then flush the pacer."""
        import ray

        deadline = time.monotonic() + DRAIN_SECONDS
        while self.control_alive and self.next_seq <= expected and time.monotonic() < deadline:
            try:
                ref = pull_ref if pull_ref is not None else self.control.pull.remote(self.job_id, 0.2)
                pull_ref = None
                self._take(ray.get(ref, timeout=max(0.1, deadline - time.monotonic())))
            except Exception:  # noqa: BLE001
                break
        if self.pending:  # a gap that never filled: hand on what we have, in order
            for seq in sorted(self.pending):
                self.pacer.add(*self.pending[seq])
            self.pending.clear()
        self.pacer.flush()

    # -- the run -------------------------------------------------------------------------

    def _open(self) -> None:
        import ray

        for attempt in (1, 2):
            self.control = self.connection.control(renew=attempt == 2)
            try:
                ray.get(
                    self.control.open.remote(self.job_id, self.request.request_id),
                    timeout=max(30.0, self.settings.connect_timeout),
                )
                return
            except ray.exceptions.GetTimeoutError:
                raise TrainingFailedError(
                    "the Ray cluster did not start the ktrdr control actor "
                    "within 30 s (is it out of resources?)"
                ) from None
            except ray.exceptions.RayActorError:
                if attempt == 2:
                    raise TrainingFailedError("the ktrdr control actor died twice in a row") from None

    def run(self) -> TrainingResult:
        try:
            # inside the try: an open that registered the job and then timed out (or
            # failed on the retry) must still close it on the actor
            self._open()
            return self._run()
        finally:
            self.done = True
            if self.control_alive and self.control is not None:  # None: no actor was ever reached
                with contextlib.suppress(Exception):
                    self.control.close.remote(self.job_id)

    def _run(self) -> TrainingResult:
        import ray

        add_callback = getattr(self.cancel, "add_callback", None)
        if callable(add_callback):
            add_callback(self._forward_cancel)
        if self.cancel.is_cancelled():
            raise CancellationError(self.cancel.reason or "cancelled")
        remote = self.connection.remote_run().options(**self.settings.task_options(self.request))
        self.ref = remote.remote(*self._task_args())
        self._submitted_at = time.monotonic()
        pull_ref: Any = self.control.pull.remote(self.job_id, PULL_SECONDS)
        while True:
            if not self.started and self.cancel_sent_at is None:
                self._check_started()
            if self.cancel_sent_at is None and self.cancel.is_cancelled():
                self._forward_cancel()
            if self.cancel_sent_at is not None:
                waited = time.monotonic() - self.cancel_sent_at
                if self.forced_at is None and waited > self.settings.grace_seconds:
                    self._force(f"did not stop within {self.settings.grace_seconds:g} s of its cancellation")
                if self.forced_at is not None and time.monotonic() - self.forced_at > FORCE_WAIT_SECONDS:
                    logger.error(
                        "cloud job %s: Ray did not confirm the forced cancellation "
                        "within %g s; giving up on it",
                        self.job_id,
                        FORCE_WAIT_SECONDS,
                    )
                    raise CancellationError(self.cancel_reason or "cancelled")
            waiting = [self.ref] if pull_ref is None else [self.ref, pull_ref]
            ready, _ = ray.wait(waiting, num_returns=1, timeout=TICK_SECONDS)
            if pull_ref is not None and pull_ref in ready:
                try:
                    updates = ray.get(pull_ref)
                    self.started = self.started or bool(updates)
                    self._take(updates)
                    pull_ref = self.control.pull.remote(self.job_id, PULL_SECONDS)
                except ray.exceptions.RayActorError:
                    logger.warning(
                        "cloud job %s: the control actor died; progress stops and "
                        "a cancel will force-stop the task",
                        self.job_id,
                    )
                    self.control_alive = False
                    pull_ref = None
            self.pacer.pump()
            if self.ref in ready or (ready and ray.wait([self.ref], timeout=0)[0]):
                break
        output = self._collect()
        self._log_cancel_timing(output)
        self._drain(pull_ref, int(output.get("progress_count", 0)))
        return self._finish(output)

    def _task_args(self) -> tuple[Any, ...]:
        """The task's arguments: the payload, its data as object-store refs (put once per content)."""
        from ktrdr_cloud.datastore import attach_data, datastore_for_session

        store = datastore_for_session(self.settings.data_cache_bytes)
        payload, refs, self.data_puts = attach_data(self.payload, store)
        return (payload, self.control, self.job_id, *refs)

    def _check_started(self) -> None:
        """Fail a task the cluster does not start within ``KTRDR_CLOUD_START_TIMEOUT``."""
        import ray

        now = time.monotonic()
        if now - self._last_start_check < 1.0:
            return
        self._last_start_check = now
        if self.control_alive:
            with contextlib.suppress(Exception):
                self.started = bool(ray.get(self.control.is_started.remote(self.job_id), timeout=5))
        if self.started or now - self._submitted_at < self.settings.start_timeout:
            return
        with contextlib.suppress(Exception):
            ray.cancel(self.ref, force=True)
        raise TrainingFailedError(
            f"the Ray cluster did not start the training within "
            f"{self.settings.start_timeout:g} s (KTRDR_CLOUD_START_TIMEOUT): no node has "
            f"{self.settings.resources_text()} free?"
        )

    def _log_cancel_timing(self, output: dict[str, Any]) -> None:
        """How long the cancel took to reach the worker, and the worker to stop (DEBUG)."""
        if self.cancel_sent_wall is None or self.cancel_sent_at is None:
            return
        seen = output.get("cancel_seen_at") if isinstance(output, dict) else None
        reach = (seen - self.cancel_sent_wall) * 1000 if seen else None
        logger.debug(
            "cloud job %s: cancel reached the worker in %s, job returned %.1f ms after the cancel was sent",
            self.job_id,
            f"{reach:.1f} ms" if reach is not None else "(before it started)",
            (time.monotonic() - self.cancel_sent_at) * 1000,
            extra={"ktrdr_cancel_reach_ms": reach},
        )

    def _collect(self) -> dict[str, Any]:
        import ray

        try:
            output = ray.get(self.ref)
        except ray.exceptions.TaskCancelledError:
            if self.cancel.is_cancelled():
                raise CancellationError(self.cancel.reason or "cancelled") from None
            raise TrainingFailedError("the Ray task was cancelled from outside ktrdr") from None
        except (
            ray.exceptions.WorkerCrashedError,
            ray.exceptions.NodeDiedError,
            ray.exceptions.OutOfMemoryError,
            ray.exceptions.ObjectLostError,
        ) as exc:
            if self.cancel.is_cancelled():
                raise CancellationError(self.cancel.reason or "cancelled") from None
            raise TrainingFailedError(f"the Ray worker died: {_first_line(exc)}") from None
        except ray.exceptions.RayTaskError as exc:
            if self.cancel.is_cancelled():
                raise CancellationError(self.cancel.reason or "cancelled") from None
            cause = getattr(exc, "cause", None) or exc
            raise TrainingFailedError(
                f"the cloud training task failed on the worker: {type(cause).__name__}: {_first_line(cause)}"
            ) from None
        except ray.exceptions.RayError as exc:
            if self.cancel.is_cancelled():
                raise CancellationError(self.cancel.reason or "cancelled") from None
            raise TrainingFailedError(
                f"the Ray task failed: {type(exc).__name__}: {_first_line(exc)}"
            ) from None
        if not isinstance(output, dict):
            raise TrainingFailedError(f"the cloud worker returned {type(output).__name__}")
        return output

    def _finish(self, output: dict[str, Any]) -> TrainingResult:
        from ktrdr_cloud.payload import localise_result

        if self.cancel.is_cancelled():
            raise CancellationError(self.cancel.reason or "cancelled")
        status = output.get("status")
        if status == "cancelled":
            raise CancellationError(str(output.get("reason") or "cancelled"))
        if status == "error":
            kind, message = output.get("kind"), str(output.get("message"))
            if kind == "bad_input":
                raise BadInputError(message)
            if kind == "configuration":
                raise ConfigurationError(message)
            if output.get("traceback"):
                logger.warning("cloud job %s failed on the worker:\n%s", self.job_id, output["traceback"])
            raise TrainingFailedError(message)
        result_dict = localise_result(output["result"], self.payload)
        result = TrainingResult.from_dict(result_dict)
        worker = dict(output.get("worker") or {})
        cloud = {
            "ray_address": self.settings.address or "local",
            "job_id": self.job_id,
            "worker_pid": worker.get("pid"),
            "worker_hostname": worker.get("hostname"),
            "worker_node_id": worker.get("node_id"),
            "worker_seconds": worker.get("seconds"),
            "payload_bytes": self.payload.size_bytes,
            "data_bytes": self.payload.data_bytes,
            "data_bytes_whole": sum(self.payload.whole_bytes.values()),
            "data_objects_put": self.data_puts,
            "task_name": worker.get("task_name"),
            "gpu_ids": worker.get("gpu_ids"),
        }
        result = result.with_metadata(cloud=cloud, implementation="cloud", executor="unified")
        if result.status == "cancelled":
            raise CancellationError(result.error or "cancelled")
        if not result.success or "model" not in output:
            return result
        return self._save(result, output["model"])

    def _save(self, result: TrainingResult, model: Mapping[str, Any]) -> TrainingResult:
        import attrs
        import torch

        from ktrdr_cloud.payload import localise_metadata
        from ktrdr_core.training.model import build_mlp
        from ktrdr_core.training.storage import save_model

        if self.cancel.is_cancelled():  # last chance: a cancelled job never writes a model
            raise CancellationError(self.cancel.reason or "cancelled")
        features, config = model["features"], model["config"]
        metadata = model["metadata"]
        try:
            state = torch.load(io.BytesIO(model["state_dict"]), map_location="cpu", weights_only=True)
            arch = config.get("model", {}).get("architecture", {})
            network = build_mlp(
                int(features["input_size"]),
                arch.get("hidden_layers", []),
                arch.get("activation", "relu"),
                float(arch.get("dropout", 0.0)),
                int(features.get("num_classes", 3)),
            )
            network.load_state_dict(state)
        except Exception as exc:  # noqa: BLE001
            raise TrainingFailedError(
                f"the model sent back by the Ray worker cannot be loaded: {type(exc).__name__}: {exc}"
            ) from exc
        saved = save_model(
            network,
            strategy=str(metadata.get("strategy", self.request.strategy)),
            symbols=list(metadata.get("symbols", [])),
            timeframes=list(metadata.get("timeframes", [])),
            config=config,
            metrics=model["metrics"],
            features=features,
            metadata=localise_metadata(metadata, self.payload),
        )
        return attrs.evolve(
            result,
            model_path=str(saved.path),
            model_id=saved.model_id,
            metadata={**result.metadata, "model_version": saved.version},
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
