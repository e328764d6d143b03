"""Versioned model folders under ``KTRDR_HOME/models``.

Layout::

    KTRDR_HOME/models/{strategy}/{symbols}_{timeframes}_v{N}/
        model.pt        # the state_dict (torch.save), CPU tensors
        config.json     # the resolved strategy config (the YAML schema's shape)
        metrics.json    # training_metrics, test_metrics, feature_importance
        features.json   # feature_names, input_size, label encoding, lookback
        metadata.json   # model_id, version, strategy, symbols, timeframes, created_at, ...

``{symbols}`` and ``{timeframes}`` are joined with ``-`` (``AAA-BBB_1h_v3``).
Everything is written to a hidden temporary folder beside the versions, then
renamed into place under a lock that also picks the version number, so
concurrent saves get distinct versions and a reader never sees half a model.
A failure at any point removes the temporary folder: nothing is left behind.
A process killed mid-save cannot; the temporary folder carries its pid
(``.tmp-<prefix>-p<pid>-...``) so the next start-up sweeps it
(:mod:`ktrdr_core.recovery`). A full disk is reported as "no space left on
device", whichever file hit it.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from torch import nn

from ktrdr_core.errors import BadInputError, KtrdrError
from ktrdr_core.fileutil import locked
from ktrdr_core.home import ktrdr_home
from ktrdr_core.recovery import tmp_model_prefix
from ktrdr_core.training.model import build_mlp

__all__ = [
    "LoadedModel",
    "SavedModel",
    "load_model",
    "model_folder_prefix",
    "models_root",
    "next_version",
    "save_model",
]

MODEL_FILES = ("model.pt", "config.json", "metrics.json", "features.json", "metadata.json")


@attrs.frozen
class SavedModel:
    path: Path
    model_id: str
    version: int


@attrs.frozen(eq=False)
class LoadedModel:
    """A model read back by :func:`load_model`, in eval mode on CPU."""

    model: nn.Module
    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    features: dict[str, Any]
    metadata: dict[str, Any]

    @property
    def feature_names(self) -> list[str]:
        return list(self.features["feature_names"])


def models_root(home: Path | None = None) -> Path:
    return (home if home is not None else ktrdr_home()) / "models"


def model_folder_prefix(symbols: Sequence[str], timeframes: Sequence[str]) -> str:
    """``AAA-BBB_1h``: symbols and timeframes each joined with ``-``."""
    return f"{'-'.join(symbols)}_{'-'.join(timeframes)}"


def next_version(strategy_dir: Path, prefix: str) -> int:
    """One more than the highest ``{prefix}_vN`` in ``strategy_dir`` (1 when none)."""
    pattern = re.compile(rf"^{re.escape(prefix)}_v(\d+)$")
    versions = (
        [int(m.group(1)) for p in strategy_dir.iterdir() if (m := pattern.fullmatch(p.name))]
        if strategy_dir.is_dir()
        else []
    )
    return max(versions, default=0) + 1


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path, torch.device)):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _write_json(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True, default=_json_default)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())


def save_model(
    model: nn.Module,
    *,
    strategy: str,
    symbols: Sequence[str],
    timeframes: Sequence[str],
    config: Mapping[str, Any],
    metrics: Mapping[str, Any],
    features: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
    home: Path | None = None,
) -> SavedModel:
    """Write a new version of the model atomically; returns where it went."""
    strategy_dir = models_root(home) / strategy
    strategy_dir.mkdir(parents=True, exist_ok=True)
    prefix = model_folder_prefix(symbols, timeframes)
    tmp = Path(tempfile.mkdtemp(prefix=tmp_model_prefix(prefix), dir=strategy_dir))
    try:
        return _save_into(
            tmp,
            model,
            strategy_dir=strategy_dir,
            strategy=strategy,
            prefix=prefix,
            symbols=symbols,
            timeframes=timeframes,
            config=config,
            metrics=metrics,
            features=features,
            metadata=metadata,
        )
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise KtrdrError(f"cannot save the model under {strategy_dir}: no space left on device") from None
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _save_into(
    tmp: Path,
    model: nn.Module,
    *,
    strategy_dir: Path,
    strategy: str,
    prefix: str,
    symbols: Sequence[str],
    timeframes: Sequence[str],
    config: Mapping[str, Any],
    metrics: Mapping[str, Any],
    features: Mapping[str, Any],
    metadata: Mapping[str, Any] | None,
) -> SavedModel:
    """The files of :func:`save_model`, written into ``tmp`` and renamed into place."""
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    buffer = io.BytesIO()  # torch's own writer reports a full disk as an internal error
    torch.save(state, buffer)
    with open(tmp / "model.pt", "wb") as handle:
        handle.write(buffer.getbuffer())
        handle.flush()
        os.fsync(handle.fileno())
    _write_json(tmp / "config.json", dict(config))
    _write_json(tmp / "metrics.json", dict(metrics))
    _write_json(tmp / "features.json", dict(features))
    with locked(strategy_dir / ".lock"):
        version = next_version(strategy_dir, prefix)
        while True:
            final = strategy_dir / f"{prefix}_v{version}"
            model_id = f"{strategy}/{final.name}"
            _write_json(
                tmp / "metadata.json",
                {
                    **dict(metadata or {}),
                    "model_id": model_id,
                    "version": version,
                    "strategy": strategy,
                    "symbols": list(symbols),
                    "timeframes": list(timeframes),
                    "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "files": list(MODEL_FILES),
                },
            )
            if final.exists():  # made outside the lock (a hand copy): never overwrite
                version += 1
                continue
            os.rename(tmp, final)
            break
    return SavedModel(path=final, model_id=model_id, version=version)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise BadInputError(f"{path.parent}: not a saved model ({path.name} is missing)") from None
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: expected a JSON object")
    return data


def load_model(path: str | os.PathLike[str]) -> LoadedModel:
    """Read a model folder written by :func:`save_model` back (eval mode, CPU)."""
    folder = Path(path)
    if not folder.is_dir():
        raise BadInputError(f"{folder}: no such model folder")
    config = _read_json(folder / "config.json")
    features = _read_json(folder / "features.json")
    metrics = _read_json(folder / "metrics.json")
    metadata = _read_json(folder / "metadata.json")
    arch = config.get("model", {}).get("architecture", {})
    model = build_mlp(
        int(features["input_size"]),
        arch.get("hidden_layers", []),
        arch.get("activation", "relu"),
        float(arch.get("dropout", 0.0)),
        int(features.get("num_classes", 3)),
    )
    weights = folder / "model.pt"
    if not weights.is_file():
        raise BadInputError(f"{folder}: not a saved model (model.pt is missing)")
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.eval()
    return LoadedModel(
        model=model, path=folder, config=config, metrics=metrics, features=features, metadata=metadata
    )
