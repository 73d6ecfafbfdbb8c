"""The app factory: ``create_app(settings)`` wires settings, models, routes and middleware.

Models are loaded in the lifespan (not at import), checked by scoring a made-up lead or
deal through the real feature path, and polled for a new champion in the background.
Tests pass their own models or source instead of the registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import numpy as np
from fastapi import FastAPI

from features.build import own_names
from features.sets import FEATURE_SETS
from features.tasks import task_spec
from leadscore import __version__
from serving.auth import KeyRing, RateLimiter
from serving.endpoints import Endpoint
from serving.errors import install_error_handlers
from serving.examples import install_examples
from serving.metrics import create_metrics
from serving.middleware import BodyLimitMiddleware, ObservabilityMiddleware
from serving.models import (
    REGISTRY_UNREACHABLE,
    Checker,
    LoadedModel,
    ModelSource,
    ModelStore,
    Reloader,
    freeze_heap,
    load_into,
    source_from_settings,
)
from serving.monitoring import Monitor
from serving.routes import ops, v1
from serving.scoring import score_tables
from serving.settings import ServingSettings

log = logging.getLogger("leadscore.serving")


def check_model(loaded: LoadedModel) -> None:
    """Refuse a model that cannot score: unknown feature set, missing feature, bad output.
    A derived set (``lead_v1+own``) is its declared base set plus an export's own columns,
    each category with the levels it learned.

    A made-up entity goes through the whole serving path (tables, feature_columns, the
    model's matrix, probabilities and contributions); a corrupt or mismatched version
    fails here, before it is swapped in.
    """
    fs = loaded.model.feature_set
    known = FEATURE_SETS.get(fs.base_name)
    if known is None:
        raise ValueError(f"unknown feature set {fs.name!r}")
    own = own_names(fs)
    if known.names != [n for n in fs.names if n not in own]:
        missing = sorted(set(fs.names) - set(known.names) - own)
        raise ValueError(f"feature set {fs.name!r} differs from the code's; unknown: {missing}")
    unlearned = [n for n in own if fs.spec(n).dtype == "category" and not fs.spec(n).levels]
    if unlearned:
        raise ValueError(f"feature set {fs.name!r}: own categories without levels {unlearned}")
    if known.task != loaded.task:
        raise ValueError(f"feature set {fs.name!r} is for {known.task}, not {loaded.task}")
    now = datetime.now(UTC)
    spec = task_spec(loaded.task)
    endpoint: Endpoint = spec.endpoint.load()
    batch = endpoint.smoke(now)
    ids = [str(getattr(item, spec.entity_key)) for item in endpoint.items(batch)]
    scored = score_tables(loaded, endpoint.tables(batch), ids, now, explain=True)
    p = scored.probabilities
    if p.shape != (1,) or not np.all(np.isfinite(p)) or not np.all((p >= 0) & (p <= 1)):
        raise ValueError(f"model gave probabilities {p!r} for a plain entity")
    if scored.contributions is None or not np.all(np.isfinite(scored.contributions)):
        raise ValueError("model gave non-finite contributions")


def in_daemon_thread(work: Callable[[], None]) -> asyncio.Future[None]:
    """Run ``work`` in a daemon thread; the future completes when it returns (or raises)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def finish(error: BaseException | None) -> None:
        if future.done():
            return
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # handed to the awaiting side
            loop.call_soon_threadsafe(finish, exc)
        else:
            loop.call_soon_threadsafe(finish, None)

    threading.Thread(target=run, name="leadscore-first-load", daemon=True).start()
    return future


def create_app(
    settings: ServingSettings,
    *,
    source: ModelSource | None = None,
    models: list[LoadedModel] | None = None,
    check: Checker = check_model,
) -> FastAPI:
    """The scoring API.

    ``models`` are served as given (tests); otherwise each task's model comes from
    ``source`` (default: the registry alias, or paths in settings) at startup, and the
    source is polled every ``settings.reload_interval_s`` seconds for a new version.
    """
    store = ModelStore(settings.tasks)
    metrics = create_metrics()
    store.on_failure = lambda task: metrics.model_load_failures.labels(task).inc()
    for loaded in models or []:
        store.swap(loaded)
    if source is None and models is None:
        source = source_from_settings(settings)

    def first_load() -> None:
        assert source is not None
        try:
            for task in settings.tasks:
                if store.get(task) is None:
                    load_into(store, source, task, check, fallback=True)
            unreachable = [t for t in settings.tasks if (f := store.failure(t)) is not None
                           and f.error == REGISTRY_UNREACHABLE]
            if unreachable:
                store.registry_answered(False)
                for task in unreachable:
                    metrics.registry_failures.labels(task).inc()
        finally:
            store.loading = False

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        poller: asyncio.Task[None] | None = None
        if source is not None:
            # The first load runs in a daemon thread: startup waits for it at most
            # startup_wait_s, and a registry that does not answer never holds the port
            # closed nor a shutdown (the thread dies with the process).
            store.loading = True
            done = in_daemon_thread(first_load)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(done), settings.startup_wait_s)
            if settings.reload_interval_s > 0:
                reloader = Reloader(store, source, check, settings.reload_interval_s)
                reloader.on_registry_failure = (
                    lambda task: metrics.registry_failures.labels(task).inc())
                app.state.reloader = reloader
                poller = asyncio.create_task(reloader.run(after=done))
        else:
            freeze_heap()
        log.info("ready" if store.ready() else "loading the models" if store.loading
                 else "started without every model",
                 extra={"models": {m.task: m.version for m in store.loaded()}})
        try:
            yield
        finally:
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller

    app = FastAPI(
        title="leadscore",
        version=__version__,
        summary="Calibrated lead and deal scores with reasons, from the MLflow registry.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.keyring = KeyRing(settings.api_key_hashes, settings.api_key_hashes_file)
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_minute)
    app.state.store = store
    app.state.metrics = metrics
    app.state.monitor = Monitor(settings.monitor_window_rows, settings.monitor_window_bytes,
                                settings.monitor_min_rows, settings.psi_warn,
                                settings.psi_alert)
    app.state.reloader = None
    install_error_handlers(app)
    app.include_router(v1)
    app.include_router(ops)
    install_examples(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
    return app
