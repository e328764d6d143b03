"""The 'cloud' execution mode: the unified executor, run as a Ray task.

Importing this module imports neither Ray nor torch (``ktrdr plugins`` and
``ktrdr --help`` stay fast), and the ktrdr process never imports Ray at all:
the one Ray driver lives in a child process (:mod:`ktrdr_cloud.driver`,
reached through :mod:`ktrdr_cloud.driver_client`), so a Ray failure ends
only the cloud runs it belongs to. See ``docs/cloud.md``; in short:

- this process resolves the strategy and the data files and hands them to
  the driver, which ships them with the task (:mod:`ktrdr_cloud.payload`); the
  worker runs ``ktrdr_unified.executor.TrainingExecutor`` on its private copy
  (:mod:`ktrdr_cloud.worker`), and the model comes back as bytes that this
  process saves with the core's atomic storage;
- progress comes from the worker through the control actor and the driver;
  this process calls ``progress`` on the thread that runs :meth:`execute`,
  never two updates closer than 100 ms but the final one;
- a cancel goes to the driver at once; a worker that has not stopped after
  ``KTRDR_CLOUD_GRACE_SECONDS`` is killed with ``ray.cancel(force=True)``; a
  cancelled job always ends in :class:`CancellationError` and never saves a model;
- a worker that dies ends in :class:`TrainingFailedError` ("the Ray worker
  died: ..."), a lost cluster or driver in "lost the Ray cluster at ...":
  never in a hang, never in more than the job it belongs to.
"""

from __future__ import annotations

import collections
import importlib.util
import io
import logging
import queue
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from ktrdr_cloud import driver_client
from ktrdr_cloud.driver_client import CANCEL_SLACK_SECONDS, FORCE_WAIT_SECONDS
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
from ktrdr_core.cancellation import cancel_check

__all__ = ["CloudMode", "ProgressPacer"]

logger = logging.getLogger(__name__)

#: how often the job loop wakes to look at the token (when it cannot be told directly)
TICK_SECONDS = 0.02
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

    def capacity(self) -> int | None:
        """How many trainings the cluster fits at once, for ``ktrdr serve``'s admission.

        Per alive node, ``floor(CPU / KTRDR_CLOUD_TASK_CPUS)``, summed, as the
        live driver process last reported it (every few seconds; never a
        cluster call here: the service asks on its event loop). None without a
        connected driver (before the first cloud training, or after the
        cluster was lost): the service then counts cloud trainings against its
        local limit.
        """
        try:
            settings = self.settings()
        except ConfigurationError:
            return None
        return driver_client.capacity(settings)

    def settings(self) -> CloudSettings:
        return CloudSettings.from_env(self._environ)

    # -- health ------------------------------------------------------------------------------

    def health(self) -> ModeHealth:
        """Asks the cluster itself (in a child process, killed after ``KTRDR_CLOUD_CONNECT_TIMEOUT``
        + 2 s); the answer, healthy or not, is reused for ``KTRDR_CLOUD_HEALTH_TTL`` seconds.

        The selector asks before every decision, so a request must not pay for a check. A
        driver process lost since the answer was cached (the cluster went away) drops it.
        """
        try:
            settings = self.settings()
        except ConfigurationError as exc:
            return ModeHealth.unhealthy(str(exc))
        key = (
            settings.address,
            settings.num_cpus,
            settings.connect_timeout,
            settings.task_cpus,
            settings.task_gpus,
            repr(settings.runtime_env),
            driver_client.losses(),
        )
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

        payload = build_payload(
            request, torch_threads=settings.torch_threads, environ=self._environ, check=cancel_check(cancel)
        )
        if settings.address:
            # a refused port or an unknown host fails at once, with no driver process started
            probe = probe_address(settings.address, settings.connect_timeout)
            if not probe.reachable:
                raise TrainingFailedError(f"the Ray cluster is unreachable: {probe.detail}")
        driver = driver_client.driver_for(settings, cancel.is_cancelled, lambda: cancel.reason or "cancelled")
        _raise_if_cancelled(cancel)
        return _CloudJob(driver, settings, request, payload, progress, cancel).run()


def _raise_if_cancelled(cancel: CancellationToken) -> None:
    if cancel.is_cancelled():
        raise CancellationError(cancel.reason or "cancelled")


