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

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Generator
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from ktrdr_core.service.sessions import TrainingService

logger = logging.getLogger("ktrdr_core.service")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


HEADER_TIMEOUT_SECONDS = 10.0


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for the request line and headers.

    uvicorn drops idle keep-alive connections but not one that sends its
    headers a byte at a time (slowloris): each connection would hold a socket
    and a buffer for ever. Here the headers of every request must be complete
    within :attr:`header_timeout` seconds of its first byte (or of the
    connection), else the connection is closed. The body has its own deadline
    in the app (:class:`ktrdr_core.service.guard.BodyTimeout`).
    """

    header_timeout = HEADER_TIMEOUT_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._header_timed_out)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            logger.info("closing a connection whose request headers took over %.0f s", self.header_timeout)
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            self._arm_header_timer()  # between requests: the next one's headers are due
        super().data_received(data)
        if self.cycle is not cycle:  # a request's headers arrived
            self._disarm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)


class KtrdrServer(uvicorn.Server):
    """A uvicorn server that stops the trainings first on shutdown."""

    def __init__(self, config: uvicorn.Config, service: TrainingService) -> None:
        super().__init__(config)
        self.service = service

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.should_exit:
            counts = self.service.counts()
            logger.warning(
                "received %s: stopping; cancelling %d running and %d queued training(s)",
                signal.Signals(sig).name,
                counts["running"],
                counts["queued"],
            )
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
