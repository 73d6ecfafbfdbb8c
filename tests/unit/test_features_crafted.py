"""Feature and label values on a hand-made CRM, where every number can be worked out by hand."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.build import build_features, category_dtype
from features.schema import (
    ACCOUNTS,
    ACTIVITIES,
    LEADS,
    OPPORTUNITIES,
    OPPORTUNITY_HISTORY,
    CRMTables,
    Table,
    coerce_dtypes,
)
from features.sets import DEAL_V1, LEAD_V1
from features.snapshots import SNAPSHOT_LAG, deal_snapshots, lead_snapshots
from features.training_set import build_steps, build_training_set

T0 = pd.Timestamp("2024-03-01", tz="UTC")


def day(n: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=n)


def _table(rows: list[dict[str, Any]], table: Table) -> pd.DataFrame:
    frame = pd.DataFrame([{c: r.get(c) for c in table.column_names} for r in rows])
    if frame.empty:
        frame = pd.DataFrame(columns=table.column_names)
    return coerce_dtypes(frame, table)


def crm(
    leads: list[dict[str, Any]],
    opps: list[dict[str, Any]] | None = None,
    hist: list[dict[str, Any]] | None = None,
    acts: list[dict[str, Any]] | None = None,
) -> CRMTables:
    accounts = [
        {
            "account_id": a,
            "industry": "software",
            "employees": 120,
            "country": "DE",
            "created_at": day(-400),
        }
        for a in ("A1", "A2")
    ]
    acts = [{"activity_id": f"X{i}", **a} for i, a in enumerate(acts or [])]
    return CRMTables(
        accounts=_table(accounts, ACCOUNTS),
        leads=_table(leads, LEADS),
        opportunities=_table(opps or [], OPPORTUNITIES),
        opportunity_history=_table(hist or [], OPPORTUNITY_HISTORY),
        activities=_table(acts, ACTIVITIES),
    )


def lead(lead_id: str = "L1", **kw: Any) -> dict[str, Any]:
    return {"lead_id": lead_id, "account_id": "A1", "created_at": T0, "source": "referral", **kw}


def act(when: pd.Timestamp, kind: str, **kw: Any) -> dict[str, Any]:
    return {
        "occurred_at": when,
        "account_id": "A1",
        "lead_id": "L1",
        "type": kind,
        "direction": "inbound",
        **kw,
    }


# --- lead snapshots and labels -------------------------------------------------------------


def test_lead_snapshots_weekly_while_open_with_known_labels() -> None:
    tables = crm(
        [
            lead("L1", qualified_at=day(20)),  # qualified on day 20
            lead("L2", disqualified_at=day(9)),  # disqualified on day 9
            lead("L3"),  # still open at the data's end
        ]
    )
    snaps = lead_snapshots(tables, horizon_days=10, data_end=day(60))
    by = {k: g.reset_index(drop=True) for k, g in snaps.groupby("lead_id")}
    # L1: open until day 20 -> snapshots at days 0, 7, 14 (+lag); qualified within 10 days
    # of day 14 only.
    assert list(by["L1"]["as_of"]) == [
        day(0) + SNAPSHOT_LAG,
        day(7) + SNAPSHOT_LAG,
        day(14) + SNAPSHOT_LAG,
    ]
    assert list(by["L1"]["label"]) == [False, False, True]
    # L2: disqualified on day 9: snapshots at days 0 and 7, both negative.
    assert list(by["L2"]["label"]) == [False, False]
    # L3: weekly up to the data's end; the last ones' horizon runs past it -> unknown.
    l3 = by["L3"]
    assert l3["as_of"].max() <= day(60)
    known = l3["as_of"] + pd.Timedelta(days=10) <= day(60)
    assert l3.loc[known, "label"].eq(False).all()
    assert l3.loc[~known, "label"].isna().all() and (~known).any()
    assert str(snaps["label"].dtype) == "boolean"


def test_labels_use_nothing_after_an_explicit_data_end() -> None:
    tables = crm([lead("L1", qualified_at=day(20))])
    snaps = lead_snapshots(tables, horizon_days=30, data_end=day(15))
    # Qualified on day 20, after the chosen end: every label is still unknown.
    assert len(snaps) == 3 and snaps["label"].isna().all()


def test_lead_snapshots_respect_the_cap() -> None:
    tables = crm([lead("L1")])
    snaps = lead_snapshots(tables, max_per_entity=3, data_end=day(300))
    assert len(snaps) == 3


# --- lead features -------------------------------------------------------------------------


def test_windowed_counts_are_strictly_before_t_and_include_the_window_start() -> None:
    t = day(100)
    tables = crm(
        [lead("L1")],
        acts=[
            act(t, "pricing_page_visit"),  # at t: not yet known
            act(t - pd.Timedelta(seconds=1), "pricing_page_visit"),  # just before t
            act(t - pd.Timedelta(days=7), "pricing_page_visit"),  # exactly 7 days: in window
            act(t - pd.Timedelta(days=7, seconds=1), "pricing_page_visit"),  # just outside
            act(t - pd.Timedelta(days=40), "demo", direction="outbound", contact_id="C2"),
            act(t - pd.Timedelta(days=3), "email_opened", contact_id="C1"),
            act(t - pd.Timedelta(days=10), "email_opened", contact_id="C1"),
        ],
    )
    snap = pd.DataFrame({"lead_id": ["L1"], "as_of": [t]})
    f = build_features(tables, snap, LEAD_V1).iloc[0]
    assert f["pricing_page_visit_7d"] == 2
    assert f["pricing_page_visit_30d"] == 3
    assert f["demo_30d"] == 0 and f["demo_90d"] == 1
    assert f["activities_30d"] == 5
    assert f["days_since_last_activity"] == pytest.approx(1 / 86_400)
    # last 7 days: 2 pricing + 1 opened = 3; the 7 before: 1 pricing + 1 opened = 2.
    # (the visit exactly 7 days ago is in the last 7 days.)
    assert f["activity_trend_7d"] == 3 - 2
    assert f["inbound_share_90d"] == pytest.approx(5 / 6)
    assert f["contacts_engaged"] == 2
    assert f["account_activities_30d"] == 5
    assert f["lead_age_days"] == pytest.approx(100)


def test_static_fields_categories_and_bant() -> None:
    tables = crm(
        [
            lead("L1", source="referral", seniority="vp", budget_confirmed=True, timeline_days=90),
            lead("L2", source="fax_campaign", seniority=None),  # unseen source -> missing
        ]
    )
    snaps = pd.DataFrame({"lead_id": ["L1", "L2"], "as_of": [day(1), day(1)]})
    f = build_features(tables, snaps, LEAD_V1)
    assert f["source"].tolist()[0] == "referral" and pd.isna(f["source"].iloc[1])
    assert f["source"].dtype == category_dtype("source")
    assert f["budget_confirmed"].tolist()[0] is True
    assert pd.isna(f["budget_confirmed"].iloc[1])
    assert f["timeline_days"].iloc[0] == 90 and np.isnan(f["timeline_days"].iloc[1])
    assert f["days_since_last_activity"].isna().all()
    assert (f["activities_30d"] == 0).all()


def test_categories_are_the_same_whatever_the_data_holds() -> None:
    a = build_features(
        crm([lead("L1", seniority="vp")]),
        pd.DataFrame({"lead_id": ["L1"], "as_of": [day(1)]}),
        LEAD_V1,
    )
    b = build_features(
        crm([lead("L1", seniority="manager")]),
        pd.DataFrame({"lead_id": ["L1"], "as_of": [day(1)]}),
        LEAD_V1,
    )
    for name in LEAD_V1.categorical:
        assert a[name].dtype == b[name].dtype


def test_output_shape_order_and_index_follow_the_snapshots_and_inputs_are_untouched() -> None:
    tables = crm([lead("L1"), lead("L2")], acts=[act(day(2), "web_visit")])
    before = {n: tables.get(n).copy() for n in ("leads", "activities")}
    snaps = pd.DataFrame(
        {"lead_id": ["L2", "L1", "L2"], "as_of": [day(5), day(5), day(1)]}, index=[7, 3, 5]
    )
    snaps_copy = snaps.copy()
    f = build_features(tables, snaps, LEAD_V1)
    assert list(f.columns) == ["lead_id", "as_of", *LEAD_V1.names]
    assert list(f.index) == [7, 3, 5]
    assert f["lead_id"].tolist() == ["L2", "L1", "L2"]
    assert f["web_visit_7d"].tolist() == [0, 1, 0]
    pd.testing.assert_frame_equal(snaps, snaps_copy)
    for n, frame in before.items():
        pd.testing.assert_frame_equal(tables.get(n), frame)


def test_account_history_counts_only_deals_closed_before_t() -> None:
    opps = [
        {
            "opportunity_id": "O1",
            "account_id": "A1",
            "owner_id": "U1",
            "created_at": day(-90),
            "closed_at": day(-10),
            "is_won": True,
        },
        {
            "opportunity_id": "O2",
            "account_id": "A1",
            "owner_id": "U1",
            "created_at": day(-60),
            "closed_at": day(30),
            "is_won": True,
        },
        {
            "opportunity_id": "O3",
            "account_id": "A1",
            "owner_id": "U1",
            "created_at": day(-50),
            "closed_at": day(-5),
            "is_won": False,
        },
    ]
    tables = crm([lead("L1")], opps=opps)
    f = build_features(tables, pd.DataFrame({"lead_id": ["L1"], "as_of": [day(1)]}), LEAD_V1).iloc[
        0
    ]
    assert (f["account_won_deals"], f["account_lost_deals"], f["account_open_deals"]) == (1, 1, 1)


# --- deals ---------------------------------------------------------------------------------


def _deal_crm() -> CRMTables:
    opps = [
        {
            "opportunity_id": "O1",
            "account_id": "A1",
            "lead_id": "L1",
            "owner_id": "U1",
            "created_at": day(0),
            "product": "enterprise",
            # Latest values: must never be read for a snapshot before they were set.
            "amount": 1.0,
            "close_date": day(999),
            "closed_at": day(60),
            "is_won": True,
        },
        # Owner U1's other deals: one won before t, one lost after t.
        {
            "opportunity_id": "O2",
            "account_id": "A2",
            "owner_id": "U1",
            "created_at": day(-50),
            "closed_at": day(-1),
            "is_won": True,
        },
        {
            "opportunity_id": "O3",
            "account_id": "A2",
            "owner_id": "U1",
            "created_at": day(-40),
            "closed_at": day(20),
            "is_won": False,
        },
        {
            "opportunity_id": "O4",
            "account_id": "A2",
            "owner_id": "U1",
            "created_at": day(-40),
            "closed_at": day(-2),
            "is_won": False,
        },
    ]
    hist = [
        {
            "opportunity_id": "O1",
            "changed_at": day(0),
            "stage": "prospecting",
            "amount": 100.0,
            "close_date": day(40),
        },
        {
            "opportunity_id": "O1",
            "changed_at": day(5),
            "stage": "qualification",
            "amount": 100.0,
            "close_date": day(40),
        },
        {
            "opportunity_id": "O1",
            "changed_at": day(10),
            "stage": "meeting_demo",
            "amount": 80.0,
            "close_date": day(50),
        },
        {
            "opportunity_id": "O1",
            "changed_at": day(12),
            "stage": "qualification",
            "amount": 80.0,
            "close_date": day(55),
        },
        {
            "opportunity_id": "O1",
            "changed_at": day(30),
            "stage": "negotiation",
            "amount": 120.0,
            "close_date": day(45),
        },
        {
            "opportunity_id": "O1",
            "changed_at": day(60),
            "stage": "closed_won",
            "amount": 120.0,
            "close_date": day(60),
        },
    ]
    return crm([lead("L1", created_at=day(-30), source="webinar")], opps=opps, hist=hist)


def test_deal_state_comes_from_history_as_of_t() -> None:
    tables = _deal_crm()
    snap = pd.DataFrame({"opportunity_id": ["O1", "O1"], "as_of": [day(20), day(40)]})
    f = build_features(tables, snap, DEAL_V1)
    at20, at40 = f.iloc[0], f.iloc[1]
    assert at20["stage"] == "qualification"
    assert at20["days_in_stage"] == pytest.approx(8)
    assert at20["stage_moves_back"] == 1
    assert at20["close_date_pushes"] == 2
    assert at20["close_date_push_days"] == pytest.approx(15)
    assert at20["amount"] == 80.0
    assert at20["amount_change_pct"] == pytest.approx(-0.2)
    assert at20["days_to_close"] == pytest.approx(35)
    assert at20["days_since_created"] == pytest.approx(20)
    assert at20["product"] == "enterprise"
    assert at20["source"] == "webinar"
    assert at20["industry"] == "software" and at20["employees"] == 120
    # Owner: before day 20, O2 won and O4 lost; O3 closes on day 20 (not before t).
    assert at20["owner_closed_deals"] == 2 and at20["owner_win_rate"] == pytest.approx(0.5)
    # At day 40: negotiation, pulled-in close date is not a push, amount up 20 %.
    assert at40["stage"] == "negotiation"
    assert at40["close_date_pushes"] == 2
    assert at40["amount_change_pct"] == pytest.approx(0.2)
    assert at40["days_to_close"] == pytest.approx(5)
    assert at40["owner_closed_deals"] == 3 and at40["owner_win_rate"] == pytest.approx(1 / 3)
    assert f["stage"].dtype == category_dtype("stage")


def test_deal_snapshots_at_stage_entries_and_weekly_while_open() -> None:
    snaps = deal_snapshots(_deal_crm(), data_end=day(100))
    o1 = snaps.loc[snaps["opportunity_id"] == "O1"]
    times = set(o1["as_of"] - SNAPSHOT_LAG)
    # Stage entries on days 5, 10, 12, 30 and weekly from day 0, all before the close on day 60.
    assert {day(0), day(5), day(10), day(12), day(30), day(7), day(56)} <= times
    assert max(times) < day(60)
    assert o1["label"].eq(True).all()
    assert o1["as_of"].is_monotonic_increasing


def test_open_deals_at_the_data_end_are_unlabelled() -> None:
    snaps = deal_snapshots(_deal_crm(), data_end=day(50))
    assert snaps.loc[snaps["opportunity_id"] == "O1", "label"].isna().all()


def test_training_set_columns_and_progress_steps() -> None:
    calls: list[str] = []
    out = build_training_set(_deal_crm(), "deal_close", on_step=calls.append)
    assert list(out.columns) == ["opportunity_id", "as_of", "label", *DEAL_V1.names]
    assert len(calls) == build_steps("deal_close")
    calls.clear()
    build_training_set(crm([lead("L1")]), "lead_qualification", on_step=calls.append)
    assert len(calls) == build_steps("lead_qualification")
