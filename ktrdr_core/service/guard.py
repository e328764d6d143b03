"""What stands between the network and the routes: hostile clients get a 4xx, never a 500 or a hang.

* :class:`StrictJSONRoute` — bodies are parsed strictly: ``NaN``,
  ``Infinity``, numbers that overflow to infinity (``1e999``), lone UTF-16
  surrogates and invalid UTF-8 are a 422, and a body on a JSON route with
  another content type is a 415.
* :class:`BodyCap` — Starlette's ``RequestBodyLimitMiddleware``: a 413 from
  the ``Content-Length`` alone, before any of the body is read (or as soon as
  a chunked body passes the cap), in the API's error shape.
* :class:`HostGuard` — Starlette's ``TrustedHostMiddleware`` (so a DNS
  rebinding page cannot drive the API from a browser), answering in the
  service's error shape.
* :class:`BodyTimeout` — a client that does not finish sending its body
  within ``timeout`` seconds gets a 408 (a slow-body client is dropped).
* :func:`redact_paths` — error messages name files relative to the
  configured folders (``KTRDR_HOME/...``), never the server's absolute paths.

The header timeout (a client that never finishes its request line and
headers) lives with the server, in :mod:`ktrdr_core.service.server`.
"""

from __future__ import annotations

import asyncio
import email.message
import json
import os
import re
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fastapi import HTTPException
from fastapi.routing import APIRoute
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 64 * 1024
"""Every body the API takes is small: a training request or a rollout change."""
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
ENV_ALLOWED_HOSTS = "KTRDR_ALLOWED_HOSTS"


def error_body(message: str, detail: Any = None) -> dict[str, Any]:
    """The one error shape of the API: ``detail`` (machine-readable) and ``message`` (one line)."""
    return {"detail": message if detail is None else detail, "message": message}


# -- strict JSON -------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("a number too large for a 64-bit float")
    return value


def _check_strings(value: Any) -> None:
    """Raise ValueError on a string that is not valid Unicode text (a lone surrogate)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("a string with a lone UTF-16 surrogate (not valid text)") from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def strict_loads(body: bytes) -> Any:
    """``json.loads`` that refuses what Python's parser lets through; errors are JSONDecodeError."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError("the body is not valid UTF-8", "", exc.start) from None
    try:
        data = json.loads(text, parse_constant=_reject_constant, parse_float=_finite)
        _check_strings(data)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as exc:  # NaN, 1e999, a 5000-digit integer, deep nesting
        raise json.JSONDecodeError(str(exc).split(" (")[0], "", 0) from None
    return data


class StrictJSONRequest(Request):
    """A request whose ``json()`` is :func:`strict_loads`."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = strict_loads(await self.body())
        return self._json


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return bool(request.headers.get("transfer-encoding")) or (length is not None and length.strip() != "0")


class StrictJSONRoute(APIRoute):
    """A route that parses JSON strictly and answers 415 to a body that is not JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        takes_body = self.body_field is not None

        async def strict_handler(request: Request) -> Response:
            if takes_body and _has_body(request) and not _is_json(request.headers.get("content-type")):
                raise HTTPException(415, "the body must be JSON: send 'Content-Type: application/json'")
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler


# -- Host --------------------------------------------------------------------------------


def allowed_hosts(
    bound: str | None = None, extra: Iterable[str] = (), environ: Mapping[str, str] | None = None
) -> list[str]:
    """Loopback names, the bound address, ``extra`` and ``$KTRDR_ALLOWED_HOSTS`` (comma list)."""
    env = os.environ if environ is None else environ
    names = [*LOOPBACK_HOSTS]
    if bound and bound not in ("0.0.0.0", "::"):
        names.append(f"[{bound}]" if ":" in bound and not bound.startswith("[") else bound)
    names.extend(extra)
    names.extend(part for part in env.get(ENV_ALLOWED_HOSTS, "").split(","))
    return sorted({name.strip().lower() for name in names if name and name.strip()})


