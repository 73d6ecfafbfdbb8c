"""The HTTP routes: /v1 scoring and model listing (keyed), health and metrics (open).

Scoring routes are ``async def`` and score small batches right on the event loop: for one
lead (~1.2 ms of work) the threadpool hop of a plain ``def`` route cost 17-33 %
of the throughput (benchmarks/README.md). Batches over ``inline_max_rows`` go to the
threadpool so one large batch does not stall every other caller.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from features.build import own_names
from features.declarations import FeatureSet
from features.tasks import TASKS, TaskSpec
from serving.body import body_schema, check_media_type, rows_of, validate_body
from serving.deps import (
    MetricsDep,
    MonitorDep,
    NowDep,
    SettingsDep,
    StoreDep,
    require_api_key,
)
from serving.endpoints import Ask, Endpoint
from serving.errors import ModelUnavailable
from serving.metrics import Metrics
from serving.models import LoadedModel, ModelStore
from serving.monitoring import ColumnDrift, Monitor
from serving.requests import attribute_problems, request_problems
from serving.results import grading
from serving.schemas import (
    AttributeDescription,
    ColumnDriftOut,
    ErrorBody,
    GradingDescription,
    ModelDescription,
    ModelList,
    MonitoringReport,
    TaskMonitoring,
    WithheldTask,
)
from serving.settings import ServingSettings
from serving.staleness import add_stale_warnings

T = TypeVar("T")

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no API key"},
    403: {"model": ErrorBody, "description": "API key not accepted"},
    413: {"model": ErrorBody, "description": "body over the size limit"},
    422: {"model": ErrorBody, "description": "invalid body: each field path with its reason"},
    503: {"model": ErrorBody, "description": "no model loaded for this task yet"},
}

v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)], responses=_ERRORS)
ops = APIRouter()

ExplainQuery = Query(
    True, description="include reasons (pred_contrib); false skips their cost when not shown"
)

TrendQuery = Query(
    True, description="include each result's trend: the score 7 and 28 days earlier, from "
    "the same request; false skips its cost"
)

WhatIfQuery = Query(
    False, description="list up to three actions from the catalogue (book a meeting, get a "
    "reply, engage a second contact, run a demo, send the proposal) that would raise each "
    "score, each with the probability and grade after it; re-scores the request once per "
    "action"
)


async def _run(rows: int, settings: ServingSettings, work: Callable[[], T]) -> T:
    """Small batches inline on the loop, large ones in the threadpool. ``rows`` counts
    every record of the request (entities, activities, history, signals, context): 16
    leads with 3,000 activities each are a big request, not a small one."""
    if rows <= settings.inline_max_rows:
        return work()
    return await run_in_threadpool(work)


def _observe(metrics: Metrics, task: str, scores: list[int]) -> None:
    metrics.scored_rows.labels(task).inc(len(scores))
    histogram = metrics.scores.labels(task)
    for s in scores:
        histogram.observe(s)


def models_for(tasks: list[str]) -> Callable[[Request], Awaitable[list[LoadedModel]]]:
    """A dependency: the loaded model of each task, in order, or 503 for the first missing.

    A route shared by several tasks (accounts: renewal and expansion) answers with those
    that have a model when the others were withheld by the promotion gate, and says in
    its answer what it left out."""

    async def models(request: Request) -> list[LoadedModel]:
        store: ModelStore = request.app.state.store
        out, missing = [], []
        for task in tasks:
            loaded = store.get(task)
            if loaded is None:
                missing.append(task)
            else:
                out.append(loaded)
        # Left out only when the gate withheld it on purpose; otherwise the server is not
        # ready for the route.
        if missing and (not out or any(store.withheld(t) is None for t in missing)):
            first = next((t for t in missing if store.withheld(t) is None), missing[0])
            raise ModelUnavailable(first, store.withheld(first))
        return out

    return models


BODY_MODELS: list[type[BaseModel]] = []
"""The body models of the scoring routes, which read their bodies themselves
(``serving.body``): their schemas join the OpenAPI document's components."""


