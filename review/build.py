"""The review as of a date: a pure function of the tables, the date and the deal model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from features.schema import OPEN_STAGES, CRMTables
from review import metrics as m
from review.at_risk import rank_at_risk, score_open_deals, stage_rates
from review.changes import WEEK, week_changes
from review.deals import DIMENSIONS, DealFacts, deal_facts, stage_entries, stage_visits
from review.periods import PeriodKind, Window, check_kind, utc, windows
from review.schemas import (
    Breakdown,
    Coverage,
    FunnelMetrics,
    GroupFunnel,
    Period,
    Review,
    StageConversion,
    StageDays,
)
from serving.models import LoadedModel
from serving.results import model_ref
from serving.settings import ScoringSettings


class ReviewInputError(ValueError):
    """The review cannot be built as asked; the message says why and what to change."""


EVENT_COLUMNS: dict[str, tuple[str, ...]] = {
    "accounts": ("created_at",),
    "leads": ("created_at", "qualified_at", "disqualified_at"),
    "opportunities": ("created_at", "closed_at"),
    "opportunity_history": ("changed_at",),
    "activities": ("occurred_at",),
    "account_signals": ("observed_at",),
}
"""The columns that record something that happened (an expected close date is a plan)."""


def _when(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%d %H:%M UTC")


def data_span(tables: CRMTables) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first deal's creation and the latest event of any table."""
    latest = [tables.get(t)[c].max() for t, cols in EVENT_COLUMNS.items() for c in cols]
    latest = [t for t in latest if not pd.isna(t)]
    first = tables.opportunities["created_at"].min()
    if not latest or pd.isna(first):
        raise ReviewInputError("the data holds no deals: nothing to review")
    return utc(first), utc(max(latest))


Rows = dict[Any, dict[str, Any]]


def _rows(frame: pd.DataFrame) -> Rows:
    """A metric frame as {index: {column: value}}: one lookup per group, not one ``.loc``."""
    return frame.to_dict("index")


def _conversion(rows: Rows, group: str) -> list[StageConversion]:
    out = []
    for stage, nxt in zip(OPEN_STAGES, OPEN_STAGES[1:], strict=False):
        row = rows.get((group, stage))
        if row is None:
            out.append(StageConversion(stage=stage, next_stage=nxt, entered=0, converted=0,
                                       still_open=0, rate=None))
        else:
            out.append(StageConversion(
                stage=stage, next_stage=nxt, entered=int(row["entered"]),
                converted=int(row["converted"]),
                still_open=int(row["still_open"]),
                rate=m.number(row["rate"])))
    return out


def _days(rows: Rows, group: str) -> list[StageDays]:
    out = []
    for stage in OPEN_STAGES:
        row = rows.get((group, stage))
        out.append(StageDays(
            stage=stage, stays=0 if row is None else int(row["stays"]),
            median_days=None if row is None else m.number(row["median"])))
    return out


def _get(rows: Rows, group: str, column: str) -> float | None:
    row = rows.get(group)
    return None if row is None else m.number(row[column])


def funnel(
    facts: DealFacts, entries: pd.DataFrame, visits: pd.DataFrame, window: Window,
    groups: pd.Series,
) -> dict[str, FunnelMetrics]:
    """Every metric of ``review.metrics`` for each group of ``groups`` in one period."""
    conv = _rows(m.conversion(entries, window, groups))
    wins = _rows(m.win_rate(facts, window, groups))
    size = _rows(m.won_size(facts, window, groups))
    cycle = _rows(m.sales_cycle(facts, window, groups))
    days = _rows(m.days_in_stage(visits, window, groups))
    pipe = _rows(m.open_pipeline(facts, window, groups))
    out = {}
    for group in pd.unique(groups):
        g = str(group)
        rate, average = _get(wins, g, "rate"), _get(size, g, "average")
        cycle_mean = _get(cycle, g, "mean")
        open_deals = int(_get(pipe, g, "deals") or 0)
        out[g] = FunnelMetrics(
            period=window.label,
            conversion=_conversion(conv, g),
            won=int(_get(wins, g, "won") or 0), lost=int(_get(wins, g, "lost") or 0),
            win_rate=rate, won_amount=_get(size, g, "won_amount") or 0.0,
            average_won_size=average, cycle_median_days=_get(cycle, g, "median"),
            cycle_mean_days=cycle_mean, days_in_stage=_days(days, g),
            open_deals=open_deals, open_amount=_get(pipe, g, "amount") or 0.0,
            velocity_per_day=m.velocity(open_deals, rate, average, cycle_mean),
        )
    return out


