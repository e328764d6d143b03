"""The checks behind the contract suite, usable on their own.

Each check returns a list of sentences (empty when all is well) written for
the author of a mode: what was seen, what the contract wants, and how to fix
it. :func:`fail_with` turns them into one :class:`ContractViolation`.
Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from ktrdr_core.cancellation import CANCELLATION_BOUND_SECONDS
from ktrdr_core.request import TrainingRequest
from ktrdr_core.result import RESULT_KEYS, TrainingResult

__all__ = [
    "CANCELLATION_BOUND_SECONDS",
    "CANCELLATION_PERCENTILE",
    "TRAINING_METRIC_KEYS",
    "TEST_METRIC_KEYS",
    "METADATA_KEYS",
    "PROGRESS_KEYS",
    "ContractViolation",
    "ModeRun",
    "ProgressProbe",
    "fail_with",
    "fresh_ktrdr_home",
    "leftover_model_dirs",
    "result_problems",
    "percentile",
    "run_mode",
    "saved_model_problems",
    "saves_a_model",
]

#: keys each section of a successful result must have (docs/contract.md, "Results")
TRAINING_METRIC_KEYS = ("val_loss", "val_accuracy", "epochs_trained", "history")
TEST_METRIC_KEYS = ("test_accuracy", "test_loss", "precision", "recall", "f1", "baseline_accuracy")
METADATA_KEYS = ("seed", "duration_seconds")
_FRACTIONS = ("val_accuracy",)
_TEST_FRACTIONS = ("test_accuracy", "precision", "recall", "f1", "baseline_accuracy")
PROGRESS_TYPES = ("batch", "epoch")
#: keys the metrics of each kind of progress update must have (docs/contract.md, "Progress updates");
#: extra keys are fine, e.g. a throttle's ``folded_epochs``/``epochs_completed`` and val metrics
#: carried on a batch update
PROGRESS_KEYS: dict[str, tuple[str, ...]] = {
    "batch": ("batch", "total_batches_per_epoch", "train_loss", "train_accuracy"),
    "epoch": ("total_batches_per_epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy"),
}
_PROGRESS_COUNTS = ("batch", "total_batches_per_epoch")
_EPOCH_VAL_KEYS = ("val_loss", "val_accuracy")
SIGNATURE = "progress(epoch, total_epochs, metrics)"
#: the page of the repository that states the contract these checks judge
CONTRACT_PAGE = "docs/contract.md"
#: the percentile of the timed cancels that must be within the bound
CANCELLATION_PERCENTILE = 0.95


class ContractViolation(AssertionError):
    """A mode broke the execution-mode contract; the message says how to fix it."""


def fail_with(problems: Sequence[str], what: str) -> None:
    """Raise one :class:`ContractViolation` listing ``problems`` (nothing if empty)."""
    if problems:
        lines = "\n".join(f"  - {problem}" for problem in problems)
        raise ContractViolation(f"{what}:\n{lines}")


# -- running a mode ---------------------------------------------------------------------


@attrs.define
class ModeRun:
    """One ``mode.execute`` call on a worker thread, with its timings (``time.monotonic``)."""

    started_at: float
    ended_at: float | None = None
    result: Any = None
    error: BaseException | None = None
    thread: threading.Thread | None = None
    result_problems: list[str] | None = None
    """What :func:`result_problems` found, judged while the model folder still existed."""
    model_problems: list[str] | None = None
    """What :func:`saved_model_problems` found, judged while the model folder still existed."""

    @property
    def finished(self) -> bool:
        return self.ended_at is not None

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the run to end; True when it has."""
        assert self.thread is not None
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def describe_outcome(self) -> str:
        if self.error is not None:
            return f"raised {type(self.error).__name__}: {self.error}"
        if isinstance(self.result, TrainingResult):
            detail = f", error {self.result.error!r}" if self.result.error else ""
            return (
                f"returned a TrainingResult (success={self.result.success}, "
                f"status {self.result.status!r}{detail})"
            )
        return f"returned {type(self.result).__name__} {_short(self.result, 80)}"


