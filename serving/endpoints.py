"""The serving side of each task's declaration: request and result schemas, and how a
request becomes scores and results.

``features.tasks`` names an endpoint per task (``Ref("serving.endpoints:LEADS")``); the
routes, batch scoring of files and the load-time check read everything entity-specific
from here, so neither branches on task names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from features.columns import AnyTables, ColumnTables
from serving.models import LoadedModel
from serving.requests import (
    account_gaps,
    account_tables,
    deal_gaps,
    deal_tables,
    lead_gaps,
    lead_tables,
)
from serving.results import (
    account_warnings,
    deal_records,
    expansion_results,
    grading,
    lead_records,
    list_adapter,
    renewal_results,
    risk_rules,
    validated,
)
from serving.schemas import (
    AccountBatch,
    AccountDealIn,
    AccountIn,
    AccountResult,
    AccountScores,
    ActivityIn,
    CustomerAccountIn,
    DealBatch,
    DealIn,
    DealResult,
    DealScores,
    HistoryIn,
    LeadBatch,
    LeadIn,
    LeadResult,
    LeadScores,
    OpportunityIn,
    SignalIn,
)
from serving.scoring import TREND_DAYS, Gaps, Scored, entity_features, score_tables
from serving.settings import ScoringSettings
from serving.what_if import what_if


@dataclass(frozen=True)
class Endpoint:
    """One scoring route's schemas and the steps between a request and its answer."""

    summary: str
    description: str
    batch: type[BaseModel]
    """The request body."""
    response: type[BaseModel]
    record: type[BaseModel]
    """One row of the entity's table in a batch file (``leadscore score``)."""
    items: Callable[[Any], Sequence[Any]]
    """The batch's entities, in order."""
    tables: Callable[[Any], ColumnTables]
    """The batch as the contract's tables."""
    respond: Callable[..., BaseModel]
    """``(batch, models, tables, ids, now, ask, settings) -> response``; ``models`` in
    the order of the route's tasks."""
    scores: Callable[[Any], list[list[int]]]
    """The 0-100 scores of a response, per task (for the metrics)."""
    file_results: Callable[..., Sequence[BaseModel]]
    """``(model, scored, settings) -> results`` for a batch file, one task at a time."""
    file_records: Callable[..., list[dict[str, Any]]]
    """:attr:`file_results` as their JSON (``model_dump(mode="json")``), built without
    the models where the results allow it (what a batch file writes)."""
    smoke: Callable[[datetime], Any]
    """A plain made-up batch of one entity: a model that cannot score it is refused."""
    needs: tuple[str, ...] = ()
    """Contract tables a batch file's ``--data`` must hold."""


@dataclass(frozen=True)
class Ask:
    """What a request asks for beyond the scores (the route's query parameters)."""

    explain: bool = True
    """Reasons (pred_contrib)."""
    trend: bool = True
    """The scores 7 and 28 days earlier."""
    what_if: bool = False
    """Up to three actions that would raise each score (``serving.what_if``)."""
    watch: Callable[[LoadedModel, Scored], None] | None = None
    """Given what each model scored for the answer (the monitoring window,
    ``serving.monitoring``); what-if re-scores and the load-time check are not."""

    def observe(self, model: LoadedModel, scored: Scored) -> None:
        if self.watch is not None:
            self.watch(model, scored)

    @property
    def trend_days(self) -> tuple[int, ...]:
        return TREND_DAYS if self.trend else ()


def suggest(
    results: Sequence[Any], model: LoadedModel, tables: AnyTables, scored: Scored,
    now: datetime, settings: ScoringSettings, gaps: Sequence[Gaps] = (),
) -> None:
    """Fill each result's ``what_if`` (results that are None: the task does not apply)."""
    found = what_if(model, tables, scored, now, grading(model, settings), gaps)
    for result, suggestions in zip(results, found, strict=True):
        if result is not None:
            result.what_if = suggestions


def _smoke_activity(now: datetime) -> ActivityIn:
    return ActivityIn(
        activity_id="smoke-a1",
        occurred_at=now - timedelta(days=2),
        account_id="smoke-acc",
        contact_id="smoke-c1",
        type="pricing_page_visit",
        direction="inbound",
    )


def _lead_smoke(now: datetime) -> LeadBatch:
    lead = LeadIn(
        lead_id="smoke-lead", account_id="smoke-acc", created_at=now - timedelta(days=20),
        source="web_form", seniority="manager", employees=250,
        activities=[_smoke_activity(now)],
    )
    return LeadBatch(leads=[lead])


