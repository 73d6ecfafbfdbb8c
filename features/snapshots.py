"""Snapshots: an entity as of a time t, with a label that uses only what happens after t.

A snapshot's features see rows dated strictly before ``as_of``; its label looks after it.
Snapshots are taken ``SNAPSHOT_LAG`` after the event that triggers them (lead creation,
deal creation, stage entry), so the triggering row itself is known, as it is to a CRM that
scores a record right after it changes. A label that cannot be known yet (its horizon runs
past the data's end, or the deal is still open) is NA, never a negative.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features import contracts, field_history
from features import point_in_time as pit
from features.schema import (
    LEADS,
    OPEN_STAGES,
    OPPORTUNITIES,
    TABLES,
    CRMTables,
    coerce_dtypes,
)

RENEWAL_WINDOW_DAYS = 120
"""A renewal is scored from this many days before its due date."""
SNAPSHOT_LAG = pd.Timedelta(minutes=1)
"""How long after the triggering event a snapshot is taken."""

_OUTCOME_TIMES: dict[str, tuple[str, ...]] = {
    "leads": ("qualified_at", "disqualified_at"),
    "opportunities": ("closed_at",),
}


def event_columns(name: str) -> tuple[str, ...]:
    """The columns of table ``name`` that date something that happened: its time column
    and its outcome times, never a planned date such as ``close_date``."""
    return (TABLES[name].time_column, *_OUTCOME_TIMES.get(name, ()))


def data_end_of(tables: CRMTables) -> pd.Timestamp:
    """The latest timestamp anywhere in the tables: the moment the export was taken."""
    latest = []
    for name in TABLES:
        frame = tables.get(name)
        for col in event_columns(name):
            if len(frame) and frame[col].notna().any():
                latest.append(frame[col].max())
    if not latest:
        raise ValueError("the tables hold no timestamps; cannot place a data end")
    return pd.Timestamp(max(latest))


def _utc(ts: pd.Timestamp | str | None, tables: CRMTables) -> pd.Timestamp:
    if ts is None:
        return data_end_of(tables)
    out = pd.Timestamp(ts)
    return out.tz_localize("UTC") if out.tzinfo is None else out.tz_convert("UTC")


def _frame(
    key: str, ids: np.ndarray, as_of: np.ndarray, label: pd.api.extensions.ExtensionArray
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            key: pd.array(ids, dtype="string"),
            "as_of": pd.to_datetime(as_of, utc=True).astype("datetime64[ns, UTC]"),
            "label": label,
        }
    )


def lead_snapshots(
    tables: CRMTables,
    *,
    horizon_days: int = 30,
    every_days: int = 7,
    max_per_entity: int = 12,
    data_end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """One snapshot at lead creation, then every ``every_days`` while the lead is open.

    Label: the lead is qualified within ``horizon_days`` after ``as_of``. False when the
    horizon ends before the data does, or the lead was disqualified without being qualified
    within it; NA otherwise.
    """
    end = pit.ns(pd.Index([_utc(data_end, tables)]))[0]
    leads = tables.leads
    n = len(leads)
    created = pit.ns(leads["created_at"])
    qualified = pit.ns(leads["qualified_at"])
    disqualified = pit.ns(leads["disqualified_at"])
    never = np.iinfo(np.int64).max
    closes = np.minimum(
        np.where(qualified == pit.NAT, never, qualified),
        np.where(disqualified == pit.NAT, never, disqualified),
    )
    step = np.arange(max_per_entity, dtype=np.int64) * every_days * pit.NS_PER_DAY
    rows = np.repeat(np.arange(n), max_per_entity)
    as_of = created[rows] + SNAPSHOT_LAG.value + np.tile(step, n)
    keep = (as_of < closes[rows]) & (as_of <= end) & (created[rows] != pit.NAT)
    rows, as_of = rows[keep], as_of[keep]

    horizon = as_of + horizon_days * pit.NS_PER_DAY
    q, d = qualified[rows], disqualified[rows]
    # Only what is known by ``end`` counts, when ``data_end`` is set before the data's end.
    won = (q != pit.NAT) & (q <= horizon) & (q <= end)
    known = won | (horizon <= end) | ((d != pit.NAT) & (d <= horizon) & (d <= end))
    label = pd.array(np.where(known, won, False), dtype="boolean")
    label[~known] = pd.NA
    ids = leads["lead_id"].to_numpy(dtype=object)[rows]
    return _frame("lead_id", ids, as_of, label)


def deal_snapshots(
    tables: CRMTables,
    *,
    every_days: int = 7,
    max_per_entity: int = 40,
    data_end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """One snapshot at each entry into an open stage, and every ``every_days`` while open.

    Only snapshots whose stage at ``as_of`` (from opportunity_history) is open are kept.
    Label: the deal ends ``closed_won``; NA while it is still open at the data's end.
    """
    end = pit.ns(pd.Index([_utc(data_end, tables)]))[0]
    opps = tables.opportunities
    n = len(opps)
    ids = opps["opportunity_id"].to_numpy(dtype=object)
    created = pit.ns(opps["created_at"])
    closed = pit.ns(opps["closed_at"])
    never = np.iinfo(np.int64).max
    closes = np.where(closed == pit.NAT, never, closed)

    # Weekly from creation (the first one is the creation snapshot).
    weeks = max(max_per_entity, 1)
    step = np.arange(weeks, dtype=np.int64) * every_days * pit.NS_PER_DAY
    w_rows = np.repeat(np.arange(n), weeks)
    w_as_of = created[w_rows] + SNAPSHOT_LAG.value + np.tile(step, n)

    # Stage entries from the history.
    hist = tables.opportunity_history
    vocab = pd.Index(ids)
    h_key = pit.codes(hist["opportunity_id"], vocab)
    h_time = pit.ns(hist["changed_at"])
    h_index = pit.index_events(h_key, h_time)
    h_stage = hist["stage"].to_numpy(dtype=object)[h_index.rows]
    h_opp = h_index.composite // h_index.width
    first = pit.changes(h_opp)
    entered = first | pit.changes(h_stage)
    is_open = np.isin(h_stage, OPEN_STAGES)
    e_pick = entered & is_open
    e_rows = h_opp[e_pick]
    e_as_of = h_index.times[e_pick] + SNAPSHOT_LAG.value

    rows = np.concatenate([w_rows, e_rows])
    as_of = np.concatenate([w_as_of, e_as_of])
    keep = (as_of < closes[rows]) & (as_of <= end) & (as_of > created[rows])
    rows, as_of = rows[keep], as_of[keep]

    # Sort by deal then time, drop duplicates, keep the first ``max_per_entity`` of each deal.
    order = np.lexsort((as_of, rows))
    rows, as_of = rows[order], as_of[order]
    dup = ~(pit.changes(rows) | pit.changes(as_of))
    rows, as_of = rows[~dup], as_of[~dup]
    keep = _ordinal(rows) < max_per_entity
    rows, as_of = rows[keep], as_of[keep]

    # Keep only snapshots whose stage at as_of is open.
    last = pit.last_before(h_index, rows, as_of)
    stage_now = h_stage[np.where(last >= 0, last, 0)] if len(h_stage) else np.full(len(last), "")
    keep = np.isin(stage_now, OPEN_STAGES) & (last >= 0)
    rows, as_of = rows[keep], as_of[keep]

    won = opps["is_won"].to_numpy(dtype="float64", na_value=np.nan)[rows]
    known = (closed[rows] != pit.NAT) & (closed[rows] <= end) & ~np.isnan(won)
    label = pd.array(np.where(known, won == 1.0, False), dtype="boolean")
    label[~known] = pd.NA
    return _frame("opportunity_id", ids[rows], as_of, label)


EPISODE = "episode"
"""Column of account snapshots naming what the time split keeps together: one renewal
(account and due date), or for expansions each snapshot on its own."""


def _account_frame(
    accounts: pd.Series | np.ndarray, account: np.ndarray, as_of: np.ndarray,
    label: pd.api.extensions.ExtensionArray, episode: np.ndarray,
) -> pd.DataFrame:
    """Account snapshots; ``episode`` numbers the renewal (or snapshot) within its account."""
    ids = np.asarray(accounts, dtype=object)[account] if len(account) else np.array([], object)
    out = _frame("account_id", ids, as_of, label)
    number = pd.Series(np.asarray(episode, dtype=np.int64)).astype(str).to_numpy()
    out[EPISODE] = pd.array(out["account_id"].astype(str).to_numpy() + "#" + number, "string")
    return out


def _ordinal(groups: np.ndarray) -> np.ndarray:
    """Each element's position within its run of equal values (``groups`` sorted)."""
    n = len(groups)
    starts = np.maximum.accumulate(np.where(pit.changes(groups), np.arange(n), 0)) if n else groups
    return np.arange(n) - starts


