"""The review as typed, JSON-serialisable models: what ``review.json`` holds and the page
shows. ``forecast`` is filled by the forecast when it is computed; the page says "not
computed" otherwise, never a made-up figure."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, SerializeAsAny

from review.periods import PeriodKind
from serving.schemas import DealResult, ModelRef


class Period(BaseModel):
    label: str = Field(description="2025-12 for a month, 2025-Q4 for a quarter")
    start: datetime
    end: datetime = Field(description="exclusive")
    complete: bool = Field(description="false for the period holding the review's date: "
                           "its figures are to date")


class StageConversion(BaseModel):
    stage: str
    next_stage: str
    entered: int = Field(description="deals whose first entry into the stage fell in the period")
    converted: int = Field(description="of those, deals that reached the next stage or beyond")
    still_open: int = Field(description="of those, not converted yet and still open")
    rate: float | None = Field(description="converted / entered; null: none entered")


class StageDays(BaseModel):
    stage: str
    stays: int = Field(description="stays in the stage that ended in the period")
    median_days: float | None


class FunnelMetrics(BaseModel):
    """One group's funnel in one period (the definitions are in review.metrics)."""

    period: str
    conversion: list[StageConversion]
    won: int
    lost: int
    win_rate: float | None = Field(description="won / (won + lost); null: nothing closed")
    won_amount: float
    average_won_size: float | None
    cycle_median_days: float | None = Field(description="created to closed, won deals")
    cycle_mean_days: float | None
    days_in_stage: list[StageDays]
    open_deals: int = Field(description="open at the period's end (the date for the current)")
    open_amount: float
    velocity_per_day: float | None = Field(
        description="open deals x win rate x average won size / mean cycle days")


class GroupFunnel(BaseModel):
    value: str
    periods: list[FunnelMetrics] = Field(description="in the order of Review.periods")


class Breakdown(BaseModel):
    dimension: Literal["owner", "industry", "size", "source", "product"]
    label: str
    groups: list[GroupFunnel] = Field(description="largest open pipeline first")


class Coverage(BaseModel):
    period: str
    target: float
    won_so_far: float
    remaining: float = Field(description="target - won so far (negative: target exceeded)")
    deals_closing: int = Field(description="open deals with an expected close date in the period")
    open_closing: float = Field(description="their amount")
    ratio: float | None = Field(description="open_closing / remaining; null: target met")


ChangeKind = Literal["new", "pulled_in", "increased", "won", "decreased", "pushed_out", "lost"]


class ChangeLine(BaseModel):
    kind: ChangeKind
    label: str
    count: int
    amount: float = Field(description="the deals' amount as of the date (at close if closed)")
    amount_change: float | None = Field(
        default=None, description="increased / decreased: the amounts' change over the week")
    deals: list[str] = Field(description="the deals, largest amount first")


class WeekChanges(BaseModel):
    since: datetime
    until: datetime
    lines: list[ChangeLine]


class AtRiskDeal(BaseModel):
    rank: int = Field(description="1: the most money at risk")
    opportunity_id: str
    owner_id: str
    account_id: str
    product: str
    amount: float | None
    close_date: datetime | None
    stage_win_rate: float | None = Field(description="the model's win rate of the deal's stage")
    money_at_risk: float = Field(
        description="amount x max(0, stage win rate - probability)")
    result: DealResult = Field(description="what POST /v1/deals/score answers for the deal")


class AtRisk(BaseModel):
    open_deals: int
    open_amount: float
    money_at_risk: float = Field(description="the sum over the open deals")
    owners: list[str]
    deals: list[AtRiskDeal] = Field(description="every open deal scored, most at risk first")


class MethodScore(BaseModel):
    method: str
    label: str
    wape: float = Field(description="sum of |P50 - actual| / sum of actual")
    held: int = Field(description="periods whose actual fell inside P10-P90")
    periods: int
    bias: float = Field(description="(sum of P50 - sum of actual) / sum of actual")


class BacktestSection(BaseModel):
    """What the page and ``review.json`` show of the last backtest."""

    run_id: str
    ran_at: datetime | None = Field(description="when the backtest ran (UTC)")
    data: str = Field("", description="the data folder it backtested, when recorded")
    same_data: bool | None = Field(None, description="whether that is the reviewed folder; "
                                   "null when either is unknown")
    period_kind: str
    first_period: str
    last_period: str
    periods: int
    methods: list[MethodScore]
    reduction_vs_crm_default: float | None = Field(
        description="1 - our WAPE / the CRM default's")
    reduction_vs_stage_rate: float | None = Field(
        description="1 - our WAPE / the stage-rate weighted pipeline's")


class Review(BaseModel):
    as_of: datetime
    period_kind: PeriodKind
    periods: list[Period] = Field(description="oldest first; the last holds the date")
    data_start: datetime
    data_end: datetime
    model: ModelRef
    overall: list[FunnelMetrics]
    breakdowns: list[Breakdown]
    coverage: Coverage | None = Field(description="null without a target")
    changes: WeekChanges
    at_risk: AtRisk
    forecast: SerializeAsAny[BaseModel] | None = Field(
        default=None, description="the forecast of this and the next period, when computed")
    backtest: BacktestSection | None = Field(
        default=None, description="the last `leadscore pipeline backtest` run; null when "
        "none has run")
    warnings: list[str] = Field(default_factory=list)

    @property
    def current(self) -> Period:
        return self.periods[-1]
