"""Features must use only what was known before each snapshot's time.

Three views of the same promise: the CRM rolled back to a time T gives the same features
for every snapshot before T; any edit to rows dated at or after a snapshot's time leaves
that snapshot alone (property-based); and moving the whole history in time moves nothing
but the timestamps.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.build import build_features
from features.schema import ACTIVITY_TYPES, OPEN_STAGES, TABLES, CRMTables
from features.sets import ACCOUNT_EXPANSION_V1, ACCOUNT_RENEWAL_V1, DEAL_V1, LEAD_V1
from features.snapshots import (
    crm_as_of,
    deal_snapshots,
    expansion_snapshots,
    lead_snapshots,
    renewal_snapshots,
)
from tests.data.toy_crm import toy_crm

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TASKS = {
    "lead": (LEAD_V1, lead_snapshots),
    "deal": (DEAL_V1, deal_snapshots),
    "renewal": (ACCOUNT_RENEWAL_V1, renewal_snapshots),
    "expansion": (ACCOUNT_EXPANSION_V1, expansion_snapshots),
}
ALL_TASKS = list(TASKS)


def _crm(task: str, seed: int, n_leads: int) -> CRMTables:
    """The toy CRM; account tasks get life after the sale, over long enough to renew."""
    if task in ("renewal", "expansion"):
        return toy_crm(seed, n_leads=n_leads * 2, days=700, post_sale=True)
    return toy_crm(seed, n_leads=n_leads)


def _snapshots(crm: CRMTables, task: str) -> pd.DataFrame:
    fs, make = TASKS[task]
    return make(crm)[[fs.entity_key, "as_of"]]


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


@pytest.mark.parametrize("task", ALL_TASKS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rollback_to_T_gives_identical_features_before_T(task: str, seed: int) -> None:
    crm = _crm(task, seed, 40)
    fs, _ = TASKS[task]
    snaps = _snapshots(crm, task)
    assert len(snaps) > 20
    cutoff = snaps["as_of"].quantile(0.5)
    before = snaps.loc[snaps["as_of"] < cutoff]
    past = crm_as_of(crm, cutoff)
    # The rolled-back CRM really lost its future: rows, outcomes and current deal values.
    assert len(past.activities) < len(crm.activities)
    assert (past.leads["qualified_at"].dropna() < cutoff).all()
    full = build_features(crm, before, fs)
    rolled = build_features(past, before, fs)
    _same(full, rolled)


def test_rollback_rewrites_current_deal_values_from_history() -> None:
    crm = toy_crm(3, n_leads=40)
    cutoff = crm.opportunity_history["changed_at"].quantile(0.6)
    past = crm_as_of(crm, cutoff)
    hist = past.opportunity_history.sort_values("changed_at", kind="stable")
    last = hist.groupby("opportunity_id").tail(1).set_index("opportunity_id")
    opps = past.opportunities.set_index("opportunity_id")
    common = opps.index.intersection(last.index)
    assert len(common) > 3
    np.testing.assert_allclose(opps.loc[common, "amount"], last.loc[common, "amount"])
    assert (opps["closed_at"].dropna() < cutoff).all()


# --- property-based: edits at or after t never move the snapshot at t -------------------


def _edit_future(
    crm: CRMTables, t: pd.Timestamp, entity: str, rng: np.random.Generator
) -> CRMTables:
    """Add, change and delete rows dated at or after t, and rewrite outcomes after t."""
    later = pd.Timedelta(seconds=int(rng.integers(0, 90 * 86_400)))

    acts = crm.activities.copy()
    future = acts["occurred_at"] >= t
    idx = acts.index[future]
    drop = idx[rng.random(len(idx)) < 0.3]
    keep = idx.difference(drop)
    acts.loc[keep, "type"] = rng.choice(ACTIVITY_TYPES, len(keep))
    acts.loc[keep, "direction"] = rng.choice(["inbound", "outbound"], len(keep))
    acts.loc[keep, "contact_id"] = [f"N{i}" for i in range(len(keep))]
    acts = acts.drop(index=drop)
    account = crm.accounts["account_id"].iloc[0]
    added = pd.DataFrame(
        {
            "activity_id": [f"NEW{i}" for i in range(6)],
            "occurred_at": [t, t, t + later, t + later, t + pd.Timedelta(days=1), t],
            "account_id": account,
            "lead_id": entity if entity.startswith("L") else None,
            "opportunity_id": entity if entity.startswith("O") else None,
            "contact_id": [f"Z{i}" for i in range(6)],
            "type": rng.choice(ACTIVITY_TYPES, 6),
            "direction": "inbound",
        }
    )
    acts = pd.concat([acts, added.astype(acts.dtypes.to_dict())], ignore_index=True)

    hist = crm.opportunity_history.copy()
    hfuture = hist.index[hist["changed_at"] >= t]
    hist.loc[hfuture, "stage"] = rng.choice(OPEN_STAGES, len(hfuture))
    hist.loc[hfuture, "amount"] = rng.uniform(1, 1e6, len(hfuture))
    hist.loc[hfuture, "close_date"] = t + later
    hist = hist.drop(index=hfuture[rng.random(len(hfuture)) < 0.3])
    if entity.startswith("O"):
        extra = pd.DataFrame(
            {
                "opportunity_id": [entity, entity],
                "changed_at": [t, t + later],
                "stage": ["negotiation", "closed_won"],
                "amount": [1.0, 2.0],
                "close_date": [t, t],
            }
        )
        hist = pd.concat([hist, extra.astype(hist.dtypes.to_dict())], ignore_index=True)

    opps = crm.opportunities.copy()
    # Current values are "latest": anything may be there.
    opps["amount"] = rng.uniform(1, 1e6, len(opps))
    opps["close_date"] = t + later
    # Outcomes dated at or after t may change to anything still at or after t.
    open_at_t = opps["closed_at"].isna() | (opps["closed_at"] >= t)
    flip = open_at_t & (rng.random(len(opps)) < 0.5)
    opps.loc[flip, "closed_at"] = t + later
    opps.loc[flip, "is_won"] = rng.random(int(flip.sum())) < 0.5
    # Deals created at or after t may be deleted.
    opps = opps.loc[~((opps["created_at"] >= t) & (rng.random(len(opps)) < 0.5))]

    leads = crm.leads.copy()
    for col in ("qualified_at", "disqualified_at"):
        moved = leads[col].isna() | (leads[col] >= t)
        when = pd.Series(t + later, index=leads.index[moved], dtype=leads[col].dtype)
        when[rng.random(int(moved.sum())) < 0.5] = pd.NaT
        leads.loc[moved, col] = when
    leads.loc[leads["created_at"] >= t, "source"] = "event"
    # New leads and accounts created at or after t, on the snapshot's own account too.
    new_lead = leads.iloc[[0]].assign(lead_id="NEWLEAD", account_id=account, created_at=t)
    leads = pd.concat([leads, new_lead], ignore_index=True)
    new_account = crm.accounts.iloc[[0]].assign(account_id="NEWACC", created_at=t + later)
    accounts = pd.concat([crm.accounts, new_account], ignore_index=True)

    # Signals observed at or after t may change, vanish or appear, on any account.
    sig = crm.account_signals.copy()
    sfuture = sig.index[sig["observed_at"] >= t]
    sig.loc[sfuture, "value"] = rng.integers(1, 4, len(sfuture)).astype(float)
    sig = sig.drop(index=sfuture[rng.random(len(sfuture)) < 0.3])
    target = entity if entity.startswith("A") else account
    new_signals = pd.DataFrame({
        "signal_id": [f"NEWS{i}" for i in range(4)],
        "account_id": target,
        "observed_at": [t, t + later, t, t + pd.Timedelta(days=2)],
        "signal": ["ticket_opened", "nps", "active_users", "csat"],
        "value": [4.0, 0.0, 1.0, 1.0],
        "detail": None,
    })
    sig = pd.concat([sig, new_signals.astype(sig.dtypes.to_dict())], ignore_index=True)
    # Deals of the snapshot's account opened at or after t: a renewal and an expansion.
    new_deals = pd.DataFrame({
        "opportunity_id": ["NEWREN", "NEWEXP"], "account_id": target, "lead_id": None,
        "owner_id": "U1", "created_at": [t, t + later], "product": ["renewal", "expansion"],
        "amount": 5.0, "close_date": t + later, "closed_at": [t + later, pd.NaT],
        "is_won": [True, None],
    })
    opps = pd.concat([opps, new_deals.astype(crm.opportunities.dtypes.to_dict())],
                     ignore_index=True)
    return CRMTables(
        accounts=accounts,
        leads=leads.astype(crm.leads.dtypes.to_dict()),
        opportunities=opps.astype(crm.opportunities.dtypes.to_dict()),
        opportunity_history=hist,
        activities=acts,
        account_signals=sig,
    )


@pytest.mark.parametrize("task", ALL_TASKS)
@SETTINGS
@given(seed=st.integers(0, 10_000), pick=st.integers(0, 10_000), edit_seed=st.integers(0, 10_000))
def test_future_edits_never_change_a_snapshot(
    task: str, seed: int, pick: int, edit_seed: int
) -> None:
    crm = _crm(task, seed, 15)
    fs, _ = TASKS[task]
    snaps = _snapshots(crm, task)
    if snaps.empty:
        return
    snap = snaps.iloc[[pick % len(snaps)]]
    t = snap["as_of"].iloc[0]
    entity = str(snap[fs.entity_key].iloc[0])
    edited = _edit_future(crm, t, entity, np.random.default_rng(edit_seed))
    _same(build_features(crm, snap, fs), build_features(edited, snap, fs))


def _shift(crm: CRMTables, delta: pd.Timedelta) -> CRMTables:
    def moved(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        for col in out.columns:
            if isinstance(out[col].dtype, pd.DatetimeTZDtype):
                out[col] = out[col] + delta
        return out

    return CRMTables(**{name: moved(crm.get(name)) for name in TABLES})


@pytest.mark.parametrize("task", ALL_TASKS)
@SETTINGS
@given(seed=st.integers(0, 10_000), seconds=st.integers(-400 * 86_400, 400 * 86_400))
def test_shifting_history_shifts_only_timestamps(task: str, seed: int, seconds: int) -> None:
    crm = _crm(task, seed, 12)
    fs, make = TASKS[task]
    delta = pd.Timedelta(seconds=seconds)
    snaps = make(crm)
    moved_snaps = make(_shift(crm, delta))
    expected = snaps.assign(as_of=snaps["as_of"] + delta)
    _same(expected, moved_snaps)
    base = build_features(crm, snaps, fs)
    moved = build_features(_shift(crm, delta), moved_snaps, fs)
    _same(base.assign(as_of=base["as_of"] + delta), moved)


def test_edits_before_t_do_change_features() -> None:
    """The property tests above could pass on a constant; this one shows they would not."""
    crm = toy_crm(5, n_leads=30)
    snaps = _snapshots(crm, "lead")
    base = build_features(crm, snaps, LEAD_V1)
    acts = crm.activities.copy()
    acts["occurred_at"] = acts["occurred_at"] - pd.Timedelta(days=3)
    acts["type"] = "pricing_page_visit"
    edited = CRMTables(crm.accounts, crm.leads, crm.opportunities, crm.opportunity_history, acts)
    changed = build_features(edited, snaps, LEAD_V1)
    assert not base["pricing_page_visit_30d"].equals(changed["pricing_page_visit_30d"])


def test_signals_before_t_do_change_account_features() -> None:
    """The account tasks' property tests could pass on constants; this one shows not."""
    crm = _crm("renewal", 4, 40)
    snaps = _snapshots(crm, "renewal")
    base = build_features(crm, snaps, ACCOUNT_RENEWAL_V1)
    sig = crm.account_signals.copy()
    sig["observed_at"] = sig["observed_at"] - pd.Timedelta(days=5)
    sig["signal"] = "ticket_opened"
    sig["value"] = 4.0
    edited = CRMTables(crm.accounts, crm.leads, crm.opportunities, crm.opportunity_history,
                       crm.activities, sig)
    changed = build_features(edited, snaps, ACCOUNT_RENEWAL_V1)
    assert not base["severe_tickets_90d"].equals(changed["severe_tickets_90d"])
