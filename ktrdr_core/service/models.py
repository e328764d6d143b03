"""The JSON bodies of the HTTP API (pydantic models, so they appear in the OpenAPI schema).

Input models forbid unknown fields and use strict types: ``"epochs": "2"`` or
``"epochs": 2.5`` is a 422 with a message naming the field, never a guess.
Strategy names go through :func:`ktrdr_core.request.check_strategy_name` (a
path such as ``../x`` is refused).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator, model_validator

from ktrdr_core.errors import BadInputError
from ktrdr_core.request import (
    DEFAULT_USER_ID,
    STRATEGY_NAME_PATTERN,
    SYMBOL_PATTERN,
    TIMEFRAME_PATTERN,
    check_strategy_name,
    check_user_id,
)
from ktrdr_core.rollout.settings import StageName, stage_descriptions
from ktrdr_core.times import iso_error, parse_iso, try_parse_iso

DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:[0-9]{1,2})?)$"


def _user_id(value: str) -> str:
    try:
        return check_user_id(value)
    except BadInputError as exc:
        raise ValueError(str(exc)) from None


TrainingStatus = Literal["queued", "running", "completed", "failed", "cancelled"]


def _check_names(
    values: list[str] | None, what: str, pattern: re.Pattern[str], rule: str
) -> list[str] | None:
    """The engine's own rule for ``what`` (one pattern per concept, in ktrdr_core.request)."""
    if values is None:
        return None
    for value in values:
        if not pattern.fullmatch(value):
            raise ValueError(f"invalid {what}: {rule}")
    if len(set(values)) != len(values):
        raise ValueError(f"{what}s must not repeat")
    return values


