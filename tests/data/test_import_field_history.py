"""Fields that change, through `leadscore import`: each mapped attribute's known_at, its
history from the export's field history, and export-only attributes left out of features
unless opted in (and then named in the model card)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from features.build import build_features
from features.mapping.importing import ImportResult
from features.mapping.timing import TIMING_FILE, read_current_values
from features.sets import LEAD_V1
from tests.data.crafted_exports import SALESFORCE, SALESFORCE_BANT, write_export
from tests.data.test_import_presets import _import

NOW = "2025-01-01T00:00:00Z"
BANT_FIELDS = """
tables:
  leads:
    fields:
      budget_confirmed: Budget_Confirmed__c
      is_decision_maker: Decision_Maker__c
      need_stated: Need_Identified__c
      timeline_days: Timeline_Days__c
"""
SF_BANT = "preset: salesforce\ncurrency:\n  rates: {EUR: 1.1}\n" + BANT_FIELDS


def _history_lines(result: ImportResult) -> list[tuple[object, ...]]:
    """The rejections of the leads and their history (the crafted export has others)."""
    rej = result.rejections
    rows = rej.loc[rej["table"].isin(["leads", "lead_field_history",
                                      "opportunity_field_history"])]
    return [tuple(r) for r in rows[["file", "row", "column", "table"]].itertuples(index=False)]


def _lead(result: ImportResult, when: str) -> pd.Series:
    snaps = pd.DataFrame({"lead_id": pd.array(["00Q1"], dtype="string"),
                          "as_of": pd.DatetimeIndex([when], tz="UTC")})
    return build_features(result.load.tables, snaps, LEAD_V1).iloc[0]


def test_salesforce_lead_history_gives_bant_and_firmographics_as_of_t(tmp_path: Path) -> None:
    result = _import(tmp_path, SALESFORCE_BANT, SF_BANT)
    assert _history_lines(result) == []

    hist = result.load.tables.lead_field_history
    changes = hist.loc[hist["lead_id"] == "00Q1"].set_index("field")
    # Matched by the fields' own API names; values read through their field maps.
    assert sorted(changes.index) == ["budget_confirmed", "employees", "industry",
                                     "timeline_days"]
    assert changes.loc["industry", "new_value"] == "software"  # Technology, mapped
    employees = changes.loc["employees", ["old_value", "new_value"]]
    assert [float(v) for v in employees] == [100.0, 250.0]  # numbers as the importer writes
    assert changes.loc["budget_confirmed", "changed_at"] == pd.Timestamp(
        "2024-01-08T12:00:00Z")
    # Title is known at creation: its change is not read; Status and "created" are no
    # attribute's.
    assert set(hist["field"]) <= {"budget_confirmed", "employees", "industry", "timeline_days"}

    early, later = _lead(result, "2024-01-07"), _lead(result, "2024-01-10")
    assert (early["budget_confirmed"], later["budget_confirmed"]) == (False, True)
    assert pd.isna(early["timeline_days"]) and later["timeline_days"] == 30
    assert early["industry"] == "software" and early["employees"] == 100
    assert _lead(result, "2024-01-16")["employees"] == 250
    assert early["is_decision_maker"] == True  # noqa: E712  (tracked, never changed)

    timing = json.loads((result.out / TIMING_FILE).read_text())
    leads = timing["known_at"]["leads"]
    assert leads["budget_confirmed"] == leads["industry"] == "history"
    assert leads["source"] == leads["title"] == "creation"
    assert timing["left_out"] == {}
    assert result.summary()["known_at"]["leads"] == leads


def test_a_change_of_an_unknown_record_is_a_rejection_against_the_history_file(
    tmp_path: Path,
) -> None:
    files = dict(SALESFORCE_BANT)
    files["LeadHistory.csv"] += "00Q9,Budget_Confirmed__c,,true,2024-01-08T12:00:00.000Z\n"
    result = _import(tmp_path, files, SF_BANT)
    assert _history_lines(result) == [("LeadHistory.csv", 8, "LeadId", "lead_field_history")]
    reason = result.rejections.loc[result.rejections["table"] == "lead_field_history", "reason"]
    assert reason.iloc[0].startswith("orphan foreign key: no leads.lead_id '00Q9'")


def test_without_lead_history_bant_and_firmographics_are_left_out_by_default(
    tmp_path: Path,
) -> None:
    files = {k: v for k, v in SALESFORCE_BANT.items() if k != "LeadHistory.csv"}
    result = _import(tmp_path, files, SF_BANT)

    leads = result.load.tables.leads.set_index("lead_id")
    for col in ("budget_confirmed", "is_decision_maker", "industry", "employees",
                "timeline_days"):
        assert leads[col].isna().all(), col  # blanked for features; the column stays
    assert leads.loc["00Q1", "source"] == "inbound_web_form"  # known at creation: kept
    left_out = result.summary()["export_only_left_out"]["leads"]
    assert left_out == {"industry": 1, "employees": 1, "budget_confirmed": 2,
                        "is_decision_maker": 1, "need_stated": 1, "timeline_days": 1}
    notes = " ".join(result.converted.timing.notes)
    assert "leads: no field history" in notes and "left out of features (blanked)" in notes
    assert read_current_values(result.out) == []


def test_allow_current_values_keeps_one_and_records_it_for_the_card(tmp_path: Path) -> None:
    files = {k: v for k, v in SALESFORCE_BANT.items() if k != "LeadHistory.csv"}
    mapping = SF_BANT + "    allow_current_values: [budget_confirmed]\n"
    result = _import(tmp_path, files, mapping)

    leads = result.load.tables.leads.set_index("lead_id")
    assert bool(leads.loc["00Q1", "budget_confirmed"])
    assert leads["need_stated"].isna().all()
    assert "budget_confirmed" not in result.summary()["export_only_left_out"]["leads"]
    assert result.summary()["current_values_allowed"] == {"leads": ["budget_confirmed"]}
    assert read_current_values(result.out) == ["leads.budget_confirmed"]


def test_a_deals_product_known_from_history_reads_opportunity_field_history(
    tmp_path: Path,
) -> None:
    mapping = SF_BANT + """
  opportunities:
    fields:
      product:
        known_at: history
