"""Every preset on a small crafted export: the contract rows it gives, what it derives,
what it reports, and every rejected row named by the export's file, row and column."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.mapping.importing import ImportResult, import_settings, run_import
from tests.data.crafted_exports import (
    FLAT_DEALS,
    FLAT_LEADS,
    HUBSPOT,
    HUBSPOT_PROPERTY_HISTORY,
    SALESFORCE,
    SALESFORCE_FIELD_HISTORY,
    SALESFORCE_REPORT_OPPORTUNITIES,
    write_export,
)

NOW = "2025-01-01T00:00:00Z"


def _import(tmp_path: Path, files: dict[str, str], mapping: str) -> ImportResult:
    export = write_export(tmp_path / "export", files)
    (tmp_path / "mapping.yaml").write_text(mapping, encoding="utf-8")
    settings = import_settings(mapping=tmp_path / "mapping.yaml", source=export,
                               out=tmp_path / "out", now=NOW)
    return run_import(settings)


def _row(frame: pd.DataFrame, key: str, value: str) -> dict[str, object]:
    hit = frame.loc[frame[key] == value]
    assert len(hit) == 1, f"{key}={value}: {len(hit)} rows"
    rec: dict[str, object] = hit.iloc[0].to_dict()
    return rec


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text)


def _unplaced(result: ImportResult, table: str, column: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for u in result.converted.unplaced:
        if u["table"] == table and u["column"] == column:
            out.update(dict(u["examples"]))  # type: ignore[call-overload]
    return out


SF_MAPPING = "preset: salesforce\ncurrency:\n  rates: {EUR: 1.1}\n"


def test_salesforce_export_gives_the_contract_rows(tmp_path: Path) -> None:
    result = _import(tmp_path, SALESFORCE, SF_MAPPING)
    t = result.load.tables

    acme = _row(t.accounts, "account_id", "001A")
    assert acme["industry"] == "software" and acme["employees"] == 250
    assert acme["created_at"] == _ts("2024-01-02T09:00:00Z")

    converted = _row(t.leads, "lead_id", "00Q1")
    assert converted["source"] == "inbound_web_form"
    assert converted["qualified_at"] == _ts("2024-01-20T00:00:00Z")  # a date: its start, UTC
    assert converted["opportunity_id"] == "0061" and converted["account_id"] == "001A"
    lost = _row(t.leads, "lead_id", "00Q2")
    assert lost["disqualified_at"] == _ts("2024-02-01T12:00:00Z")  # dated from LeadHistory
    assert pd.isna(_row(t.leads, "lead_id", "00Q3")["disqualified_at"])

    won = _row(t.opportunities, "opportunity_id", "0061")
    assert won["is_won"] is True
    # CloseDate is a date; the history says when the deal entered Closed Won, to the second
    assert won["closed_at"] == _ts("2024-03-15T10:00:00Z")
    open_deal = _row(t.opportunities, "opportunity_id", "0062")
    assert pd.isna(open_deal["is_won"]) and pd.isna(open_deal["closed_at"])
    assert open_deal["amount"] == pytest.approx(5500.0)  # EUR at 1.1
    assert open_deal["product"] == "expansion"
    assert _row(t.opportunities, "opportunity_id", "0063")["is_won"] is False  # IsClosed

    hist = t.opportunity_history
    assert list(hist.loc[hist["opportunity_id"] == "0061", "stage"]) == [
        "prospecting", "proposal", "closed_won"]
    # OpportunityStage: an open stage at 55 % goes to proposal (60 %), a closed one to lost
    assert list(hist.loc[hist["opportunity_id"] == "0062", "stage"]) == ["proposal"]
    assert list(hist.loc[hist["opportunity_id"] == "0063", "stage"]) == [
        "qualification", "closed_lost"]

    acts = t.activities.set_index("activity_id")
    assert acts.loc["00T1", "lead_id"] == "00Q1" and acts.loc["00T1", "account_id"] == "001A"
    assert acts.loc["00T1", "type"] == "email_sent"
    assert pd.isna(acts.loc["00T2", "lead_id"]) and acts.loc["00T2", "contact_id"] == "0031"
    assert acts.loc["00T5", "opportunity_id"] == "0062"  # the contact's one deal
    assert acts.loc["00U1", "type"] == "demo" and acts.loc["00U2", "type"] == "meeting"
    assert "00T3" not in acts.index  # Type Other: skipped, and counted
    assert result.converted.skipped[0]["rows"] == 1

    # The unknown task type is rejected, and named by the export's file, row and column.
    rej = result.rejections
    assert rej[["file", "row", "column", "table", "field"]].to_dict("records") == [
        {"file": "Task.csv", "row": 3, "column": "Type", "table": "activities", "field": "type"}
    ]
    assert rej["reason"].iat[0] == "unknown value: 'Smoke Signal'"
    assert not result.ok

    assert _unplaced(result, "accounts", "industry") == {"Underwater Basketry": 1}
    assert _unplaced(result, "leads", "source") == {"Billboard": 1}
    assert _unplaced(result, "activities", "type") == {"Smoke Signal": 1, "Lunch": 1}


def test_salesforce_field_history_when_there_is_no_opportunity_history(tmp_path: Path) -> None:
    files = {k: v for k, v in SALESFORCE.items() if k != "OpportunityHistory.csv"}
    files["OpportunityFieldHistory.csv"] = SALESFORCE_FIELD_HISTORY
    result = _import(tmp_path, files, SF_MAPPING)
    hist = result.load.tables.opportunity_history
    won = hist.loc[hist["opportunity_id"] == "0061"].reset_index(drop=True)
    assert list(won["stage"]) == ["prospecting", "proposal", "closed_won"]
    assert list(won["changed_at"]) == [_ts("2024-01-20T10:00:00Z"), _ts("2024-02-10T10:00:00Z"),
                                       _ts("2024-03-15T10:00:00Z")]
    assert won["amount"].iat[1] == 12000.0  # the stage and amount edited together: one row
    # A deal with no field changes starts in its created stage, and ends closed.
    assert list(hist.loc[hist["opportunity_id"] == "0063", "stage"]) == [
        "prospecting", "closed_lost"]
    assert any("OpportunityHistory.csv" in n for n in result.converted.notes)


def test_salesforce_report_labels_are_read_as_api_names(tmp_path: Path) -> None:
    files = {"Opportunity.csv": SALESFORCE_REPORT_OPPORTUNITIES}
    result = _import(tmp_path, files, "preset: salesforce\n")
    opp = _row(result.load.tables.opportunities, "opportunity_id", "0061")
    assert opp["owner_id"] == "Rep One" and opp["is_won"] is True
    assert result.converted.columns["opportunities"][0]["owner_id"] == "Opportunity Owner"
    # No Account file: the account the deal names is derived, and the report says so.
    assert list(result.load.tables.accounts["account_id"]) == ["001A"]
    assert any(n.startswith("accounts: not in the export; 1 derived")
               for n in result.converted.notes)
    assert result.ok


def test_hubspot_export_with_stage_entry_dates(tmp_path: Path) -> None:
    result = _import(tmp_path, HUBSPOT, "preset: hubspot\n")
    t = result.load.tables
    assert _row(t.accounts, "account_id", "11")["industry"] == "software"
    lead = _row(t.leads, "lead_id", "21")
    assert lead["qualified_at"] == _ts("2024-01-19T10:00:00Z") and lead["account_id"] == "11"
    assert lead["source"] == "inbound_web_form"
    hist = t.opportunity_history
    assert list(hist.loc[hist["opportunity_id"] == "31", "stage"]) == [
        "qualification", "negotiation", "closed_won"]
    assert list(hist.loc[hist["opportunity_id"] == "32", "stage"]) == ["qualification"]
    won = _row(t.opportunities, "opportunity_id", "31")
    assert won["is_won"] is True and won["closed_at"] == _ts("2024-03-15T10:00:00Z")
    acts = t.activities.set_index("activity_id")
    assert acts.loc["41", "type"] == "email_replied" and acts.loc["41", "direction"] == "inbound"
    assert acts.loc["42", "direction"] == "outbound"
    assert acts.loc["42", "account_id"] == "11"  # from its deal
    assert "43" not in acts.index  # a note is not engagement: skipped and counted
    assert _unplaced(result, "leads", "source") == {"AI_REFERRALS": 1}
    assert _unplaced(result, "accounts", "industry") == {"WINE_AND_SPIRITS": 1}
    assert result.ok


def test_hubspot_property_history_export(tmp_path: Path) -> None:
    files = {**HUBSPOT, **HUBSPOT_PROPERTY_HISTORY}
    result = _import(tmp_path, files, "preset: hubspot\n")
    hist = result.load.tables.opportunity_history
    assert list(hist["stage"]) == ["qualification", "negotiation", "closed_won"]
    assert hist["amount"].iat[1] == 12000.0


def test_flat_leads_derive_accounts_and_report_a_bad_date(tmp_path: Path) -> None:
    result = _import(tmp_path, FLAT_LEADS, "preset: flat-leads\ntimezone: America/New_York\n")
    t = result.load.tables
    assert sorted(t.accounts["account_id"]) == ["Acme", "Beta"]  # Gamma's lead is rejected
    assert _row(t.accounts, "account_id", "Acme")["created_at"] == _ts("2024-01-05T15:00:00Z")
    assert _row(t.leads, "lead_id", "L1")["created_at"] == _ts("2024-01-05T15:00:00Z")
    # Statuses without a date: no outcome date is invented unless the mapping asks.
    assert t.leads["qualified_at"].isna().all()
    assert any("no undated_outcome_days" in n for n in result.converted.notes)
    rej = result.rejections
    leads = rej.loc[rej["table"] == "leads"]
    assert leads[["file", "row", "column"]].to_dict("records") == [
        {"file": "leads.csv", "row": 3, "column": "Created Date"},
        {"file": "leads.csv", "row": 3, "column": "Company"}]
    assert leads["reason"].tolist() == [
        "bad type: expected timestamp, got 'not a date'",
        "orphan foreign key: accounts.account_id 'Gamma' was rejected"]
    # The account derived from that lead has no time to be created at: rejected, and it
    # points at the lead's row that named it.
    accounts = rej.loc[rej["table"] == "accounts"]
    assert accounts[["file", "row", "field"]].to_dict("records") == [
        {"file": "leads.csv", "row": 3, "field": "created_at"}]
    assert _unplaced(result, "leads", "source") == {"Billboard": 1}


def test_flat_leads_undated_outcomes_are_dated_when_asked(tmp_path: Path) -> None:
    mapping = ("preset: flat-leads\ntables:\n  leads:\n    source: leads\n"
               "    undated_outcome_days: 2\n")
    result = _import(tmp_path, FLAT_LEADS, mapping)
    leads = result.load.tables.leads
    assert _row(leads, "lead_id", "L1")["qualified_at"] == _ts("2024-01-07T10:00:00Z")
    assert _row(leads, "lead_id", "L2")["disqualified_at"] == _ts("2024-01-08T10:00:00Z")
    assert pd.isna(_row(leads, "lead_id", "L3")["qualified_at"])


FLAT_DEALS_MAPPING = """\
preset: flat-deals
timezone: Europe/Berlin
currency:
  column: Currency
  rates: {EUR: 1.1}
