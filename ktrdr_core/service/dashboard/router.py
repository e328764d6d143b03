"""The dashboard's routes: the page at ``/``, its static files, and the read-only JSON it needs.

Everything is read-only but the cancel button's route, which needs the same
Bearer token as rollout changes (the page asks for it and keeps it in the
tab's ``sessionStorage`` only). The page and its files are served with a
strict Content-Security-Policy: scripts, styles and connections from this
origin only, nothing inline, no frames.

The JSON routes read what the CLI reads: the gate through
:func:`ktrdr_core.rollout.current.evaluate_current` (``ktrdr rollout gate``),
the audit log, the run ledger; ledger and file reads run on worker threads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

import attrs
from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response

from ktrdr_core.errors import BadInputError, ConfigurationError
from ktrdr_core.ledger.store import RunLedger
from ktrdr_core.ledger.times import parse_duration
from ktrdr_core.rollout.autorollback import auto_rollback_state, threshold_stage
from ktrdr_core.rollout.current import evaluate_current, gate_config
from ktrdr_core.rollout.policy import RolloutPolicy
from ktrdr_core.rollout.settings import ENV_FOR_FIELD
from ktrdr_core.rollout.shadow import ShadowConfig
from ktrdr_core.rollout.store import RolloutStore
from ktrdr_core.service.dashboard import data
from ktrdr_core.service.guard import http_roots, redact_paths
from ktrdr_core.service.sessions import TrainingService

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
STATIC_PREFIX = "/dashboard/static/"
API_PREFIX = "/dashboard/api"
GATE_TTL_SECONDS = 5.0
"""How long a judged gate (and the plots' data) is reused for every open page."""


def _static_files() -> dict[str, tuple[bytes, str]]:
    """The shipped files, read once: a name not in this table is a 404, never a path lookup."""
    root = resources.files("ktrdr_core.service.dashboard") / "static"
    files = {}
    for entry in root.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        if entry.is_file() and suffix in CONTENT_TYPES:
            files[entry.name] = (entry.read_bytes(), CONTENT_TYPES[suffix])
    return files


class _Recent:
    """The last answer of a costly read, reused for ``ttl`` seconds by every open page.

    Judging the gate bootstraps its intervals (about half a second of CPU on
    a few thousand runs): without this, each open tab would pay that every
    refresh, beside the trainings. One read runs at a time; others wait for it.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._lock = asyncio.Lock()
        self._answers: dict[Any, tuple[float, Any]] = {}

    async def get(self, key: Any, read: Callable[[], Any]) -> Any:
        async with self._lock:
            found = self._answers.get(key)
            if found is not None and time.monotonic() - found[0] < self.ttl:
                return found[1]
            value = await asyncio.to_thread(read)
            self._answers = {key: (time.monotonic(), value)}
            return value


def _problem(status: int, message: str) -> JSONResponse:
    # the API's rule: files are named relative to the configured folders, never by server path
    message = redact_paths(message, http_roots())
    return JSONResponse({"detail": message, "message": message}, status_code=status, headers=SECURITY_HEADERS)


def _json(body: Any) -> JSONResponse:
    return JSONResponse(body, headers=SECURITY_HEADERS)


def dashboard_router(
    *,
    service: TrainingService,
    policy_provider: Callable[[], RolloutPolicy],
    require_token: Callable[..., None],
) -> APIRouter:
    """The dashboard's routes for one app; ``require_token`` is the app's Bearer-token check."""
    router = APIRouter(tags=["dashboard"])
    files = _static_files()
    recent_gate, recent_series = _Recent(GATE_TTL_SECONDS), _Recent(GATE_TTL_SECONDS)

    def page(name: str) -> Response:
        if name not in files:
            return _problem(404, "no such dashboard file")
        body, content_type = files[name]
        return Response(content=body, media_type=content_type, headers=SECURITY_HEADERS)

    @router.get("/", include_in_schema=False)
    async def index() -> Response:
        """The dashboard page."""
        return page("index.html")

    @router.get(STATIC_PREFIX + "{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        return page(name)

    @router.get(API_PREFIX + "/rollout")
    async def rollout() -> JSONResponse:
        """The rollout in force, each setting's source, the shadow share, last change, auto-rollback."""

        def read() -> dict[str, Any]:
            policy = policy_provider()
            store = RolloutStore()
            history = store.history()
            return {
                **policy.describe(),
                "env": dict(ENV_FOR_FIELD),
                "shadow": attrs.asdict(ShadowConfig.read(store)),
                "last_change": history[-1].to_dict() if history else None,
                "auto_rollback": auto_rollback_state(store),
            }

        try:
            return _json(await asyncio.to_thread(read))
        except ConfigurationError as exc:
            return _problem(503, str(exc))

    @router.get(API_PREFIX + "/gate")
    async def gate() -> JSONResponse:
        """The current stage's gate, as ``ktrdr rollout gate --json`` says it."""

        def judge() -> dict[str, Any]:
            policy = policy_provider()
            stage = policy.settings.stage
            note = None
            if stage == "custom":
                stage = threshold_stage(policy.settings) or "off"
                note = (
                    f"the rollout is at {policy.settings.percentage} %, between stages: judged "
                    f"with the gate of {stage}"
                )
            report = evaluate_current(policy, stage=stage)
            return {**report.to_dict(), "summary": report.summary(), "note": note}

        try:
            return _json(await recent_gate.get(None, judge))
        except (ConfigurationError, BadInputError) as exc:
            return _problem(503, f"cannot judge the gate: {exc}")

    @router.get(API_PREFIX + "/series")
    async def series(window: str | None = Query(None, max_length=20)) -> JSONResponse:
        """Per mode, error rate, duration, cancellation and progress over the gate's window."""
        try:
            seconds = parse_duration(window, what="window") if window is not None else None
        except BadInputError as exc:
            return _problem(422, str(exc))

        def read() -> dict[str, Any]:
            policy = policy_provider()
            stage = threshold_stage(policy.settings) or "off"
            stage_gate = gate_config(RolloutStore())[stage]
            return {
                "stage": stage,
                "window": window or stage_gate.window,
                **data.window_series(RunLedger(), stage_gate, window_seconds=seconds),
            }

        try:
            return _json(await recent_series.get(window, read))
        except ConfigurationError as exc:
            return _problem(503, str(exc))

    @router.get(API_PREFIX + "/runs")
    async def runs(limit: int = Query(20, ge=1, le=500)) -> JSONResponse:
        """The newest runs of the ledger."""
        try:
            return _json({"runs": await asyncio.to_thread(data.recent_runs, RunLedger(), limit)})
        except ConfigurationError as exc:
            return _problem(503, str(exc))

    @router.get(API_PREFIX + "/comparisons")
    async def comparisons(limit: int = Query(10, ge=1, le=100)) -> JSONResponse:
        """The newest side-by-side comparisons, with their curves where the report is readable."""
        try:
            found = await asyncio.to_thread(data.recent_comparisons, RunLedger(), limit)
        except ConfigurationError as exc:
            return _problem(503, str(exc))
        return _json({"comparisons": found})

    @router.get(API_PREFIX + "/audit")
    async def audit(limit: int = Query(50, ge=1, le=1000)) -> JSONResponse:
        """The rollout's audit log, newest first."""
        return _json({"entries": await asyncio.to_thread(data.audit_history, RolloutStore(), limit)})

    @router.post(
        API_PREFIX + "/trainings/{training_id}/cancel", status_code=202, dependencies=[Depends(require_token)]
    )
    async def cancel(training_id: str) -> JSONResponse:
        """The page's cancel button: like the API's cancel, but only with the token."""
        session = service.cancel(training_id, reason="cancelled from the dashboard")
        return JSONResponse(session.to_dict(with_result=False), status_code=202, headers=SECURITY_HEADERS)

    return router
