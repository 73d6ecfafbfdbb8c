"""Run the API under uvicorn: one process, or N workers sharing one listening socket.

With ``workers > 1`` the socket is bound once here and handed to N spawned processes,
each running its own app (and its own models); the kernel spreads connections between
them. Metrics are per process: scrape each, or run one worker per container.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi import FastAPI

from serving.logs import configure_logging
from serving.settings import ServingSettings

AppFactory = Callable[[ServingSettings], FastAPI]
"""What builds the app from the settings: ``serving.app.create_app`` by default; a
module-level function, so spawned workers import it by name."""


def _config(settings: ServingSettings, factory: AppFactory | None = None) -> uvicorn.Config:
    from serving.app import create_app

    return uvicorn.Config(
        (factory or create_app)(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


def _worker(settings: ServingSettings, sock: socket.socket, factory: AppFactory | None) -> None:
    configure_logging(settings.log_level)
    server = uvicorn.Server(_config(settings, factory))
    server.run(sockets=[sock])


def bind_socket(host: str, port: int) -> socket.socket:
    """The listening socket, bound once for every worker.

    Created with ``proto=IPPROTO_TCP`` on purpose: asyncio turns Nagle off
    (``TCP_NODELAY``) only on accepted sockets whose proto says TCP, and accepted sockets
    inherit it from this one. With the default proto 0 every response waited out a
    delayed ACK, ~45 ms a request: the fixed cost `uvicorn --workers` shows here.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


REGISTRY_ENV = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": lambda s: str(max(1, round(s.registry_timeout_s))),
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": lambda s: str(s.registry_retries),
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": lambda s: "1",
}
"""MLflow's client settings the server gives a short default (its own: 120 s a request and
retries with backoff, minutes before a dead registry answers); an explicit value wins."""


def prepare(settings: ServingSettings) -> None:
    """Before serving: short registry timeouts, and a SQLite store that must exist when
    any task is served from the registry (a mistyped path is an error, not a new store).
    Raises ``FileNotFoundError`` for a missing store."""
    from modeling.registry import require_store

    for name, value in REGISTRY_ENV.items():
        os.environ.setdefault(name, value(settings))
    if any(not settings.model_uri(task) or str(settings.model_uri(task)).startswith("models:/")
           for task in settings.tasks):
        require_store(settings.tracking_uri)


def serve(settings: ServingSettings, factory: AppFactory | None = None) -> None:
    """Serve the app ``factory`` builds until interrupted (Ctrl-C or SIGTERM)."""
    configure_logging(settings.log_level)
    prepare(settings)
    if settings.workers == 1:
        uvicorn.Server(_config(settings, factory)).run()
        return
    sock = bind_socket(settings.host, settings.port)
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_worker, args=(settings, sock, factory), name=f"leadscore-worker-{i}")
        for i in range(settings.workers)
    ]
    for p in procs:
        p.start()

    def stop(*_: Any) -> None:
        for p in procs:
            if p.pid is not None and p.is_alive():
                os.kill(p.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        stop()
        for p in procs:
            p.join(timeout=15)
    finally:
        sock.close()