def run_mode(mode: Any, request: TrainingRequest, progress: Callable[..., None], cancel: Any) -> ModeRun:
    """Start ``mode.execute(request, progress, cancel)`` on a daemon thread and return at once.

    A thread lets the suite cancel from outside, measure when ``execute``
    returned, and give up on a mode that hangs instead of hanging itself.
    """
    run = ModeRun(started_at=time.monotonic())

    def target() -> None:
        try:
            run.result = mode.execute(request, progress, cancel)
        except BaseException as exc:  # noqa: BLE001 - the suite judges whatever came out
            run.error = exc
        finally:
            run.ended_at = time.monotonic()

    run.thread = threading.Thread(
        target=target, name=f"contract-{getattr(mode, 'name', 'mode')}", daemon=True
    )
    run.thread.start()
    return run


@contextlib.contextmanager
def fresh_ktrdr_home(prefix: str = "ktrdr-contract-") -> Iterator[Path]:
    """Point ``KTRDR_HOME`` at a new empty folder for the block, then restore and remove it."""
    previous = os.environ.get("KTRDR_HOME")
    home = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["KTRDR_HOME"] = str(home)
    try:
        yield home
    finally:
        if previous is None:
            os.environ.pop("KTRDR_HOME", None)
        else:
            os.environ["KTRDR_HOME"] = previous
        shutil.rmtree(home, ignore_errors=True)


def leftover_model_dirs(home: Path) -> list[str]:
    """Every folder below ``home/models/{strategy}/`` (finished versions and temporaries)."""
    root = home / "models"
    if not root.is_dir():
        return []
    found: list[str] = []
    for strategy_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        found.extend(str(p.relative_to(home)) for p in sorted(strategy_dir.iterdir()) if p.is_dir())
    return found


# -- progress ---------------------------------------------------------------------------


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + " ..."


