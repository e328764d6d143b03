"""``ktrdr serve``: the HTTP service (FastAPI + uvicorn) and what only it uses (metrics, loop lag).

See docs/service.md. The app is imported on first use of its names, so the
service's light parts (``looplag``, ``metrics``) import without FastAPI, and
the CLI imports the app only inside the ``serve`` command. Without the
``service`` extra, the first use says which pip command adds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ktrdr_core.service.app import create_app
    from ktrdr_core.service.sessions import TrainingService, TrainingSession

__all__ = ["TrainingService", "TrainingSession", "create_app"]

_HOMES = {
    "create_app": "ktrdr_core.service.app",
    "TrainingService": "ktrdr_core.service.sessions",
    "TrainingSession": "ktrdr_core.service.sessions",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    from ktrdr_core.extras import require_extra

    require_extra("service", "ktrdr_core.service")

    return getattr(importlib.import_module(_HOMES[name]), name)