def add_scoring_route(router: APIRouter, route: str, specs: list[TaskSpec]) -> None:
    """``POST route`` for the tasks that share it (one entity), from their declarations."""
    endpoint: Endpoint = specs[0].endpoint.load()
    spec = specs[0]
    tasks = [s.name for s in specs]
    key, name = spec.entity_key, spec.plural

    async def score(
        request: Request,
        models: list[LoadedModel],
        now: datetime,
        explain: bool = True,
        trend: bool = True,
        what_if: bool = False,
    ) -> Any:
        # Read from the app, not injected: each dependency FastAPI solves costs a few
        # percent of a one-lead request, and no test swaps these (the clock it does).
        settings: ServingSettings = request.app.state.settings
        metrics: Metrics = request.app.state.metrics
        check_media_type(request)
        body = await request.body()
        if len(body) <= settings.inline_max_bytes:
            batch = validate_body(endpoint.batch, body)
        else:  # a big body is parsed and validated off the event loop
            batch = await run_in_threadpool(validate_body, endpoint.batch, body)
        items = endpoint.items(batch)
        problems = request_problems(items, name, key, now) + attribute_problems(
            items, name, [m.model.feature_set for m in models])
        if problems:
            raise RequestValidationError(problems)
        ids = [str(getattr(item, key)) for item in items]
        ask = Ask(explain=explain, trend=trend, what_if=what_if,
                  watch=request.app.state.monitor.observe)

        def work() -> Any:
            answer: Any = endpoint.respond(batch, models, endpoint.tables(batch), ids, now,
                                           ask, settings)
            # Reads every event sent: part of the work, off the loop for a big request.
            add_stale_warnings(items, answer.results, now, settings.stale_data_days)
            return answer

        out = await _run(rows_of(batch), settings, work)
        for task, scores in zip(tasks, endpoint.scores(out), strict=True):
            _observe(metrics, task, scores)
        return out

    # FastAPI reads the body schema, the injected values and the query from the signature.
    param = functools.partial(inspect.Parameter, kind=inspect.Parameter.POSITIONAL_OR_KEYWORD)
    score.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            param("request", annotation=Request),
            param("models", annotation=Annotated[list[LoadedModel], Depends(models_for(tasks))]),
            param("now", annotation=NowDep),
            param("explain", annotation=bool, default=ExplainQuery),
            param("trend", annotation=bool, default=TrendQuery),
            param("what_if", annotation=bool, default=WhatIfQuery),
        ],
        return_annotation=endpoint.response,
    )
    score.__name__ = f"score_{name}"
    score.__doc__ = endpoint.description
    BODY_MODELS.append(endpoint.batch)
    router.add_api_route(route.removeprefix(router.prefix), score, methods=["POST"],
                         response_model=endpoint.response, summary=endpoint.summary,
                         openapi_extra=body_schema(endpoint.batch),
                         responses={415: {"model": ErrorBody,
                                          "description": "the body is not sent as JSON"}})


def _routes() -> dict[str, list[TaskSpec]]:
    by_route: dict[str, list[TaskSpec]] = {}
    for spec in TASKS.values():
        by_route.setdefault(spec.route, []).append(spec)
    return by_route


for _route, _specs in _routes().items():
    add_scoring_route(v1, _route, _specs)


def _test_metrics(metadata: dict[str, Any]) -> dict[str, float]:
    nested = metadata.get("test_metrics")
    source = nested if isinstance(nested, dict) else metadata
    out = {}
    for key, value in source.items():
        if str(key).startswith(("test_", "oracle_test_", "baseline_")) or source is nested:
            try:
                out[str(key)] = float(value)
            except (TypeError, ValueError):
                continue
    return out


def _attributes(fs: FeatureSet, metadata: dict[str, Any]) -> list[AttributeDescription]:
    """The feature set's own columns (``features.own``), as a request sends them."""
    risks = set((metadata.get("own_features") or {}).get("leak_risks") or ())
    kinds: dict[str, Literal["category", "yes_no"]] = {"category": "category",
                                                         "bool": "yes_no"}
    out = []
    for name in sorted(own_names(fs), key=fs.names.index):
        spec = fs.spec(name)
        column = spec.description.rsplit(": {", 1)[0]
        out.append(AttributeDescription(name=name, kind=kinds.get(spec.dtype, "number"),
                                        column=column, levels=list(spec.levels),
                                        leak_risk=name in risks))
    return out


def _trained_period(metadata: dict[str, Any]) -> dict[str, Any] | None:
    keys = ("trained_from", "trained_to", "test_from", "test_to")
    found = {k: metadata[k] for k in keys if metadata.get(k) is not None}
    return found or None


@v1.get("/models", response_model=ModelList, summary="The models being served")
async def list_models(store: StoreDep, settings: SettingsDep) -> ModelList:
    """Name, version, alias, training period, test metrics, feature set and grade cut-offs
    of each model."""
    out = []
    for loaded in store.loaded():
        metadata = {**getattr(loaded.model, "metadata", {}), **loaded.metadata}
        fs = loaded.model.feature_set
        grades = grading(loaded, settings)
        out.append(
            ModelDescription(
                task=loaded.task,
                name=loaded.name,
                version=loaded.version,
                alias=loaded.alias,
                run_id=loaded.run_id,
                feature_set=f"{fs.name}@{fs.version}",
                trained_period=_trained_period(metadata),
                test_metrics=_test_metrics(metadata),
                grading=GradingDescription(
                    cutoffs={"A": grades.a, "B": grades.b, "C": grades.c},
                    learned=grades.learned, description=grades.describe(),
                ),
                excluded_features={str(k): str(v) for k, v in
                                   (metadata.get("excluded_features") or {}).items()},
                attributes=_attributes(fs, metadata),
                loaded_at=loaded.loaded_at,
            )
        )
    withheld = [WithheldTask(task=t, reason=reason) for t in store.tasks
                if (reason := store.withheld(t)) is not None]
    return ModelList(models=out, withheld=withheld)


