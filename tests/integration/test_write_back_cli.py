"""`leadscore score --export`: the CRM's import file beside the results, keyed by the CRM's
record ids, and the refusals (no export: section, keys that are not CRM ids)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.mapping.export_format import write_export
from features.mapping.importing import import_settings, run_import
from leadscore.cli import app
from tests.integration.test_api_accounts import (
    AccountModels,
    account_models,  # noqa: F401  (session fixture)
)
from tests.integration.test_api_fixtures import (
    AS_OF,
    Trained,
    trained,  # noqa: F401  (session fixture)
)


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def models(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("models")
    trained.lead.model.save(out / "lead_model")  # type: ignore[attr-defined]
    trained.deal.model.save(out / "deal_model")  # type: ignore[attr-defined]
    return out


@pytest.fixture(scope="module", params=["salesforce", "hubspot"])
def imported(request: pytest.FixtureRequest, trained: Trained,  # noqa: F811
             tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """The fixture CRM as the CRM's export, imported with its preset: CRM ids as keys."""
    fmt = request.param
    work = tmp_path_factory.mktemp(fmt)
    write_export(trained.tables, fmt, work / "export")
    result = run_import(import_settings(mapping=Path(fmt), source=work / "export",
                                        out=work / "tables"))
    assert result.ok
    return fmt, work / "tables"


WANT = {
    ("salesforce", "lead_qualification"): (
        "Lead_scores.csv", "Id", r"00Q\w{12}",
        ["Id", "Lead_Score__c", "Lead_Grade__c", "Score_Reasons__c"], 255),
    ("salesforce", "deal_close"): (
        "Opportunity_scores.csv", "Id", r"006\w{12}",
        ["Id", "Deal_Score__c", "Deal_Grade__c", "Deal_Risk__c", "Score_Reasons__c"], 255),
    ("hubspot", "lead_qualification"): (
        "contacts_scores.csv", "Record ID", r"\d+",
        ["Record ID", "lead_score", "lead_grade", "lead_score_reasons"], 1000),
    ("hubspot", "deal_close"): (
        "deals_scores.csv", "Record ID", r"\d+",
        ["Record ID", "deal_score", "deal_grade", "deal_risk", "deal_score_reasons"], 1000),
}


@pytest.mark.parametrize("task", ["lead_qualification", "deal_close"])
def test_export_writes_the_crms_import_file_by_its_record_ids(
    imported: tuple[str, Path], models: Path, task: str, tmp_path: Path
) -> None:
    fmt, tables = imported
    entity, model = (("leads", "lead_model") if task == "lead_qualification"
                     else ("opportunities", "deal_model"))
    code, out = _run("score", "--task", task, "--input", str(tables / f"{entity}.parquet"),
                     "--data", str(tables), "--output", str(tmp_path / "scores.csv"),
                     "--as-of", AS_OF.isoformat(), "--model", str(models / model),
                     "--export", fmt)
    assert code == 0, out
    file, id_col, id_rx, columns, limit = WANT[(fmt, task)]
    assert f"-> {tmp_path / file}" in out.replace("\n", "")
    results = pd.read_csv(tmp_path / "scores.csv", dtype=str)
    crm = pd.read_csv(tmp_path / file, dtype=str, keep_default_na=False)
    assert list(crm.columns) == columns
    key = "lead_id" if task == "lead_qualification" else "opportunity_id"
    assert crm[id_col].tolist() == results[key].tolist()  # one row per scored record
    assert crm[id_col].str.fullmatch(id_rx).all()
    assert crm[columns[1]].astype(int).between(0, 100).all()
    assert set(crm[columns[2]]) <= {"A", "B", "C", "D"}
    reasons = crm[columns[-1]]
    assert reasons.str.len().le(limit).all() and reasons.str.startswith(("+ ", "- ")).all()


ACCOUNT_WANT = {
    ("salesforce", "account_renewal"): (
        "Account_renewal_scores.csv", "Id", r"001\w{12}",
        ["Id", "Renewal_Score__c", "Renewal_Grade__c", "Renewal_Reasons__c"], 255),
    ("salesforce", "account_expansion"): (
        "Account_expansion_scores.csv", "Id", r"001\w{12}",
        ["Id", "Expansion_Score__c", "Expansion_Grade__c", "Expansion_Reasons__c"], 255),
    ("hubspot", "account_renewal"): (
        "companies_renewal_scores.csv", "Record ID", r"\d+",
        ["Record ID", "renewal_score", "renewal_grade", "renewal_reasons"], 1000),
    ("hubspot", "account_expansion"): (
        "companies_expansion_scores.csv", "Record ID", r"\d+",
        ["Record ID", "expansion_score", "expansion_grade", "expansion_reasons"], 1000),
}


