"""The FastAPI application of ``ktrdr serve``: :func:`create_app`.

Routes (all JSON but the progress stream and ``/metrics``)::

    GET  /api/v1/health                      status, modes, sessions, event-loop lag
    GET  /api/v1/trainings                   running, queued and recent trainings
    POST /api/v1/trainings                   202 + id + decision; 422 bad input; 429 full
    GET  /api/v1/trainings/{id}              status, progress, result
    GET  /api/v1/trainings/{id}/events       server-sent events: progress ..., end
    POST /api/v1/trainings/{id}/cancel       202; 409 when already ended
    GET  /api/v1/rollout                     settings, stage, sources
    PUT  /api/v1/rollout                     partial change (Bearer $KTRDR_API_TOKEN)
    PUT  /api/v1/rollout/shadow              shadow percentage (Bearer $KTRDR_API_TOKEN)
    GET  /metrics                            Prometheus exposition
    GET  /                                   the dashboard (ktrdr_core/service/dashboard/)

Nothing CPU-bound runs on the event loop: trainings run on their own thread
pool, and mode health checks, rollout reads and writes on worker threads.
See docs/service.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import hmac
import json
import logging
import os
import re
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import attrs
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from ktrdr_core._version import __version__
from ktrdr_core.errors import BadInputError, ConfigurationError, KtrdrError
from ktrdr_core.ledger.health import ledger_problem
from ktrdr_core.ledger.plugin import ledger_enabled
from ktrdr_core.ledger.store import LedgerWriteError, ledger_path
from ktrdr_core.manager import TrainingManager
from ktrdr_core.plugins import KtrdrPluginManager, get_plugin_manager, mode_capacity
from ktrdr_core.request import TrainingRequest
from ktrdr_core.rollout.policy import Decision, RolloutPolicy
from ktrdr_core.rollout.settings import ENV_FOR_FIELD, STAGES
from ktrdr_core.rollout.shadow import ShadowConfig, set_shadow_percentage
from ktrdr_core.rollout.store import RolloutStore, RolloutStoreError
from ktrdr_core.service.dashboard import dashboard_router
from ktrdr_core.service.durable import recorder_for
from ktrdr_core.service.guard import (
    MAX_BODY_BYTES,
    BodyCap,
    BodyTimeout,
    HostGuard,
    StrictJSONRoute,
    allowed_hosts,
    error_body,
    http_roots,
    redact_paths,
)
from ktrdr_core.service.health import ModeHealthCache, evaluate_health
from ktrdr_core.service.looplag import EventLoopLagMonitor
from ktrdr_core.service.metrics import METRICS, MetricsPlugin, event_loop_lag_monitor, exposition
from ktrdr_core.service.models import (
    ErrorOut,
    HealthOut,
    RolloutChangeOut,
    RolloutOut,
    RolloutUpdate,
    ShadowUpdate,
    TrainingCreate,
    TrainingList,
    TrainingOut,
)
from ktrdr_core.service.sessions import (
    AlreadyFinishedError,
    QueueFullError,
    ServiceError,
    ShuttingDownError,
    TrainingService,
    UnknownTrainingError,
)
from ktrdr_core.service.shadow import ShadowPlugin, ShadowRunner

logger = logging.getLogger(__name__)

ENV_API_TOKEN = "KTRDR_API_TOKEN"
ACTOR_HEADER = "X-Ktrdr-Actor"
METRICS_PLUGIN_NAME = "ktrdr-metrics"
SHADOW_PLUGIN_NAME = "ktrdr-shadow"
SSE_HEARTBEAT_SECONDS = 15.0
_ACTOR_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@:/+-]{0,99}$")
_UNSET: Any = object()

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {422: {"model": ErrorOut, "description": "Bad input"}}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error answer; server paths in ``message`` are named relative to the configured folders."""
    text = redact_paths(message, http_roots())
    return JSONResponse(error_body(text), status_code=status, headers=headers)


HTTP_MESSAGES = {
    400: "the request could not be read",
    404: "no such endpoint (the API is described at /docs)",
    405: "this endpoint does not take that method",
    413: f"the request body is larger than {MAX_BODY_BYTES // 1024} KiB",
}


