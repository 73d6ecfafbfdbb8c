"""The synthetic CRM written as a CRM's export and imported with its preset gives back the
generator's rows, value for value, but for the differences `round_trip.py` names."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.mapping.export_format import EXPORT_FORMATS, WriterError, write_export
from features.mapping.export_format.crm_ids import own_contacts
from features.mapping.export_format.preset_columns import encode
from features.mapping.importing import import_settings, run_import
from features.mapping.spec import FieldMap
from leadscore.generator import generate_crm
from tests.data.round_trip import COMPARED, expected, sorted_by_key, to_contract_ids


@pytest.fixture(scope="module")
def crm():
    return generate_crm(300, seed=3).tables


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_import_of_the_export_gives_back_the_generator_tables(crm, fmt, tmp_path: Path):
    written = write_export(crm, fmt, tmp_path / "export")
    result = run_import(import_settings(mapping=Path(fmt), source=tmp_path / "export",
                                        out=tmp_path / "imported"))
    assert result.ok, result.rejections.head()
    assert not result.converted.not_in_export
    got = to_contract_ids(result.load.tables, written.ids, own_contacts(crm.activities))
    want = expected(crm, fmt)
    for name in COMPARED:
        a, b = sorted_by_key(got[name], name), sorted_by_key(want[name], name)
        assert len(a) == len(getattr(crm, name)), name
        pd.testing.assert_frame_equal(a, b, check_dtype=False, obj=name)
    assert result.load.tables.account_signals.empty


def test_salesforce_field_history_alone_gives_back_the_stage_history(crm, tmp_path: Path):
    """Without OpportunityHistory the preset reads OpportunityFieldHistory: the same rows."""
    written = write_export(crm, "salesforce", tmp_path / "export")
    (tmp_path / "export" / "OpportunityHistory.csv").unlink()
    result = run_import(import_settings(mapping=Path("salesforce"), source=tmp_path / "export",
                                        out=tmp_path / "imported"))
    assert result.ok
    got = to_contract_ids(result.load.tables, written.ids, own_contacts(crm.activities))
    name = "opportunity_history"
    # A deal that never changed after its creation (the installed base's, created closed)
    # leaves no field history: the import dates it from its creation and its close date,
    # as for any deal without history. The others come back row for row.
    rows = crm.opportunity_history.groupby("opportunity_id")["stage"].size()
    changed = rows.index[rows > 1]
    a, b = got[name], expected(crm, "salesforce")[name]
    pd.testing.assert_frame_equal(sorted_by_key(a[a["opportunity_id"].isin(changed)], name),
                                  sorted_by_key(b[b["opportunity_id"].isin(changed)], name),
                                  check_dtype=False, obj=name)
    unchanged = a[~a["opportunity_id"].isin(changed)]
    assert unchanged.groupby("opportunity_id").size().le(2).all()


def test_salesforce_export_has_its_objects_ids_and_formats(crm, tmp_path: Path):
    written = write_export(crm, "salesforce", tmp_path)
    names = sorted(p.name for p in written.files)
    assert names == ["Account.csv", "Event.csv", "Lead.csv", "LeadHistory.csv",
                     "Opportunity.csv", "OpportunityFieldHistory.csv", "OpportunityHistory.csv",
                     "OpportunityStage.csv", "Task.csv"]
    leads = pd.read_csv(tmp_path / "Lead.csv", dtype=str)
    assert leads["Id"].str.match(r"^00Q\w{12}$").all()
    assert {"Status", "ConvertedDate", "Budget_Confirmed__c", "Timeline_Days__c"} <= set(leads)
    assert leads["ConvertedDate"].dropna().str.match(r"^\d{4}-\d{2}-\d{2}$").all()
    tasks = pd.read_csv(tmp_path / "Task.csv", dtype=str)
    assert tasks["WhoId"].str[:3].isin(["00Q", "003"]).all()
    assert tasks["WhatId"].dropna().str.startswith("006").all()
    assert tasks["CompletedDateTime"].str.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$").all()
    history = pd.read_csv(tmp_path / "LeadHistory.csv", dtype=str)
    # The status, and when BANT answers and firmographics were set (the field history).
    assert set(history["Field"]) == {"Status", "Industry", "NumberOfEmployees",
                                     "Budget_Confirmed__c", "Decision_Maker__c",
                                     "Need_Stated__c", "Timeline_Days__c"}


def test_hubspot_export_has_its_files_ids_and_property_history(crm, tmp_path: Path):
    written = write_export(crm, "hubspot", tmp_path)
    assert sorted(p.name for p in written.files) == [
        "companies.csv", "contact_property_history.csv", "contacts.csv",
        "deal_property_history.csv", "deals.csv", "engagements.csv"]
    deals = pd.read_csv(tmp_path / "deals.csv", dtype=str)
    assert deals["hs_object_id"].str.isdigit().all()
    history = pd.read_csv(tmp_path / "deal_property_history.csv", dtype=str)
    assert set(history["property"]) == {"dealstage", "amount", "closedate"}
    contacts = pd.read_csv(tmp_path / "contacts.csv", dtype=str)
    assert len(contacts) == len(crm.leads)  # the deals' other contacts are not leads


def test_a_value_the_preset_would_read_as_another_cannot_be_written():
    fm = FieldMap.model_validate({"column": ["Type"], "values": {"Call": "call"}})
    assert encode(pd.Series(["call"]), fm).tolist() == ["Call"]
    with pytest.raises(WriterError, match="read back as 'call'"):
        encode(pd.Series(["CALL"]), fm)
