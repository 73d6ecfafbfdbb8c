"""Customer contracts, read from the opportunities: what the post-purchase tasks stand on.

A CRM export has no contract table, so contracts are read from the deals: every won deal
but an expansion (which adds to the running contract) starts a term of :data:`TERM_DAYS`,
due for renewal at its end. The renewal deal of a
term is the account's first renewal deal (product ``renewal``) created from
:data:`RENEWAL_LEAD_DAYS` before the due date to :data:`GRACE_DAYS` after it that no
earlier term took. Deals are matched in the order they were created, so the matching of
the deals known at a time t never changes when later deals arrive: features as of t can
use it, and labels can look further.

A term ends when its renewal deal closes (it runs on while that deal is open), or
:data:`GRACE_DAYS` after its due date when no renewal deal came (the customer did not
renew). An account is a customer at t while
one of its terms has started and not ended.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features import point_in_time as pit
from features.columns import AnyTables, equals, floats, keys, times

TERM_DAYS = 365
"""Length of a contract term: a won deal renews this long after it closed."""
RENEWAL_LEAD_DAYS = 150
"""How early before its due date a renewal deal may be opened and still count as it."""
GRACE_DAYS = 60
"""How long after its due date a renewal may still come."""
RENEWAL_PRODUCT = "renewal"
EXPANSION_PRODUCT = "expansion"

_DAY = pit.NS_PER_DAY


@dataclass(frozen=True)
class Contracts:
    """One row per term (a won deal), sorted by account then due date."""

    account: np.ndarray
    """Account code (into the vocabulary given) of each term; -1 where unknown."""
    deal: np.ndarray
    """Row of the won deal in the opportunities table."""
    start: np.ndarray
    due: np.ndarray
    amount: np.ndarray
    """What the won deal was worth when it closed, from its history."""
    renewal: np.ndarray
    """Row of the matched renewal deal, or -1."""
    renewal_created: np.ndarray
    renewal_closed: np.ndarray
    """When the matched renewal deal closed (NAT: no renewal deal, or still open)."""
    renewal_won: np.ndarray
    """1.0 won, 0.0 lost, NaN: no renewal deal or still open."""

    def __len__(self) -> int:
        return len(self.account)

    def ends(self) -> np.ndarray:
        """When each term ended: its renewal deal's close (never, while that deal is
        open), else, with no renewal deal, its due date + grace."""
        never = np.iinfo(np.int64).max
        open_renewal = np.where(self.renewal_closed != pit.NAT, self.renewal_closed, never)
        return np.where(self.renewal >= 0, open_renewal, self.due + GRACE_DAYS * _DAY)


def read_contracts(
    tables: AnyTables, account_vocab: pd.Series | np.ndarray, known_by: int | None = None
) -> Contracts:
    """The terms of every account in ``account_vocab`` and their renewal deals.

    ``known_by`` (UTC nanoseconds) keeps only what was known then: deals won, renewal
    deals created and outcomes dated after it are left out.
    """
    opps = tables.opportunities
    account = pit.codes(keys(opps, "account_id"), account_vocab)
    closed = times(opps, "closed_at")
    created = times(opps, "created_at")
    won = floats(opps, "is_won")
    if known_by is not None:
        late = closed > known_by
        closed = np.where(late, pit.NAT, closed)
        won = np.where(late, np.nan, won)
    expansion = equals(opps, "product", EXPANSION_PRODUCT)
    is_term = (won == 1.0) & (closed != pit.NAT) & (account >= 0) & ~expansion
    term = np.flatnonzero(is_term)
    order = np.lexsort((closed[term], account[term]))
    term = term[order]
    start = closed[term]
    due = start + TERM_DAYS * _DAY
    t_account = account[term]

    is_renewal = equals(opps, "product", RENEWAL_PRODUCT) & (account >= 0) & (created != pit.NAT)
    if known_by is not None:
        is_renewal &= created <= known_by
    renewal_rows = np.flatnonzero(is_renewal)
    renewal_rows = renewal_rows[np.lexsort((created[renewal_rows], account[renewal_rows]))]
    matched = _match(t_account, due, account[renewal_rows], created[renewal_rows])
    renewal = (
        np.where(matched >= 0, renewal_rows[np.maximum(matched, 0)], -1)
        if len(renewal_rows) else matched
    )
    safe = np.maximum(renewal, 0)
    has = renewal >= 0
    return Contracts(
        account=t_account,
        deal=term,
        start=start,
        due=due,
        amount=_amount_at_close(tables, term, start),
        renewal=renewal,
        renewal_created=_at(created, safe, has, pit.NAT),
        renewal_closed=_at(closed, safe, has, pit.NAT),
        renewal_won=_at(won, safe, has, np.nan),
    )


def _amount_at_close(tables: AnyTables, deals: np.ndarray, closed: np.ndarray) -> np.ndarray:
    """Each won deal's amount as its history had it when it closed.

    The opportunities row holds the latest amount, which a CRM lets anyone edit later;
    what the account bought is what the deal said when it was won.
    """
    hist = tables.opportunity_history
    amount = floats(hist, "amount")
    code = pit.codes(keys(hist, "opportunity_id"), keys(tables.opportunities, "opportunity_id"))
    index = pit.index_events(np.where(np.isnan(amount), -1, code), times(hist, "changed_at"))
    last = pit.Queries(deals, closed + 1).last(index)
    opp_amount = floats(tables.opportunities, "amount")
    row_amount = opp_amount[deals]
    if not len(index):
        return row_amount
    # A deal with no history at all (a request that sends only the deal) is read at the
    # amount its own row says; with history, the row's later edits are never read.
    has_history = np.bincount(code[code >= 0], minlength=len(opp_amount))[deals] > 0
    at_close = np.where(last >= 0, amount[index.rows[np.maximum(last, 0)]], np.nan)
    return np.where(has_history, at_close, row_amount)


def _at(values: np.ndarray, rows: np.ndarray, has: np.ndarray, fill: float | int) -> np.ndarray:
    if len(values) == 0:
        return np.full(len(rows), fill, dtype=values.dtype)
    return np.where(has, values[rows], fill)


def _match(
    term_account: np.ndarray, due: np.ndarray, deal_account: np.ndarray, deal_created: np.ndarray
) -> np.ndarray:
    """Per term, the position (into the renewal deals) of its renewal deal, or -1.

    Both inputs are sorted by account then time. Each deal, in creation order, takes the
    earliest open term of its account whose window holds its creation. Few terms per
    account, so a plain walk per account.
    """
    out = np.full(len(term_account), -1, dtype=np.int64)
    if not len(term_account) or not len(deal_account):
        return out
    t_bounds = np.flatnonzero(pit.changes(term_account))
    t_ends = np.append(t_bounds[1:], len(term_account))
    d_first = np.searchsorted(deal_account, term_account[t_bounds], side="left")
    d_last = np.searchsorted(deal_account, term_account[t_bounds], side="right")
    early, late = RENEWAL_LEAD_DAYS * _DAY, GRACE_DAYS * _DAY
    for t0, t1, d0, d1 in zip(t_bounds, t_ends, d_first, d_last, strict=True):
        for d in range(d0, d1):
            when = deal_created[d]
            for t in range(t0, t1):
                if out[t] < 0 and due[t] - early <= when <= due[t] + late:
                    out[t] = d
                    break
    return out
