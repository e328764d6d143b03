"""What one training cost: CPU seconds and peak memory, honestly attributed.

A process may run several trainings at once (the service), so a process-wide
number is only that training's when it ran alone. The meter knows which
trainings overlapped in this process and says what it measured:

- ``cpu_scope = "process"``: the training ran alone, so the process's CPU time
  over the run is its own (torch's intra-op threads and data loading included);
- ``cpu_scope = "thread"``: another training overlapped, so only the CPU time of
  the thread that ran it is counted (``time.thread_time``). With the default
  ``KTRDR_TORCH_THREADS=1`` torch computes on that thread, so little is lost;
  with more threads, their share is missed and the number is a lower bound.
- ``peak_rss_bytes``: the process's peak resident memory during the run (the
  kernel's high-water mark, reset at the start through ``/proc/self/clear_refs``);
  ``None`` when another training overlapped or the reset is not possible.
- ``cuda_peak_bytes`` / ``torch_peak_bytes``: torch's CUDA allocator peaks
  (``max_memory_allocated`` / ``max_memory_reserved``) when the training used a
  GPU in this process; ``None`` on CPU. torch keeps no peak for CPU tensors.

A training that runs elsewhere (cloud) is measured here as the work its
driver did, which is what this host paid for it.
"""

from __future__ import annotations

import logging
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

import attrs

logger = logging.getLogger(__name__)
_PROC = Path("/proc/self")
_active: set[ResourceMeter] = set()
_active_lock = threading.Lock()


@attrs.frozen(kw_only=True)
class ResourceUsage:
    """The resources of one run, as put in ``metadata["resources"]`` and the ledger."""

    cpu_seconds: float
    cpu_scope: str
    thread_cpu_seconds: float
    process_cpu_seconds: float
    peak_rss_bytes: int | None = None
    cuda_peak_bytes: int | None = None
    torch_peak_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _reset_peak_rss() -> bool:
    try:
        (_PROC / "clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _peak_rss() -> int | None:
    try:
        for line in (_PROC / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cuda() -> Any:
    """torch.cuda if torch is already imported and CUDA is initialised; never imports torch."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        return torch.cuda if torch.cuda.is_initialized() else None
    except Exception:  # noqa: BLE001 - a broken CUDA set-up must not fail the training
        return None


class ResourceMeter:
    """Started on the thread that runs a training, stopped on the same thread."""

    def __init__(self) -> None:
        self._shared = False
        self._rss_reset = False
        self._thread0 = 0.0
        self._process0 = 0.0

    def start(self) -> ResourceMeter:
        with _active_lock:
            if _active:
                self._shared = True
                for other in _active:
                    other._shared = True
            _active.add(self)
        if not self._shared:
            self._rss_reset = _reset_peak_rss()
            cuda = _cuda()
            if cuda is not None:
                try:
                    cuda.reset_peak_memory_stats()
                except Exception:  # noqa: BLE001 - then the peaks span the process's life
                    logger.debug("could not reset the CUDA peak memory stats", exc_info=True)
        self._thread0, self._process0 = time.thread_time(), _process_cpu()
        return self

    def stop(self) -> ResourceUsage:
        thread_cpu = time.thread_time() - self._thread0
        process_cpu = _process_cpu() - self._process0
        with _active_lock:
            _active.discard(self)
            alone = not self._shared
        peak = _peak_rss() if alone and self._rss_reset else None
        cuda_peak = reserved = None
        cuda = _cuda()
        if alone and cuda is not None:
            # CUDA first initialised during this run: its peaks are this run's too.
            try:
                cuda_peak, reserved = int(cuda.max_memory_allocated()), int(cuda.max_memory_reserved())
            except Exception:  # noqa: BLE001
                cuda_peak = reserved = None
        return ResourceUsage(
            cpu_seconds=process_cpu if alone else thread_cpu,
            cpu_scope="process" if alone else "thread",
            thread_cpu_seconds=thread_cpu,
            process_cpu_seconds=process_cpu,
            peak_rss_bytes=peak,
            cuda_peak_bytes=cuda_peak,
            torch_peak_bytes=reserved,
        )