_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")


def _clean_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validation errors without the input: never echo a client's bytes (or its field names) back."""
    cleaned = []
    for error in errors:
        loc = [part for part in error.get("loc", ()) if isinstance(part, (str, int))]
        kind = str(error.get("type", "value_error"))
        msg = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if kind == "extra_forbidden":  # a typo'd field name is named back only if it looks like one
            name = str(loc[-1]) if loc else ""
            loc = loc if _FIELD_NAME.fullmatch(name) else loc[:-1]
            msg = "unknown field (the accepted fields are in the API schema at /docs)"
        elif kind == "json_invalid":
            loc, msg = ["body"], f"invalid JSON: {(error.get('ctx') or {}).get('error', 'cannot parse')}"
        cleaned.append({"loc": loc, "msg": msg, "type": kind})
    return cleaned


def _validation_message(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors[:5]:
        loc = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
        msg = str(error.get("msg", "invalid"))
        msg = msg.removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "invalid request: " + "; ".join(parts) + more


def _public(training: dict[str, Any]) -> dict[str, Any]:
    """A training as the API shows it: error messages without the server's absolute paths."""
    roots = http_roots()
    if training.get("error"):
        training["error"] = redact_paths(training["error"], roots)
    result = training.get("result")
    if isinstance(result, dict) and result.get("error"):
        result["error"] = redact_paths(result["error"], roots)
    return training


def _sse(kind: str, seq: int, data: dict[str, Any]) -> str:
    return f"id: {seq}\nevent: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def create_app(
    *,
    plugin_manager: KtrdrPluginManager | None = None,
    manager: TrainingManager | None = None,
    max_concurrent: int = 2,
    queue_size: int = 16,
    keep_finished: int = 1000,
    api_token: str | None = _UNSET,
    lag_threshold: float = 0.5,
    lag_window: float = 5.0,
    shutdown_timeout: float = 60.0,
    policy_provider: Callable[[], RolloutPolicy] | None = None,
    metrics: bool = True,
    preload: bool = True,
    hosts: Sequence[str] | None = None,
    body_timeout: float = 10.0,
) -> FastAPI:
    """Build the service app.

    ``hosts`` are the ``Host`` header values it answers to (default: the
    loopback names and ``$KTRDR_ALLOWED_HOSTS``; ``["*"]`` for any); a client
    whose body takes longer than ``body_timeout`` seconds gets a 408.

    ``api_token`` defaults to ``$KTRDR_API_TOKEN`` (read now); with none,
    rollout changes over HTTP are refused. ``max_concurrent`` trainings run
    at once and ``queue_size`` wait; more are answered 429. ``preload``
    imports the training engine (torch) at start-up, before the first
    request: imported by the first training instead, it holds the GIL long
    enough to stall the event loop for a few hundred milliseconds.
    """
    pm = plugin_manager or (manager.plugin_manager if manager is not None else get_plugin_manager())
    read_policy = policy_provider or RolloutPolicy.from_env
    training_manager = manager or TrainingManager(plugin_manager=pm, policy_provider=read_policy)
    token = os.environ.get(ENV_API_TOKEN) if api_token is _UNSET else api_token
    token = token.strip() if token else None
    # The service's own I/O threads: ledger admissions and rollout changes, which may wait on
    # locks; health checks and /metrics use the default executor and never queue behind them.
    io_pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="ktrdr-io")
    service = TrainingService(
        training_manager,
        max_concurrent=max_concurrent,
        queue_size=queue_size,
        keep_finished=keep_finished,
        recorder=recorder_for(io_pool),
        capacity_of=functools.partial(mode_capacity, pm),
    )
    health_cache = ModeHealthCache(pm)
    state: dict[str, EventLoopLagMonitor | None] = {"lag": None}

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        lag: EventLoopLagMonitor
        if metrics:
            if pm.get_plugin(METRICS_PLUGIN_NAME) is None:
                pm.register(MetricsPlugin(), name=METRICS_PLUGIN_NAME)
            METRICS.track_rollout(read_policy)
            try:
                for name in pm.execution_modes():
                    METRICS.initialise(name)
            except KtrdrError as exc:
                logger.warning("cannot list the execution modes: %s", exc)
            lag = event_loop_lag_monitor()
        else:
            lag = EventLoopLagMonitor()
        state["lag"] = lag
        shadow = None
        if pm.get_plugin(SHADOW_PLUGIN_NAME) is None:
            shadow = ShadowPlugin(ShadowRunner(on_outcome=_record_shadow), plugin_manager=pm)
        if shadow is not None:
            pm.register(shadow, name=SHADOW_PLUGIN_NAME)
        if ledger_enabled(os.environ):
            await asyncio.to_thread(_recover, metrics)
        if preload:
            await asyncio.to_thread(_preload_engine)
        lag.start()
        try:
            modes = ", ".join(sorted(pm.execution_modes())) or "none"
        except KtrdrError as exc:
            modes = f"unavailable ({exc})"
        logger.info(
            "ktrdr service %s: modes %s; max %d running, %d queued",
            __version__,
            modes,
            max_concurrent,
            queue_size,
        )
        try:
            yield
        finally:
            running = service.counts()["running"]
            if running:
                logger.warning("shutting down: cancelling %d running training(s)", running)
            await service.shutdown(timeout=shutdown_timeout)
            if shadow is not None:
                await asyncio.to_thread(shadow.runner.close)
                pm.unregister(name=SHADOW_PLUGIN_NAME)
            io_pool.shutdown(wait=False)
            await lag.stop()

    app = FastAPI(
        title="ktrdr",
        version=__version__,
        summary="Train neural trading strategies; roll a new training implementation out safely.",
        description="The HTTP face of ktrdr (`ktrdr serve`). See docs/service.md.",
        lifespan=lifespan,
    )
    app.router.route_class = StrictJSONRoute
    app.add_middleware(BodyTimeout, timeout=body_timeout)
    app.add_middleware(BodyCap, max_body_size=MAX_BODY_BYTES)
    app.add_middleware(HostGuard, hosts=list(hosts) if hosts is not None else allowed_hosts())
    app.state.service = service
    app.state.manager = training_manager
    app.state.lag = state

    # -- errors ------------------------------------------------------------
    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _clean_errors(jsonable_encoder(exc.errors(), custom_encoder={Exception: str}))
        message = _validation_message(errors)
        return JSONResponse(error_body(message, errors), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        given = exc.detail if isinstance(exc.detail, str) and exc.status_code in (408, 415) else None
        message = given or HTTP_MESSAGES.get(exc.status_code) or f"HTTP {exc.status_code}"
        return _error(exc.status_code, message, headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _server_error(_request: Request, exc: Exception) -> JSONResponse:
        logger.error("internal error answering a request", exc_info=exc)
        return _error(500, "internal server error (the server's log has the details)")

    @app.exception_handler(ServiceError)
    async def _service_error(_request: Request, exc: ServiceError) -> JSONResponse:
        if isinstance(exc, UnknownTrainingError):
            return _error(404, str(exc))
        if isinstance(exc, AlreadyFinishedError):
            return _error(409, str(exc))
        if isinstance(exc, QueueFullError):
            return _error(429, str(exc), headers={"Retry-After": "5"})
        if isinstance(exc, ShuttingDownError):
            return _error(503, str(exc))
        return _error(409, str(exc))

    bearer = HTTPBearer(auto_error=False, description=f"The value of ${ENV_API_TOKEN} on the server")

    def require_token(
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    ) -> None:
        if not token:
            raise _AuthError(
                403,
                f"rollout changes over HTTP are disabled: set {ENV_API_TOKEN} in the "
                "server's environment and send it as 'Authorization: Bearer <token>'",
            )
        given = credentials.credentials if credentials is not None else ""
        if not given:
            raise _AuthError(
                401, f"this change needs 'Authorization: Bearer <token>' (the server's {ENV_API_TOKEN})"
            )
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise _AuthError(401, "wrong API token")

    @app.exception_handler(_AuthError)
    async def _auth_error(_request: Request, exc: _AuthError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return _error(exc.status, exc.message, headers=headers)

    # -- health ------------------------------------------------------------
    @app.get(
        "/api/v1/health",
        response_model=HealthOut,
        tags=["service"],
        responses={503: {"model": HealthOut, "description": "Unhealthy"}},
    )
    async def health() -> JSONResponse:
        """Status, version, installed modes and their health, sessions, event-loop lag (200 or 503)."""
        code, body = await evaluate_health(
            pm=pm,
            cache=health_cache,
            policy_provider=read_policy,
            monitor=state["lag"],
            active_sessions=training_manager.active_sessions(),
            queue=service.counts(),
            version=__version__,
            lag_threshold=lag_threshold,
            lag_window=lag_window,
            ledger_problem=ledger_problem(ledger_path()) if ledger_enabled(os.environ) else None,
        )
        return JSONResponse(body, status_code=code)

    # -- trainings ---------------------------------------------------------
    def decide(request: TrainingRequest) -> Decision:
        """The rollout's decision, checked: its mode must be installed (else 503 now, not later)."""
        decision = training_manager.decide(request)
        pm.get_mode(decision.mode)
        return decision

    @app.post(
        "/api/v1/trainings",
        status_code=202,
        response_model=TrainingOut,
        tags=["trainings"],
        responses={
            **ERROR_RESPONSES,
            429: {"model": ErrorOut, "description": "Too many trainings running and queued"},
            503: {"model": ErrorOut, "description": "No mode, bad configuration, stopping"},
        },
    )
    async def create_training(body: TrainingCreate) -> JSONResponse:
        """Start a training (or queue it); the rollout decides its mode."""
        service.check_admission()  # before deciding: a full queue answers 429 at once
        overrides = body.overrides.model_dump(exclude_none=True) if body.overrides else {}
        request = TrainingRequest(
            strategy=body.strategy,
            user_id=body.user_id,
            symbols=body.symbols,
            timeframes=body.timeframes,
            start_date=body.start_date,
            end_date=body.end_date,
            overrides=overrides,
        )
        try:
            decision = await asyncio.to_thread(decide, request)
        except BadInputError as exc:
            return _error(422, str(exc))
        except ConfigurationError as exc:
            return _error(503, f"cannot route the training: {exc}")
        try:
            session = await service.admit(request, decision)
        except (LedgerWriteError, ConfigurationError) as exc:  # the server's storage, not the request
            return _error(503, f"not accepted: {exc}; retry once the run ledger can be written")
        return JSONResponse(
            _public(session.to_dict()),
            status_code=202,
            headers={"Location": f"/api/v1/trainings/{session.id}"},
        )

    @app.get("/api/v1/trainings", response_model=TrainingList, tags=["trainings"])
    async def list_trainings(
        status: str | None = Query(None, pattern="^(queued|running|completed|failed|cancelled)$"),
        limit: int = Query(50, ge=1, le=1000),
    ) -> dict[str, Any]:
        """Running, queued, then recently finished trainings (results left out; GET one for it)."""
        found = [s for s in service.sessions() if status is None or s.status == status][:limit]
        return {"trainings": [_public(s.to_dict(with_result=False)) for s in found]}

    @app.get(
        "/api/v1/trainings/{training_id}",
        response_model=TrainingOut,
        tags=["trainings"],
        responses={404: {"model": ErrorOut, "description": "Unknown id"}},
    )
    async def get_training(training_id: str) -> JSONResponse:
        """Status, latest progress, and the result once it has ended."""
        return JSONResponse(_public(service.get(training_id).to_dict()))

    @app.post(
        "/api/v1/trainings/{training_id}/cancel",
        status_code=202,
        response_model=TrainingOut,
        tags=["trainings"],
        responses={
            404: {"model": ErrorOut, "description": "Unknown id"},
            409: {"model": ErrorOut, "description": "Already ended"},
        },
    )
    async def cancel_training(training_id: str) -> JSONResponse:
        """Cancel: a queued training never starts; a running one stops at its next batch."""
        session = service.cancel(training_id)
        return JSONResponse(_public(session.to_dict()), status_code=202)

    @app.get(
        "/api/v1/trainings/{training_id}/events",
        tags=["trainings"],
        response_class=StreamingResponse,
        responses={
            200: {
                "content": {"text/event-stream": {}},
                "description": "`event: progress` per update, then one `event: end`",
            },
            404: {"model": ErrorOut, "description": "Unknown id"},
            429: {"model": ErrorOut, "description": "Too many streams for this training"},
        },
    )
    async def training_events(
        training_id: str,
        last_event_id: str | None = Header(None, alias="Last-Event-ID"),
    ) -> StreamingResponse:
        """Server-sent events: one ``progress`` per update the mode delivers, then ``end``.

        Recent events are replayed first (after ``Last-Event-ID`` when the
        client reconnects); each ``data`` holds epoch, total_epochs, metrics
        and the server's monotonic ``timestamp`` of the update.
        """
        session = service.get(training_id)
        after = int(last_event_id) if last_event_id and last_event_id.strip().isdigit() else None
        subscriber = session.subscribe(after=after)

        async def stream() -> AsyncIterator[str]:
            try:
                while True:
                    while subscriber.items:
                        kind, seq, data = subscriber.items.popleft()
                        if subscriber.dropped:
                            data = {**data, "dropped": subscriber.dropped}
                            subscriber.dropped = 0
                        yield _sse(kind, seq, _public(dict(data)) if kind == "end" else data)
                        if kind == "end":
                            return
                    if subscriber.closed:
                        return
                    await subscriber.wait(SSE_HEARTBEAT_SECONDS)
                    if not subscriber.items and not subscriber.closed:
                        yield ": keep-alive\n\n"
            finally:
                session.unsubscribe(subscriber)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    # -- rollout -----------------------------------------------------------
    def rollout_body(policy: RolloutPolicy) -> dict[str, Any]:
        store = RolloutStore()
        try:
            shadow_config: dict[str, Any] | None = attrs.asdict(ShadowConfig.read(store))
        except ConfigurationError:
            shadow_config = None
        return {
            **policy.describe(),
            "file": redact_paths(str(store.settings_path), http_roots()),
            "shadow": shadow_config,
        }

    async def on_io(call: Callable[[], Any]) -> Any:
        """Run a rollout change on the service's own I/O threads (its lock may be held elsewhere)."""
        return await asyncio.get_running_loop().run_in_executor(io_pool, call)

    async def current_policy() -> RolloutPolicy:
        return await asyncio.to_thread(read_policy)

    @app.get(
        "/api/v1/rollout",
        response_model=RolloutOut,
        tags=["rollout"],
        responses={503: {"model": ErrorOut, "description": "Malformed rollout configuration"}},
    )
    async def get_rollout() -> JSONResponse:
        """The rollout in force: settings, stage, and where each setting comes from (env/file/default)."""
        try:
            policy = await current_policy()
        except ConfigurationError as exc:
            return _error(503, str(exc))
        return JSONResponse(rollout_body(policy))

    change_responses: dict[int | str, dict[str, Any]] = {
        **ERROR_RESPONSES,
        401: {"model": ErrorOut, "description": "Missing or wrong token"},
        403: {"model": ErrorOut, "description": f"{ENV_API_TOKEN} is not set"},
    }

    def change_reply(entry: Any, policy: RolloutPolicy, warnings: list[str]) -> JSONResponse:
        return JSONResponse(
            {
                "changed": entry is not None,
                "audit": entry.to_dict() if entry is not None else None,
                "rollout": rollout_body(policy),
                "warnings": warnings,
            }
        )

    @app.put(
        "/api/v1/rollout",
        response_model=RolloutChangeOut,
        tags=["rollout"],
        dependencies=[Depends(require_token)],
        responses=change_responses,
    )
    async def put_rollout(
        update: RolloutUpdate,
        actor: str | None = Header(None, alias=ACTOR_HEADER, max_length=100),
    ) -> JSONResponse:
        """Change the rollout (partial), audited; applies to the next training request."""
        fields: dict[str, Any] = {}
        if update.stage is not None:
            enabled, percentage = STAGES[update.stage]
            fields.update(enabled=enabled, percentage=percentage)
            action = "set_stage"
        else:
            action = "api_update"
            if update.percentage is not None:
                fields["percentage"] = update.percentage
            if update.enabled is not None:
                fields["enabled"] = update.enabled
        if update.excluded_users is not None:
            fields["excluded_users"] = sorted(set(update.excluded_users))
        who = actor.strip() if actor and _ACTOR_PATTERN.match(actor.strip()) else "api"
        reason = (update.reason or "").strip() or "changed over the HTTP API"
        store = RolloutStore()
        try:
            entry = await on_io(functools.partial(store.set_fields, action, fields, reason=reason, actor=who))
            policy = await current_policy()
        except RolloutStoreError as exc:  # the server's file, lock or disk: not the request's fault
            return _error(503, str(exc))
        except ConfigurationError as exc:
            return _error(422, str(exc))
        warnings = [
            f"{ENV_FOR_FIELD[name]} is set in the server's environment and wins over the rollout file: "
            f"the change of {name} is saved but not in force until it is unset"
            for name in fields
            if policy.sources.get(name) == "env"
        ]
        return change_reply(entry, policy, warnings)

    @app.put(
        "/api/v1/rollout/shadow",
        response_model=RolloutChangeOut,
        tags=["rollout"],
        dependencies=[Depends(require_token)],
        responses=change_responses,
    )
    async def put_shadow(
        update: ShadowUpdate,
        actor: str | None = Header(None, alias=ACTOR_HEADER, max_length=100),
    ) -> JSONResponse:
        """Set the share of control-routed trainings that also run the candidate in the background."""
        who = actor.strip() if actor and _ACTOR_PATTERN.match(actor.strip()) else "api"
        reason = (update.reason or "").strip() or "changed over the HTTP API"
        store = RolloutStore()
        try:
            entry = await on_io(
                functools.partial(set_shadow_percentage, store, update.percentage, reason=reason, actor=who)
            )
            policy = await current_policy()
        except RolloutStoreError as exc:
            return _error(503, str(exc))
        except ConfigurationError as exc:
            return _error(422, str(exc))
        return change_reply(entry, policy, [])

    # -- the dashboard at / -------------------------------------------------
    app.include_router(
        dashboard_router(service=service, policy_provider=read_policy, require_token=require_token)
    )

    # -- metrics -----------------------------------------------------------
    @app.get(
        "/metrics",
        tags=["service"],
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    )
    async def prometheus_metrics() -> Response:
        """The training metrics (and the service's own) in the Prometheus text format."""
        body, content_type = await asyncio.to_thread(exposition)
        return Response(content=body, media_type=content_type)

    return app


def _record_shadow(result: str, ratios: dict[str, float | None]) -> None:
    """Count a compared shadow pair; the rollout's shadow runner knows nothing of Prometheus."""
    METRICS.record_shadow(result, **ratios)


def _recover(metrics: bool) -> None:
    """Start-up recovery (:mod:`ktrdr_core.recovery`); interrupted runs count in the metrics too."""
    from ktrdr_core.recovery import recover

    try:
        found = recover()
    except KtrdrError as exc:  # an unreadable ledger: the health check says so on every call
        logger.error("start-up recovery failed: %s", exc)
        return
    if found.interrupted:
        logger.warning("recorded %d run(s) of a process that is gone as interrupted", len(found.interrupted))
    if metrics:
        for record in found.interrupted:
            METRICS.record_interrupted(record.mode, started=record.error_kind != "not_started")


def _preload_engine() -> None:
    """Import the training engine now, if it is installed (the core can run without torch)."""
    import importlib
    import importlib.util

    for module in ("torch", "ktrdr_core.training.pipeline"):
        try:
            if importlib.util.find_spec(module) is not None:
                importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - a broken engine shows up in the modes' health
            logger.warning("could not preload %s: %s", module, exc)
    if "torch" in sys.modules:
        from ktrdr_core.runtime import configure_torch_threads

        configure_torch_threads()


class _AuthError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