def _active(periods: list[FunnelMetrics]) -> bool:
    return any(p.open_deals or p.won or p.lost or any(c.entered for c in p.conversion)
               for p in periods)


def build_review(
    tables: CRMTables,
    model: LoadedModel,
    settings: ScoringSettings,
    as_of: pd.Timestamp | None = None,
    period: str = "month",
    target: float | None = None,
    history_periods: int = 3,
    progress: Callable[[int], None] | None = None,
) -> Review:
    """The review as of ``as_of`` (default: the data's latest event; any time from the
    day of the first deal to the end of the day of the latest event) for the ``period``
    holding it and the ``history_periods`` before it; ``target``: the period's bookings
    target, for the coverage. Raises :class:`ReviewInputError` on a bad request."""
    try:
        kind: PeriodKind = check_kind(period)
    except ValueError as exc:
        raise ReviewInputError(str(exc)) from None
    if target is not None and not target > 0:
        raise ReviewInputError(f"the target must be a positive amount, not {target}")
    first, last = data_span(tables)
    stamp = last if as_of is None else utc(as_of)
    # By day: an export taken at noon holds the morning, and a review as of that day is
    # what a manager asks for.
    if not first.floor("D") <= stamp < last.floor("D") + pd.Timedelta(days=1):
        raise ReviewInputError(
            f"{_when(stamp)} is outside the data, which runs from {_when(first)} (the "
            f"first deal) to {_when(last)} (the latest event): give --as-of between them")
    facts = deal_facts(tables, stamp)
    if not facts.open_at(stamp).any():
        raise ReviewInputError(f"no deal is open as of {_when(stamp)}: nothing to review")
    spans = windows(stamp, kind, history_periods)
    entries, visits = stage_entries(facts), stage_visits(facts)

    everyone = m.overall(facts)
    overall = [funnel(facts, entries, visits, w, everyone)[m.ALL] for w in spans]
    breakdowns = []
    for dim, label in DIMENSIONS.items():
        groups = facts.deals[dim].astype("object")
        per = [funnel(facts, entries, visits, w, groups) for w in spans]
        found = [GroupFunnel(value=g, periods=[p[g] for p in per]) for g in per[-1]]
        found = [g for g in found if _active(g.periods)]
        found.sort(key=lambda g: (-g.periods[-1].open_amount, g.value))
        breakdowns.append(Breakdown(dimension=dim, label=label, groups=found))  # type: ignore[arg-type]

    current = spans[-1]
    coverage = None
    if target is not None:
        n, closing = m.closing_in(facts, current)
        won = overall[-1].won_amount
        coverage = Coverage(period=current.label, target=target, won_so_far=won,
                            remaining=target - won, deals_closing=n, open_closing=closing,
                            ratio=m.coverage(closing, target, won))

    results = score_open_deals(model, tables, facts, settings, progress)
    at_risk = rank_at_risk(results, facts, stage_rates(model))
    warnings = []
    if not stage_rates(model):
        warnings.append("the model carries no stage win rates: money at risk is 0 for "
                        "every deal; retrain it to rank the deals")
    return Review(
        as_of=stamp.to_pydatetime(),
        period_kind=kind,
        periods=[Period(label=w.label, start=w.start.to_pydatetime(),
                        end=w.end.to_pydatetime(), complete=w.complete) for w in spans],
        data_start=first.to_pydatetime(),
        data_end=last.to_pydatetime(),
        model=model_ref(model),
        overall=overall,
        breakdowns=breakdowns,
        coverage=coverage,
        changes=week_changes(facts, deal_facts(tables, stamp - WEEK)),
        at_risk=at_risk,
        warnings=warnings,
    )
