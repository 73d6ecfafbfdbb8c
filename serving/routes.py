"""The HTTP routes: /v1 scoring and model listing (keyed), health and metrics (open).

Scoring routes are ``async def`` and score small batches right on the event loop: for one
lead (~1.2 ms of work) the threadpool hop of a plain ``def`` route cost 17-33 %
of the throughput (benchmarks/README.md). Batches over ``inline_max_rows`` go to the
threadpool so one large batch does not stall every other caller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from serving.deps import (
    DealModelDep,
    LeadModelDep,
    MetricsDep,
    NowDep,
    SettingsDep,
    StoreDep,
    require_api_key,
)
from serving.metrics import Metrics
from serving.schemas import (
    DealBatch,
    DealScores,
    ErrorBody,
    LeadBatch,
    LeadScores,
    ModelDescription,
    ModelList,
)
from serving.scoring import (
    context_warnings,
    deal_results,
    deal_tables,
    grading,
    lead_results,
    lead_tables,
    request_problems,
    risk_rules,
    score_tables,
)
from serving.settings import ServingSettings

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


async def _run(rows: int, settings: ServingSettings, work: Callable[[], T]) -> T:
    """Small batches inline on the loop, large ones in the threadpool."""
    if rows <= settings.inline_max_rows:
        return work()
    return await run_in_threadpool(work)


def _observe(metrics: Metrics, task: str, scores: list[int]) -> None:
    metrics.scored_rows.labels(task).inc(len(scores))
    histogram = metrics.scores.labels(task)
    for s in scores:
        histogram.observe(s)


@v1.post("/leads/score", response_model=LeadScores, summary="Score a batch of leads")
async def score_leads(
    batch: LeadBatch,
    model: LeadModelDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    now: NowDep,
    explain: bool = ExplainQuery,
) -> LeadScores:
    """P(qualified within the model's horizon), a 0-100 score, a grade and reasons."""
    problems = request_problems(batch, now)
    if problems:
        raise RequestValidationError(problems)
    ids = [lead.lead_id for lead in batch.leads]

    def work() -> LeadScores:
        scored = score_tables(model, lead_tables(batch), ids, now, explain)
        return LeadScores(results=lead_results(model, scored, grading(settings)))

    out = await _run(len(ids), settings, work)
    _observe(metrics, "lead_qualification", [r.score for r in out.results])
    return out


@v1.post("/deals/score", response_model=DealScores, summary="Score a batch of open deals")
async def score_deals(
    batch: DealBatch,
    model: DealModelDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    now: NowDep,
    explain: bool = ExplainQuery,
) -> DealScores:
    """P(won), score, grade, expected value, risk flags with evidence, and reasons."""
    problems = request_problems(batch, now)
    if problems:
        raise RequestValidationError(problems)
    ids = [deal.opportunity_id for deal in batch.deals]

    def work() -> DealScores:
        scored = score_tables(model, deal_tables(batch), ids, now, explain)
        amounts = [
            deal.amount if deal.amount is not None else a
            for deal, a in zip(batch.deals, scored.amounts(), strict=True)
        ]
        results = deal_results(model, scored, amounts, grading(settings), risk_rules(settings),
                               context_warnings(batch))
        return DealScores(results=results)

    out = await _run(len(ids), settings, work)
    _observe(metrics, "deal_close", [r.score for r in out.results])
    return out


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


def _trained_period(metadata: dict[str, Any]) -> dict[str, Any] | None:
    keys = ("trained_from", "trained_to", "test_from", "test_to")
    found = {k: metadata[k] for k in keys if metadata.get(k) is not None}
    return found or None


@v1.get("/models", response_model=ModelList, summary="The models being served")
async def list_models(store: StoreDep) -> ModelList:
    """Name, version, alias, training period, test metrics and feature set of each model."""
    out = []
    for loaded in store.loaded():
        metadata = {**getattr(loaded.model, "metadata", {}), **loaded.metadata}
        fs = loaded.model.feature_set
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
                loaded_at=loaded.loaded_at,
            )
        )
    return ModelList(models=out)


@ops.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@ops.get("/readyz", summary="A model is loaded for every task")
async def readyz(store: StoreDep) -> JSONResponse:
    """200 only when every task has a model; otherwise 503 with what is missing and why."""
    tasks: dict[str, Any] = {}
    for task in store.tasks:
        loaded = store.get(task)
        failure = store.failure(task)
        tasks[task] = {
            "loaded": loaded is not None,
            "version": None if loaded is None else loaded.version,
            "last_error": None if failure is None else failure.error,
            "failed_version": None if failure is None else failure.version,
        }
    ready = store.ready()
    return JSONResponse({"ready": ready, "tasks": tasks}, status_code=200 if ready else 503)


@ops.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics_route(store: StoreDep, metrics: MetricsDep) -> Response:
    metrics.model_version.clear()
    for loaded in store.loaded():
        metrics.model_version.labels(loaded.task, loaded.name, loaded.version).set(1)
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