def _deal_smoke(now: datetime) -> DealBatch:
    created = now - timedelta(days=20)
    deal = DealIn(
        opportunity_id="smoke-deal", account_id="smoke-acc", owner_id="smoke-owner",
        created_at=created, amount=10_000.0, close_date=now + timedelta(days=30),
        history=[HistoryIn(changed_at=created, stage="prospecting", amount=10_000.0,
                           close_date=now + timedelta(days=30))],
        activities=[_smoke_activity(now)],
    )
    return DealBatch(deals=[deal])


def _lead_response(
    batch: LeadBatch,
    models: list[LoadedModel],
    tables: AnyTables,
    ids: list[str],
    now: datetime,
    ask: Ask,
    settings: ScoringSettings,
) -> LeadScores:
    (model,) = models
    gaps = lead_gaps(batch)
    scored = score_tables(model, tables, ids, now, ask.explain, gaps, trend_days=ask.trend_days)
    ask.observe(model, scored)
    results = _lead_file_results(model, scored, settings)
    if ask.what_if:
        suggest(results, model, tables, scored, now, settings, gaps)
    return LeadScores(results=results)


def _deal_response(
    batch: DealBatch,
    models: list[LoadedModel],
    tables: AnyTables,
    ids: list[str],
    now: datetime,
    ask: Ask,
    settings: ScoringSettings,
) -> DealScores:
    (model,) = models
    gaps = deal_gaps(batch)
    scored = score_tables(model, tables, ids, now, ask.explain, gaps, trend_days=ask.trend_days)
    ask.observe(model, scored)
    amounts = [
        deal.amount if deal.amount is not None else a
        for deal, a in zip(batch.deals, scored.amounts(), strict=True)
    ]
    results = _deal_file_results(model, scored, settings, amounts)
    if ask.what_if:
        suggest(results, model, tables, scored, now, settings, gaps)
    return DealScores(results=results)


def _lead_file_records(
    model: LoadedModel, scored: Scored, settings: ScoringSettings
) -> list[dict[str, Any]]:
    return lead_records(model, scored, grading(model, settings), settings.trend_steady_points)


def _lead_file_results(
    model: LoadedModel, scored: Scored, settings: ScoringSettings
) -> list[LeadResult]:
    return validated(LeadResult, _lead_file_records(model, scored, settings))


def _deal_file_records(
    model: LoadedModel, scored: Scored, settings: ScoringSettings,
    amounts: list[float | None] | None = None,
) -> list[dict[str, Any]]:
    return deal_records(model, scored, scored.amounts() if amounts is None else amounts,
                        grading(model, settings), risk_rules(settings),
                        settings.trend_steady_points)


def _deal_file_results(
    model: LoadedModel, scored: Scored, settings: ScoringSettings,
    amounts: list[float | None] | None = None,
) -> list[DealResult]:
    return validated(DealResult, _deal_file_records(model, scored, settings, amounts))


def _account_smoke(now: datetime) -> AccountBatch:
    won = now - timedelta(days=300)
    account = CustomerAccountIn(
        account_id="smoke-acc", created_at=now - timedelta(days=400), industry="software",
        employees=250,
        deals=[AccountDealIn(opportunity_id="smoke-deal", created_at=won - timedelta(days=40),
                             product="professional", amount=10_000.0, closed_at=won,
                             is_won=True)],
        activities=[_smoke_activity(now)],
        signals=[SignalIn(signal_id="smoke-s1", observed_at=now - timedelta(days=3),
                          signal="active_users", value=40.0)],
    )
    return AccountBatch(accounts=[account])


def _renewal_part(model: LoadedModel, scored: Scored, settings: ScoringSettings) -> list[Any]:
    return renewal_results(model, scored, grading(model, settings), risk_rules(settings),
                           settings.trend_steady_points)


def _expansion_part(model: LoadedModel, scored: Scored, settings: ScoringSettings) -> list[Any]:
    return expansion_results(model, scored, grading(model, settings),
                             settings.trend_steady_points)


Part = Callable[[LoadedModel, Scored, ScoringSettings], list[Any]]

ACCOUNT_PARTS: dict[str, tuple[str, Part]] = {
    "account_renewal": ("renewal", _renewal_part),
    "account_expansion": ("expansion", _expansion_part),
}
"""Per task of the accounts route: the field of the answer it fills, and how."""


