"""The app factory: ``create_app(settings)`` wires settings, models, routes and middleware.

Models are loaded in the lifespan (not at import), checked by scoring a made-up lead or
deal through the real feature path, and polled for a new champion in the background.
Tests pass their own models or source instead of the registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import numpy as np
from fastapi import FastAPI

from leadscore import __version__
from serving.errors import install_error_handlers
from serving.metrics import create_metrics
from serving.middleware import BodyLimitMiddleware, ObservabilityMiddleware
from serving.models import (
    Checker,
    LoadedModel,
    ModelSource,
    ModelStore,
    Reloader,
    freeze_heap,
    load_into,
    source_from_settings,
)
from serving.routes import ops, v1
from serving.schemas import ActivityIn, DealBatch, DealIn, HistoryIn, LeadBatch, LeadIn
from serving.scoring import deal_tables, lead_tables, score_tables
from serving.settings import TASKS, ServingSettings

log = logging.getLogger("leadscore.serving")


def _smoke_batch(task: str, now: datetime) -> tuple[LeadBatch | DealBatch, list[str]]:
    created = now - timedelta(days=20)
    activity = ActivityIn(
        activity_id="smoke-a1",
        occurred_at=now - timedelta(days=2),
        account_id="smoke-acc",
        contact_id="smoke-c1",
        type="pricing_page_visit",
        direction="inbound",
    )
    if task == "lead_qualification":
        lead = LeadIn(
            lead_id="smoke-lead", account_id="smoke-acc", created_at=created,
            source="web_form", seniority="manager", employees=250, activities=[activity],
        )
        return LeadBatch(leads=[lead]), ["smoke-lead"]
    deal = DealIn(
        opportunity_id="smoke-deal", account_id="smoke-acc", owner_id="smoke-owner",
        created_at=created, amount=10_000.0, close_date=now + timedelta(days=30),
        history=[HistoryIn(changed_at=created, stage="prospecting", amount=10_000.0,
                           close_date=now + timedelta(days=30))],
        activities=[activity],
    )
    return DealBatch(deals=[deal]), ["smoke-deal"]


def check_model(loaded: LoadedModel) -> None:
    """Refuse a model that cannot score: unknown feature set, missing feature, bad output.

    A made-up entity goes through the whole serving path (tables, feature_columns, the
    model's matrix, probabilities and contributions); a corrupt or mismatched version
    fails here, before it is swapped in.
    """
    from features.sets import FEATURE_SETS

    fs = loaded.model.feature_set
    known = FEATURE_SETS.get(fs.name)
    if known is None:
        raise ValueError(f"unknown feature set {fs.name!r}")
    if known.names != fs.names:
        missing = sorted(set(fs.names) - set(known.names))
        raise ValueError(f"feature set {fs.name!r} differs from the code's; unknown: {missing}")
    if known.task != loaded.task:
        raise ValueError(f"feature set {fs.name!r} is for {known.task}, not {loaded.task}")
    now = datetime.now(UTC)
    batch, ids = _smoke_batch(loaded.task, now)
    tables = lead_tables(batch) if isinstance(batch, LeadBatch) else deal_tables(batch)
    scored = score_tables(loaded, tables, ids, now, explain=True)
    p = scored.probabilities
    if p.shape != (1,) or not np.all(np.isfinite(p)) or not np.all((p >= 0) & (p <= 1)):
        raise ValueError(f"model gave probabilities {p!r} for a plain entity")
    if scored.contributions is None or not np.all(np.isfinite(scored.contributions)):
        raise ValueError("model gave non-finite contributions")


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
    store = ModelStore(TASKS)
    metrics = create_metrics()
    store.on_failure = lambda task: metrics.model_load_failures.labels(task).inc()
    for loaded in models or []:
        store.swap(loaded)
    if source is None and models is None:
        source = source_from_settings(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        poller: asyncio.Task[None] | None = None
        if source is not None:
            for task in TASKS:
                if store.get(task) is None:
                    await asyncio.to_thread(load_into, store, source, task, check)
            if settings.reload_interval_s > 0:
                reloader = Reloader(store, source, check, settings.reload_interval_s)
                app.state.reloader = reloader
                poller = asyncio.create_task(reloader.run())
        else:
            freeze_heap()
        log.info("ready" if store.ready() else "started without every model",
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
    app.state.store = store
    app.state.metrics = metrics
    app.state.reloader = None
    install_error_handlers(app)
    app.include_router(v1)
    app.include_router(ops)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
    return app
