"""Wins from deals not created yet: the past rate of deals created and won inside a period.

For each of the last full periods before the as-of time, the deals created in it and won
before it ended (``lag 0``), and those created in it and won in the period after (``lag
1``). Sales have a calendar (quarter ends): for months, only the past months at the same
place in their quarter are averaged (the last four of them); for quarters, the last four
quarters. The current period's share still to come is the part of it after the as-of
time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.schema import CRMTables
from forecast.periods import Period, period_of
from forecast.simulate import NewWins

LOOKBACK = 4
"""Past periods averaged (months at the same place in the quarter, or quarters)."""


@dataclass(frozen=True)
class NewDealRates:
    current: NewWins
    next: NewWins
    periods_used: int


def _past_periods(first: Period, kind_step: int, before: pd.Timestamp, n: int) -> list[Period]:
    """Up to ``n`` periods ``kind_step`` apart, going back from ``first``, that ended
    by ``before``."""
    out: list[Period] = []
    p = first
    for _ in range(200):
        if len(out) >= n:
            break
        if p.end <= before:
            out.append(p)
        for _ in range(kind_step):
            p = p.previous()
    return out


def _created_won(won: pd.DataFrame, created_in: Period, won_in: Period) -> pd.DataFrame:
    return won.loc[(won["created_at"] >= created_in.start) & (won["created_at"] < created_in.end)
                   & (won["closed_at"] >= won_in.start) & (won["closed_at"] < won_in.end)]


def _rate(won: pd.DataFrame, targets: list[Period], lag: int, scale: float) -> NewWins:
    counts, amounts = [], []
    for p in targets:
        won_in = p
        for _ in range(lag):
            won_in = won_in.next()
        rows = _created_won(won, p, won_in)
        counts.append(len(rows))
        amounts.append(rows["amount"].to_numpy(dtype=float))
    if not targets:
        return NewWins(0.0, np.zeros(0))
    pooled = np.concatenate(amounts) if amounts else np.zeros(0)
    return NewWins(scale * float(np.mean(counts)), pooled[np.isfinite(pooled)])


def new_deal_rates(tables: CRMTables, as_of: pd.Timestamp, kind: str,
                   lookback: int = LOOKBACK) -> NewDealRates:
    """Expected wins of deals created after ``as_of``, in the current and the next period,
    from deals created and closed before ``as_of``."""
    current = period_of(as_of, kind)
    nxt = current.next()
    opps = tables.opportunities
    won = opps.loc[opps["is_won"].fillna(False).astype(bool) & opps["closed_at"].notna()
                   & (opps["closed_at"] < as_of), ["created_at", "closed_at", "amount"]]
    step = 3 if current.kind == "month" else 1
    left = float((current.end - as_of) / (current.end - current.start))
    # Like the current period (same place in the quarter), created and won inside it.
    like_current = _past_periods(current.previous() if step == 1 else _back(current, 3),
                                 step, as_of, lookback)
    like_next = _past_periods(nxt.previous() if step == 1 else _back(nxt, 3),
                              step, as_of, lookback)
    # Created in a period like the current one, won in the one after it (ended by as_of).
    lag1_from = [p for p in like_current if p.next().end <= as_of]
    cur = _rate(won, like_current, 0, left)
    next_same = _rate(won, like_next, 0, 1.0)
    next_lag = _rate(won, lag1_from, 1, left)
    combined = NewWins(next_same.expected_count + next_lag.expected_count,
                       np.concatenate([next_same.amounts, next_lag.amounts]))
    return NewDealRates(cur, combined, len(like_current))


def _back(p: Period, n: int) -> Period:
    for _ in range(n):
        p = p.previous()
    return p
