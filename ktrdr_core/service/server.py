"""Running the app under uvicorn with a graceful stop (SIGTERM / SIGINT).

On a stop signal :class:`KtrdrServer` first tells the training service to
shut down — no new trainings, queued ones marked cancelled, every running
token fired — and only then lets uvicorn wait for open connections: the
progress streams get their ``end`` event as soon as each mode stops (within
a batch), so they do not hold the shutdown up. The app's lifespan then waits
for the modes to return, so the manager's lifecycle observers (run ledger,
metrics) record each of them as cancelled. After a graceful stop the process
exits 0 (uvicorn's default would re-raise the signal).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Generator
from types import FrameType

import uvicorn

from ktrdr_core.service.sessions import TrainingService

logger = logging.getLogger("ktrdr_core.service")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class KtrdrServer(uvicorn.Server):
    """A uvicorn server that stops the trainings first on shutdown."""

    def __init__(self, config: uvicorn.Config, service: TrainingService) -> None:
        super().__init__(config)
        self.service = service

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.should_exit:
            counts = self.service.counts()
            logger.warning("received %s: stopping; cancelling %d running and %d queued training(s)",
                           signal.Signals(sig).name, counts["running"], counts["queued"])
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """uvicorn's handlers, without re-raising the signal after a graceful stop."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.service.begin_shutdown()
        await super().shutdown(sockets)
