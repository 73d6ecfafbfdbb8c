"""The contract tables as a Salesforce export, the inverse of the `salesforce` preset.

Files as the Data Export service writes them, one per object (Account, Lead, LeadHistory,
Opportunity, OpportunityHistory, OpportunityFieldHistory, OpportunityStage, Task, Event),
columns by API name as the preset reads them first. Salesforce's own shapes: ids of 15
characters with the object's key prefix, times as ``2024-01-04T12:55:59.000Z``, CloseDate
and ConvertedDate as dates, one person per activity (WhoId) and the deal as WhatId, a
lead's outcome as its Status with the change in LeadHistory.

Left out: OpportunityContactRole, since the preset puts a contact's activity without a
deal on the contact's only deal, which would move activities the contract keeps apart.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.mapping.export_format.crm_ids import (
    CrmIds,
    number,
    own_contacts,
    persons,
    salesforce_id,
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
from features.schema import CRM_DEFAULT_STAGE_PROBABILITY, TABLES, CRMTables

TIME = "%Y-%m-%dT%H:%M:%S.000Z"
DATE = "%Y-%m-%d"
# Contract columns that Salesforce keeps as a Date field.
DATE_FIELDS = {("leads", "qualified_at"), ("opportunities", "close_date"),
               ("opportunity_history", "close_date")}
# Activities that are calendar events (Event); the others are tasks (Task).
EVENT_TYPES = ("meeting", "demo", "webinar_attended")
KEY_PREFIX = {"accounts": "001", "leads": "00Q", "opportunities": "006", "contacts": "003",
              "owners": "005", "tasks": "00T", "events": "00U"}


def salesforce_ids(tables: CRMTables) -> CrmIds:
    acts = tables.activities
    is_event = acts["type"].isin(EVENT_TYPES)
    activities = {**number(acts.loc[~is_event, "activity_id"], salesforce_id(KEY_PREFIX["tasks"])),
                  **number(acts.loc[is_event, "activity_id"], salesforce_id(KEY_PREFIX["events"]))}
    return CrmIds(
        accounts=number(tables.accounts["account_id"], salesforce_id(KEY_PREFIX["accounts"])),
        leads=number(tables.leads["lead_id"], salesforce_id(KEY_PREFIX["leads"])),
        opportunities=number(tables.opportunities["opportunity_id"],
                             salesforce_id(KEY_PREFIX["opportunities"])),
        owners=number(tables.opportunities["owner_id"], salesforce_id(KEY_PREFIX["owners"])),
        activities=activities,
        contacts=number(acts["contact_id"], salesforce_id(KEY_PREFIX["contacts"])),
    )


def _columns(names: PresetColumns, table: str, frame: pd.DataFrame, ids: CrmIds,
             part: str | None = None) -> pd.DataFrame:
    """Every contract column the preset maps from a column, written back to that column."""
    tm = names.part(table, part)
    contract = TABLES[table]
    out: dict[str, pd.Series] = {}
    for col, export_col in names.fields(table, tm).items():
        if export_col in out:
            continue  # one export column read as two contract columns: written by the caller
        fm = tm.fields[col]
        kind = contract.column(col).kind
        s = frame[col]
        if col.endswith("_id"):
            out[export_col] = ids.translate(col, s)
        elif kind == "timestamp":
            out[export_col] = timestamp_text(s, DATE if (table, col) in DATE_FIELDS else TIME)
        else:
            out[export_col] = encode(scalar_text(s, kind), fm)
    return pd.DataFrame(out, index=frame.index)


def write_salesforce(tables: CRMTables, out: Path) -> tuple[list[Path], CrmIds]:
    """Write ``tables`` as a Salesforce export in ``out``; the files and the id map."""
    names = PresetColumns(preset_mapping("salesforce"))
    ids = salesforce_ids(tables)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, pd.DataFrame] = {}

    accounts = names.part("accounts")
    files[names.file(accounts.source)] = _columns(names, "accounts", tables.accounts, ids)

    leads_tm = names.part("leads")
    leads = _columns(names, "leads", tables.leads, ids)
    status = lead_status(tables.leads)
    assert leads_tm.status is not None and leads_tm.status_history is not None
    leads[names.column(leads_tm.status)] = encode(status, leads_tm.status)
    files[names.file(leads_tm.source)] = leads
    files[names.file(leads_tm.status_history.source)] = _with_changes(
        _lead_history(names, tables.leads, status, ids),
        field_changes(names, "leads", tables.lead_field_history, "lead_id", ids, TIME))

    opps_tm = names.part("opportunities")
    assert opps_tm.stage is not None
    opps = _columns(names, "opportunities", tables.opportunities, ids)
    stage = current_stage(tables.opportunities, tables.opportunity_history)
    opps[names.column(opps_tm.stage)] = encode(stage, opps_tm.stage)
    files[names.file(opps_tm.source)] = opps
    hist_tm = names.part("opportunity_history")
    files[names.file(hist_tm.source)] = _columns(
        names, "opportunity_history", tables.opportunity_history, ids)
    if opps_tm.field_history is not None:
        files[names.file(opps_tm.field_history.source)] = _field_history(
            names, tables.opportunity_history, ids)
    if opps_tm.stage_table is not None:
        files[names.file(opps_tm.stage_table.source)] = _stage_table(names)

    own = own_contacts(tables.activities)
    for part, which in (("tasks", ~tables.activities["type"].isin(EVENT_TYPES)),
                        ("events", tables.activities["type"].isin(EVENT_TYPES))):
        acts = tables.activities[which]
        tm = names.part("activities", part)
        frame = _columns(names, "activities", acts, ids, part)
        frame[names.column(tm.fields["lead_id"])] = persons(acts, ids, own)
        frame[names.column(tm.fields["opportunity_id"])] = ids.translate(
            "opportunity_id", acts["opportunity_id"])
        frame[names.column(tm.fields["type"])] = encode_pair(
            acts["type"], acts["direction"], tm.fields["type"], tm.fields["direction"])
        files[names.file(tm.source)] = frame

    return write_files(files, out), ids


def _with_changes(history: pd.DataFrame, changes: pd.DataFrame) -> pd.DataFrame:
    """LeadHistory holds both: the status changes and the other fields' changes, by time."""
    if changes.empty:
        return history
    both = pd.concat([history, changes], ignore_index=True)
    return both.sort_values("CreatedDate", kind="stable").reset_index(drop=True)