@pytest.mark.parametrize("fmt", ["salesforce", "hubspot"])
def test_account_scores_go_back_to_the_crm_s_company_records(
    account_models: AccountModels, fmt: str, tmp_path: Path  # noqa: F811
) -> None:
    """Renewal and expansion write back keyed by the CRM's account (company) ids, one row
    per scored customer account."""
    write_export(account_models.tables, fmt, tmp_path / "export")
    result = run_import(import_settings(mapping=Path(fmt), source=tmp_path / "export",
                                        out=tmp_path / "tables"))
    assert result.ok
    tables = tmp_path / "tables"
    for task, loaded in account_models.models.items():
        loaded.model.save(tmp_path / task)  # type: ignore[attr-defined]
        out_dir = tmp_path / f"{task}_out"
        out_dir.mkdir()
        code, out = _run("score", "--task", task, "--input", str(tables / "accounts.parquet"),
                         "--data", str(tables), "--output", str(out_dir / "scores.csv"),
                         "--as-of", account_models.as_of.isoformat(),
                         "--model", str(tmp_path / task), "--export", fmt)
        assert code == 0, out
        file, id_col, id_rx, columns, limit = ACCOUNT_WANT[(fmt, task)]
        results = pd.read_csv(out_dir / "scores.csv", dtype=str)
        crm = pd.read_csv(out_dir / file, dtype=str, keep_default_na=False)
        assert list(crm.columns) == columns
        assert len(results) > 0
        assert crm[id_col].tolist() == results["account_id"].tolist()
        assert crm[id_col].str.fullmatch(id_rx).all()
        assert crm[columns[1]].astype(int).between(0, 100).all()
        assert set(crm[columns[2]]) <= {"A", "B", "C", "D"}
        reasons = crm[columns[-1]]
        assert reasons.str.len().le(limit).all()
        assert (reasons.eq("") | reasons.str.startswith(("+ ", "- "))).all()


def test_keys_that_are_not_crm_ids_are_refused(
    trained: Trained, models: Path, tmp_path: Path  # noqa: F811
) -> None:
    for name in ("accounts", "leads", "opportunities", "opportunity_history", "activities"):
        trained.tables.get(name).to_parquet(tmp_path / f"{name}.parquet", index=False)
    code, out = _run("score", "--task", "lead_qualification",
                     "--input", str(tmp_path / "leads.parquet"), "--data", str(tmp_path),
                     "--output", str(tmp_path / "scores.csv"), "--as-of", AS_OF.isoformat(),
                     "--model", str(models / "lead_model"), "--export", "salesforce")
    assert code == 2
    text = " ".join(out.split())
    assert "have no salesforce Lead id" in text and "'LEAD0000" in text
    assert "leadscore import --mapping salesforce" in text
    assert not (tmp_path / "Lead_scores.csv").exists()


def test_a_mapping_without_an_export_section_is_refused_before_scoring(tmp_path: Path) -> None:
    mapping = tmp_path / "mine.yaml"
    mapping.write_text("preset: flat-leads\n", encoding="utf-8")
    code, out = _run("score", "--task", "lead_qualification", "--input", "nowhere.csv",
                     "--output", str(tmp_path / "s.csv"), "--export", "salesforce",
                     "--mapping", str(mapping))
    assert code == 2
    assert "has no export: section" in " ".join(out.split())
    code, out = _run("score", "--task", "lead_qualification", "--input", "nowhere.csv",
                     "--output", str(tmp_path / "s.csv"), "--export", "salesforce",
                     "--mapping", "hubspot")
    assert code == 2 and "is for hubspot, not salesforce" in " ".join(out.split())
    code, out = _run("score", "--task", "lead_qualification", "--input", "nowhere.csv",
                     "--output", str(tmp_path / "s.csv"), "--export", "pipedrive")
    assert code == 2 and "unknown --export 'pipedrive'" in out
