"""The Ray task: run the unified executor on a worker, talking through the control actor.

:func:`run_job` is a plain function; :mod:`ktrdr_cloud.cluster` wraps it with
``ray.remote`` (``max_retries=0``: a training that killed its worker is not
silently run again). What it does, in order:

1. report its pid and node to the control actor (operators, tests);
2. start a watcher thread (never a blocking ``ray.get`` on the task's own
   thread: Ray would lend the task's CPU away meanwhile); its first call sees
   a cancel that arrived while the task was queued (the flag outlives the
   driver's call);
3. the watcher blocks in ``actor.wait_cancel`` and fires a
   local :class:`ThreadingCancellationToken` — the batch loop only reads that
   token, it never makes a remote call;
4. write the shipped strategy and data (the data arrive as the task's extra
   arguments, resolved by Ray from the driver's :mod:`~ktrdr_cloud.datastore`
   before the task starts) into a private folder (:mod:`ktrdr_cloud.workdir`:
   removed on every path, a killed worker's at the next job) and run
   :class:`ktrdr_unified.executor.TrainingExecutor` on it (``environ`` with
   ``KTRDR_STRATEGIES_DIR`` there, the ``data_dir`` override, ``home`` a
   private ``KTRDR_HOME``, the device Ray assigned); its progress, already throttled by the executor's
   :class:`~ktrdr_unified.progress_bridge.ProgressBridge`, is pushed
   fire-and-forget to the actor with a sequence number;
5. return a plain dict: the result, the model's files (when one was saved),
   and how many updates were pushed (so the driver knows when it has them all).

Errors never cross Ray as exceptions (custom exception classes do not always
survive pickling): they come back as ``{"status": ..., "kind": ..., "message": ...}``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ktrdr_cloud.control import CANCELLED, CLOSED
from ktrdr_cloud.payload import JobPayload, worker_request
from ktrdr_cloud.workdir import job_folder
from ktrdr_core.cancellation import ThreadingCancellationToken
from ktrdr_core.errors import BadInputError, CancellationError, ConfigurationError, KtrdrError

__all__ = ["WATCH_TIMEOUT", "run_job", "task_device"]

logger = logging.getLogger(__name__)

#: longest single ``wait_cancel`` call of the watcher (it returns at once on a cancel)
WATCH_TIMEOUT = 1.0
MODEL_JSON_FILES = ("config.json", "metrics.json", "features.json", "metadata.json")


def _watch(control: Any, job_id: str, token: ThreadingCancellationToken, stop: threading.Event) -> None:
    """Block on the actor until the job is cancelled, closed, or the task ends."""
    import ray

    while not stop.is_set():
        try:
            state, reason = ray.get(control.wait_cancel.remote(job_id, WATCH_TIMEOUT))
        except Exception as exc:  # noqa: BLE001 - the actor is gone: nobody can cancel any more
            if not stop.is_set():
                logger.warning(
                    "cloud job %s: lost the control actor (%s); the job can only be stopped by force now",
                    job_id,
                    exc,
                )
            return
        if state == CANCELLED:
            token.cancel(reason=reason or "cancelled")
            return
        if state == CLOSED:
            return


def _read_model(folder: Path) -> dict[str, Any]:
    model: dict[str, Any] = {"state_dict": (folder / "model.pt").read_bytes()}
    for name in MODEL_JSON_FILES:
        model[name.removesuffix(".json")] = json.loads((folder / name).read_text(encoding="utf-8"))
    return model


def _error(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"status": "error", "kind": kind, "message": message, **extra}


def task_device(requested: str | None, gpu_ids: list[Any], cuda_available: bool) -> str:
    """The torch device of a task: the GPU Ray assigned it, else the CPU.

    Ray sets ``CUDA_VISIBLE_DEVICES`` to the task's GPUs, so ``cuda`` is the
    first assigned one. A task without GPUs trains on the CPU even on a GPU
    node (the GPUs there belong to other tasks); an explicit device in the
    request is kept.
    """
    if requested not in (None, "", "auto"):
        return str(requested)
    if not gpu_ids:
        return "cpu"
    if not cuda_available:
        raise ConfigurationError(
            f"Ray assigned GPU(s) {', '.join(map(str, gpu_ids))} to this training "
            "(KTRDR_CLOUD_TASK_GPUS), but torch on the worker cannot use CUDA "
            f"(torch {_torch_version()}); install a CUDA build of torch on the GPU nodes"
        )
    return "cuda"


def _torch_version() -> str:
    import torch

    return str(torch.__version__)


def _run_executor(
    request: Any, progress: Any, token: ThreadingCancellationToken, *, strategies: Path, home: Path
) -> Any:
    """The unified executor, reading strategies from ``strategies`` and saving under ``home``."""
    from ktrdr_unified.executor import TrainingExecutor

    environ = {key: value for key, value in os.environ.items() if key != "KTRDR_DATA_DIR"}
    environ["KTRDR_STRATEGIES_DIR"] = str(strategies)
    environ["KTRDR_HOME"] = str(home)
    return TrainingExecutor(environ=environ, home=home).execute(request, progress, token)


def run_job(payload: JobPayload, control: Any, job_id: str, *data: bytes) -> dict[str, Any]:
    """Run one training on this worker; see the module docstring.

    ``data`` are the data files' bytes in ``payload.data_names`` order (when
    the driver put them in the object store), else they are in ``payload.data_files``.
    """
    import ray
    import torch

    started = time.time()
    torch.set_num_threads(max(1, payload.torch_threads))
    context = ray.get_runtime_context()
    gpu_ids = [str(g) for g in ray.get_gpu_ids()]
    info: dict[str, Any] = {
        "pid": os.getpid(),
        "hostname": socket.gethostname(),
        "node_id": context.get_node_id(),
        "task_name": context.get_task_name(),
        "gpu_ids": gpu_ids,
        "started_at": started,
    }
    control.started.remote(job_id, info)

    seq = 0
    token = ThreadingCancellationToken()
    seen: dict[str, float] = {}

    def note_cancel(_reason: str) -> None:
        seen.setdefault("cancel_seen_at", time.time())

    token.add_callback(note_cancel)
    stop = threading.Event()
    watcher: threading.Thread | None = None

    def push(epoch: int, total_epochs: int, metrics: Mapping[str, Any]) -> None:
        nonlocal seq
        seq += 1
        control.push.remote(job_id, seq, time.time(), int(epoch), int(total_epochs), dict(metrics))

    def finish(out: dict[str, Any]) -> dict[str, Any]:
        out["progress_count"] = seq
        out.update(seen)
        out["worker"] = {**info, "seconds": time.time() - started}
        return out

    try:
        # No blocking ray.get on this thread before the work: Ray lends the CPU of a task
        # blocked in ray.get to other tasks, which would run more trainings per node than
        # KTRDR_CLOUD_TASK_CPUS allows. The watcher thread's first call sees a cancel that
        # arrived while the task was queued, and the executor checks the token before it trains.
        watcher = threading.Thread(
            target=_watch,
            args=(control, job_id, token, stop),
            name=f"ktrdr-cloud-watch-{job_id}",
            daemon=True,
        )
        watcher.start()
        files = dict(payload.data_files) or dict(zip(payload.data_names, data, strict=True))
        device = task_device(
            str(payload.request.get("overrides", {}).get("device") or ""),
            gpu_ids,
            torch.cuda.is_available(),
        )
        with job_folder() as root:
            strategies, data_dir, home = root / "strategies", root / "data", root / "home"
            for folder in (strategies, data_dir, home):
                folder.mkdir()
            (strategies / f"{payload.strategy_name}.yaml").write_bytes(payload.strategy_yaml)
            for name, content in files.items():
                (data_dir / name).write_bytes(content)
            request = worker_request(payload, data_dir, device=device)
            result = _run_executor(request, push, token, strategies=strategies, home=home)
            out: dict[str, Any] = {"status": "result", "result": result.to_dict()}
            if result.success and result.model_path:
                out["model"] = _read_model(Path(result.model_path))
        return finish(out)
    except CancellationError as exc:
        return finish({"status": "cancelled", "reason": exc.reason})
    except BadInputError as exc:
        return finish(_error("bad_input", str(exc)))
    except ConfigurationError as exc:
        return finish(_error("configuration", str(exc)))
    except KtrdrError as exc:
        return finish(_error("failed", str(exc)))
    except Exception as exc:  # noqa: BLE001 - reported to the driver as a failed training
        return finish(_error("exception", f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()))
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            control.finished.remote(job_id)
        if watcher is not None:
            watcher.join(timeout=0.1)