def _check_date(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    if try_parse_iso(value) is None:
        raise ValueError(iso_error(field))
    return value.strip()


class TrainingOverrides(BaseModel):
    """Per-run knobs that win over the strategy file.

    ``data_dir`` is not accepted over HTTP: a client must not choose files on
    the server; the server's ``KTRDR_DATA_DIR`` (or the sample data) decides.
    """

    model_config = ConfigDict(extra="forbid")

    epochs: Annotated[StrictInt, Field(ge=1, le=10_000)] | None = None
    seed: Annotated[StrictInt, Field(ge=0, le=2**32 - 1)] | None = None
    batch_size: Annotated[StrictInt, Field(ge=1, le=1_000_000)] | None = None
    learning_rate: Annotated[float, Field(gt=0, le=10, allow_inf_nan=False, strict=True)] | None = None
    save_model: StrictBool | None = None
    device: Annotated[str, Field(pattern=DEVICE_PATTERN)] | None = None
    set: Annotated[dict[str, Any], Field(max_length=100)] | None = None  # strategy settings, as --set


class TrainingCreate(BaseModel):
    """``POST /api/v1/trainings``: what to train, for whom."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "strategy": "neuro_mean_reversion",
                    "user_id": "alice",
                    "symbols": ["SYNTH_A"],
                    "timeframes": ["1h"],
                    "start_date": "2023-01-02",
                    "end_date": "2023-03-01",
                    "overrides": {"epochs": 2, "seed": 7},
                }
            ]
        },
    )

    strategy: Annotated[
        str,
        Field(
            min_length=1,
            max_length=128,
            description="A strategy name (not a path), e.g. neuro_mean_reversion",
            json_schema_extra={"pattern": STRATEGY_NAME_PATTERN.pattern},
        ),
    ]
    user_id: Annotated[
        str,
        Field(
            min_length=1, max_length=200, description="The user the rollout hashes; 'default' when omitted"
        ),
    ] = DEFAULT_USER_ID
    symbols: (
        Annotated[
            list[Annotated[str, Field(min_length=1, max_length=40)]], Field(min_length=1, max_length=50)
        ]
        | None
    ) = None
    timeframes: (
        Annotated[
            list[Annotated[str, Field(min_length=1, max_length=16)]], Field(min_length=1, max_length=10)
        ]
        | None
    ) = None
    start_date: Annotated[str, Field(max_length=40)] | None = None
    end_date: Annotated[str, Field(max_length=40)] | None = None
    overrides: TrainingOverrides | None = None

    @field_validator("strategy")
    @classmethod
    def _strategy_is_a_name(cls, value: str) -> str:
        try:
            return check_strategy_name(value)
        except BadInputError:  # its message quotes the name; over HTTP, input is never echoed
            raise ValueError(
                "invalid strategy name: use a name such as 'neuro_mean_reversion' "
                "(letters, digits, '_' and '-', not a path)"
            ) from None

    @field_validator("user_id")
    @classmethod
    def _user_id_is_visible(cls, value: str) -> str:
        return _user_id(value)

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: list[str] | None) -> list[str] | None:
        return _check_names(
            value, "symbol", SYMBOL_PATTERN, "letters, digits and . _ ^ = - only, such as EURUSD or ^GSPC"
        )

    @field_validator("timeframes")
    @classmethod
    def _timeframes(cls, value: list[str] | None) -> list[str] | None:
        return _check_names(value, "timeframe", TIMEFRAME_PATTERN, "a count and a unit, such as 1h or 1d")

    @field_validator("start_date", "end_date")
    @classmethod
    def _dates(cls, value: str | None, info: Any) -> str | None:
        return _check_date(value, info.field_name)

    @model_validator(mode="after")
    def _range(self) -> TrainingCreate:
        if (
            self.start_date
            and self.end_date
            and parse_iso(self.start_date) > parse_iso(self.end_date, end_of_day=True)
        ):
            raise ValueError("start_date is after end_date")
        return self


class DecisionOut(BaseModel):
    """Which mode the rollout chose and why."""

    mode: str
    reason: str
    bucket: int
    user_id: str
    candidate: bool
    fallback: bool
    forced: bool


class ProgressOut(BaseModel):
    """The latest progress update of a training."""

    updates: int = 0
    epoch: int | None = None
    total_epochs: int | None = None
    batch: int | None = None
    total_batches: int | None = None
    percent: float | None = None
    progress_type: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    timestamp: float | None = Field(default=None, description="time.monotonic() of the server when sent")


class TrainingOut(BaseModel):
    """A training as the service knows it."""

    id: str
    status: TrainingStatus
    strategy: str
    user_id: str
    decision: DecisionOut
    request: dict[str, Any]
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    cancel_requested: bool = False
    error: str | None = None
    progress: ProgressOut
    result: dict[str, Any] | None = Field(
        default=None, description="TrainingResult.to_dict() once the training has ended"
    )
    links: dict[str, str] = Field(default_factory=dict)


class TrainingList(BaseModel):
    trainings: list[TrainingOut]


class ModeHealthOut(BaseModel):
    healthy: bool
    detail: str
    role: Literal["control", "candidate", "other"]


class LoopLagOut(BaseModel):
    last_seconds: float
    max_recent_seconds: float
    p99_recent_seconds: float
    window_seconds: float
    threshold_seconds: float
    samples: int


class HealthOut(BaseModel):
    status: Literal["ok", "degraded", "unhealthy"]
    version: str
    modes: dict[str, ModeHealthOut]
    control: str | None = None
    candidate: str | None = None
    active_sessions: dict[str, int] = Field(description="Trainings running now, by mode")
    queue: dict[str, int]
    event_loop_lag: LoopLagOut
    problems: list[str] = Field(default_factory=list)


class RolloutOut(BaseModel):
    enabled: bool
    percentage: int
    excluded_users: list[str]
    control: str
    candidate: str
    stage: str
    sources: dict[str, str]
    file: str
    shadow: dict[str, int] | None = Field(
        default=None,
        description="the shadow stage: percentage of control-routed trainings that also run "
        "the candidate in the background, and how many at once (null: malformed in the file)",
    )


class RolloutUpdate(BaseModel):
    """``PUT /api/v1/rollout``: a partial change; fields left out stay as they are."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"percentage": 10, "enabled": True, "reason": "canary"}]},
    )

    percentage: Annotated[StrictInt, Field(ge=0, le=100)] | None = None
    enabled: StrictBool | None = None
    stage: StageName | None = Field(default=None, description=stage_descriptions())
    excluded_users: (
        Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]], Field(max_length=10_000)] | None
    ) = None
    reason: Annotated[str, Field(max_length=500)] | None = None

    @field_validator("excluded_users")
    @classmethod
    def _users_are_visible(cls, value: list[str] | None) -> list[str] | None:
        return [_user_id(user) for user in value] if value is not None else None

    @model_validator(mode="after")
    def _something_to_change(self) -> RolloutUpdate:
        fields = {"percentage", "enabled", "stage", "excluded_users"}
        given = {name for name in fields if getattr(self, name) is not None}
        if not given:
            raise ValueError("nothing to change: give percentage, enabled, stage or excluded_users")
        if self.stage is not None and given & {"percentage", "enabled"}:
            raise ValueError("give either stage or percentage/enabled, not both")
        return self


class ShadowUpdate(BaseModel):
    """``PUT /api/v1/rollout/shadow``: the shadow percentage (0 turns the shadow off)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"percentage": 100, "reason": "shadow week"}]}
    )

    percentage: Annotated[StrictInt, Field(ge=0, le=100)]
    reason: Annotated[str, Field(max_length=500)] | None = None


class RolloutChangeOut(BaseModel):
    changed: bool
    audit: dict[str, Any] | None = None
    rollout: RolloutOut
    warnings: list[str] = Field(default_factory=list)


class ErrorOut(BaseModel):
    detail: Any
    message: str
