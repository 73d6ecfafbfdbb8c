"""The review's metric definitions on a crafted CRM whose answers are worked out by hand.

Ten deals, dates at midnight so every stay is a whole number of days; the review is as of
2025-03-31 12:00, so March is the current (partial) month and February the one before.

| deal | owner | history (stage, amount, close date) | outcome |
| --- | --- | --- | --- |
| D1 | R1 | 02-01 prospecting 10k, 02-11 qualification, 02-21 meeting_demo, 03-03 |
|    |    | proposal, 03-13 negotiation | won 03-23 (50 days) |
| D2 | R1 | 02-05 prospecting 20k, 02-15 qualification | lost 03-10 |
| D3 | R2 | 03-01 proposal 30k (a renewal) | won 03-21 (20 days) |
| D4 | R2 | 03-05 prospecting 8k, 03-15 qualification, 03-25 meeting_demo | open |
| D5 | R1 | 03-26 prospecting 5k, close 03-31 | open, new this week |
| D6 | R2 | 01-10 prospecting 40k close 03-15; 03-27 30k close 04-30 | open: cut, pushed out |
| D7 | R1 | 01-15 prospecting 50k close 05-31; 03-28 60k close 03-30 | open: raised, pulled in |
| D8 | R2 | 03-02 prospecting 7k | lost 03-29 (this week) |
| D9 | R1 | 03-10 prospecting 9k, 03-20 qualification; 04-05 won at 12k | open as of the date |
| D10 | R2 | 2024-12-01 prospecting 2k | won 03-27 (116 days, this week) |
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from features.schema import TABLES, CRMTables, coerce_dtypes, empty_frame
from review import metrics as m
from review.build import funnel
from review.changes import week_changes
from review.deals import NO_LEAD, deal_facts, stage_entries, stage_visits
from review.periods import Window, period_of, windows

AS_OF = pd.Timestamp("2025-03-31T12:00:00Z")
WEEK_START = AS_OF - pd.Timedelta(days=7)


def _frame(name: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    table = TABLES[name]
    df = pd.DataFrame(rows, columns=table.column_names)
    return coerce_dtypes(df.astype(object).where(df.notna(), None), table)


DEALS: list[tuple[str, str, str, str | None, str, str, str | None, bool | None]] = [
    # id, owner, account, lead, product, created, closed, won
    ("D1", "R1", "A1", "L1", "starter", "2025-02-01", "2025-03-23", True),
    ("D2", "R1", "A2", "L2", "professional", "2025-02-05", "2025-03-10", False),
    ("D3", "R2", "A3", None, "renewal", "2025-03-01", "2025-03-21", True),
    ("D4", "R2", "A1", None, "expansion", "2025-03-05", None, None),
    ("D5", "R1", "A2", None, "starter", "2025-03-26", None, None),
    ("D6", "R2", "A3", None, "professional", "2025-01-10", None, None),
    ("D7", "R1", "A1", None, "enterprise", "2025-01-15", None, None),
    ("D8", "R2", "A2", None, "starter", "2025-03-02", "2025-03-29", False),
    ("D9", "R1", "A1", None, "starter", "2025-03-10", "2025-04-05", True),
    ("D10", "R2", "A3", None, "starter", "2024-12-01", "2025-03-27", True),
]

HISTORY: list[tuple[str, str, str, float, str]] = [
    ("D1", "2025-02-01", "prospecting", 10_000, "2025-04-30"),
    ("D1", "2025-02-11", "qualification", 10_000, "2025-04-30"),
    ("D1", "2025-02-21", "meeting_demo", 10_000, "2025-04-30"),
    ("D1", "2025-03-03", "proposal", 10_000, "2025-04-30"),
    ("D1", "2025-03-13", "negotiation", 10_000, "2025-04-30"),
    ("D1", "2025-03-23", "closed_won", 10_000, "2025-03-23"),
    ("D2", "2025-02-05", "prospecting", 20_000, "2025-03-31"),
    ("D2", "2025-02-15", "qualification", 20_000, "2025-03-31"),
    ("D2", "2025-03-10", "closed_lost", 20_000, "2025-03-10"),
    ("D3", "2025-03-01", "proposal", 30_000, "2025-03-20"),
    ("D3", "2025-03-21", "closed_won", 30_000, "2025-03-21"),
    ("D4", "2025-03-05", "prospecting", 8_000, "2025-04-15"),
    ("D4", "2025-03-15", "qualification", 8_000, "2025-04-15"),
    ("D4", "2025-03-25", "meeting_demo", 8_000, "2025-04-15"),
    ("D5", "2025-03-26", "prospecting", 5_000, "2025-03-31"),
    ("D6", "2025-01-10", "prospecting", 40_000, "2025-03-15"),
    ("D6", "2025-03-27", "prospecting", 30_000, "2025-04-30"),
    ("D7", "2025-01-15", "prospecting", 50_000, "2025-05-31"),
    ("D7", "2025-03-28", "prospecting", 60_000, "2025-03-30"),
    ("D8", "2025-03-02", "prospecting", 7_000, "2025-04-01"),
    ("D8", "2025-03-29", "closed_lost", 7_000, "2025-03-29"),
    ("D9", "2025-03-10", "prospecting", 9_000, "2025-04-10"),
    ("D9", "2025-03-20", "qualification", 9_000, "2025-04-10"),
    ("D9", "2025-04-05", "closed_won", 12_000, "2025-04-05"),
    ("D10", "2024-12-01", "prospecting", 2_000, "2025-03-31"),
    ("D10", "2025-03-27", "closed_won", 2_000, "2025-03-27"),
]


def crafted() -> CRMTables:
    accounts = _frame("accounts", [
        {"account_id": "A1", "name": "Acme", "industry": "software", "employees": 50,
         "created_at": "2024-01-01"},
        {"account_id": "A2", "name": "Beta", "industry": "retail", "employees": 500,
         "created_at": "2024-01-01"},
        {"account_id": "A3", "name": "Gamma", "industry": None, "employees": 5000,
         "created_at": "2024-01-01"},
    ])
    leads = _frame("leads", [
        {"lead_id": "L1", "account_id": "A1", "created_at": "2025-01-20", "source": "referral",
         "qualified_at": "2025-01-30", "opportunity_id": "D1"},
        {"lead_id": "L2", "account_id": "A2", "created_at": "2025-01-25",
         "source": "paid_search", "qualified_at": "2025-02-04", "opportunity_id": "D2"},
    ])
    last_amount = {d: a for d, _, _, a, _ in HISTORY}
    last_close = {d: c for d, _, _, _, c in HISTORY}
    opportunities = _frame("opportunities", [
        {"opportunity_id": d, "owner_id": o, "account_id": a, "lead_id": lead, "product": p,
         "created_at": c, "closed_at": closed, "is_won": won, "amount": last_amount[d],
         "close_date": last_close[d]}
        for d, o, a, lead, p, c, closed, won in DEALS
    ])
    history = _frame("opportunity_history", [
        {"opportunity_id": d, "changed_at": t, "stage": s, "amount": a, "close_date": c}
        for d, t, s, a, c in HISTORY
    ])
    return CRMTables(accounts=accounts, leads=leads, opportunities=opportunities,
                     opportunity_history=history, activities=empty_frame(TABLES["activities"]))


@pytest.fixture(scope="module")
def facts():  # type: ignore[no-untyped-def]
    return deal_facts(crafted(), AS_OF)


def march() -> Window:
    return period_of(AS_OF, "month")


def february() -> Window:
    return windows(AS_OF, "month", 1)[0]


def test_periods_are_calendar_months_and_quarters() -> None:
    w = march()
    assert (w.label, w.start, w.end, w.complete) == (
        "2025-03", pd.Timestamp("2025-03-01", tz="UTC"), pd.Timestamp("2025-04-01", tz="UTC"),
        False)
    assert [x.label for x in windows(AS_OF, "month", 3)] == [
        "2024-12", "2025-01", "2025-02", "2025-03"]
    assert [x.label for x in windows(AS_OF, "quarter", 2)] == ["2024-Q3", "2024-Q4", "2025-Q1"]
    assert february().complete


def test_a_deal_reads_as_it_stood_on_the_date(facts) -> None:  # type: ignore[no-untyped-def]
    d9 = facts.deals.loc["D9"]
    # Won on 04-05 at 12k, after the date: open then, in qualification, at 9k.
    assert pd.isna(d9["closed_at"]) and not d9["is_won"]
    assert (d9["stage"], d9["amount"]) == ("qualification", 9_000)
    assert facts.deals.loc["D6", "close_date"] == pd.Timestamp("2025-04-30", tz="UTC")
    assert sorted(facts.deals.index[facts.open_at(AS_OF)]) == ["D4", "D5", "D6", "D7", "D9"]
    assert facts.deals.loc["D1", "source"] == "referral"
    assert facts.deals.loc["D3", "source"] == NO_LEAD
    assert list(facts.deals.loc[["D1", "D2", "D3"], "size"]) == ["smb", "mid_market",
                                                               "enterprise"]
    assert facts.deals.loc["D3", "industry"] == "unknown"


def test_conversion_is_from_first_entry_to_the_next_stage_or_beyond(facts) -> None:  # type: ignore[no-untyped-def]
    conv = m.conversion(stage_entries(facts), march(), m.overall(facts)).loc[m.ALL]
    # Prospecting in March: D4, D5, D8, D9; D4 and D9 moved on, D5 is still open, D8 lost.
    assert conv.loc["prospecting", ["entered", "converted", "still_open"]].tolist() == [4, 2, 1]
    assert conv.loc["prospecting", "rate"] == 0.5
    # Qualification: D4 (on to meeting/demo), D9 (its win is after the date).
    assert conv.loc["qualification", ["entered", "converted", "still_open"]].tolist() == [2, 1, 1]
    assert conv.loc["meeting_demo", ["entered", "converted", "still_open"]].tolist() == [1, 0, 1]
    # Proposal: D1 went on to negotiation, D3 (a renewal) straight to closed_won.
    assert conv.loc["proposal", ["entered", "converted", "rate"]].tolist() == [2, 2, 1.0]
    assert "negotiation" not in conv.index
    feb = m.conversion(stage_entries(facts), february(), m.overall(facts)).loc[m.ALL]
    assert feb["entered"].to_dict() == {"prospecting": 2, "qualification": 2, "meeting_demo": 1}
    assert feb["rate"].to_dict() == {"prospecting": 1.0, "qualification": 0.5,
                                     "meeting_demo": 1.0}


def test_win_rate_size_and_cycle(facts) -> None:  # type: ignore[no-untyped-def]
    everyone = m.overall(facts)
    wins = m.win_rate(facts, march(), everyone).loc[m.ALL]
    # Closed in March: D1, D3, D10 won; D2, D8 lost. D9 closes after the date.
    assert (wins["won"], wins["lost"], wins["rate"]) == (3, 2, 0.6)
    size = m.won_size(facts, march(), everyone).loc[m.ALL]
    assert (size["won_amount"], size["average"]) == (42_000, 14_000)
    cycle = m.sales_cycle(facts, march(), everyone).loc[m.ALL]
    # 50, 20 and 116 days.
    assert cycle["median"] == 50
    assert cycle["mean"] == pytest.approx(62)
    by_owner = m.win_rate(facts, march(), facts.deals["owner"])
    assert by_owner["rate"].to_dict() == pytest.approx({"R1": 0.5, "R2": 2 / 3})
    assert m.win_rate(facts, february(), everyone).empty


def test_median_days_in_each_stage(facts) -> None:  # type: ignore[no-untyped-def]
    days = m.days_in_stage(stage_visits(facts), march(), m.overall(facts)).loc[m.ALL]
    # Stays that ended in March: prospecting D4 10, D8 27, D9 10, D10 116; qualification
    # D2 23, D4 10; meeting/demo D1 10; proposal D1 10, D3 20; negotiation D1 10.
    assert days["stays"].to_dict() == {"prospecting": 4, "qualification": 2, "meeting_demo": 1,
                                       "proposal": 2, "negotiation": 1}
    assert days["median"].to_dict() == {"prospecting": 18.5, "qualification": 16.5,
                                        "meeting_demo": 10.0, "proposal": 15.0,
                                        "negotiation": 10.0}


def test_velocity_and_open_pipeline(facts) -> None:  # type: ignore[no-untyped-def]
    f = funnel(facts, stage_entries(facts), stage_visits(facts), march(),
               m.overall(facts))[m.ALL]
    assert (f.open_deals, f.open_amount) == (5, 8_000 + 5_000 + 30_000 + 60_000 + 9_000)
    # 5 open x 0.6 x 14,000 / 62 days.
    assert f.velocity_per_day == pytest.approx(5 * 0.6 * 14_000 / 62)
    feb = funnel(facts, stage_entries(facts), stage_visits(facts), february(),
                 m.overall(facts))[m.ALL]
    # Open at February's end: D1, D2, D6, D7, D10 (D3 opened on 03-01).
    assert feb.open_deals == 5
    assert feb.win_rate is None and feb.velocity_per_day is None
    assert m.velocity(5, None, 1.0, 10.0) is None


def test_coverage_is_pipeline_closing_in_the_period_over_what_is_left(facts) -> None:  # type: ignore[no-untyped-def]
    deals, amount = m.closing_in(facts, march())
    # Expected to close in March: D5 (03-31, 5k) and D7 (pulled in to 03-30, 60k).
    assert (deals, amount) == (2, 65_000)
    assert m.coverage(amount, 100_000, 42_000) == pytest.approx(65_000 / 58_000)
    assert m.coverage(amount, 40_000, 42_000) is None


def test_changes_since_last_week() -> None:
    tables = crafted()
    week = week_changes(deal_facts(tables, AS_OF), deal_facts(tables, WEEK_START))
    lines = {x.kind: (x.count, x.amount, x.amount_change, x.deals) for x in week.lines}
    assert lines == {
        "new": (1, 5_000, None, ["D5"]),
        "pulled_in": (1, 60_000, None, ["D7"]),
        "increased": (1, 60_000, 10_000, ["D7"]),
        "won": (1, 2_000, None, ["D10"]),
        "decreased": (1, 30_000, -10_000, ["D6"]),
        "pushed_out": (1, 30_000, None, ["D6"]),
        "lost": (1, 7_000, None, ["D8"]),
    }
    assert [x.kind for x in week.lines] == ["new", "pulled_in", "increased", "won",
                                            "decreased", "pushed_out", "lost"]


def test_money_at_risk_is_the_amount_times_the_shortfall_below_the_stage() -> None:
    from review.at_risk import money_at_risk

    assert money_at_risk(10_000, 0.2, 0.5) == pytest.approx(3_000)
    assert money_at_risk(10_000, 0.6, 0.5) == 0.0  # better than its stage: nothing at risk
    assert money_at_risk(None, 0.1, 0.5) == 0.0
    assert money_at_risk(float("nan"), 0.1, 0.5) == 0.0
    assert money_at_risk(10_000, 0.1, None) == 0.0
    # A large deal a little below its stage outranks a small one far below it.
    assert money_at_risk(200_000, 0.45, 0.5) > money_at_risk(5_000, 0.05, 0.5)
