"""The contract tables as a HubSpot export, the inverse of the `hubspot` preset.

Files as HubSpot's exports and its API give them (companies, contacts, deals, engagements
by internal property name), with the history as property-history exports: a deal's
``dealstage``, ``amount`` and ``closedate`` values with their timestamps, and a contact's
``hs_lead_status`` changes. Record ids are numbers per object. HubSpot keeps one object
for people: the leads are the contacts in contacts.csv (a lead's record is the person of
its first activity); the deals' and customers' other contacts are named by the
engagements only, so that they are not read as leads.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.mapping.export_format.crm_ids import (
    CrmIds,
    hubspot_id,
    number,
    own_contacts,
    persons,
)
from features.mapping.export_format.preset_columns import (
    PresetColumns,
    current_stage,
    encode,
    encode_pair,
    field_changes,
    lead_status,
    outcome_at,
    preset_mapping,
    scalar_text,
    timestamp_text,
    write_files,
)
from features.schema import TABLES, CRMTables

TIME = "%Y-%m-%dT%H:%M:%S.000Z"


def hubspot_ids(tables: CRMTables) -> CrmIds:
    """Numbers per object; a lead's own contact shares the lead's contact record."""
    leads = number(tables.leads["lead_id"], hubspot_id)
    own = own_contacts(tables.activities)
    contacts = {c: leads[lead] for lead, c in own.items() if lead in leads}
    others = tables.activities["contact_id"].dropna().astype(str)
    others = others[~others.isin(contacts)]
    contacts.update(number(others, hubspot_id, start=len(leads) + 1))
    return CrmIds(
        accounts=number(tables.accounts["account_id"], hubspot_id),
        leads=leads,
        opportunities=number(tables.opportunities["opportunity_id"], hubspot_id),
        owners=number(tables.opportunities["owner_id"], hubspot_id),
        activities=number(tables.activities["activity_id"], hubspot_id),
        contacts=contacts,
    )


def _columns(names: PresetColumns, table: str, frame: pd.DataFrame, ids: CrmIds
             ) -> pd.DataFrame:
    """Every contract column the preset maps from a column, written back to that column."""
    tm = names.part(table)
    contract = TABLES[table]
    out: dict[str, pd.Series] = {}
    for col, export_col in names.fields(table, tm).items():
        if export_col in out:
            continue  # one export column read as two contract columns: written by the caller
        kind = contract.column(col).kind
        if col.endswith("_id"):
            out[export_col] = ids.translate(col, frame[col])
        elif kind == "timestamp":
            out[export_col] = timestamp_text(frame[col], TIME)
        else:
            out[export_col] = encode(scalar_text(frame[col], kind), tm.fields[col])
    return pd.DataFrame(out, index=frame.index)


def write_hubspot(tables: CRMTables, out: Path) -> tuple[list[Path], CrmIds]:
    """Write ``tables`` as a HubSpot export in ``out``; the files and the id map."""
    names = PresetColumns(preset_mapping("hubspot"))
    ids = hubspot_ids(tables)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, pd.DataFrame] = {}

    files[names.file(names.part("accounts").source)] = _columns(
        names, "accounts", tables.accounts, ids)

    leads_tm = names.part("leads")
    assert leads_tm.status is not None and leads_tm.status_history is not None
    contacts = _columns(names, "leads", tables.leads, ids)
    status = lead_status(tables.leads)
    contacts[names.column(leads_tm.status)] = encode(status, leads_tm.status)
    files[names.file(leads_tm.source)] = contacts
    history = _status_history(names, tables.leads, status, ids)
    changes = field_changes(names, "leads", tables.lead_field_history, "lead_id", ids, TIME)
    if not changes.empty:  # one contact property history: the status and the other fields
        history = pd.concat([history, changes], ignore_index=True).sort_values(
            leads_tm.status_history.changed_at[0], kind="stable").reset_index(drop=True)
    files[names.file(leads_tm.status_history.source)] = history

    deals_tm = names.part("opportunities")
    assert deals_tm.stage is not None and deals_tm.field_history is not None
    deals = _columns(names, "opportunities", tables.opportunities, ids)
    stage = current_stage(tables.opportunities, tables.opportunity_history)
    deals[names.column(deals_tm.stage)] = encode(stage, deals_tm.stage)
    files[names.file(deals_tm.source)] = deals
    files[names.file(deals_tm.field_history.source)] = _deal_history(
        names, tables.opportunity_history, ids)

    acts_tm = names.part("activities")
    acts = tables.activities
    engagements = _columns(names, "activities", acts, ids)
    engagements[names.column(acts_tm.fields["lead_id"])] = persons(
        acts, ids, own_contacts(acts))
    engagements[names.column(acts_tm.fields["type"])] = encode_pair(
        acts["type"], acts["direction"], acts_tm.fields["type"], acts_tm.fields["direction"])
    files[names.file(acts_tm.source)] = engagements

    return write_files(files, out), ids


def _status_history(names: PresetColumns, leads: pd.DataFrame, status: pd.Series,
                    ids: CrmIds) -> pd.DataFrame:
    """A contact property history: hs_lead_status set at each lead's outcome."""
    tm = names.part("leads")
    sh = tm.status_history
    assert sh is not None and tm.status is not None
    done = status.ne("open")
    frame = pd.DataFrame({
        sh.id[0]: ids.translate("lead_id", leads.loc[done, "lead_id"]),
        sh.field[0]: sh.field_name[0],
        sh.new_value[0]: encode(status[done], tm.status),
        sh.changed_at[0]: timestamp_text(outcome_at(leads)[done], TIME),
    })
    return frame.sort_values(sh.changed_at[0], kind="stable")


def _deal_history(names: PresetColumns, history: pd.DataFrame, ids: CrmIds) -> pd.DataFrame:
    """A deal property history: each of stage, amount and close date at the deal's first
    history row and whenever it changes, one row per property and change."""
    tm = names.part("opportunities")
    fh = tm.field_history
    assert fh is not None and tm.stage is not None
    h = history.sort_values(["opportunity_id", "changed_at"], kind="stable")
    first = ~h["opportunity_id"].duplicated()
    values = {
        fh.stage[0]: encode(h["stage"], tm.stage),
        fh.amount[0]: scalar_text(h["amount"], "float"),
        fh.close_date[0]: timestamp_text(h["close_date"], TIME),
    }
    pieces = []
    for prop, text in values.items():
        changed = first | text.ne(text.groupby(h["opportunity_id"].to_numpy()).shift())
        keep = changed & text.notna()
        pieces.append(pd.DataFrame({
            fh.id[0]: ids.translate("opportunity_id", h.loc[keep, "opportunity_id"]),
            fh.field[0]: prop,
            fh.new_value[0]: text[keep],
            fh.changed_at[0]: timestamp_text(h.loc[keep, "changed_at"], TIME),
            "_order": h.index[keep],
        }))
    frame = pd.concat(pieces).sort_values(["_order"], kind="stable")
    return frame.drop(columns="_order").reset_index(drop=True)
