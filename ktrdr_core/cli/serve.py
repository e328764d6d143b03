"""``ktrdr serve``: the HTTP service (see docs/service.md).

FastAPI and uvicorn are imported inside the command, so ``ktrdr --help``
stays light and works without the ``service`` extra; the command itself says
which pip command adds it when it is missing.
"""

from __future__ import annotations

import logging
import os

import click

from ktrdr_core.errors import ConfigurationError

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind. Anything but loopback exposes the API to the network.",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--max-concurrent",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Trainings that run at once.",
)
@click.option(
    "--queue-size",
    type=click.IntRange(min=0),
    default=16,
    show_default=True,
    help="Trainings that may wait for a slot; one more is answered 429.",
)
@click.option(
    "--keep-finished",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Finished trainings kept in memory for GET /api/v1/trainings/{id}.",
)
@click.option(
    "--shutdown-timeout",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Seconds to wait for cancelled trainings to stop on SIGTERM.",
)
@click.option(
    "--allowed-host",
    "allowed_host",
    multiple=True,
    metavar="NAME",
    help="Also answer requests with this Host header (repeatable; e.g. the name a reverse "
    "proxy forwards). Loopback names and the bound address always work; "
    "KTRDR_ALLOWED_HOSTS (comma list) adds more; '*' allows any.",
)
@click.option(
    "--client-timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds a client has to send its request headers, and again its body; slower clients are dropped.",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
)
def serve(
    host: str,
    port: int,
    max_concurrent: int,
    queue_size: int,
    keep_finished: int,
    shutdown_timeout: float,
    allowed_host: tuple[str, ...],
    client_timeout: float,
    log_level: str,
) -> int:
    """Run the HTTP API: trainings, progress streams, rollout, /metrics.

    Rollout changes need KTRDR_API_TOKEN set in the environment (sent as
    'Authorization: Bearer <token>'). SIGTERM cancels running trainings,
    waits for them to stop, and exits 0.
    """
    from ktrdr_core.extras import require_extra

    require_extra("service", "ktrdr serve")
    import uvicorn

    from ktrdr_core.runtime import torch_threads_from_env
    from ktrdr_core.service import create_app
    from ktrdr_core.service.app import ENV_API_TOKEN
    from ktrdr_core.service.guard import allowed_hosts
    from ktrdr_core.service.server import GuardedH11Protocol, KtrdrServer

    torch_threads_from_env()  # a malformed KTRDR_TORCH_THREADS stops start-up (exit 2), not a training
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not os.environ.get(ENV_API_TOKEN, "").strip():
        click.echo(
            f"ktrdr serve: {ENV_API_TOKEN} is not set: rollout changes over HTTP are disabled", err=True
        )
    if host not in LOOPBACK:
        click.echo(
            f"ktrdr serve: binding {host}: the API (trainings included) is reachable from the "
            "network; put it behind a reverse proxy with TLS",
            err=True,
        )
    hosts = allowed_hosts(host, allowed_host)
    app = create_app(
        max_concurrent=max_concurrent,
        queue_size=queue_size,
        keep_finished=keep_finished,
        shutdown_timeout=shutdown_timeout,
        hosts=hosts,
        body_timeout=client_timeout,
    )
    protocol = type("KtrdrH11Protocol", (GuardedH11Protocol,), {"header_timeout": client_timeout})
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=int(shutdown_timeout) + 5,
        access_log=False,
        http=protocol,
        timeout_keep_alive=5,
        h11_max_incomplete_event_size=16 * 1024,
    )
    server = KtrdrServer(config, app.state.service)
    _check_can_bind(host, port)
    server.run()
    return 0 if server.started else 1


def _check_can_bind(host: str, port: int) -> None:
    """Fail with one line (exit 2) when the address is taken or invalid, before uvicorn starts.

    uvicorn would log its own error and call ``sys.exit(3)``; a busy port is a
    configuration problem of the user's, so it gets ktrdr's exit code 2.
    """
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, OverflowError) as exc:
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc}") from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
