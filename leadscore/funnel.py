"""A CRM's funnel at a glance: what `leadscore demo` prints before any model is trained."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from features.schema import OPEN_STAGES, CRMTables


@dataclass(frozen=True)
class FunnelSummary:
    leads: int
    qualified: int
    qualification_rate: float
    opportunities: int
    reached: dict[str, int]
    """Deals with at least one history row in each stage."""
    closed: int
    won: int
    win_rate: float
    median_days_in_stage: dict[str, float]
    median_won_cycle_days: float
    period: tuple[pd.Timestamp, pd.Timestamp]


def funnel_summary(tables: CRMTables) -> FunnelSummary:
    leads, opps, hist = tables.leads, tables.opportunities, tables.opportunity_history
    order = {s: i for i, s in enumerate(OPEN_STAGES)}
    h = hist.sort_values(["opportunity_id", "changed_at"], kind="stable")
    seen = h.drop_duplicates(["opportunity_id", "stage"])["stage"].value_counts()
    reached = {s: int(seen.get(s, 0)) for s in order}
    # Time in a stage = from the row that entered it to the next stage change.
    changes = h[h["stage"].ne(h.groupby("opportunity_id")["stage"].shift())]
    nxt = changes.groupby("opportunity_id")["changed_at"].shift(-1)
    days = (nxt - changes["changed_at"]).dt.total_seconds() / 86_400
    med = days.groupby(changes["stage"]).median()
    closed = opps[opps["closed_at"].notna()]
    won = closed[closed["is_won"].astype(bool)]
    cycle = (won["closed_at"] - won["created_at"]).dt.total_seconds() / 86_400
    times = pd.concat([leads["created_at"], opps["created_at"], hist["changed_at"]])
    return FunnelSummary(
        leads=len(leads),
        qualified=int(leads["qualified_at"].notna().sum()),
        qualification_rate=float(leads["qualified_at"].notna().mean()) if len(leads) else 0.0,
        opportunities=len(opps),
        reached=reached,
        closed=len(closed),
        won=len(won),
        win_rate=len(won) / len(closed) if len(closed) else 0.0,
        median_days_in_stage={s: float(med.get(s, float("nan"))) for s in OPEN_STAGES},
        median_won_cycle_days=float(cycle.median()) if len(cycle) else float("nan"),
        period=(times.min(), times.max()),
    )