def _account_parts(
    models: list[LoadedModel], tables: AnyTables, ids: list[str], now: datetime, ask: Ask,
    settings: ScoringSettings, gaps: list[Gaps],
) -> tuple[dict[str, list[Any]], Scored]:
    parts: dict[str, list[Any]] = {}
    scored: Scored | None = None
    entity = entity_features(tables, models[0].model.feature_set.entity_key, ids, now,
                             ask.trend_days)
    for model in models:
        scored = score_tables(model, tables, ids, now, ask.explain, gaps, entity,
                              ask.trend_days)
        ask.observe(model, scored)
        field, part = ACCOUNT_PARTS[model.task]
        parts[field] = part(model, scored, settings)
        if ask.what_if:
            suggest(parts[field], model, tables, scored, now, settings, gaps)
    assert scored is not None
    return parts, scored


def _account_response(
    batch: AccountBatch,
    models: list[LoadedModel],
    tables: AnyTables,
    ids: list[str],
    now: datetime,
    ask: Ask,
    settings: ScoringSettings,
) -> AccountScores:
    parts, scored = _account_parts(models, tables, ids, now, ask, settings,
                                   account_gaps(batch))
    unserved = [field for field, _ in ACCOUNT_PARTS.values() if field not in parts]
    for field in unserved:
        parts[field] = [None] * len(ids)
    renewals, expansions = parts["renewal"], parts["expansion"]
    warnings = account_warnings(renewals, expansions, scored, unserved)
    return AccountScores(results=[
        AccountResult(account_id=i, renewal=r, expansion=e, warnings=w)
        for i, r, e, w in zip(ids, renewals, expansions, warnings, strict=True)
    ])


def _account_scores(out: AccountScores) -> list[list[int]]:
    return [
        [r.renewal.score for r in out.results if r.renewal is not None],
        [r.expansion.score for r in out.results if r.expansion is not None],
    ]


def _account_file_results(
    model: LoadedModel, scored: Scored, settings: ScoringSettings
) -> list[AccountResult]:
    """One task's part of each account's answer; accounts it does not apply to are left out."""
    field, part = ACCOUNT_PARTS[model.task]
    return [AccountResult(**{"account_id": i, "renewal": None, "expansion": None, field: r})
            for i, r in zip(scored.ids, part(model, scored, settings), strict=True)
            if r is not None]


def _account_file_records(
    model: LoadedModel, scored: Scored, settings: ScoringSettings
) -> list[dict[str, Any]]:
    dumped: list[dict[str, Any]] = list_adapter(AccountResult).dump_python(
        _account_file_results(model, scored, settings), mode="json")
    return dumped


def _one_task_scores(out: LeadScores | DealScores) -> list[list[int]]:
    return [[r.score for r in out.results]]


LEADS = Endpoint(
    summary="Score a batch of leads",
    description="P(qualified within the model's horizon), a 0-100 score, a grade and reasons.",
    batch=LeadBatch,
    response=LeadScores,
    record=LeadIn,
    items=lambda batch: batch.leads,
    tables=lead_tables,
    respond=_lead_response,
    scores=_one_task_scores,
    file_results=_lead_file_results,
    file_records=_lead_file_records,
    smoke=_lead_smoke,
)

DEALS = Endpoint(
    summary="Score a batch of open deals",
    description="P(won), score, grade, expected value, risk flags with evidence, and reasons.",
    batch=DealBatch,
    response=DealScores,
    record=OpportunityIn,
    items=lambda batch: batch.deals,
    tables=deal_tables,
    respond=_deal_response,
    scores=_one_task_scores,
    file_results=_deal_file_results,
    file_records=_deal_file_records,
    smoke=_deal_smoke,
    needs=("opportunity_history",),
)

ACCOUNTS = Endpoint(
    summary="Score customer accounts: renewal and expansion",
    description="Per account, P(its next renewal is won) with churn-risk flags, and P(an "
    "expansion deal within 90 days), each with a score, a grade and reasons.",
    batch=AccountBatch,
    response=AccountScores,
    record=AccountIn,
    items=lambda batch: batch.accounts,
    tables=account_tables,
    respond=_account_response,
    scores=_account_scores,
    file_results=_account_file_results,
    file_records=_account_file_records,
    smoke=_account_smoke,
    needs=("opportunities",),
)
