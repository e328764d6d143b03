"""The dashboard that ``ktrdr serve`` serves at ``/``: rollout, gate, live trainings, history.

Plain HTML, CSS and JavaScript modules shipped in ``static/`` (no build step,
nothing fetched from elsewhere); :func:`dashboard_router` adds the page and
the read-only JSON it needs to the service app.
"""

from ktrdr_core.service.dashboard.router import dashboard_router

__all__ = ["dashboard_router"]
