"""What the review knows of every deal as of a date, read from the contract's tables.

``opportunities`` holds each deal's latest values; as of a date in the past the stage,
amount and expected close date are read from ``opportunity_history`` (its last row at or
before the date), and a deal closed after the date is still open then. Nothing after
``as_of`` is read, so a review of a past date shows what a manager saw that day.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.schema import OPEN_STAGES, CRMTables
from features.sets import SEGMENT_EMPLOYEES

WON_ORDER = len(OPEN_STAGES)
"""closed_won ranks after every open stage: a won deal went through all of them."""

DIMENSIONS: dict[str, str] = {
    "owner": "owner",
    "industry": "industry",
    "size": "company size",
    "source": "lead source",
    "product": "product",
}
"""The breakdowns of the funnel, with the heading a manager reads."""

UNKNOWN = "unknown"
NO_LEAD = "no lead (renewal, expansion)"


def stage_order(stage: pd.Series) -> pd.Series:
    """0-4 for the open stages in order, 5 for closed_won, -1 for closed_lost and after."""
    order = {s: i for i, s in enumerate(OPEN_STAGES)} | {"closed_won": WON_ORDER}
    return stage.astype("object").map(order).fillna(-1).astype(int)


def size_of(employees: pd.Series) -> pd.Series:
    """SMB, mid-market or enterprise by head count (the segments of the account models)."""
    small, large = SEGMENT_EMPLOYEES
    e = employees.astype("float64")
    out = np.where(e >= large, "enterprise", np.where(e >= small, "mid_market", "smb"))
    return pd.Series(np.where(e.isna(), UNKNOWN, out), index=employees.index)


@dataclass(frozen=True)
class DealFacts:
    """Every deal created by ``as_of``, its history up to then, and its breakdown values."""

    as_of: pd.Timestamp
    deals: pd.DataFrame
    """Indexed by opportunity_id: created_at, closed_at (NaT while open as of the date),
    is_won (False while open), amount and close_date as of the date, stage (the last open
    stage; None when closed or without history), and one column per ``DIMENSIONS``."""
    history: pd.DataFrame
    """opportunity_history rows at or before the date, by deal then time, with ``order``."""

    def open_at(self, t: pd.Timestamp) -> pd.Series:
        """Which deals were open at ``t`` (created by then, not closed by then)."""
        d = self.deals
        return (d["created_at"] <= t) & ~(d["closed_at"] <= t).fillna(False)


def _last_known(hist: pd.DataFrame, column: str) -> pd.Series:
    """Per deal, the last non-blank value of ``column`` in ``hist`` (sorted by time)."""
    known = hist.loc[hist[column].notna(), ["opportunity_id", column]]
    return known.groupby("opportunity_id", sort=False)[column].last()


def deal_facts(tables: CRMTables, as_of: pd.Timestamp) -> DealFacts:
    """The deals as of ``as_of`` (every timestamp after it is ignored)."""
    opps = tables.opportunities
    opps = opps.loc[opps["created_at"] <= as_of].reset_index(drop=True)
    ids = opps["opportunity_id"].astype(str)
    hist = tables.opportunity_history
    hist = hist.loc[hist["changed_at"] <= as_of]
    hist = hist.assign(opportunity_id=hist["opportunity_id"].astype(str),
                       stage=hist["stage"].astype("object"))
    hist = hist.loc[hist["opportunity_id"].isin(set(ids))]
    hist = hist.sort_values(["opportunity_id", "changed_at"], kind="stable")
    hist = hist.assign(order=stage_order(hist["stage"])).reset_index(drop=True)

    closed_at = opps["closed_at"].where(opps["closed_at"] <= as_of)
    deals = pd.DataFrame({
        "created_at": opps["created_at"],
        "closed_at": closed_at,
        "is_won": opps["is_won"].fillna(False).astype(bool) & closed_at.notna(),
        "owner": opps["owner_id"].astype("object").fillna(UNKNOWN),
        "product": opps["product"].astype("object").fillna(UNKNOWN),
        "account_id": opps["account_id"].astype("object"),
        "lead_id": opps["lead_id"].astype("object"),
    })
    deals.index = pd.Index(ids.to_numpy(), name="opportunity_id")
    latest_amount = opps["amount"].set_axis(deals.index)
    latest_close = opps["close_date"].set_axis(deals.index)
    deals["amount"] = _last_known(hist, "amount").reindex(deals.index).fillna(latest_amount)
    deals["close_date"] = _last_known(hist, "close_date").reindex(deals.index).fillna(
        latest_close)
    open_rows = hist.loc[hist["order"].between(0, WON_ORDER - 1)]
    stage = open_rows.groupby("opportunity_id", sort=False)["stage"].last()
    deals["stage"] = stage.reindex(deals.index).where(deals["closed_at"].isna(), None)

    accounts = tables.accounts.assign(account_id=tables.accounts["account_id"].astype(str))
    accounts = accounts.set_index("account_id")
    industry = accounts["industry"].astype("object").fillna(UNKNOWN)
    deals["industry"] = deals["account_id"].map(industry).fillna(UNKNOWN)
    deals["size"] = deals["account_id"].map(size_of(accounts["employees"])).fillna(UNKNOWN)
    leads = tables.leads.assign(lead_id=tables.leads["lead_id"].astype(str)).set_index("lead_id")
    source = deals["lead_id"].map(leads["source"].astype("object").fillna(UNKNOWN))
    deals["source"] = source.where(deals["lead_id"].notna(), NO_LEAD).fillna(UNKNOWN)
    return DealFacts(as_of=as_of, deals=deals, history=hist)


def stage_entries(facts: DealFacts) -> pd.DataFrame:
    """One row per deal and open stage it entered: ``entered_at`` (its first row in that
    stage), ``converted`` (a later row in a later stage or closed_won, by the date) and
    ``still_open`` (not converted, and open as of the date)."""
    h = facts.history
    rows = h.loc[h["order"].between(0, WON_ORDER - 1)]
    first = rows.groupby(["opportunity_id", "order"], sort=False)["changed_at"].min()
    entries = first.rename("entered_at").reset_index()
    converted = np.zeros(len(entries), dtype=bool)
    for n in range(WON_ORDER):
        later = h.loc[h["order"] > n].groupby("opportunity_id", sort=False)["changed_at"].max()
        mine = (entries["order"] == n).to_numpy()
        reached = entries.loc[mine, "opportunity_id"].map(later)
        converted[mine] = (reached > entries.loc[mine, "entered_at"]).fillna(False).to_numpy()
    entries["converted"] = converted
    is_open = facts.deals["closed_at"].isna()
    entries["still_open"] = ~converted & entries["opportunity_id"].map(is_open).to_numpy()
    entries["stage"] = [OPEN_STAGES[i] for i in entries["order"]]
    return entries


def stage_visits(facts: DealFacts) -> pd.DataFrame:
    """One row per stay in an open stage that ended by the date: ``entered_at`` (the row
    that moved the deal into it), ``left_at`` (the next row in another stage) and ``days``.
    A deal that moves back and returns stays twice."""
    h = facts.history
    changed = h["stage"].ne(h.groupby("opportunity_id", sort=False)["stage"].shift())
    runs = h.loc[changed, ["opportunity_id", "stage", "order", "changed_at"]]
    left = runs.groupby("opportunity_id", sort=False)["changed_at"].shift(-1)
    runs = runs.assign(entered_at=runs["changed_at"], left_at=left)
    runs = runs.loc[runs["order"].between(0, WON_ORDER - 1) & runs["left_at"].notna()]
    days = (runs["left_at"] - runs["entered_at"]).dt.total_seconds() / 86_400
    return runs.assign(days=days).drop(columns="changed_at").reset_index(drop=True)
