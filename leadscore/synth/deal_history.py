"""What a CRM records of a deal: amount and close date, their changes, stage rows, activity.

Troubled deals have their close date pushed and amount cut, and go quiet; better deals are
multi-threaded (more contacts) and busier.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.schema import OPEN_STAGES
from leadscore.synth.deals import Deals
from leadscore.synth.sampling import emit, sigmoid
from leadscore.synth.vocab import PRODUCT_BASE_AMOUNT, RENEWAL, activity_rates

# Deal activity rates per day by stage (rows) for a healthy deal.
DEAL_RATES = np.stack([
    activity_rates(email_sent=0.25, email_opened=0.15, email_replied=0.06, call=0.1,
                   meeting=0.03),
    activity_rates(email_sent=0.2, email_opened=0.15, email_replied=0.08, call=0.08,
                   meeting=0.08, web_visit=0.05),
    activity_rates(email_sent=0.2, email_opened=0.12, email_replied=0.08, call=0.06,
                   meeting=0.08, demo=0.12, web_visit=0.06, pricing_page_visit=0.04),
    activity_rates(email_sent=0.2, email_opened=0.15, email_replied=0.1, call=0.08,
                   meeting=0.06, pricing_page_visit=0.08, content_download=0.02),
    activity_rates(email_sent=0.25, email_opened=0.15, email_replied=0.12, call=0.12,
                   meeting=0.08),
])
TROUBLED_ACTIVITY_FACTOR = 0.15
# Within-state emissions that write history rows (per day): healthy, troubled.
PUSH_RATE = (0.004, 0.05)
CUT_RATE = (0.001, 0.02)
RAISE_RATE = (0.003, 0.0005)


@dataclass(frozen=True)
class DealEvents:
    """Close-date pushes (kind 0), amount cuts (1) and raises (2) inside open spells."""

    deal: np.ndarray
    time: np.ndarray
    kind: np.ndarray
    stage: np.ndarray
    push_days: np.ndarray
    amount_factor: np.ndarray


@dataclass(frozen=True)
class DealHistory:
    """One row per change, sorted by deal then time (including rows after the data's end)."""

    deal: np.ndarray
    time: np.ndarray
    stage: np.ndarray  # index into OPEN_STAGES + (closed_won, closed_lost)
    amount: np.ndarray
    close: np.ndarray  # day offset of the expected close date


def price_new_business(rng: np.random.Generator, deals: Deals, employees: np.ndarray,
                       idx: np.ndarray, amount0: np.ndarray, close0: np.ndarray) -> None:
    """Initial amount (by product and company size) and expected close date of ``idx``."""
    emp = employees[deals.account[idx]].astype(float)
    base_amt = PRODUCT_BASE_AMOUNT[deals.product[idx]] * (emp / 200.0) ** 0.25
    amount0[idx] = np.round(base_amt * np.exp(rng.normal(0.0, 0.4, idx.size)), -2)
    close0[idx] = _close_dates(rng, deals, idx)


def price_follow_ons(rng: np.random.Generator, deals: Deals, idx: np.ndarray,
                     amount0: np.ndarray, close0: np.ndarray) -> None:
    """Renewals and expansions take their amount from the deal they follow.

    Parents sit at a lower depth, so resolving depth by depth sees every parent's amount first.
    """
    factor = np.where(deals.product[idx] == RENEWAL, 0.9 + 0.25 * rng.random(idx.size),
                      0.2 + 0.3 * rng.random(idx.size))
    for d in range(1, int(deals.depth[idx].max(initial=0)) + 1):
        at = deals.depth[idx] == d
        amount0[idx[at]] = np.maximum(
            100.0, np.round(amount0[deals.parent[idx[at]]] * factor[at], -2))
    close0[idx] = _close_dates(rng, deals, idx)


def _close_dates(rng: np.random.Generator, deals: Deals, idx: np.ndarray) -> np.ndarray:
    return np.floor(deals.created[idx] + 45.0 + 75.0 * rng.random(idx.size)
                    - 10.0 * deals.start_stage[idx])


def contact_counts(rng: np.random.Generator, quality: np.ndarray) -> np.ndarray:
    """Contacts engaged per deal: better deals are multi-threaded."""
    return 1 + rng.poisson(0.2 + 2.5 * sigmoid(1.5 * quality), quality.size)


def emit_deal_activities(rng: np.random.Generator, deals: Deals,
                         which: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(deal, time, type) of every activity in the spells of the deals ``which`` selects:
    busier when healthy and good."""
    seg = deals.segments
    sel = np.flatnonzero(which[seg.deal])
    deal = seg.deal[sel]
    act_rates = DEAL_RATES[seg.stage[sel]] * (np.where(
        seg.regime[sel] == 1, TROUBLED_ACTIVITY_FACTOR, 1.0) * np.exp(0.8 * deals.quality[deal]))[
        :, None]
    a_seg, time, kind = emit(rng, seg.start[sel], seg.end[sel], act_rates)
    return deal[a_seg], time, kind


def emit_deal_events(rng: np.random.Generator, deals: Deals, which: np.ndarray) -> DealEvents:
    """Pushes and amount changes at regime-dependent rates, with their sizes."""
    seg = deals.segments
    sel = np.flatnonzero(which[seg.deal])
    regime = seg.regime[sel]
    ev_rates = np.stack([
        np.take(PUSH_RATE, regime), np.take(CUT_RATE, regime), np.take(RAISE_RATE, regime)],
        axis=1)
    e_seg, ev_time, ev_kind = emit(rng, seg.start[sel], seg.end[sel], ev_rates)
    n_ev = ev_kind.size
    push_days = np.where(ev_kind == 0, np.round(7 + 38 * rng.random(n_ev)), 0.0)
    amt_factor = np.where(ev_kind == 1, 1.0 - (0.1 + 0.3 * rng.random(n_ev)),
                          np.where(ev_kind == 2, 1.0 + (0.05 + 0.25 * rng.random(n_ev)), 1.0))
    return DealEvents(seg.deal[sel][e_seg], ev_time, ev_kind, seg.stage[sel][e_seg], push_days,
                      amt_factor)


def concat_events(parts: list[DealEvents]) -> DealEvents:
    fields = DealEvents.__dataclass_fields__
    return DealEvents(**{f: np.concatenate([getattr(p, f) for p in parts]) for f in fields})


def history_rows(deals: Deals, events: DealEvents, amount0: np.ndarray,
                 close0: np.ndarray) -> DealHistory:
    """Creation, stage moves, pushes / amount changes, close: as CRMs keep the history."""
    seg, n_opp = deals.segments, deals.n
    moved = (seg.next == 0) | (seg.next == 2)
    won_final = moved & (seg.next == 0) & (seg.stage == len(OPEN_STAGES) - 1)
    move = moved & ~won_final
    mv_stage = np.where(seg.next == 0, seg.stage + 1, seg.stage - 1)[move]
    n_ev = events.deal.size
    # An imported contract is created in its closed stage: its creation row is its close row.
    closed_idx = np.flatnonzero(~np.isnan(deals.closed) & ~deals.imported)
    h_deal = np.concatenate([np.arange(n_opp), seg.deal[move], events.deal, closed_idx])
    h_time = np.concatenate([deals.created, seg.end[move], events.time,
                             deals.closed[closed_idx]])
    h_stage = np.concatenate([
        deals.start_stage, mv_stage, events.stage,
        np.where(deals.won[closed_idx], len(OPEN_STAGES), len(OPEN_STAGES) + 1)])
    h_push = np.concatenate([np.zeros(n_opp + move.sum()), events.push_days,
                             np.zeros(closed_idx.size)])
    h_factor = np.concatenate([np.ones(n_opp + move.sum()), events.amount_factor,
                               np.ones(closed_idx.size)])
    h_order = np.concatenate([np.zeros(n_opp), np.ones(move.sum()), np.full(n_ev, 2.0),
                              np.full(closed_idx.size, 3.0)])
    order = np.lexsort((h_order, h_time, h_deal))
    h_deal, h_time, h_stage = h_deal[order], h_time[order], h_stage[order]
    h_push, h_factor = h_push[order], h_factor[order]
    hist = pd.DataFrame({"deal": h_deal, "push": h_push, "logf": np.log(h_factor)})
    cum_push = hist.groupby("deal", sort=False)["push"].cumsum().to_numpy()
    cum_logf = hist.groupby("deal", sort=False)["logf"].cumsum().to_numpy()
    h_amount = np.round(amount0[h_deal] * np.exp(cum_logf), -2)
    h_close = close0[h_deal] + cum_push
    is_close_row = h_stage >= len(OPEN_STAGES)
    h_close = np.where(is_close_row, np.floor(h_time), h_close)
    return DealHistory(h_deal, h_time, h_stage, h_amount, h_close)