class HostGuard:
    """Serve only requests whose ``Host`` is one of ``hosts``; others get a 400 in the API's shape."""

    _PASSED = "ktrdr.host_ok"

    def __init__(self, app: ASGIApp, hosts: Sequence[str]) -> None:
        self.app = app
        self.hosts = list(hosts)

        async def passed(scope: Scope, receive: Receive, send: Send) -> None:
            scope[self._PASSED] = True
            await app(scope, receive, send)

        self._trusted = TrustedHostMiddleware(passed, allowed_hosts=self.hosts, www_redirect=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._trusted(scope, receive, send)
            return
        refused = False

        async def guarded_send(message: Message) -> None:
            nonlocal refused
            if refused:
                return
            if message["type"] == "http.response.start" and not scope.get(self._PASSED):
                refused = True
                text = (
                    "this server does not answer to that Host header: use one of "
                    f"{', '.join(self.hosts)} (ktrdr serve --allowed-host NAME, or "
                    f"{ENV_ALLOWED_HOSTS}, adds one for a reverse proxy)"
                )
                await JSONResponse(error_body(text), status_code=400)(scope, receive, send)
                return
            await send(message)

        await self._trusted(scope, receive, guarded_send)


# -- big bodies --------------------------------------------------------------------------


class BodyCap:
    """Starlette's body limit, with its plain-text 413 answered in the API's error shape."""

    def __init__(self, app: ASGIApp, max_body_size: int = MAX_BODY_BYTES) -> None:
        self.inner = RequestBodyLimitMiddleware(app, max_body_size=max_body_size)
        self.message = f"the request body is larger than {max_body_size // 1024} KiB"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        replaced = False

        async def shaped_send(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return  # the rest of the plain-text answer
            if (
                message["type"] == "http.response.start"
                and message["status"] == 413
                and dict(message.get("headers") or []).get(b"content-type", b"").startswith(b"text/plain")
            ):
                replaced = True
                await JSONResponse(error_body(self.message), status_code=413)(scope, receive, send)
                return
            await send(message)

        await self.inner(scope, receive, shaped_send)


# -- slow bodies -------------------------------------------------------------------------


class BodyTimeout:
    """A 408 for a client whose whole body has not arrived within ``timeout`` seconds."""

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        done = False

        async def timed_receive() -> Message:
            nonlocal done
            if done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise HTTPException(
                    408, f"the request body did not arrive within {self.timeout:g} s"
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                done = True
            return message

        await self.app(scope, timed_receive, send)


# -- paths in messages -------------------------------------------------------------------

_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s'\"():,;]+/)*[^\s'\"():,;]*")


_LISTING = re.compile(r"; it has [^;]*")


def http_roots(environ: Mapping[str, str] | None = None) -> dict[str, Path]:
    """The configured folders, by the name a user of the API knows them by."""
    from ktrdr_core.home import ktrdr_home

    env = os.environ if environ is None else environ
    package = Path(__file__).resolve().parents[1]
    roots = {
        "KTRDR_HOME": ktrdr_home(env),
        "<sample data>": package / "training" / "sample_data",
        "<built-in strategies>": package / "training" / "strategies",
    }
    for name in ("KTRDR_DATA_DIR", "KTRDR_STRATEGIES_DIR"):
        if env.get(name, "").strip():
            roots[name] = Path(env[name].strip()).expanduser()
    return roots


def redact_paths(message: str, roots: Mapping[str, Path]) -> str:
    """``message`` with absolute paths under ``roots`` named relative to them, others hidden.

    ``roots`` maps a name a user knows (``KTRDR_HOME``, ``KTRDR_DATA_DIR``) to its folder.
    A folder listing (the engine's "; it has A.csv, B.csv" hint) is left out too.
    """
    message = _LISTING.sub("", message)
    ordered = sorted(
        ((str(path).rstrip("/"), name) for name, path in roots.items() if str(path)),
        key=lambda item: -len(item[0]),
    )
    for folder, name in ordered:
        if folder and folder != "/":
            for form in {folder, str(Path(folder).resolve())}:
                message = message.replace(form + "/", name + "/").replace(form, name)
    return _ABSOLUTE_PATH.sub(lambda m: "<server path>" if len(m.group(0)) > 1 else m.group(0), message)
