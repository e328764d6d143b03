"""``ktrdr serve``: the HTTP service (FastAPI + uvicorn). See docs/service.md.

Importing this package imports FastAPI; the CLI imports it only inside the
``serve`` command, so ``ktrdr --help`` stays light.
"""

from ktrdr_core.service.app import create_app
from ktrdr_core.service.sessions import TrainingService, TrainingSession

__all__ = ["TrainingService", "TrainingSession", "create_app"]