tables:
  opportunities:
    source: deals
    stage:
      column: Stage
      values: {Won: closed_won, Lost: closed_lost, Talking: qualification}
    created_stage: qualification
"""


def test_flat_deals_time_zones_currencies_and_history_from_dates(tmp_path: Path) -> None:
    result = _import(tmp_path, FLAT_DEALS, FLAT_DEALS_MAPPING)
    t = result.load.tables
    won = _row(t.opportunities, "opportunity_id", "D1")
    assert won["created_at"] == _ts("2024-01-20T08:00:00Z")  # 09:00 in Berlin, winter
    assert won["closed_at"] == _ts("2024-03-14T23:00:00Z")  # the day's start in Berlin
    assert won["is_won"] is True and won["amount"] == 12000.0
    assert _row(t.opportunities, "opportunity_id", "D2")["amount"] == pytest.approx(5500.0)
    hist = t.opportunity_history
    assert list(hist.loc[hist["opportunity_id"] == "D1", "stage"]) == [
        "qualification", "closed_won"]
    # GBP has no rate: the amount is not converted silently; its row is rejected.
    rej = result.rejections
    bad = rej.loc[rej["table"] == "opportunities"]
    assert bad[["file", "row", "column"]].to_dict("records") == [
        {"file": "deals.csv", "row": 2, "column": "Amount"}]
    assert "3000 GBP" in bad["reason"].iat[0]
    assert _unplaced(result, "opportunities", "amount") == {"GBP": 1}
    # The rejected deal's derived history goes with it, each row reported.
    assert set(rej.loc[rej["table"] == "opportunity_history", "row"]) == {2}


def test_import_writes_valid_tables_that_validate(tmp_path: Path) -> None:
    from features.loader import load_crm

    result = _import(tmp_path, SALESFORCE, SF_MAPPING)
    again = load_crm(result.out, now=pd.Timestamp(NOW))
    assert again.ok
    assert len(again.tables.activities) == len(result.load.tables.activities)
    written = pd.read_csv(result.report)
    assert list(written.columns) == ["file", "row", "column", "reason", "table", "field"]
    assert len(written) == len(result.rejections) == 1
    assert (result.out / "import_report.json").exists()


def test_times_with_offsets_keep_their_instant_and_date_accounts(tmp_path: Path) -> None:
    files = {"deals.csv": "Opportunity ID,Account Name,Owner,Created Date,Stage\n"
                          "D1,Acme,rep1,2024-01-20T09:00:00+02:00,Prospecting\n"
                          "D2,Acme,rep1,2024-01-19T23:30:00-05:00,Prospecting\n"}
    result = _import(tmp_path, files, "preset: flat-deals\n")
    opps = result.load.tables.opportunities
    assert _row(opps, "opportunity_id", "D1")["created_at"] == _ts("2024-01-20T07:00:00Z")
    # The account is created when first named: the earlier instant, not the earlier text.
    assert _row(result.load.tables.accounts, "account_id", "Acme")["created_at"] == _ts(
        "2024-01-20T04:30:00Z")
    assert result.ok


def test_a_won_deal_without_a_close_date_is_rejected_naming_its_stage(tmp_path: Path) -> None:
    files = {"deals.csv": "Opportunity ID,Account Name,Owner,Created Date,Stage\n"
                          "D1,Acme,rep1,2024-01-20T09:00:00Z,Won\n"}
    result = _import(tmp_path, files, "preset: flat-deals\n")
    first = result.rejections.iloc[0].to_dict()
    assert {k: first[k] for k in ("file", "row", "column", "table", "field")} == {
        "file": "deals.csv", "row": 0, "column": "Stage (derived)",
        "table": "opportunities", "field": "is_won"}
    assert first["reason"] == "inconsistent outcome: is_won is set but closed_at is empty"


def test_a_parquet_export_with_typed_columns(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    pd.DataFrame({
        "Opportunity ID": ["D1", "D2"], "Account Name": ["Acme", "Beta"],
        "Owner": ["rep1", "rep2"],
        "Created Date": pd.to_datetime(["2024-01-20 09:00", "2024-02-01 09:30"], utc=True),
        "Amount": [1200.5, None], "Close Date": pd.to_datetime(["2024-03-01", None]).date,
        "Stage": ["Closed Won", "Proposal"],
    }).to_parquet(export / "deals.parquet")
    (tmp_path / "mapping.yaml").write_text("preset: flat-deals\n", encoding="utf-8")
    result = run_import(import_settings(mapping=tmp_path / "mapping.yaml", source=export,
                                        out=tmp_path / "out", now=NOW))
    assert result.ok, result.rejections
    opps = result.load.tables.opportunities
    won = _row(opps, "opportunity_id", "D1")
    assert won["created_at"] == _ts("2024-01-20T09:00:00Z") and won["amount"] == 1200.5
    assert won["closed_at"] == _ts("2024-03-01T00:00:00Z") and won["is_won"] is True
    assert pd.isna(_row(opps, "opportunity_id", "D2")["amount"])


def test_columns_no_mapping_names_are_not_read_but_are_listed(tmp_path: Path) -> None:
    files = {"deals.csv": "Opportunity ID,Notes,Account Name,Owner,Created Date,Stage,Blob\n"
                          "D1,call back,Acme,rep1,2024-01-20T09:00:00Z,Prospecting,xyz\n"}
    from features.mapping.importing import read_sources
    from features.mapping.load import load_mapping

    export = write_export(tmp_path / "export", files)
    (tmp_path / "m.yaml").write_text("preset: flat-deals\n", encoding="utf-8")
    src = read_sources(load_mapping(tmp_path / "m.yaml"), export)["deals"]
    assert "Notes" not in src.frame and "Blob" not in src.frame
    assert src.header == ("Opportunity ID", "Notes", "Account Name", "Owner", "Created Date",
                          "Stage", "Blob")
    assert src.frame["Account Name"].tolist() == ["Acme"]