"""
    result = _import(tmp_path, SALESFORCE_BANT, mapping)
    hist = result.load.tables.opportunity_field_history
    assert hist[["opportunity_id", "field", "old_value", "new_value"]].values.tolist() == [
        ["0062", "product", "New Customer", "expansion"]]


def test_the_plain_salesforce_export_still_imports_as_before(tmp_path: Path) -> None:
    """No custom BANT fields and no BANT in LeadHistory: the lead's firmographics are
    known from history (LeadHistory is there), so nothing is left out."""
    result = _import(tmp_path, SALESFORCE, "preset: salesforce\ncurrency:\n  rates: {EUR: 1.1}\n")
    assert _history_lines(result) == []
    assert result.summary()["export_only_left_out"] == {}
    assert len(result.load.tables.lead_field_history) == 0
    leads = result.load.tables.leads.set_index("lead_id")
    assert leads.loc["00Q1", "industry"] == "software" and leads.loc["00Q1", "employees"] == 250


def test_the_cli_says_what_it_left_out_and_writes_known_at(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from leadscore.cli import app

    files = {k: v for k, v in SALESFORCE_BANT.items() if k != "LeadHistory.csv"}
    export = write_export(tmp_path / "export", files)
    (tmp_path / "mapping.yaml").write_text(SF_BANT, encoding="utf-8")
    result = CliRunner().invoke(app, ["import", "--mapping", str(tmp_path / "mapping.yaml"),
                                      "--source", str(export), "--out", str(tmp_path / "out")])
    out = " ".join(result.output.split())
    assert "known at: leads: no field history" in out
    assert "known at: leads: known only as of the export, left out of features (blanked): " \
        "industry (1 value), employees (1 value), budget_confirmed (2 values)" in out
    assert (tmp_path / "out" / TIMING_FILE).exists()


OWN_HISTORY = SF_BANT + """
features:
  leads:
    rating: {column: Rating, type: category, known_at: history}
    fit_score: {column: Fit_Score__c, type: number, known_at: history}
"""


def _with_own_history() -> dict[str, str]:
    """The BANT export with a rating and a fit score on the lead, and their changes."""
    files = dict(SALESFORCE_BANT)
    lines = files["Lead.csv"].rstrip("\n").split("\n")
    extra = {"00Q1": ",Hot,80", "00Q2": ",Cold,"}
    files["Lead.csv"] = "\n".join(
        [lines[0] + ",Rating,Fit_Score__c"]
        + [line + extra.get(line.split(",", 1)[0], ",,") for line in lines[1:]]) + "\n"
    files["LeadHistory.csv"] = files["LeadHistory.csv"] + (
        "00Q1,Rating,,Warm,2024-01-07T00:00:00.000Z\n"
        "00Q1,Rating,Warm,Hot,2024-01-12T00:00:00.000Z\n"
        "00Q1,Fit_Score__c,40,80,2024-01-12T00:00:00.000Z\n"
        "00Q1,Fit_Score__c,80,,2024-01-13T00:00:00.000Z\n"
        "00Q1,Fit_Score__c,,80,not a time\n")
    return files


def test_own_columns_known_from_history_are_read_as_of_t(tmp_path: Path) -> None:
    """An export's own column declared `known_at: history` takes its past values from the
    field history: blank before it was filled in, each edit only after it was made."""
    from features.columns import ColumnTable
    from features.own import own_columns, read_own

    result = _import(tmp_path, _with_own_history(), OWN_HISTORY)
    assert _history_lines(result) == []
    own = read_own(tmp_path / "out")
    assert {(f.name, f.known_at, f.usable, f.leak_risk) for f in own.features} == {
        ("rating", "history", True, False), ("fit_score", "history", True, False)}
    history = own.history["leads"]
    assert history.loc[history["field"] == "fit_score", "new_value"].tolist() == ["80.0", None]
    summary = json.loads(result.summary_file.read_text())
    assert any("Fit_Score__c: a change without a readable time" in u["what"]
               for u in summary["unplaced_values"]), summary["unplaced_values"]
    times = ["2024-01-06", "2024-01-10", "2024-01-12T12:00", "2024-01-14"]
    snaps = ColumnTable({"lead_id": np.array(["00Q1"] * 4 + ["00Q2"], dtype=object),
                         "as_of": pd.DatetimeIndex([*times, "2024-02-01"], tz="UTC")
                         .as_unit("ns").asi8}, 5)
    cols = own_columns(own, "lead_id", snaps, np.ones(5, dtype=bool))
    assert cols["rating"].tolist() == [None, "Warm", "Hot", "Hot", "Cold"]
    fit = cols["fit_score"]
    assert fit[:2].tolist() == [40.0, 40.0] and fit[2] == 80.0 and np.isnan(fit[3:]).all()
