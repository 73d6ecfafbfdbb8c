"""Every open deal scored as of the review's date through the API's own path, ranked by
the money at risk.

The deals go through ``serving.scoring.score_tables`` (the training feature code, the
calibrated model, the trend 7 and 28 days earlier) and the deal endpoint's results
(``serving.endpoints.DEALS.file_results``: score, grade, percentile, risk flags with
evidence, reasons, warnings), as ``leadscore score`` and ``POST /v1/deals/score`` do.

Money at risk = amount x max(0, stage win rate - probability): the stage win rate
(``stage_win_rates`` in the model's metadata, from its training deals) is what a deal in
that stage usually brings in, and what a stage-weighted pipeline counts on; the gap below
it, in money, is how much of that the model does not expect this deal to deliver. A deal
doing better than its stage counts for nothing, a large deal a little below its stage can
outrank a small one far below it, and the sum over the deals is how far the
stage-weighted pipeline overstates what the model expects.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from features.schema import TABLES, CRMTables
from features.tasks import TASKS
from review.deals import DealFacts
from review.schemas import AtRisk, AtRiskDeal
from serving.batch import CHUNK_ROWS, file_gaps
from serving.models import LoadedModel
from serving.schemas import DealResult
from serving.scoring import TREND_DAYS, score_tables
from serving.settings import ScoringSettings

TASK = "deal_close"


def money_at_risk(amount: float | None, probability: float, stage_rate: float | None) -> float:
    """amount x max(0, stage win rate - probability); 0 without an amount or a rate."""
    if amount is None or amount != amount or stage_rate is None:
        return 0.0
    return float(amount) * max(0.0, float(stage_rate) - probability)


def stage_rates(model: LoadedModel) -> dict[str, float]:
    metadata = {**model.metadata, **getattr(model.model, "metadata", {})}
    return {str(k): float(v) for k, v in (metadata.get("stage_win_rates") or {}).items()}


def score_open_deals(
    model: LoadedModel, tables: CRMTables, facts: DealFacts, settings: ScoringSettings,
    progress: Callable[[int], None] | None = None,
) -> list[DealResult]:
    """The API's result for every deal open as of ``facts.as_of``, in ``facts`` order."""
    if model.task != TASK:
        raise ValueError(f"the at-risk deals need a {TASK} model, not {model.task}")
    endpoint = TASKS[TASK].endpoint.load()
    open_ = facts.deals.loc[facts.open_at(facts.as_of)]
    ids = [str(i) for i in open_.index]
    rows = open_[["account_id", "lead_id", "product"]].reset_index(drop=True)
    context = {name: tables.get(name) for name in TABLES}
    gaps = file_gaps(rows, "opportunity_id", tables, context)
    as_of = facts.as_of.to_pydatetime()
    out: list[DealResult] = []
    for start in range(0, len(ids), CHUNK_ROWS):
        chunk = slice(start, start + CHUNK_ROWS)
        scored = score_tables(model, tables, ids[chunk], as_of, True, gaps[chunk],
                              trend_days=TREND_DAYS)
        out += list(endpoint.file_results(model, scored, settings))
        if progress is not None:
            progress(len(ids[chunk]))
    return out


def rank_at_risk(
    results: list[DealResult], facts: DealFacts, rates: dict[str, float]
) -> AtRisk:
    """The scored deals with their money at risk, most first (then the larger amount)."""
    d = facts.deals
    deals = []
    for r in results:
        row = d.loc[r.opportunity_id]
        amount = None if pd.isna(row["amount"]) else float(row["amount"])
        rate = rates.get(r.stage)
        close = row["close_date"]
        deals.append(AtRiskDeal(
            rank=0, opportunity_id=r.opportunity_id, owner_id=str(row["owner"]),
            account_id=str(row["account_id"]), product=str(row["product"]), amount=amount,
            close_date=None if pd.isna(close) else close.to_pydatetime(),
            stage_win_rate=rate, money_at_risk=round(money_at_risk(amount, r.probability, rate), 2),
            result=r,
        ))
    deals.sort(key=lambda x: (-x.money_at_risk, -(x.amount or 0.0), x.opportunity_id))
    for i, deal in enumerate(deals, start=1):
        deal.rank = i
    return AtRisk(
        open_deals=len(deals),
        open_amount=float(sum(x.amount or 0.0 for x in deals)),
        money_at_risk=round(sum(x.money_at_risk for x in deals), 2),
        owners=sorted({x.owner_id for x in deals}),
        deals=deals,
    )