def _lead_history(names: PresetColumns, leads: pd.DataFrame, status: pd.Series,
                  ids: CrmIds) -> pd.DataFrame:
    """One LeadHistory row per lead with an outcome: its Status set at the outcome time."""
    tm = names.part("leads")
    sh = tm.status_history
    assert sh is not None and tm.status is not None
    done = status.ne("open")
    open_text = encode(pd.Series(["open"]), tm.status).iat[0]
    frame = pd.DataFrame({
        sh.id[0]: ids.translate("lead_id", leads.loc[done, "lead_id"]),
        sh.field[0]: sh.field_name[0],
        "OldValue": open_text,
        sh.new_value[0]: encode(status[done], tm.status),
        sh.changed_at[0]: timestamp_text(outcome_at(leads)[done], TIME),
    })
    return frame.sort_values(sh.changed_at[0], kind="stable")


def _field_history(names: PresetColumns, history: pd.DataFrame, ids: CrmIds) -> pd.DataFrame:
    """OpportunityFieldHistory: one row per change of StageName, Amount or CloseDate after
    the deal's creation, with the old and the new value (the preset reads it when the
    export has no OpportunityHistory)."""
    tm = names.part("opportunities")
    fh = tm.field_history
    assert fh is not None and tm.stage is not None
    h = history.sort_values(["opportunity_id", "changed_at"], kind="stable")
    deal = h["opportunity_id"].to_numpy()
    values = {
        fh.stage[0]: encode(h["stage"], tm.stage),
        fh.amount[0]: scalar_text(h["amount"], "float"),
        fh.close_date[0]: timestamp_text(h["close_date"], DATE),
    }
    pieces = []
    for field, text in values.items():
        before = text.groupby(deal).shift()
        changed = h["opportunity_id"].duplicated() & text.ne(before) & text.notna()
        pieces.append(pd.DataFrame({
            fh.id[0]: ids.translate("opportunity_id", h.loc[changed, "opportunity_id"]),
            fh.field[0]: field,
            fh.old_value[0] if fh.old_value else "OldValue": before[changed],
            fh.new_value[0]: text[changed],
            fh.changed_at[0]: timestamp_text(h.loc[changed, "changed_at"], TIME),
            "_order": h.index[changed],
        }))
    frame = pd.concat(pieces).sort_values("_order", kind="stable")
    return frame.drop(columns="_order").reset_index(drop=True)


def _stage_table(names: PresetColumns) -> pd.DataFrame:
    """OpportunityStage: each stage the export writes, won, closed, default probability."""
    opps = names.part("opportunities")
    st = opps.stage_table
    assert st is not None and opps.stage is not None
    rows = []
    for stage, (won, closed, p) in _STAGE_FACTS.items():
        rows.append({st.name[0]: encode(pd.Series([stage]), opps.stage).iat[0],
                     st.is_won: won, st.is_closed: closed,
                     **({st.probability: p} if st.probability else {})})
    return pd.DataFrame(rows)


_STAGE_FACTS: dict[str, tuple[str, str, int]] = {
    **{s: ("false", "false", round(p * 100)) for s, p in CRM_DEFAULT_STAGE_PROBABILITY.items()},
    "closed_won": ("true", "true", 100),
    "closed_lost": ("false", "true", 0),
}
