"""The funnel metrics, each defined once (the README's "Pipeline review" lists the same).

Every function reads :class:`review.deals.DealFacts` (the deals as of the review's date)
and one period's :class:`review.periods.Window`, and gives one row per group of a
breakdown (``groups``: each deal's value, e.g. its owner; one group "all" overall).

- conversion, stage n -> n+1: of the deals whose first entry into stage n falls in the
  period, the share with a later row in stage n+1 or beyond (closed_won included) by the
  date; ``still_open``: those not converted yet and still open.
- win rate: won / (won + lost) of the deals closed in the period.
- average won deal size: the mean amount of the deals won in the period.
- sales cycle: days from created to closed of the deals won in the period; median, mean.
- days in stage: the median length of the stays in each stage that ended in the period.
- open pipeline: the deals open at the period's end (or the date), count and amount.
- pipeline velocity: open deals x win rate x average won size / mean sales cycle, in money
  per day (all four of the same period).
- coverage: the open pipeline expected to close in the period (close date inside it) /
  what is left of the target (target - won in the period so far).
"""

from __future__ import annotations

import math

import pandas as pd

from features.schema import OPEN_STAGES
from review.deals import DealFacts
from review.periods import Window

ALL = "all"


def overall(facts: DealFacts) -> pd.Series:
    """One group holding every deal."""
    return pd.Series(ALL, index=facts.deals.index, dtype="object")


def _group_of(ids: pd.Series, groups: pd.Series) -> pd.Series:
    return ids.map(groups)


def entered(entries: pd.DataFrame, window: Window, groups: pd.Series) -> pd.DataFrame:
    """Per group and open stage: the deals whose first entry into it fell in the period."""
    cohort = entries.loc[window.holds(entries["entered_at"])]
    group = _group_of(cohort["opportunity_id"], groups)
    return cohort.groupby([group.rename("group"), "stage"], sort=False).size().rename(
        "deals").to_frame()


def conversion(entries: pd.DataFrame, window: Window, groups: pd.Series) -> pd.DataFrame:
    """Per group and open stage but the last: entered, converted, still_open and rate."""
    cohort = entries.loc[window.holds(entries["entered_at"])]
    cohort = cohort.loc[cohort["order"] < len(OPEN_STAGES) - 1]
    cohort = cohort.assign(group=_group_of(cohort["opportunity_id"], groups))
    out = cohort.groupby(["group", "stage"], sort=False).agg(
        entered=("converted", "size"), converted=("converted", "sum"),
        still_open=("still_open", "sum"))
    out["rate"] = out["converted"] / out["entered"]
    return out


def _closed(facts: DealFacts, window: Window, groups: pd.Series) -> pd.DataFrame:
    d = facts.deals
    closed = d.loc[window.holds(d["closed_at"]), ["created_at", "closed_at", "is_won", "amount"]]
    return closed.assign(group=groups.reindex(closed.index))


def win_rate(facts: DealFacts, window: Window, groups: pd.Series) -> pd.DataFrame:
    """Per group: won, lost and won / (won + lost) of the deals closed in the period."""
    closed = _closed(facts, window, groups)
    out = closed.groupby("group", sort=False).agg(won=("is_won", "sum"),
                                                   closed=("is_won", "size"))
    out["lost"] = out["closed"] - out["won"]
    out["rate"] = out["won"] / out["closed"]
    return out[["won", "lost", "rate"]]


def won_size(facts: DealFacts, window: Window, groups: pd.Series) -> pd.DataFrame:
    """Per group: the amount won in the period and the mean amount of a won deal."""
    won = _closed(facts, window, groups)
    won = won.loc[won["is_won"]]
    return won.groupby("group", sort=False)["amount"].agg(won_amount="sum", average="mean")


def sales_cycle(facts: DealFacts, window: Window, groups: pd.Series) -> pd.DataFrame:
    """Per group: median and mean days from created to closed of the deals won in the period."""
    won = _closed(facts, window, groups)
    won = won.loc[won["is_won"]]
    days = (won["closed_at"] - won["created_at"]).dt.total_seconds() / 86_400
    return days.groupby(won["group"], sort=False).agg(median="median", mean="mean")


def days_in_stage(visits: pd.DataFrame, window: Window, groups: pd.Series) -> pd.DataFrame:
    """Per group and open stage: stays that ended in the period, and their median days."""
    ended = visits.loc[window.holds(visits["left_at"])]
    ended = ended.assign(group=_group_of(ended["opportunity_id"], groups))
    return ended.groupby(["group", "stage"], sort=False)["days"].agg(
        stays="size", median="median")


def open_pipeline(facts: DealFacts, window: Window, groups: pd.Series) -> pd.DataFrame:
    """Per group: deals open at the period's end (the date for the current one), and their
    amount as of the date."""
    amount = facts.deals.loc[facts.open_at(window.last), "amount"]
    return amount.groupby(groups.reindex(amount.index), sort=False).agg(
        deals="size", amount="sum")


def velocity(open_deals: int, rate: float | None, average: float | None,
             cycle_mean_days: float | None) -> float | None:
    """Open deals x win rate x average won size / mean cycle days: money per day."""
    if rate is None or average is None or not cycle_mean_days:
        return None
    return open_deals * rate * average / cycle_mean_days


def closing_in(facts: DealFacts, window: Window) -> tuple[int, float]:
    """Deals open as of the date whose expected close date falls in the period, and their
    amount."""
    d = facts.deals
    open_ = d.loc[facts.open_at(facts.as_of)]
    due = open_.loc[((open_["close_date"] >= window.start)
                     & (open_["close_date"] < window.end)).fillna(False)]
    return len(due), float(due["amount"].fillna(0.0).sum())


def coverage(open_closing: float, target: float, won_so_far: float) -> float | None:
    """Open pipeline closing in the period / what is left of the target; None when the
    target is already met (nothing is left to cover)."""
    remaining = target - won_so_far
    return open_closing / remaining if remaining > 0 else None


def number(value: object) -> float | None:
    """A metric as a plain float, None where it is not defined (no deals: NaN)."""
    if value is None:
        return None
    out = float(value)  # type: ignore[arg-type]
    return None if math.isnan(out) else out
