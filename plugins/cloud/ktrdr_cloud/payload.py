"""What travels with a job, and what comes back.

A Ray worker may not share the driver's filesystem, so the driver resolves
everything a training reads — the strategy file (by name, exactly as the
engine would) and the ``{SYMBOL}_{timeframe}.csv[.gz]`` files it needs — and
ships their bytes. The worker writes them into a private temporary folder and
points the engine at it (``KTRDR_STRATEGIES_DIR`` and the ``data_dir``
override), so the engine reads the same bytes the driver would have read.

On the way back, the model folder the engine wrote into the worker's private
``KTRDR_HOME`` travels as its files (the state dict's ``torch.save`` bytes and
the four JSON documents); the driver saves it with
:func:`ktrdr_core.training.storage.save_model`, so versions and atomicity are
the driver's store's, and a cancelled or failed job never writes anything.

Driver-side paths replace the worker's temporary ones in the result
(``metadata.strategy_source``, ``data_summary.data_dir`` and each series'
``file``), so a cloud result reads like a unified one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ktrdr_core.cancellation import CancelCheck, no_cancel_check
from ktrdr_core.request import TrainingRequest

if TYPE_CHECKING:
    import numpy as np

    from ktrdr_core.training.strategy import StrategyConfig

__all__ = ["JobPayload", "build_payload", "localise_result"]

#: keys :func:`ktrdr_core.training.storage.save_model` writes into metadata.json itself
STORAGE_METADATA_KEYS = ("model_id", "version", "strategy", "symbols", "timeframes", "created_at", "files")


@attrs.frozen
class JobPayload:
    """Everything a worker needs; plain data, pickled by Ray."""

    request: dict[str, Any]
    strategy_name: str
    strategy_yaml: bytes
    strategy_source: str
    data_files: dict[str, bytes]
    data_paths: dict[str, str]
    data_dir: str
    data_source: str
    save_model: bool
    torch_threads: int = 1
    #: the whole files' sizes, by name (``data_files`` may hold only a date range's rows)
    whole_bytes: dict[str, int] = attrs.field(factory=dict)
    #: the data files' names when their bytes travel as the task's extra arguments instead
    data_names: tuple[str, ...] = ()

    @property
    def size_bytes(self) -> int:
        return len(self.strategy_yaml) + sum(len(b) for b in self.data_files.values())

    @property
    def data_bytes(self) -> int:
        """Bytes of data shipped (the strategy file not counted)."""
        return sum(len(b) for b in self.data_files.values())


def build_payload(
    request: TrainingRequest,
    *,
    torch_threads: int = 1,
    environ: Mapping[str, str] | None = None,
    check: CancelCheck = no_cancel_check,
) -> JobPayload:
    """Resolve and read what ``request`` needs; bad input is raised here, before any Ray call.

    ``check`` runs before each data file is read and sliced (the longest part): a cancel
    during set-up ends the run there instead of after every file."""
    from ktrdr_core.training.data import data_file, parse_date_bound, resolve_data_dir
    from ktrdr_core.training.pipeline import (
        date_range,
        load_data,
        load_strategy_step,
        resolve_options,
        select_series,
    )
    from ktrdr_core.training.strategy import resolve_strategy_path

    options = resolve_options(request.overrides)
    strategy_path = resolve_strategy_path(request.strategy, environ)
    strategy = load_strategy_step(request, options, environ)  # validates the file
    symbols, timeframes = select_series(request, strategy)
    start_date, end_date = date_range(request, strategy)
    load_data([], [], Path(), start_date=start_date, end_date=end_date)  # the engine's checks of the dates
    start = parse_date_bound(start_date, what="start_date")
    end = parse_date_bound(end_date, end=True, what="end_date")
    data_dir, data_source = resolve_data_dir({"data_dir": options.data_dir}, environ)
    files: dict[str, bytes] = {}
    paths: dict[str, str] = {}
    whole: dict[str, int] = {}
    for symbol in symbols:
        for timeframe in timeframes:
            check()
            path = data_file(data_dir, symbol, timeframe)
            files[path.name], whole[path.name] = _data_bytes(
                symbol, timeframe, data_dir, start, end, strategy, path
            )
            paths[path.name] = str(path)
    check()
    return JobPayload(
        request=request.to_dict(),
        strategy_name=request.strategy,
        strategy_yaml=strategy_path.read_bytes(),
        strategy_source=str(strategy_path),
        data_files=files,
        data_paths=paths,
        data_dir=str(data_dir),
        data_source=data_source,
        save_model=options.save_model,
        torch_threads=torch_threads,
        whole_bytes=whole,
    )


def _data_bytes(
    symbol: str,
    timeframe: str,
    data_dir: Path,
    start: np.datetime64 | None,
    end: np.datetime64 | None,
    strategy: StrategyConfig,
    path: Path,
) -> tuple[bytes, int]:
    """``(bytes to ship, size of the whole file)``: the date range's rows when there is one."""
    if start is None and end is None:
        content = path.read_bytes()
        return content, len(content)
    from ktrdr_cloud.slicing import slice_data_file, warmup_rows

    part = slice_data_file(symbol, timeframe, data_dir, start=start, end=end, warmup=warmup_rows(strategy))
    return part.content, part.whole_bytes


def worker_request(payload: JobPayload, data_dir: Path, *, device: str | None = None) -> TrainingRequest:
    """The request the worker runs: the driver's, reading its private copy of the data.

    The engine saves into the worker's private ``KTRDR_HOME`` (when the
    request wants a model at all) so that the files can be shipped back;
    ``device`` is the one Ray assigned the task.
    """
    data = dict(payload.request)
    data["overrides"] = {
        **dict(data.get("overrides") or {}),
        "data_dir": str(data_dir),
        "save_model": payload.save_model,
        **({"device": device} if device else {}),
    }
    return TrainingRequest.from_dict(data)


def localise_result(result: dict[str, Any], payload: JobPayload) -> dict[str, Any]:
    """Replace the worker's temporary paths in a result dict with the driver's."""
    out = dict(result)
    metadata = dict(out.get("metadata") or {})
    if "strategy_source" in metadata:
        metadata["strategy_source"] = payload.strategy_source
    metadata.pop("model_version", None)
    out["metadata"] = metadata
    summary = dict(out.get("data_summary") or {})
    if summary:
        summary["data_dir"] = payload.data_dir
        summary["data_source"] = payload.data_source
        series = []
        for entry in summary.get("series") or []:
            entry = dict(entry)
            name = Path(str(entry.get("file", ""))).name
            if name in payload.data_paths:
                entry["file"] = payload.data_paths[name]
            series.append(entry)
        summary["series"] = series
        out["data_summary"] = summary
    out["model_path"] = None
    out["model_id"] = None
    return out


def localise_metadata(metadata: Mapping[str, Any], payload: JobPayload) -> dict[str, Any]:
    """The saved model's metadata.json as the driver writes it (storage adds its own keys)."""
    out = {k: v for k, v in metadata.items() if k not in STORAGE_METADATA_KEYS}
    if "strategy_source" in out:
        out["strategy_source"] = payload.strategy_source
    return out
