"""Tiny crafted CRM exports, one folder per preset under ``tests/data/exports/``, written as
the CRM writes them (API names, report labels, its own stage names and dates)."""

from __future__ import annotations

from pathlib import Path

EXPORTS = Path(__file__).resolve().parent / "exports"


def export_files(name: str) -> dict[str, str]:
    """The files of one crafted export, by name."""
    return {p.name: p.read_text(encoding="utf-8") for p in sorted((EXPORTS / name).iterdir())}


SALESFORCE = export_files("salesforce")
SALESFORCE_FIELD_HISTORY = export_files("salesforce_field_history")["OpportunityFieldHistory.csv"]
SALESFORCE_REPORT_OPPORTUNITIES = export_files("salesforce_report")["Opportunity.csv"]
SALESFORCE_BANT = {**SALESFORCE, **export_files("salesforce_bant")}
"""The Salesforce export with custom BANT fields on the lead, their changes (and a few
others) in LeadHistory, and a deal's Type changed in OpportunityFieldHistory."""
HUBSPOT = export_files("hubspot")
HUBSPOT_PROPERTY_HISTORY = export_files("hubspot_property_history")
FLAT_LEADS = export_files("flat_leads")
FLAT_DEALS = export_files("flat_deals")


def write_export(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder
