"""The forecast's figures on a crafted CRM whose answers are worked out by hand."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.schema import TABLES, CRMTables, coerce_dtypes, empty_frame
from forecast.core import forecast
from forecast.pipelines import stage_win_rates

AS_OF = pd.Timestamp("2025-03-05", tz="UTC")

# deal: created, amount, closed_at, won, history rows (changed_at, stage, amount, close_date)
DEALS: dict[str, tuple[str, float, str | None, bool | None, list[tuple[str, str, float, str]]]] = {
    "C1": ("2024-12-01", 1000, "2025-01-10", True, [
        ("2024-12-01", "prospecting", 1000, "2025-01-31"),
        ("2024-12-15", "qualification", 1000, "2025-01-31"),
        ("2025-01-10", "closed_won", 1000, "2025-01-31")]),
    "C2": ("2024-12-05", 500, "2025-01-20", False, [
        ("2024-12-05", "prospecting", 500, "2025-01-31"),
        ("2025-01-20", "closed_lost", 500, "2025-01-31")]),
    "C3": ("2024-12-10", 900, "2025-02-10", False, [
        ("2024-12-10", "prospecting", 900, "2025-02-28"),
        ("2024-12-20", "qualification", 900, "2025-02-28"),
        ("2025-01-05", "meeting_demo", 900, "2025-02-28"),
        ("2025-02-10", "closed_lost", 900, "2025-02-28")]),
    "C4": ("2024-12-12", 800, "2025-02-15", True, [
        ("2024-12-12", "qualification", 800, "2025-02-28"),
        ("2025-01-15", "proposal", 800, "2025-02-28"),
        ("2025-02-15", "closed_won", 800, "2025-02-28")]),
    "C6": ("2025-01-02", 700, "2025-03-02", True, [
        ("2025-01-02", "negotiation", 700, "2025-03-31"),
        ("2025-03-02", "closed_won", 700, "2025-03-31")]),
    # Won after the as-of time: open then, at meeting/demo, expected this month.
    "C5": ("2025-02-01", 1500, "2025-03-10", True, [
        ("2025-02-01", "meeting_demo", 1500, "2025-03-25"),
        ("2025-03-10", "closed_won", 1500, "2025-03-25")]),
    "O1": ("2025-02-10", 1000, None, None, [("2025-02-10", "prospecting", 1000, "2025-03-20")]),
    "O2": ("2025-01-20", 2000, None, None, [("2025-01-20", "proposal", 2000, "2025-04-10")]),
    # Overdue: its close date passed while it is still open, so it counts this month.
    "O3": ("2024-12-20", 5000, None, None, [("2024-12-20", "negotiation", 5000, "2025-02-20")]),
    # Cut to 3,000 before the as-of time; raised to 9,000 after it, which must not count.
    "O4": ("2025-01-05", 9000, None, None, [
        ("2025-01-05", "qualification", 4000, "2025-05-05"),
        ("2025-02-01", "qualification", 3000, "2025-05-05"),
        ("2025-03-20", "qualification", 9000, "2025-05-05")]),
}
P_WON = {"O1": 0.5, "O2": 0.5, "O3": 0.9, "O4": 0.2, "C5": 0.6}
CLOSED_BY = (0.5, 0.8)
"""The time model's P(closed by the end of March | won), and by the end of April."""


def _frame(name: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    table = TABLES[name]
    df = pd.DataFrame(rows, columns=table.column_names)
    return coerce_dtypes(df.astype(object).where(df.notna(), None), table)


def crafted_crm() -> CRMTables:
    opps, hist = [], []
    for oid, (created, amount, closed, won, rows) in DEALS.items():
        opps.append({"opportunity_id": oid, "account_id": "A1", "lead_id": None,
                     "owner_id": "R1", "created_at": created, "product": "professional",
                     "amount": amount, "close_date": rows[-1][3], "closed_at": closed,
                     "is_won": won})
        hist += [{"opportunity_id": oid, "changed_at": at, "stage": stage, "amount": amt,
                  "close_date": close} for at, stage, amt, close in rows]
    accounts = [{"account_id": "A1", "name": "Acme", "industry": "software", "employees": 100,
                 "annual_revenue": 1e6, "country": "US", "created_at": "2024-01-01"}]
    return CRMTables(
        accounts=_frame("accounts", accounts),
        leads=empty_frame(TABLES["leads"]),
        opportunities=_frame("opportunities", opps),
        opportunity_history=_frame("opportunity_history", hist),
        activities=empty_frame(TABLES["activities"]),
    )


class ById:
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return X["opportunity_id"].astype(str).map(P_WON).to_numpy(dtype=float)


class FixedTime:
    def __init__(self) -> None:
        self.days: np.ndarray | None = None

    def prob_closed_within(self, frame: pd.DataFrame, days: np.ndarray) -> np.ndarray:
        self.days = np.asarray(days)
        return np.tile(np.array(CLOSED_BY), (len(frame), 1))


def test_stage_win_rates_count_each_closed_deal_once_per_stage_it_entered() -> None:
    rates = stage_win_rates(crafted_crm(), AS_OF)
    # prospecting: C1 won, C2 and C3 lost; qualification: C1 and C4 won, C3 lost;
    # meeting/demo: C3 lost (C5 closes after the as-of time); proposal: C4; negotiation: C6.
    assert rates == pytest.approx({"prospecting": 1 / 3, "qualification": 2 / 3,
                                   "meeting_demo": 0.0, "proposal": 1.0, "negotiation": 1.0})


def test_weighted_pipelines_and_our_expectation_by_hand() -> None:
    time_model = FixedTime()
    fc = forecast(crafted_crm(), AS_OF, "month", ById(), time_model, draws=20_000, seed=1,
                  new_deals=False, spread=0.0)
    # Days from the as-of time to the end of March and of April.
    assert time_model.days is not None
    assert time_model.days.tolist() == [27.0, 57.0]
    cur, nxt = fc.current, fc.next
    assert (cur.period, nxt.period) == ("2025-03", "2025-04")
    assert sorted(d.opportunity_id for d in fc.deals) == ["C5", "O1", "O2", "O3", "O4"]
    amounts = {d.opportunity_id: d.amount for d in fc.deals}
    assert amounts["O4"] == 3000.0  # as of the date, not the later 9,000
    assert cur.closed_won == 700.0  # C6, won on 2 March
    # CRM default: O1 (March) 10 %, O3 (overdue) 80 %, C5 (March) 40 %; O2 (April) 60 %.
    assert cur.crm_default_weighted == pytest.approx(700 + 1000 * 0.1 + 5000 * 0.8 + 1500 * 0.4)
    assert nxt.crm_default_weighted == pytest.approx(2000 * 0.6)
    # Stage rates: prospecting 1/3, negotiation 1, meeting/demo 0; proposal 1.
    assert cur.stage_rate_weighted == pytest.approx(700 + 1000 / 3 + 5000 * 1.0 + 1500 * 0.0)
    assert nxt.stage_rate_weighted == pytest.approx(2000 * 1.0)
    assert cur.open_deals_expected_in == 3 and nxt.open_deals_expected_in == 1
    # Ours: amount x P(won) x P(closes in the period | won), O4 included (no close-date cut).
    weighted = sum(amounts[k] * p for k, p in P_WON.items())
    assert cur.open_expected == pytest.approx(weighted * 0.5)
    assert nxt.open_expected == pytest.approx(weighted * 0.3)
    assert cur.bookings.mean == pytest.approx(700 + weighted * 0.5, rel=0.02)
    assert cur.bookings.p10 <= cur.bookings.p50 <= cur.bookings.p90
    assert cur.crm_default.mean == pytest.approx(cur.crm_default_weighted, rel=0.02)
    assert fc.to_json()["current"]["bookings"]["p50"] == cur.bookings.p50


def test_a_wider_spread_widens_only_the_range() -> None:
    tables = crafted_crm()
    narrow = forecast(tables, AS_OF, "month", ById(), FixedTime(), new_deals=False, spread=0.0)
    wide = forecast(tables, AS_OF, "month", ById(), FixedTime(), new_deals=False, spread=0.5)
    assert wide.current.open_expected == narrow.current.open_expected
    n, w = narrow.current.bookings, wide.current.bookings
    assert w.p90 - w.p10 > n.p90 - n.p10
    assert wide.current.crm_default == narrow.current.crm_default


def test_unknown_period_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown period"):
        forecast(crafted_crm(), AS_OF, "week", ById(), FixedTime())


def test_no_open_deals_is_a_forecast_of_new_deals_only() -> None:
    fc = forecast(crafted_crm(), pd.Timestamp("2024-11-15", tz="UTC"), "quarter", ById(),
                  FixedTime(), draws=1000)
    assert fc.deals == [] and fc.current.open_expected == 0.0
    assert fc.current.period == "2024Q4" and fc.next.period == "2025Q1"
    # Nothing was created, let alone won, before: no history to expect new wins from.
    assert fc.current.bookings == fc.current.crm_default
    assert fc.current.bookings.p90 == 0.0


def _deals_only(rows: list[tuple[str, str, float]]) -> CRMTables:
    """Won deals (created, closed, amount) and nothing else."""
    opps = [{"opportunity_id": f"N{i}", "account_id": "A1", "lead_id": None, "owner_id": "R1",
             "created_at": created, "product": "starter", "amount": amount,
             "close_date": closed, "closed_at": closed, "is_won": True}
            for i, (created, closed, amount) in enumerate(rows)]
    empty = {name: empty_frame(TABLES[name]) for name in
             ("accounts", "leads", "opportunity_history", "activities")}
    return CRMTables(opportunities=_frame("opportunities", opps), **empty)


def test_new_deal_wins_from_like_periods_by_hand() -> None:
    from forecast.new_deals import new_deal_rates

    tables = _deals_only([
        # Created and won inside a first month of a quarter: January, October, April 2024.
        ("2025-01-05", "2025-01-20", 100), ("2025-01-10", "2025-01-28", 300),
        ("2024-10-02", "2024-10-30", 200), ("2024-04-03", "2024-04-25", 400),
        # A second month of a quarter: February.
        ("2025-02-03", "2025-02-20", 1000),
        # Created in January, won in February: the month after.
        ("2025-01-25", "2025-02-10", 500),
        # Created and won in March (a third month): neither.
        ("2025-03-20", "2025-03-31", 50),
    ])
    rates = new_deal_rates(tables, pd.Timestamp("2025-04-01", tz="UTC"), "month")
    # April: the four first months before it (Jan, Oct, Jul, Apr) hold 2 + 1 + 0 + 1 wins.
    assert rates.current.expected_count == pytest.approx(1.0)
    assert sorted(rates.current.amounts) == [100, 200, 300, 400]
    assert rates.current.expected_amount == pytest.approx(250.0)
    # May: 1 win in four second months, plus 1 in four of created in a first, won next.
    assert rates.next.expected_count == pytest.approx(0.25 + 0.25)
    assert sorted(rates.next.amounts) == [500, 1000]
    # Half of April left: half of its own new wins, and of those carried into May.
    half = new_deal_rates(tables, pd.Timestamp("2025-04-16", tz="UTC"), "month")
    assert half.current.expected_count == pytest.approx(0.5)
    assert half.next.expected_count == pytest.approx(0.25 + 0.5 * 0.25)


def test_the_spread_is_the_past_error_independent_deals_do_not_explain() -> None:
    from forecast.core import PastError, spread_of

    def err(log_ratio: float, cv: float) -> PastError:
        return PastError("p", 100.0, 100.0 * float(np.exp(log_ratio)), cv)

    errors = [err(0.1, 0.05), err(-0.1, 0.05), err(0.2, 0.05)]
    # Mean square of the log ratios (0.01 + 0.01 + 0.04) / 3, less the independent 0.05^2.
    assert spread_of(errors) == pytest.approx(np.sqrt(0.02 - 0.0025))
    assert spread_of([err(0.1, 0.2), err(-0.1, 0.2), err(0.05, 0.2)]) == 0.0
    assert spread_of(errors[:2]) == 0.0


def test_a_range_resting_on_few_periods_is_wider() -> None:
    from forecast.core import Z90, shock_sd, t90_over_z90

    # Student's t 90th percentiles: 1.440 with 6 degrees of freedom, 1.372 with 10.
    assert t90_over_z90(6) * Z90 == pytest.approx(1.440, abs=0.002)
    assert t90_over_z90(10) * Z90 == pytest.approx(1.372, abs=0.002)
    samples = np.random.default_rng(0).normal(100.0, 10.0, 200_000)
    cv = samples.std() / samples.mean()
    k = t90_over_z90(6)
    # Total log spread k * sqrt(cv^2 + common^2): the shock adds what the samples lack.
    assert shock_sd(samples, 0.2, 6) == pytest.approx(np.sqrt((k**2 - 1) * cv**2
                                                              + k**2 * 0.2**2))
    assert shock_sd(samples, 0.0, 0) == 0.0  # nothing measured: independent deals only


def test_a_range_resting_on_given_errors_uses_only_periods_over_by_then() -> None:
    """Errors of forecasts made out of sample (a backtest's) set the spread: the last
    ``spread_periods`` of those whose period ended by the date, never a later one."""
    from forecast.core import PastError, spread_of

    def err(label: str, end: str, log_ratio: float) -> PastError:
        return PastError(label, 100.0, 100.0 * float(np.exp(log_ratio)), 0.05,
                         pd.Timestamp(end, tz="UTC").isoformat())

    ended = [err(f"p{i}", "2024-06-01", r) for i, r in enumerate((0.3, 0.1, -0.1, 0.2, -0.2))]
    later = err("late", "2031-01-01", 5.0)
    tables = crafted_crm()
    fc = forecast(tables, AS_OF, "month", ById(), FixedTime(), new_deals=False,
                  errors=[*ended, later], spread_periods=4)
    assert fc.spread_from == "backtest"
    assert [e.period for e in fc.past_errors] == ["p1", "p2", "p3", "p4"]
    assert fc.spread == pytest.approx(spread_of(ended[1:]))
    same = forecast(tables, AS_OF, "month", ById(), FixedTime(), new_deals=False)
    assert same.spread_from == "same models"
    given = forecast(tables, AS_OF, "month", ById(), FixedTime(), new_deals=False, spread=0.1)
    assert given.spread_from == "none" and given.spread == 0.1