def _drift_out(d: ColumnDrift) -> ColumnDriftOut:
    return ColumnDriftOut(name=d.name, psi=d.psi if math.isfinite(d.psi) else None,
                          status=d.status, trending=d.trending, expected_psi=d.expected)


def monitoring_report(store: ModelStore, monitor: Monitor) -> MonitoringReport:
    """Every task's window against its model's profile (PSI computed here, when read)."""
    tasks = []
    for task in store.tasks:
        d = monitor.drift(task, store.get(task))
        tasks.append(TaskMonitoring(
            task=task, version=d.version, window_rows=d.window_rows, seen_rows=d.seen_rows,
            status=d.status,  # type: ignore[arg-type]
            score=None if d.score is None else _drift_out(d.score),
            features=[_drift_out(f) for f in d.features]))
    return MonitoringReport(warn_psi=monitor.warn, alert_psi=monitor.alert,
                            min_rows=monitor.min_rows, tasks=tasks)


@v1.get("/monitoring", response_model=MonitoringReport,
        summary="Drift of what was scored lately against each model's reference")
async def monitoring(store: StoreDep, monitor: MonitorDep) -> MonitoringReport:
    """Per task: rows in its window (the newest ``LEADSCORE_MONITOR_WINDOW_ROWS`` scored by
    the version serving), and the PSI of the score and of each feature (the worst first)
    against the reference profile the model was trained with, each ok, warn
    (``LEADSCORE_PSI_WARN``, 0.1) or alert (``LEADSCORE_PSI_ALERT``, 0.25). "too few
    rows" below ``LEADSCORE_MONITOR_MIN_ROWS``; "no reference profile" for a model saved
    before profiles."""
    return await run_in_threadpool(monitoring_report, store, monitor)


@ops.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@ops.get("/readyz", summary="A model is loaded for every task, or the task is withheld")
async def readyz(store: StoreDep, settings: SettingsDep) -> JSONResponse:
    """200 only when every task has a model or is withheld by the promotion gate (no version
    beat the CRM's own rate; ``withheld`` says why and its route answers 503 with it);
    otherwise 503 with what is missing and why. Reasons are short and never an exception's
    text (the log has the detail). ``loading``: the first load is still running;
    ``registry.reachable`` turns false after ``LEADSCORE_REGISTRY_WARN_POLLS`` failed polls
    in a row, while the loaded models go on serving; ``fallback_from``: the version that
    failed to load, where an older one serves instead."""
    tasks: dict[str, Any] = {}
    for task in store.tasks:
        loaded = store.get(task)
        failure = store.failure(task)
        fallback = store.fallback(task)
        tasks[task] = {
            "loaded": loaded is not None,
            "version": None if loaded is None else loaded.version,
            "last_error": None if failure is None else failure.error,
            "failed_version": None if failure is None else failure.version,
            "withheld": store.withheld(task),
            "fallback_from": None if fallback is None else fallback.failed_version,
        }
    ready = store.ready()
    failed = store.registry_failed_polls
    since = store.registry_down_since
    body: dict[str, Any] = {
        "ready": ready,
        "loading": store.loading,
        "registry": {
            "reachable": failed < settings.registry_warn_polls,
            "failed_polls": failed,
            "unreachable_since": None if since is None else since.isoformat(),
        },
        "tasks": tasks,
    }
    return JSONResponse(body, status_code=200 if ready else 503)


@ops.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics_route(store: StoreDep, metrics: MetricsDep, monitor: MonitorDep) -> Response:
    metrics.model_version.clear()
    for loaded in store.loaded():
        metrics.model_version.labels(loaded.task, loaded.name, loaded.version).set(1)
    await run_in_threadpool(set_drift_gauges, store, monitor, metrics)
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


def set_drift_gauges(store: ModelStore, monitor: Monitor, metrics: Metrics) -> None:
    """The PSI gauges of the tasks whose window has enough rows (PSI is computed again
    only for a window that changed since the last read)."""
    metrics.feature_psi.clear()
    metrics.score_psi.clear()
    metrics.window_rows.clear()
    for task in store.tasks:
        d = monitor.drift(task, store.get(task))
        metrics.window_rows.labels(task).set(d.window_rows)
        if d.score is not None and math.isfinite(d.score.psi):
            metrics.score_psi.labels(task).set(d.score.psi)
        for f in d.features:
            if math.isfinite(f.psi):
                metrics.feature_psi.labels(task, f.name).set(f.psi)