def _most_per_account(account: np.ndarray) -> int:
    """The largest number of rows any one account has (``account`` sorted)."""
    return int(_ordinal(account).max()) + 1 if len(account) else 0


def renewal_snapshots(
    tables: CRMTables,
    *,
    every_days: int = 7,
    max_per_entity: int = 26,
    data_end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Weekly from ``RENEWAL_WINDOW_DAYS`` before a term's due date until its renewal closes
    (or the grace after the due date runs out with no renewal deal).

    One row per (account, as_of): with several terms due, the one due first. Label: the
    term's renewal deal closed won; False when it closed lost or no renewal deal came
    within the grace; NA while that is not known at the data's end.
    """
    end = pit.ns(pd.Index([_utc(data_end, tables)]))[0]
    accounts = tables.accounts["account_id"]
    c = contracts.read_contracts(tables, accounts, known_by=end)
    n = len(c)
    step = np.arange(max_per_entity, dtype=np.int64) * every_days * pit.NS_PER_DAY
    rows = np.repeat(np.arange(n), max_per_entity)
    first = c.due - RENEWAL_WINDOW_DAYS * pit.NS_PER_DAY + SNAPSHOT_LAG.value
    as_of = first[rows] + np.tile(step, n)
    ends = c.ends()
    keep = (as_of > c.start[rows]) & (as_of < ends[rows]) & (as_of <= end)
    rows, as_of = rows[keep], as_of[keep]
    # The account's next renewal: a snapshot of a term is kept only while no term of the
    # account due earlier still runs (terms are sorted by account, then start and due).
    blocked = np.zeros(len(rows), dtype=bool)
    for j in range(1, _most_per_account(c.account) + 1):
        p = rows - j
        safe = np.maximum(p, 0)
        blocked |= (
            (p >= 0) & (c.account[safe] == c.account[rows]) & (c.start[safe] < as_of)
            & (ends[safe] >= as_of)
        )
    rows, as_of = rows[~blocked], as_of[~blocked]
    order = np.lexsort((as_of, c.account[rows]))
    rows, as_of = rows[order], as_of[order]

    won = c.renewal_won[rows]
    decided = ~np.isnan(won)
    lapsed = (c.renewal[rows] < 0) & (c.due[rows] + contracts.GRACE_DAYS * pit.NS_PER_DAY <= end)
    known = decided | lapsed
    label = pd.array(np.where(decided, won == 1.0, False), dtype="boolean")
    label[~known] = pd.NA
    term_number = _ordinal(c.account)
    return _account_frame(accounts, c.account[rows], as_of, label, term_number[rows])


def expansion_snapshots(
    tables: CRMTables,
    *,
    horizon_days: int = 90,
    every_days: int = 30,
    max_per_entity: int = 60,
    data_end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Every ``every_days`` from an account's first won deal, while it is a customer.

    Label: an expansion deal (product ``expansion``) is created for the account within
    ``horizon_days`` after ``as_of``; NA when the horizon runs past the data's end.
    """
    end = pit.ns(pd.Index([_utc(data_end, tables)]))[0]
    accounts = tables.accounts["account_id"]
    c = contracts.read_contracts(tables, accounts, known_by=end)
    n_acc = len(accounts)
    started = np.full(n_acc, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(started, c.account, c.start)
    customers = np.flatnonzero(started < np.iinfo(np.int64).max)
    step = np.arange(max_per_entity, dtype=np.int64) * every_days * pit.NS_PER_DAY
    account = np.repeat(customers, max_per_entity)
    as_of = started[account] + SNAPSHOT_LAG.value + np.tile(step, len(customers))
    keep = as_of <= end
    account, as_of = account[keep], as_of[keep]

    # A customer at t: a term started before t and not ended by then.
    queries = pit.Queries(account, as_of)
    begun = queries.count(pit.index_events(c.account, c.start))
    ended = queries.count(pit.index_events(c.account, c.ends()), shift_ns=-1)
    keep = begun > ended
    account, as_of = account[keep], as_of[keep]

    opps = tables.opportunities
    created = pit.ns(opps["created_at"])
    is_expansion = opps["product"].eq(contracts.EXPANSION_PRODUCT).fillna(False).to_numpy(bool)
    e_account = pit.codes(opps["account_id"], accounts)
    e_account = np.where(is_expansion & (created <= end), e_account, -1)
    index = pit.index_events(e_account, created)
    horizon = horizon_days * pit.NS_PER_DAY
    queries = pit.Queries(account, as_of)
    # Created in (as_of, as_of + horizon]: before (t + h) + 1 ns, minus before t + 1 ns.
    within = queries.count(index, shift_ns=-(horizon + 1)) - queries.count(index, shift_ns=-1)
    # Only a horizon seen whole: keeping early positives of a horizon cut by the data's
    # end, and not their negatives, would skew the last weeks' rate upwards.
    known = as_of + horizon <= end
    label = pd.array(within > 0, dtype="boolean")
    label[~known] = pd.NA
    return _account_frame(accounts, account, as_of, label, _ordinal(account))


def crm_as_of(tables: CRMTables, cutoff: pd.Timestamp) -> CRMTables:
    """The CRM as it stood at ``cutoff``: what a model trained then could have seen.

    Rows dated at or after the cutoff are dropped, outcomes dated at or after it are blanked,
    each deal's current amount and close date are rolled back to its last history row
    before the cutoff, and every edited attribute (field history) to its value then.
    Useful for backtests, and the reference for the leakage tests.
    """
    cut = _utc(cutoff, tables)

    def before(frame: pd.DataFrame, col: str) -> pd.DataFrame:
        return frame.loc[frame[col].notna() & (frame[col] < cut)].copy()

    accounts = before(tables.accounts, "created_at")
    opps = before(tables.opportunities, "created_at")
    hist = before(tables.opportunity_history, "changed_at")
    activities = before(tables.activities, "occurred_at")
    leads = before(tables.leads, "created_at")

    for col in ("qualified_at", "disqualified_at"):
        leads.loc[leads[col] >= cut, col] = pd.NaT
    known_opps = set(opps["opportunity_id"].dropna())
    leads.loc[~leads["opportunity_id"].isin(known_opps), "opportunity_id"] = pd.NA

    open_now = opps["closed_at"].isna() | (opps["closed_at"] >= cut)
    opps.loc[open_now, "closed_at"] = pd.NaT
    opps.loc[open_now, "is_won"] = pd.NA
    latest = hist.sort_values("changed_at", kind="stable").groupby("opportunity_id").tail(1)
    latest = latest.set_index("opportunity_id")
    oid = opps["opportunity_id"]
    has = oid.isin(latest.index)
    opps.loc[has, "amount"] = latest.loc[oid[has], "amount"].to_numpy()
    opps.loc[has, "close_date"] = latest.loc[oid[has], "close_date"].to_numpy()

    # Edited attributes back to what they were: the old value of their first later change.
    lead_changes = tables.lead_field_history
    opp_changes = tables.opportunity_field_history
    leads = field_history.record_as_of(leads, lead_changes, LEADS, cut)
    opps = field_history.record_as_of(opps, opp_changes, OPPORTUNITIES, cut)

    return CRMTables(
        accounts=accounts,
        leads=coerce_dtypes(leads, LEADS),
        opportunities=coerce_dtypes(opps, OPPORTUNITIES),
        opportunity_history=hist,
        activities=activities,
        account_signals=before(tables.account_signals, "observed_at"),
        lead_field_history=before(lead_changes, "changed_at"),
        opportunity_field_history=before(opp_changes, "changed_at"),
    )
