"""`leadscore import` end to end: what it prints, what it writes, its exit codes; and the
mapping files in examples/ on the public exports, where they are present."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.mapping.load import load_mapping
from leadscore.cli import app
from tests.data.crafted_exports import SALESFORCE, SALESFORCE_REPORT_OPPORTUNITIES, write_export

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT.parent / "shared" / "data" / "real"


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def _mapping(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mapping.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_clean_export_exits_0(tmp_path: Path) -> None:
    export = write_export(tmp_path / "sf", {"Opportunity.csv": SALESFORCE_REPORT_OPPORTUNITIES})
    code, out = _run("import", "--mapping", str(_mapping(tmp_path, "preset: salesforce\n")),
                     "--source", str(export), "--out", str(tmp_path / "out"))
    assert code == 0, out
    assert "every row is valid" in out
    assert "accounts: not in the export; 1 derived" in out
    for name in ("accounts", "leads", "opportunities", "opportunity_history", "activities"):
        assert (tmp_path / "out" / f"{name}.parquet").exists()
    code, out = _run("validate", "--data", str(tmp_path / "out"),
                     "--report", str(tmp_path / "v.csv"))
    assert code == 0, out


def test_rejected_rows_exit_1_with_the_export_s_file_row_and_column(tmp_path: Path) -> None:
    export = write_export(tmp_path / "sf", SALESFORCE)
    mapping = _mapping(tmp_path, "preset: salesforce\ncurrency:\n  rates: {EUR: 1.1}\n")
    report = tmp_path / "reports" / "rejected.csv"
    code, out = _run("import", "--mapping", str(mapping), "--source", str(export),
                     "--out", str(tmp_path / "out"), "--report", str(report))
    assert code == 1, out
    assert "1 problem(s) written to" in out
    assert "Smoke Signal" in out  # the unmapped value, in the table of values nothing mapped
    lines = pd.read_csv(report)
    assert lines.to_dict("records") == [{
        "file": "Task.csv", "row": 3, "column": "Type", "reason": "unknown value: 'Smoke Signal'",
        "table": "activities", "field": "type"}]
    summary = json.loads((tmp_path / "out" / "import_report.json").read_text())
    assert summary["rejected_rows"] == 1
    assert {u["column"] for u in summary["unplaced_values"]} >= {"industry", "source", "type"}


def test_a_mapping_error_exits_2_naming_key_and_line(tmp_path: Path) -> None:
    mapping = _mapping(tmp_path, "preset: salesforce\ntables:\n  leads:\n    source: Lead\n"
                                 "    fields:\n      lead_id: {columns: Id}\n")
    code, out = _run("import", "--mapping", str(mapping), "--source", str(tmp_path),
                     "--out", str(tmp_path / "out"))
    assert code == 2
    assert f"{mapping}:6: tables.leads.fields.lead_id.columns: unknown key" in out
    assert not (tmp_path / "out").exists()


def test_an_export_the_mapping_does_not_fit_exits_2(tmp_path: Path) -> None:
    mapping = _mapping(tmp_path, "preset: flat-deals\n")
    code, out = _run("import", "--mapping", str(mapping), "--source", str(tmp_path / "none"),
                     "--out", str(tmp_path / "out"))
    assert code == 2 and "not a folder" in out
    export = write_export(tmp_path / "x", {"notes.csv": "a,b\n1,2\n"})
    code, out = _run("import", "--mapping", str(mapping), "--source", str(export),
                     "--out", str(tmp_path / "out"))
    assert code == 2 and "none of the mapping's files is there" in out
    export = write_export(tmp_path / "y", {"deals.csv": "Name,Stage\nBig deal,Won\n"})
    code, out = _run("import", "--mapping", str(mapping), "--source", str(export),
                     "--out", str(tmp_path / "out"))
    assert code == 2
    assert "tables.opportunities.fields.opportunity_id: none of 'opportunity_id'" in out
    assert "is a column of deals.csv (its columns: Name, Stage)" in out


def test_help_names_the_presets() -> None:
    code, out = _run("import", "--help")
    assert code == 0
    assert "salesforce" in out and "flat-leads" in out


# ---------------------------------------------------------------------------------------
# The examples on the public exports.

EXAMPLES = {
    # folder: (exit code, table -> valid rows)
    "xeducation_leads": (0, {"leads": 9240, "accounts": 0}),
    "maven_crm": (1, {"opportunities": 7212, "accounts": 85}),
    "salvirt_b2b": (0, {"opportunities": 448, "opportunity_history": 896}),
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_mappings_import_the_public_exports(name: str, tmp_path: Path) -> None:
    source = REAL / name
    if not source.is_dir():
        pytest.skip(f"{source} is not here (the public data is not in a fresh clone)")
    code, out = _run("import", "--mapping", str(ROOT / "examples" / name / "mapping.yaml"),
                     "--source", str(source), "--out", str(tmp_path / "out"))
    want_code, valid = EXAMPLES[name]
    assert code == want_code, out
    summary = json.loads((tmp_path / "out" / "import_report.json").read_text())
    got = {t["table"]: t["valid"] for t in summary["tables"]}
    assert {k: got[k] for k in valid} == valid
    if name == "xeducation_leads":
        assert ("Leads.csv: 'Select' read as empty in 13,380 cell(s) of the columns the "
                "mapping reads (sources.leads.missing)") in summary["derived"]
        assert "opportunities: nothing in the export maps to it: written empty" \
            in summary["derived"]
    code, out = _run("validate", "--data", str(tmp_path / "out"),
                     "--report", str(tmp_path / "v.csv"))
    assert code == 0, out


def test_x_education_mapping_leaves_the_after_contact_fields_out() -> None:
    """They come in as the export's own columns known only at export, and none is allowed:
    the models read the form's answers only."""
    mapping = load_mapping(ROOT / "examples" / "xeducation_leads" / "mapping.yaml")
    own = {f.column[0]: f.known_at for f in mapping.features["leads"].values()}
    for column in ("Tags", "Lead Quality", "Last Notable Activity", "Last Activity",
                   "Lead Profile", "Asymmetrique Activity Index", "TotalVisits"):
        assert own[column] == "export", column
    assert all(not part.allow_current_values for _, part in mapping.parts("leads"))
    assert own["Lead Origin"] == "creation"


def test_x_education_with_every_column_in_the_audit_leaves_the_sales_team_s_fields_out(
    tmp_path: Path,
) -> None:
    """`every-column.yaml` reads every export-only column; the audit flags what the sales
    team fills in while working a lead (Tags, Lead Quality, Lead Profile) and leaves them
    out, and keeps the form's answers and the lead's own web activity."""
    source = REAL / "xeducation_leads"
    if not source.is_dir():
        pytest.skip(f"{source} is not here (the public data is not in a fresh clone)")
    out = tmp_path / "out"
    code, text = _run("import", "--mapping",
                      str(ROOT / "examples" / "xeducation_leads" / "every-column.yaml"),
                      "--source", str(source), "--out", str(out))
    assert code == 0, text
    code, text = _run("audit", "--data", str(out), "--task", "lead_qualification",
                      "--out", str(tmp_path / "audit.json"))
    assert code == 0, text
    (report,) = json.loads((tmp_path / "audit.json").read_text())["tasks"]
    assert set(report["excluded"]) == {"tags", "lead_quality", "lead_profile"}
    rules = {(f["column"], f["rule"]) for f in report["findings"]}
    assert {("lead_quality", "uneven_fill"), ("lead_profile", "uneven_fill")} <= rules
    assert report["probe"]["time_on_website"] > 0.7  # strong, and kept
