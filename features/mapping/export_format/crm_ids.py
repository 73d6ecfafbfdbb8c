"""The CRM's own record ids for the contract's rows, and the person behind an activity.

A CRM names records its own way (Salesforce: 15 characters whose first three say the
object, 00Q a lead; HubSpot: a number per object), and an import keys the contract's rows
by those ids, so a written export carries CRM ids, not the contract's. The map is kept
(``CrmIds``) to compare a round trip and to say which CRM record a contract row is.

An activity touches one person. The contract names a lead and a contact; a CRM names one
person (Salesforce's WhoId, HubSpot's associated contact), the lead itself when the
activity is with the lead's own contact (the person of the lead's first activity), else
the contact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class CrmIds:
    """Contract id -> CRM record id, per contract key column."""

    accounts: dict[str, str] = field(default_factory=dict)
    leads: dict[str, str] = field(default_factory=dict)
    opportunities: dict[str, str] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    activities: dict[str, str] = field(default_factory=dict)
    contacts: dict[str, str] = field(default_factory=dict)
    """A contact's person record (HubSpot: a lead's own contact is the lead's record)."""

    def of(self, column: str) -> dict[str, str]:
        return {"account_id": self.accounts, "lead_id": self.leads,
                "opportunity_id": self.opportunities, "owner_id": self.owners,
                "activity_id": self.activities, "contact_id": self.contacts}[column]

    def translate(self, column: str, values: pd.Series) -> pd.Series:
        """Contract ids as CRM ids; a missing id stays missing."""
        look = self.of(column)
        return values.map(lambda v: None if pd.isna(v) else look[str(v)]).astype(object)


Numbering = Callable[[int], str]


def salesforce_id(prefix: str) -> Numbering:
    """A 15-character Salesforce id: the object's key prefix and a record number."""
    return lambda n: f"{prefix}{n:012d}"


def hubspot_id(n: int) -> str:
    return str(n)


def number(values: pd.Series, make: Numbering, start: int = 1) -> dict[str, str]:
    """Each distinct id, in order of appearance, numbered from ``start``."""
    distinct = pd.unique(values.dropna().astype(str))
    return {v: make(start + i) for i, v in enumerate(distinct)}


def own_contacts(activities: pd.DataFrame) -> pd.Series:
    """lead_id -> the contact of the lead's first activity (the lead as a person)."""
    acts = activities[activities["lead_id"].notna() & activities["contact_id"].notna()]
    first = acts.sort_values(["occurred_at", "activity_id"], kind="stable")
    first = first.drop_duplicates("lead_id")
    return pd.Series(first["contact_id"].astype(str).to_numpy(),
                     index=first["lead_id"].astype(str).to_numpy(), dtype=object)


def with_the_lead(activities: pd.DataFrame, own: pd.Series) -> np.ndarray:
    """Activities whose person is the lead itself (no contact, or the lead's own)."""
    lead = activities["lead_id"]
    contact = activities["contact_id"].astype(object)
    mine = lead.astype(object).map(lambda v: None if pd.isna(v) else own.get(str(v)))
    return (lead.notna() & (contact.isna() | (contact == mine))).to_numpy(dtype=bool)


def persons(activities: pd.DataFrame, ids: CrmIds, own: pd.Series) -> pd.Series:
    """The CRM person of each activity: the lead's record or the contact's."""
    lead_side = with_the_lead(activities, own)
    as_lead = ids.translate("lead_id", activities["lead_id"].where(lead_side, None))
    as_contact = ids.translate("contact_id", activities["contact_id"].where(~lead_side, None))
    return as_lead.where(lead_side, as_contact)
