"""A round trip's two sides as comparable tables: the import keyed back by the contract's
ids, and the generator's tables with the differences a CRM's format makes, each said why.

The differences (and only these) are expected:

- Salesforce CloseDate is a Date field: it is written as the day and read back as the end
  of that day (the preset's ``date_only: end``), so a close date is the generator's
  midnight plus one day less a second.
- A CRM names one person per activity. An activity the contract gives a lead and another
  contact (a deal contact's activity after the lead converted) comes back with the contact
  and no lead. In HubSpot a lead is a contact, so an activity of a lead's own contact
  that the contract gives no lead comes back with the lead. Both happen after the lead's
  outcome, where no lead feature reads them.
- ``account_signals`` (product usage, tickets, surveys) is in neither CRM's objects and
  not written.
"""

from __future__ import annotations

import pandas as pd

from features.mapping.export_format.crm_ids import CrmIds, own_contacts, with_the_lead
from features.schema import TABLES, CRMTables, coerce_dtypes

_KEYS = {"accounts": ["account_id"], "leads": ["lead_id"], "opportunities": ["opportunity_id"],
         "opportunity_history": ["opportunity_id", "changed_at", "stage"],
         "activities": ["activity_id"],
         "lead_field_history": ["lead_id", "changed_at", "field"]}
COMPARED = tuple(_KEYS)


def _back(ids: dict[str, str]) -> dict[str, str]:
    return {crm: contract for contract, crm in ids.items()}


def to_contract_ids(tables: CRMTables, ids: CrmIds, own: pd.Series) -> dict[str, pd.DataFrame]:
    """The imported tables with the CRM's record ids replaced by the contract's; ``own``
    is each lead's own contact (an activity whose person is the lead names the lead's
    record as its contact)."""
    people = {**{ids.leads[lead]: c for lead, c in own.items()}, **_back(ids.contacts)}
    out = {}
    for name in COMPARED:
        frame = getattr(tables, name).copy()
        for col in frame.columns:
            if not col.endswith("_id"):
                continue
            look = people if col == "contact_id" else _back(ids.of(col))
            frame[col] = frame[col].map(lambda v, look=look: None if pd.isna(v) else look[v])
        out[name] = frame
    return out


def expected(tables: CRMTables, fmt: str) -> dict[str, pd.DataFrame]:
    """The generator's tables as the import should give them back."""
    out = {name: getattr(tables, name).copy() for name in COMPARED}
    if fmt == "salesforce":
        day = pd.Timedelta(days=1) - pd.Timedelta(seconds=1)
        for name in ("opportunities", "opportunity_history"):
            out[name]["close_date"] = out[name]["close_date"] + day
    acts = out["activities"]
    own = own_contacts(acts)
    lead_side = with_the_lead(acts, own)
    lead = acts["lead_id"].astype(object).where(lead_side, None)
    if fmt == "hubspot":
        lead_of = pd.Series(own.index.to_numpy(), index=own.to_numpy())
        person_lead = acts["contact_id"].astype(object).map(lead_of)
        lead = lead.where(lead_side, person_lead)
    acts["lead_id"] = lead.astype("string")
    if fmt == "hubspot":
        # A HubSpot property history has no old value: a change's is the one before it.
        changes = out["lead_field_history"].sort_values(["lead_id", "field", "changed_at"],
                                                        kind="stable")
        before = changes.groupby(["lead_id", "field"], sort=False)["new_value"].shift(1)
        out["lead_field_history"] = changes.assign(old_value=before.astype(object))
    return out


def _same_numbers(values: pd.Series) -> pd.Series:
    """Field-change values as text with whole numbers written alike ("98" and "98.0" are
    one head count: the loader reads both as 98)."""
    def one(v: object) -> object:
        if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NA:
            return None
        try:
            number = float(str(v))
        except ValueError:
            return v
        return str(int(number)) if number.is_integer() else str(v)
    return values.astype(object).map(one)


def sorted_by_key(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """In the contract's dtypes and a fixed order, to compare two sides row by row."""
    table = TABLES[name]
    frame = coerce_dtypes(frame[table.column_names], table)
    if name == "lead_field_history":
        frame = frame.assign(old_value=_same_numbers(frame["old_value"]),
                             new_value=_same_numbers(frame["new_value"]))
    return frame.sort_values(_KEYS[name], kind="stable").reset_index(drop=True)
