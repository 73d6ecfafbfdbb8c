"""Every activity row: which contact it touched, which way it went, in time order.

Contact ids: one per lead (the lead is its own contact), then each deal's other contacts
(deal by deal), then each customer account's post-sale contacts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from leadscore.synth.deals import Deals
from leadscore.synth.vocab import INBOUND_SHARE


@dataclass(frozen=True)
class ActivityRows:
    """Activities (indices; -1 for no lead / deal). ``merge_activities`` sorts them by time."""

    time: np.ndarray
    kind: np.ndarray
    lead: np.ndarray
    deal: np.ndarray
    account: np.ndarray
    contact: np.ndarray
    inbound: np.ndarray


def inbound(rng: np.random.Generator, kind: np.ndarray) -> np.ndarray:
    """Whether each activity came from the contact (by type: opens in, sends out...)."""
    return np.asarray(rng.random(kind.size) < INBOUND_SHARE[kind])


def lead_activity_rows(rng: np.random.Generator,
                       lead_acts: tuple[np.ndarray, np.ndarray, np.ndarray],
                       lead_account: np.ndarray) -> ActivityRows:
    la_lead, la_time, la_type = lead_acts
    return ActivityRows(la_time, la_type, la_lead, np.full(la_time.size, -1),
                        lead_account[la_lead], la_lead, inbound(rng, la_type))


def deal_activity_rows(rng: np.random.Generator,
                       deal_acts: tuple[np.ndarray, np.ndarray, np.ndarray], deals: Deals,
                       contact_base: np.ndarray, deal_contacts: np.ndarray,
                       n_leads: int) -> ActivityRows:
    """A deal's activities spread over its contacts; the first is the lead's own, if any.

    ``contact_base`` is each deal's first contact id minus ``n_leads``.
    """
    da_deal, da_time, da_type = deal_acts
    lead = deals.lead[da_deal]
    first = n_leads + contact_base[da_deal]
    contact = first + (rng.random(da_deal.size) * deal_contacts[da_deal]).astype(np.int64)
    contact = np.where((lead >= 0) & (contact == first), lead, contact)
    return ActivityRows(da_time, da_type, lead, da_deal, deals.account[da_deal], contact,
                        inbound(rng, da_type))


def merge_activities(parts: list[ActivityRows], days: float) -> ActivityRows:
    """The parts in one table, cut to the CRM's span and sorted by time (ties keep order)."""
    fields = ActivityRows.__dataclass_fields__
    rows = {f: np.concatenate([getattr(p, f) for p in parts]) for f in fields}
    keep = (rows["time"] >= 0) & (rows["time"] < days)
    sel = np.flatnonzero(keep)[np.argsort(rows["time"][keep], kind="stable")]
    return ActivityRows(**{f: v[sel] for f, v in rows.items()})
