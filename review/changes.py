"""What changed in the pipeline over the week before the review's date.

The deals as of the date are compared with the same deals a week earlier (both read from
the history, ``review.deals``):

- new: created in the week;
- won, lost: closed in the week, at their amount at close;
- pulled in, pushed out: open at both ends, expected close date earlier / later now;
- increased, decreased: open at both ends, amount higher / lower now (``amount_change``:
  the week's change).

A deal can be in more than one line (created and won in the week; pushed out and cut).
"""

from __future__ import annotations

import pandas as pd

from review.deals import DealFacts
from review.schemas import ChangeKind, ChangeLine, WeekChanges

WEEK = pd.Timedelta(days=7)

LABELS: dict[ChangeKind, str] = {
    "new": "new",
    "pulled_in": "close date pulled in",
    "increased": "amount increased",
    "won": "won",
    "decreased": "amount decreased",
    "pushed_out": "close date pushed out",
    "lost": "lost",
}


def _line(kind: ChangeKind, deals: pd.DataFrame, change: pd.Series | None = None) -> ChangeLine:
    ordered = deals.sort_values("amount", ascending=False, kind="stable")
    return ChangeLine(
        kind=kind, label=LABELS[kind], count=len(deals),
        amount=float(deals["amount"].fillna(0.0).sum()),
        amount_change=None if change is None else float(change.sum()),
        deals=[str(i) for i in ordered.index],
    )


def week_changes(now: DealFacts, before: DealFacts) -> WeekChanges:
    """The week's changes between ``before`` (a week before the date) and ``now``."""
    d, since = now.deals, before.as_of
    new = d.loc[(d["created_at"] > since)]
    closed = d.loc[(d["closed_at"] > since).fillna(False)]
    both = d.index[now.open_at(now.as_of)].intersection(
        before.deals.index[before.open_at(since)])
    a, b = d.loc[both], before.deals.loc[both]
    earlier = (a["close_date"] < b["close_date"]).fillna(False)
    later = (a["close_date"] > b["close_date"]).fillna(False)
    delta = (a["amount"] - b["amount"]).fillna(0.0)
    return WeekChanges(since=since.to_pydatetime(), until=now.as_of.to_pydatetime(), lines=[
        _line("new", new),
        _line("pulled_in", a.loc[earlier]),
        _line("increased", a.loc[delta > 0], delta[delta > 0]),
        _line("won", closed.loc[closed["is_won"]]),
        _line("decreased", a.loc[delta < 0], delta[delta < 0]),
        _line("pushed_out", a.loc[later]),
        _line("lost", closed.loc[~closed["is_won"]]),
    ])