class _CloudJob:
    """One job seen from the ktrdr process: hand it to the driver, pace its progress, forward
    cancel, then turn the worker's output into a result and save the model here."""

    def __init__(
        self,
        driver: Any,
        settings: CloudSettings,
        request: TrainingRequest,
        payload: Any,
        progress: ProgressCallback,
        cancel: CancellationToken,
    ) -> None:
        self.driver = driver
        self.settings = settings
        self.request = request
        self.payload = payload
        self.cancel = cancel
        self.job_id = f"{request.request_id}-{uuid.uuid4().hex[:8]}"
        self.pacer = ProgressPacer(progress, on_cancel_request=self._consumer_cancel)
        self._cancel_lock = threading.Lock()
        self.cancel_sent_at: float | None = None
        self.done = False
        #: the worker reported progress: a cancel from then on waits for its confirmation
        self.trained = False

    # -- cancellation --------------------------------------------------------------------

    def _consumer_cancel(self, reason: str) -> None:
        self.cancel.cancel(reason=reason)
        self._forward_cancel()

    def _forward_cancel(self, _reason: str | None = None) -> None:
        """Tell the driver (which tells the worker, and forces it after the grace period); once."""
        with self._cancel_lock:
            if self.cancel_sent_at is not None or self.done:
                return
            self.cancel_sent_at = time.monotonic()
        self.driver.send("cancel", self.job_id, self.cancel.reason or _reason or "cancelled")

    def _cancelled(self) -> CancellationError:
        return CancellationError(self.cancel.reason or "cancelled")

    # -- the run -------------------------------------------------------------------------

    def run(self) -> TrainingResult:
        return self._finish(self._follow())

    def _follow(self) -> dict[str, Any]:
        """The worker's output dict, once the driver has it; every wait bounded."""
        give_up_after = self.settings.grace_seconds + FORCE_WAIT_SECONDS + CANCEL_SLACK_SECONDS
        messages = self.driver.open_queue(self.job_id)
        try:
            add_callback = getattr(self.cancel, "add_callback", None)
            if callable(add_callback):
                add_callback(self._forward_cancel)
            _raise_if_cancelled(self.cancel)
            submitted = self.driver.send("submit", self.job_id, self.request, self.payload, self.settings)
            if not submitted:
                raise TrainingFailedError(self.driver.end_reason or "the Ray driver process is gone")
            while True:
                try:
                    message = messages.get(timeout=TICK_SECONDS)
                except queue.Empty:
                    message = None
                if message is not None:
                    kind = message[0]
                    if kind == "progress":
                        self.trained = True
                        self.pacer.add(*message[2:5])
                    elif kind == "output":
                        self.pacer.flush()
                        return dict(message[2])
                    elif kind == "cancelled":
                        raise CancellationError(self.cancel.reason or str(message[2]))
                    elif self.cancel.is_cancelled():  # a cancel always wins over a failure
                        raise self._cancelled()
                    elif kind == "failed":
                        raise TrainingFailedError(str(message[2]))
                    elif kind == "lost":
                        raise TrainingFailedError(str(message[1]))
                self.pacer.pump()
                if self.cancel_sent_at is None and self.cancel.is_cancelled():
                    self._forward_cancel()
                if self.cancel_sent_at is not None and not self.trained:
                    # still queued or starting on the cluster: the driver has the cancel and the
                    # task stops when it starts (or is force-cancelled after the grace period);
                    # nothing comes back to save, so the run ends now, not after a cold start
                    raise self._cancelled()
                if self.cancel_sent_at is not None and time.monotonic() - self.cancel_sent_at > give_up_after:
                    logger.error(
                        "cloud job %s: the Ray driver did not confirm the cancellation within %g s; "
                        "giving up on it",
                        self.job_id,
                        give_up_after,
                    )
                    raise self._cancelled()
        finally:
            self.done = True
            self.driver.close_queue(self.job_id)

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
            "worker_started_at": worker.get("started_at"),
            "payload_bytes": self.payload.size_bytes,
            "data_bytes": self.payload.data_bytes,
            "data_bytes_whole": sum(self.payload.whole_bytes.values()),
            "data_objects_put": output.get("data_objects_put"),
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