def _preview(values: Sequence[Any]) -> str:
    return ", ".join(_short(value) for value in values)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    """A plain int or float (numpy's float64 is one; nan is allowed: a diverging loss is news)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class ProgressProbe:
    """A progress callback that records every call and checks it against the contract.

    It accepts any arguments (so a mode calling it wrongly is *reported*, not
    crashed with a TypeError that the mode might swallow), then calls
    ``on_update(index)`` — 1-based — which may cancel a token or raise on
    purpose. Problems are collected in :attr:`problems`, the first of each kind.
    """

    def __init__(self, on_update: Callable[[int], None] | None = None) -> None:
        self.on_update = on_update
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any], float]] = []
        self.valid: list[tuple[int, int, Mapping[str, Any]]] = []
        self._problems: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()

    def _problem(self, kind: str, message: str) -> None:
        first, count = self._problems.get(kind, (message, 0))
        self._problems[kind] = (first, count + 1)

    @property
    def problems(self) -> list[str]:
        return [
            message if count == 1 else f"{message} (and {count - 1} more update(s) like it)"
            for message, count in self._problems.values()
        ]

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            self.calls.append((args, dict(kwargs), time.monotonic()))
            index = len(self.calls)
            self._check(index, args, kwargs)
        if self.on_update is not None:
            self.on_update(index)

    def _check(self, index: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        where = f"update {index}"
        if kwargs:
            self._problem(
                "kwargs",
                f"{where}: the progress callback got keyword argument(s) "
                f"{', '.join(sorted(kwargs))}; call it positionally as {SIGNATURE}",
            )
        values = [*args, *kwargs.values()] if kwargs else list(args)
        if len(values) != 3:
            self._problem(
                "arity",
                f"{where}: the progress callback got {len(values)} positional "
                f"argument(s) ({_preview(values)}); the contract is {SIGNATURE} — "
                "exactly (epoch, total_epochs, metrics), in that order",
            )
            return
        epoch, total, metrics = values
        if not _is_int(epoch) or not _is_int(total):
            self._problem(
                "types",
                f"{where}: epoch and total_epochs must be ints, got "
                f"{type(epoch).__name__} {_short(epoch, 30)} and "
                f"{type(total).__name__} {_short(total, 30)} (the contract is {SIGNATURE})",
            )
            return
        if not isinstance(metrics, Mapping):
            self._problem(
                "metrics",
                f"{where}: the third argument must be a Mapping of metrics, got "
                f"{type(metrics).__name__} {_short(metrics)} (the contract is {SIGNATURE})",
            )
            return
        if not 1 <= epoch <= total:
            self._problem(
                "range",
                f"{where}: epoch {epoch} is outside 1..total_epochs ({total}); "
                "epochs are 1-based and never exceed total_epochs",
            )
        kind = metrics.get("progress_type")
        if kind not in PROGRESS_TYPES:
            self._problem(
                "progress_type",
                f"{where}: metrics['progress_type'] is {kind!r}; it must be 'batch' or 'epoch'",
            )
        if kind in PROGRESS_KEYS:
            self._check_metrics(where, kind, metrics)
        if self.valid:
            last_epoch, last_total, _ = self.valid[-1]
            if epoch < last_epoch:
                self._problem(
                    "backwards",
                    f"{where}: the epoch went backwards from {last_epoch} to "
                    f"{epoch}; progress epochs must never decrease",
                )
            if total != last_total:
                self._problem(
                    "total",
                    f"{where}: total_epochs changed from {last_total} to {total} "
                    "during one training; report the configured maximum throughout",
                )
        self.valid.append((epoch, total, metrics))

    def _check_metrics(self, where: str, kind: str, metrics: Mapping[str, Any]) -> None:
        """The keys the contract requires of a ``kind`` update, and that their values are numbers."""
        required = PROGRESS_KEYS[kind]
        missing = _missing(metrics, required)
        if missing:
            if kind == "batch":
                advice = (
                    "a 'batch' update carries batch (1-based), total_batches_per_epoch, train_loss "
                    "and train_accuracy (the running means over the epoch so far); pass "
                    "ModelTrainer's batch metrics on whole, adding keys if you like"
                )
            else:
                advice = (
                    "every 'epoch' update carries total_batches_per_epoch, train_loss, train_accuracy, "
                    "val_loss and val_accuracy; pass ModelTrainer's epoch metrics on whole — a "
                    "throttle or transport that rebuilds updates must keep the validation metrics"
                )
            self._problem(
                f"{kind}_keys",
                f"{where}: the {kind!r} update lacks {', '.join(missing)} "
                f"({CONTRACT_PAGE}#progress-updates); {advice}",
            )
        for key in required:
            if key not in metrics:
                continue
            value = metrics[key]
            if key in _PROGRESS_COUNTS:
                if not _is_int(value) or value < 1:
                    self._problem(
                        "metric_types",
                        f"{where}: metrics[{key!r}] must be a positive int, got "
                        f"{type(value).__name__} {_short(value, 30)}; send plain ints "
                        "(int(x) for numpy or torch values)",
                    )
            elif not _is_real(value):
                self._problem(
                    "metric_types",
                    f"{where}: metrics[{key!r}] must be a number, got "
                    f"{type(value).__name__} {_short(value, 30)}; send plain floats "
                    "(float(x) or tensor.item() for numpy or torch values)",
                )
        folded = metrics.get("folded_epochs")
        if folded is None:
            return
        entries = folded if isinstance(folded, (list, tuple)) else None
        bad = [
            entry
            for entry in entries or ()
            if not isinstance(entry, Mapping) or not all(_is_real(entry.get(key)) for key in _EPOCH_VAL_KEYS)
        ]
        if entries is None or bad:
            self._problem(
                "folded",
                f"{where}: metrics['folded_epochs'] must be a list of the folded epochs' "
                f"full epoch metrics, each with numeric val_loss and val_accuracy, got "
                f"{_short(bad[0] if bad else folded)}; fold the epoch updates themselves, "
                "oldest first",
            )

    def final_problems(self, result: Any, request: TrainingRequest | None = None) -> list[str]:
        """The per-update problems plus those about the run as a whole, once it returned."""
        problems = self.problems
        if not self.calls:
            return [
                *problems,
                f"execute() never called the progress callback; call {SIGNATURE} "
                "at least at the end of every epoch",
            ]
        if not self.valid or not isinstance(result, TrainingResult):
            return problems
        last_epoch, total, last_metrics = self.valid[-1]
        if last_metrics.get("progress_type") == "batch":
            problems.append(
                f"the last progress update is a 'batch' update (epoch {last_epoch}); send the "
                "final epoch's 'epoch' update, with val_loss and val_accuracy, last — a "
                "throttle must always let the final update through"
            )
        trained = result.training_metrics.get("epochs_trained")
        if _is_int(trained) and last_epoch != trained:
            problems.append(
                f"the last progress update reports epoch {last_epoch}, but the result says "
                f"epochs_trained={trained}; always send a final update for the last epoch "
                "(never throttle away the final one)"
            )
        wanted = request.overrides.get("epochs") if request is not None else None
        if _is_int(wanted) and total != wanted:
            problems.append(
                f"total_epochs is {total} but the request asked for epochs={wanted}; "
                "total_epochs is the configured maximum (overrides['epochs'] wins)"
            )
        return problems


# -- the result -------------------------------------------------------------------------


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _missing(section: Mapping[str, Any], keys: Sequence[str]) -> list[str]:
    return [key for key in keys if key not in section]


def result_problems(
    result: Any, request: TrainingRequest | None = None, *, expect_model: bool | None = None
) -> list[str]:
    """What is wrong with the result of a valid request (docs/contract.md, "Results"); [] when nothing.

    ``expect_model``: True when a model folder must exist at ``model_path``
    (``save_model`` not turned off), None to judge from the request.
    """
    if not isinstance(result, TrainingResult):
        return [
            f"execute() returned {type(result).__name__}, not a ktrdr_core.TrainingResult; build one "
            "(TrainingResult(...) or TrainingResult.from_dict(old_dict))"
        ]
    problems: list[str] = []
    if not result.success:
        problems.append(
            f"a valid request failed: success=False, status {result.status!r}, error "
            f"{result.error!r}; the contract suite's request must train"
        )
        return problems
    try:
        data = result.to_dict()
    except Exception as exc:  # noqa: BLE001 - report whatever to_dict() does
        return [f"result.to_dict() raised {type(exc).__name__}: {exc}"]
    missing = [key for key in RESULT_KEYS if key not in data]
    if missing:
        problems.append(
            f"result.to_dict() lacks key(s) {', '.join(missing)}; every result carries all of "
            f"{', '.join(RESULT_KEYS)}"
        )
    try:
        json.dumps(data)
    except (TypeError, ValueError) as exc:
        problems.append(
            f"result.to_dict() is not JSON-ready ({exc}); convert numpy/torch values to "
            "plain floats, ints, lists and dicts (the service and the run ledger store it)"
        )
    if not isinstance(result.success, bool):
        problems.append(f"success must be a bool, got {type(result.success).__name__}")

    sections = {
        name: data.get(name)
        for name in (
            "training_metrics",
            "test_metrics",
            "config",
            "metadata",
            "data_summary",
            "feature_importance",
        )
    }
    for name, section in sections.items():
        if not isinstance(section, Mapping):
            problems.append(f"{name} must be a mapping, got {type(section).__name__}")
    training = sections["training_metrics"] if isinstance(sections["training_metrics"], Mapping) else {}
    tests = sections["test_metrics"] if isinstance(sections["test_metrics"], Mapping) else {}
    metadata = sections["metadata"] if isinstance(sections["metadata"], Mapping) else {}

    for name, section, keys in (
        ("training_metrics", training, TRAINING_METRIC_KEYS),
        ("test_metrics", tests, TEST_METRIC_KEYS),
        ("metadata", metadata, METADATA_KEYS),
    ):
        absent = _missing(section, keys)
        if absent:
            problems.append(
                f"{name} lacks {', '.join(absent)} ({CONTRACT_PAGE}#results: {name} has {', '.join(keys)})"
            )

    if "val_loss" in training and not (_number(training["val_loss"]) and training["val_loss"] >= 0):
        problems.append(
            f"training_metrics.val_loss must be a finite number ≥ 0, got {training['val_loss']!r}"
        )
    for key in _FRACTIONS:
        if key in training and not (_number(training[key]) and 0 <= training[key] <= 1):
            problems.append(f"training_metrics.{key} must be a fraction in [0, 1], got {training[key]!r}")
    if "epochs_trained" in training:
        trained = training["epochs_trained"]
        wanted = request.overrides.get("epochs") if request is not None else None
        if not (_is_int(trained) and trained >= 1):
            problems.append(f"training_metrics.epochs_trained must be an int ≥ 1, got {trained!r}")
        elif _is_int(wanted) and trained > wanted:
            problems.append(
                f"training_metrics.epochs_trained is {trained} but the request allowed at most "
                f"{wanted} epochs (overrides['epochs'])"
            )
    if "history" in training and not isinstance(training["history"], (Mapping, list, tuple)):
        problems.append(
            f"training_metrics.history must be a mapping of per-epoch lists, got "
            f"{type(training['history']).__name__}"
        )
    if "test_loss" in tests and not (_number(tests["test_loss"]) and tests["test_loss"] >= 0):
        problems.append(f"test_metrics.test_loss must be a finite number ≥ 0, got {tests['test_loss']!r}")
    for key in _TEST_FRACTIONS:
        if key in tests and not (_number(tests[key]) and 0 <= tests[key] <= 1):
            problems.append(f"test_metrics.{key} must be a fraction in [0, 1], got {tests[key]!r}")

    names = data.get("feature_names")
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        problems.append(f"feature_names must be a non-empty list of strings, got {_short(names, 60)}")
    importance = sections["feature_importance"]
    if isinstance(importance, Mapping) and isinstance(names, list):
        unknown = sorted(set(importance) - set(names))
        if unknown:
            problems.append(
                f"feature_importance names features not in feature_names: {_preview(unknown[:3])}"
            )
        if not all(_number(v) for v in importance.values()):
            problems.append("feature_importance values must be finite numbers")

    if "seed" in metadata:
        seed = metadata["seed"]
        wanted_seed = request.overrides.get("seed") if request is not None else None
        if not _is_int(seed):
            problems.append(f"metadata.seed must be an int, got {seed!r}")
        elif _is_int(wanted_seed) and seed != wanted_seed:
            problems.append(
                f"metadata.seed is {seed} but the request asked for seed {wanted_seed}; train "
                "with overrides['seed'] and report it"
            )
    if "duration_seconds" in metadata and not (
        _number(metadata["duration_seconds"]) and metadata["duration_seconds"] >= 0
    ):
        problems.append(
            f"metadata.duration_seconds must be a number ≥ 0, got {metadata['duration_seconds']!r}"
        )

    for key in ("model_path", "model_id"):
        if data.get(key) is not None and not isinstance(data[key], str):
            problems.append(f"{key} must be a string or None, got {type(data[key]).__name__}")
    if expect_model is None:
        expect_model = saves_a_model(request)
    if expect_model:
        problems.extend(saved_model_problems(result))
    return problems


def saves_a_model(request: TrainingRequest | None) -> bool:
    """Whether ``request`` asks for a saved model (``save_model`` not turned off)."""
    if request is None:
        return False
    return str(request.overrides.get("save_model", True)).lower() not in ("false", "0", "no")


def saved_model_problems(result: Any) -> list[str]:
    """What is wrong with the model a successful run says it saved; [] when the folder is there."""
    if not isinstance(result, TrainingResult) or not result.success:
        return []
    model_path = result.model_path
    if not isinstance(model_path, str):
        return [
            "model_path is None although the request saves a model (save_model is not "
            "false); return the folder the model was saved in"
        ]
    folder = Path(model_path)
    if not folder.is_dir():
        return [f"model_path {model_path} is not an existing folder"]
    if not any(folder.iterdir()):
        return [f"model_path {model_path} is an empty folder; save the model's files into it"]
    return []


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values``, taking the lower value between two ranks.

    numpy's ``method="lower"``: with 7 values the 95th percentile is the second
    largest, so one cancel disturbed by a loaded machine cannot fail a mode
    whose other cancels are all within the bound.
    """
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    return ordered[math.floor(fraction * (len(ordered) - 1))]
