"""A CRM's funnel at a glance: what `leadscore demo` prints before any model is trained.

The deal figures are the pipeline review's metrics (``review.metrics``) over the whole
history: one definition of each.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from features.schema import OPEN_STAGES, CRMTables
from review import metrics
from review.build import data_span
from review.deals import deal_facts, stage_entries, stage_visits
from review.periods import all_time


@dataclass(frozen=True)
class FunnelSummary:
    leads: int
    qualified: int
    qualification_rate: float
    opportunities: int
    reached: dict[str, int]
    """Deals that entered each stage (at least one history row in it)."""
    closed: int
    won: int
    win_rate: float
    median_days_in_stage: dict[str, float]
    median_won_cycle_days: float
    period: tuple[pd.Timestamp, pd.Timestamp]


def funnel_summary(tables: CRMTables) -> FunnelSummary:
    leads = tables.leads
    first, last = data_span(tables)
    window = all_time(min(first, leads["created_at"].min()) if len(leads) else first, last)
    facts = deal_facts(tables, last)
    everyone = metrics.overall(facts)
    reached = metrics.entered(stage_entries(facts), window, everyone)["deals"]
    days = metrics.days_in_stage(stage_visits(facts), window, everyone)["median"]
    wins = metrics.win_rate(facts, window, everyone)
    cycle = metrics.sales_cycle(facts, window, everyone)
    won = int(wins["won"].sum())
    closed = won + int(wins["lost"].sum())
    return FunnelSummary(
        leads=len(leads),
        qualified=int(leads["qualified_at"].notna().sum()),
        qualification_rate=float(leads["qualified_at"].notna().mean()) if len(leads) else 0.0,
        opportunities=len(tables.opportunities),
        reached={s: int(reached.get((metrics.ALL, s), 0)) for s in OPEN_STAGES},
        closed=closed,
        won=won,
        win_rate=won / closed if closed else 0.0,
        median_days_in_stage={s: float(days.get((metrics.ALL, s), float("nan")))
                              for s in OPEN_STAGES},
        median_won_cycle_days=float(cycle["median"].get(metrics.ALL, float("nan"))),
        period=(window.start, last),
    )
