"""Every activity row: which contact it touched, which way it went, in time order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from leadscore.synth.deals import Deals
from leadscore.synth.vocab import INBOUND_SHARE


@dataclass(frozen=True)
class ActivityRows:
    """Activities before the data's end, sorted by time (indices; -1 for no lead / deal)."""

    time: np.ndarray
    kind: np.ndarray
    lead: np.ndarray
    deal: np.ndarray
    account: np.ndarray
    contact: np.ndarray
    inbound: np.ndarray
    n_contacts: int
    """Contact ids in use: one per lead, then each deal's other contacts."""


def activity_rows(
    rng: np.random.Generator,
    lead_acts: tuple[np.ndarray, np.ndarray, np.ndarray],
    deal_acts: tuple[np.ndarray, np.ndarray, np.ndarray],
    lead_account: np.ndarray,
    deals: Deals,
    deal_contacts: np.ndarray,
    days: float,
) -> ActivityRows:
    """A lead is one contact; a deal's activities spread over its ``deal_contacts``."""
    la_lead, la_time, la_type = lead_acts
    da_deal, da_time, da_type = deal_acts
    n_leads = lead_account.size
    n_la, n_da = la_time.size, da_time.size
    a_time = np.concatenate([la_time, da_time])
    a_type = np.concatenate([la_type, da_type])
    a_lead = np.concatenate([la_lead, deals.lead[da_deal]])
    a_deal = np.concatenate([np.full(n_la, -1), da_deal])
    a_acc = np.concatenate([lead_account[la_lead], deals.account[da_deal]])
    contact_base = np.concatenate([[0], np.cumsum(deal_contacts)])
    da_contact = n_leads + contact_base[da_deal] + (
        rng.random(n_da) * deal_contacts[da_deal]).astype(np.int64)
    # The lead's own contact is the deal's first contact.
    first_is_lead = (deals.lead[da_deal] >= 0) & (da_contact == n_leads + contact_base[da_deal])
    da_contact = np.where(first_is_lead, deals.lead[da_deal], da_contact)
    a_contact = np.concatenate([la_lead, da_contact])
    a_inbound = rng.random(a_time.size) < INBOUND_SHARE[a_type]
    keep = a_time < days
    sel = np.flatnonzero(keep)[np.argsort(a_time[keep], kind="stable")]
    return ActivityRows(a_time[sel], a_type[sel], a_lead[sel], a_deal[sel], a_acc[sel],
                        a_contact[sel], a_inbound[sel], n_leads + int(contact_base[-1]))
