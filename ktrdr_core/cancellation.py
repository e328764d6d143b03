"""Cancellation: the token a mode checks, and the sources that fire it.

A mode checks ``token.is_cancelled()`` at every batch (so a cancel lands in
well under 100 ms) and raises :class:`CancellationError`. Whoever wants to stop
a training — a signal handler, a deadline, an HTTP call, a remote flag — only
calls ``token.cancel(reason=...)`` from any thread.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from ktrdr_core.errors import CancellationError

__all__ = [
    "CANCELLATION_BOUND_SECONDS",
    "CancellationError",
    "CancellationSource",
    "CancellationToken",
    "DeadlineCancellation",
    "CancelCheck",
    "ThreadingCancellationToken",
    "cancel_check",
    "create_cancellation_token",
    "no_cancel_check",
    "raise_if_cancelled",
]

CANCELLATION_BOUND_SECONDS = 0.1
"""The contract's bound from ``token.cancel()`` to ``execute()`` raising (docs/contract.md#cancellation).

The one place the advertised 100 ms is written: the contract suite, ``ktrdr
compare``'s cancel check and docs/contract.md (a test compares) all use it.
"""


CancelCheck = Callable[[], None]
"""What a unit of work calls between its parts: returns, or raises :class:`CancellationError`.

Set-up steps (data loading, indicators, fuzzy sets, features, labels) take one
as ``check`` and call it per series, per indicator, per file phase, so a cancel
during set-up waits for one small unit of work, not a whole step.
"""


@runtime_checkable
class CancellationToken(Protocol):
    """What a mode needs from a token (docs/contract.md, "Cancellation")."""

    @property
    def reason(self) -> str | None:
        """Why the token was cancelled, or ``None`` while it is not."""

    def is_cancelled(self) -> bool:
        """Cheap enough to call at every batch."""

    def cancel(self, reason: str = "cancelled") -> None:
        """Fire the token; later calls keep the first reason."""

    async def wait_for_cancellation(self) -> None:
        """Return once the token fires (for async watchers)."""


class ThreadingCancellationToken:
    """A thread-safe :class:`CancellationToken`.

    It also remembers when it fired (``cancelled_at``, monotonic seconds), so
    the manager can measure cancellation latency, and lets watchers register
    callbacks that run once, in the cancelling thread.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._reason: str | None = None
        self._cancelled_at: float | None = None
        self._callbacks: list[Callable[[str], None]] = []

    @property
    def reason(self) -> str | None:
        return self._reason

    @property
    def cancelled_at(self) -> float | None:
        """``time.monotonic()`` at the first :meth:`cancel`, or ``None``."""
        return self._cancelled_at

    def is_cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self, reason: str = "cancelled") -> None:
        with self._lock:
            if self._event.is_set():
                return
            self._reason = reason
            self._cancelled_at = time.monotonic()
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(reason)

    def raise_if_cancelled(self) -> None:
        """Raise :class:`CancellationError` if the token has fired."""
        raise_if_cancelled(self)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until cancelled or ``timeout`` passes; True when cancelled."""
        return self._event.wait(timeout)

    def add_callback(self, callback: Callable[[str], None]) -> None:
        """Run ``callback(reason)`` once when the token fires (now, if it already has)."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return
        callback(self._reason or "cancelled")

    async def wait_for_cancellation(self) -> None:
        if self._event.is_set():
            return
        loop = asyncio.get_running_loop()
        fired: asyncio.Future[None] = loop.create_future()

        def settle() -> None:
            if not fired.done():
                fired.set_result(None)

        def wake(_reason: str) -> None:
            loop.call_soon_threadsafe(settle)

        self.add_callback(wake)
        await fired


@runtime_checkable
class CancellationSource(Protocol):
    """Something that can fire a request's token (a signal, a deadline, an HTTP call).

    The manager attaches each source before the mode starts and detaches it
    when the mode returns, whatever the outcome.
    """

    def attach(self, token: CancellationToken) -> None:
        """Start watching; call ``token.cancel(reason=...)`` when it is time."""

    def detach(self) -> None:
        """Stop watching; must be safe to call more than once."""


class DeadlineCancellation:
    """Cancels the token once ``seconds`` have passed (``ktrdr train --timeout``)."""

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("a deadline must be a positive number of seconds")
        self.seconds = seconds
        self._timer: threading.Timer | None = None

    def attach(self, token: CancellationToken) -> None:
        reason = f"deadline of {self.seconds:g} s reached"
        self._timer = threading.Timer(self.seconds, token.cancel, kwargs={"reason": reason})
        self._timer.daemon = True
        self._timer.start()

    def detach(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def create_cancellation_token() -> ThreadingCancellationToken:
    """A fresh, thread-safe token: the one call a caller needs to be able to stop a training."""
    return ThreadingCancellationToken()


def raise_if_cancelled(token: CancellationToken | None) -> None:
    """Raise ``CancellationError(token.reason)`` once ``token`` has fired (no token: never)."""
    if token is not None and token.is_cancelled():
        raise CancellationError(token.reason or "cancelled")


def no_cancel_check() -> None:
    """The :data:`CancelCheck` of work nobody can cancel (a step called on its own)."""


def cancel_check(token: CancellationToken | None) -> CancelCheck:
    """The :data:`CancelCheck` of ``token``: one callable a step hands down to its units of work."""
    if token is None:
        return no_cancel_check
    return functools.partial(raise_if_cancelled, token)
