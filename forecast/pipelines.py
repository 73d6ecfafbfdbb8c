"""The weighted pipelines a CRM shows: the stage's default probability, or its win rate.

A CRM's weighted pipeline for a period sums, over the open deals expected to close in it,
amount x a probability of the deal's stage: its default 10 / 20 / 40 / 60 / 80 %
(``features.schema.CRM_DEFAULT_STAGE_PROBABILITY``), or the CRM's own stage win rates.
A deal is expected in the period its close date (as known at the as-of time) falls in; an
open deal whose close date has already passed is expected in the current period.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.schema import CRM_DEFAULT_STAGE_PROBABILITY, OPEN_STAGES, CRMTables
from forecast.periods import Period


def stage_win_rates(tables: CRMTables, before: pd.Timestamp) -> dict[str, float]:
    """Of the deals that closed before ``before`` and ever entered each open stage (from
    the history), the share that were won: each deal counted once per stage."""
    opps = tables.opportunities
    closed = opps.loc[opps["closed_at"].notna() & (opps["closed_at"] < before)
                      & opps["is_won"].notna()]
    won = pd.Series(closed["is_won"].astype(bool).to_numpy(),
                    index=closed["opportunity_id"].astype(str))
    hist = tables.opportunity_history
    hist = hist.loc[hist["changed_at"] < before]
    seen = pd.DataFrame({"opp": hist["opportunity_id"].astype(str).to_numpy(),
                         "stage": hist["stage"].astype("object").to_numpy()})
    seen = seen.loc[seen["stage"].isin(OPEN_STAGES) & seen["opp"].isin(won.index)]
    seen = seen.drop_duplicates()
    seen["won"] = seen["opp"].map(won).to_numpy(dtype=float)
    rates = seen.groupby("stage")["won"].mean()
    return {s: float(rates[s]) for s in OPEN_STAGES if s in rates.index}


def stage_weights(stages: pd.Series | np.ndarray, rates: dict[str, float]) -> np.ndarray:
    """Each deal's stage probability (0 for a stage without one)."""
    s = pd.Series(np.asarray(stages, dtype=object))
    return s.map(rates).astype(float).fillna(0.0).to_numpy()


def crm_default_weights(stages: pd.Series | np.ndarray) -> np.ndarray:
    return stage_weights(stages, CRM_DEFAULT_STAGE_PROBABILITY)


def expected_in(close_dates: pd.Series, period: Period, as_of: pd.Timestamp,
                current: bool) -> np.ndarray:
    """Whether each open deal is expected to close in ``period`` by its close date; in the
    current period, also the deals whose close date has already passed."""
    when = pd.DatetimeIndex(close_dates)
    inside = np.asarray((when >= period.start) & (when < period.end))
    if current:
        inside |= np.asarray(when < as_of)
    return np.where(pd.isna(when), False, inside)
