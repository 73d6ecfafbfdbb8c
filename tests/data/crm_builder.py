"""A tiny, hand-checked valid CRM for data-contract tests, and a way to spoil one cell.

Small enough to read: three accounts, four leads, three deals with their stage history,
five activities, and (apart, as the table is optional) six account signals. Every
reference resolves, every date is in order, and the open deal O2 has an expected close
date after ``NOW`` (a plan, which the contract allows).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from features.schema import TABLES, coerce_dtypes

NOW = pd.Timestamp("2025-01-01", tz="UTC")


def _frame(name: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    table = TABLES[name]
    df = pd.DataFrame(rows, columns=table.column_names)
    return coerce_dtypes(df.astype(object).where(df.notna(), None), table)


def valid_tables() -> dict[str, pd.DataFrame]:
    """The five contract tables, typed per ``features/schema.py``."""
    accounts: list[dict[str, Any]] = [
        {
            "account_id": "A1",
            "name": "Acme",
            "industry": "software",
            "employees": 120,
            "annual_revenue": 5e6,
            "country": "US",
            "created_at": "2024-01-01",
        },
        {
            "account_id": "A2",
            "name": "Beta, Inc.",
            "industry": None,
            "employees": 40,
            "annual_revenue": None,
            "country": "NA",
            "created_at": "2024-01-15",
        },
        {
            "account_id": "A3",
            "name": "Gamma",
            "industry": "retail",
            "employees": None,
            "annual_revenue": 2.5e7,
            "country": "DE",
            "created_at": "2024-02-01",
        },
    ]
    leads: list[dict[str, Any]] = [
        {
            "lead_id": "L1",
            "account_id": "A1",
            "created_at": "2024-01-05",
            "source": "referral",
            "title": "VP of Sales",
            "seniority": "vp",
            "job_function": "sales",
            "country": "US",
            "industry": "software",
            "employees": 120,
            "budget_confirmed": True,
            "is_decision_maker": True,
            "need_stated": True,
            "timeline_days": 30,
            "qualified_at": "2024-01-20",
            "disqualified_at": None,
            "opportunity_id": "O1",
        },
        {
            "lead_id": "L2",
            "account_id": "A2",
            "created_at": "2024-02-01",
            "source": "webinar",
            "title": "Analyst",
            "seniority": "individual",
            "job_function": "finance",
            "country": "NA",
            "industry": None,
            "employees": 40,
            "budget_confirmed": None,
            "is_decision_maker": None,
            "need_stated": None,
            "timeline_days": None,
            "qualified_at": None,
            "disqualified_at": None,
            "opportunity_id": None,
        },
        {
            "lead_id": "L3",
            "account_id": None,
            "created_at": "2024-02-10",
            "source": "paid_search",
            "title": None,
            "seniority": "unknown",
            "job_function": None,
            "country": "FR",
            "industry": None,
            "employees": None,
            "budget_confirmed": False,
            "is_decision_maker": False,
            "need_stated": None,
            "timeline_days": None,
            "qualified_at": None,
            "disqualified_at": "2024-03-01 12:30:00",
            "opportunity_id": None,
        },
        {
            "lead_id": "L4",
            "account_id": "A3",
            "created_at": "2024-03-01",
            "source": "event",
            "title": "Director of IT",
            "seniority": "director",
            "job_function": "it",
            "country": "DE",
            "industry": "retail",
            "employees": 300,
            "budget_confirmed": None,
            "is_decision_maker": True,
            "need_stated": True,
            "timeline_days": 90,
            "qualified_at": "2024-03-10",
            "disqualified_at": None,
            "opportunity_id": "O3",
        },
    ]
    opportunities: list[dict[str, Any]] = [
        {
            "opportunity_id": "O1",
            "account_id": "A1",
            "lead_id": "L1",
            "owner_id": "R1",
            "created_at": "2024-01-20",
            "product": "core",
            "amount": 10000.0,
            "close_date": "2024-03-31",
            "closed_at": "2024-03-15",
            "is_won": True,
        },
        {
            "opportunity_id": "O2",
            "account_id": "A2",
            "lead_id": None,
            "owner_id": "R2",
            "created_at": "2024-04-01",
            "product": "addon",
            "amount": 5000.0,
            "close_date": "2025-06-30",
            "closed_at": None,
            "is_won": None,
        },
        {
            "opportunity_id": "O3",
            "account_id": "A3",
            "lead_id": "L4",
            "owner_id": "R1",
            "created_at": "2024-03-10",
            "product": "core",
            "amount": 20000.0,
            "close_date": "2024-05-01",
            "closed_at": "2024-05-10",
            "is_won": False,
        },
    ]
    history: list[dict[str, Any]] = [
        {
            "opportunity_id": "O1",
            "changed_at": "2024-01-20",
            "stage": "prospecting",
            "amount": 10000.0,
            "close_date": "2024-03-31",
        },
        {
            "opportunity_id": "O1",
            "changed_at": "2024-02-01",
            "stage": "qualification",
            "amount": 10000.0,
            "close_date": "2024-03-31",
        },
        {
            "opportunity_id": "O1",
            "changed_at": "2024-03-15",
            "stage": "closed_won",
            "amount": 10000.0,
            "close_date": "2024-03-31",
        },
        {
            "opportunity_id": "O2",
            "changed_at": "2024-04-01",
            "stage": "prospecting",
            "amount": 5000.0,
            "close_date": "2025-06-30",
        },
        {
            "opportunity_id": "O3",
            "changed_at": "2024-03-10",
            "stage": "prospecting",
            "amount": 20000.0,
            "close_date": "2024-05-01",
        },
        {
            "opportunity_id": "O3",
            "changed_at": "2024-05-10",
            "stage": "closed_lost",
            "amount": None,
            "close_date": None,
        },
    ]
    activities: list[dict[str, Any]] = [
        {
            "activity_id": "X1",
            "occurred_at": "2024-01-06T09:00:00Z",
            "account_id": "A1",
            "lead_id": "L1",
            "opportunity_id": None,
            "contact_id": "C1",
            "type": "email_opened",
            "direction": "inbound",
        },
        {
            "activity_id": "X2",
            "occurred_at": "2024-01-25T15:30:00Z",
            "account_id": "A1",
            "lead_id": "L1",
            "opportunity_id": "O1",
            "contact_id": "C1",
            "type": "meeting",
            "direction": "outbound",
        },
        {
            "activity_id": "X3",
            "occurred_at": "2024-02-15T08:00:00Z",
            "account_id": "A2",
            "lead_id": "L2",
            "opportunity_id": None,
            "contact_id": None,
            "type": "web_visit",
            "direction": "inbound",
        },
        {
            "activity_id": "X4",
            "occurred_at": "2024-04-05T10:00:00Z",
            "account_id": "A2",
            "lead_id": None,
            "opportunity_id": "O2",
            "contact_id": "C2",
            "type": "call",
            "direction": "outbound",
        },
        {
            "activity_id": "X5",
            "occurred_at": "2024-03-12T13:00:00Z",
            "account_id": "A3",
            "lead_id": "L4",
            "opportunity_id": "O3",
            "contact_id": "C3",
            "type": "demo",
            "direction": "outbound",
        },
    ]
    return {
        "accounts": _frame("accounts", accounts),
        "leads": _frame("leads", leads),
        "opportunities": _frame("opportunities", opportunities),
        "opportunity_history": _frame("opportunity_history", history),
        "activities": _frame("activities", activities),
    }


def valid_signals() -> pd.DataFrame:
    """An ``account_signals`` table for ``valid_tables``' accounts, one row per signal kind.

    Values sit on their ranges' edges where they can (0 active users, severity 4, NPS 10,
    CSAT 1), so a check that got a bound wrong rejects a valid row.
    """
    rows: list[dict[str, Any]] = [
        {
            "signal_id": "S1",
            "account_id": "A1",
            "observed_at": "2024-04-01T00:00:00Z",
            "signal": "active_users",
            "value": 0.0,
            "detail": None,
        },
        {
            "signal_id": "S2",
            "account_id": "A1",
            "observed_at": "2024-04-08T00:00:00Z",
            "signal": "logins",
            "value": 410.0,
            "detail": None,
        },
        {
            "signal_id": "S3",
            "account_id": "A1",
            "observed_at": "2024-05-02T10:15:00Z",
            "signal": "ticket_opened",
            "value": 4.0,
            "detail": "export fails",
        },
        {
            "signal_id": "S4",
            "account_id": "A2",
            "observed_at": "2024-06-01T00:00:00Z",
            "signal": "nps",
            "value": 10.0,
            "detail": "survey Q2",
        },
        {
            "signal_id": "S5",
            "account_id": "A3",
            "observed_at": "2024-06-15T00:00:00Z",
            "signal": "csat",
            "value": 1.0,
            "detail": None,
        },
        {
            "signal_id": "S6",
            "account_id": "A3",
            "observed_at": "2024-07-01T00:00:00Z",
            "signal": "active_users",
            "value": 12.5,
            "detail": "weekly average",
        },
    ]
    return _frame("account_signals", rows)


def valid_field_history() -> dict[str, pd.DataFrame]:
    """``lead_field_history`` and ``opportunity_field_history`` for ``valid_tables``: BANT
    filled in during qualification, firmographics edited, a deal's product changed (after
    it closed, too: records are edited after the fact), values written as CRMs write them."""
    leads: list[dict[str, Any]] = [
        {"lead_id": "L1", "changed_at": "2024-01-10T09:00:00Z", "field": "budget_confirmed",
         "old_value": None, "new_value": "true"},
        {"lead_id": "L1", "changed_at": "2024-01-10T09:00:00Z", "field": "timeline_days",
         "old_value": None, "new_value": "30"},
        {"lead_id": "L1", "changed_at": "2024-01-12T00:00:00Z", "field": "employees",
         "old_value": "100", "new_value": "120"},
        {"lead_id": "L2", "changed_at": "2024-02-03T00:00:00Z", "field": "industry",
         "old_value": None, "new_value": "retail"},
        {"lead_id": "L3", "changed_at": "2024-02-11T00:00:00Z", "field": "need_stated",
         "old_value": "No", "new_value": "Yes"},
    ]
    opps: list[dict[str, Any]] = [
        {"opportunity_id": "O1", "changed_at": "2024-02-01T00:00:00Z", "field": "product",
         "old_value": "starter", "new_value": "professional"},
        {"opportunity_id": "O1", "changed_at": "2024-04-01T00:00:00Z", "field": "product",
         "old_value": "professional", "new_value": "enterprise"},
    ]
    return {"lead_field_history": _frame("lead_field_history", leads),
            "opportunity_field_history": _frame("opportunity_field_history", opps)}


def as_text(series: pd.Series) -> pd.Series:
    """A column as the text a CRM export would hold (empty cells as None)."""
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        text = series.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    else:
        text = series.astype("string")
    return text.astype(object).where(series.notna(), None)


def set_cell(
    tables: dict[str, pd.DataFrame], table: str, row: int, column: str, value: Any
) -> None:
    """Put ``value`` in one cell; text in a typed column turns that column to text."""
    df = tables[table]
    if isinstance(value, str):
        df[column] = as_text(df[column])
    df.loc[row, column] = pd.NA if value is None and df[column].dtype != object else value


def write_folder(tables: dict[str, pd.DataFrame], folder: Path, fmt: str) -> Path:
    """One file per table in ``folder``, as ``csv`` or ``parquet``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        if fmt == "csv":
            df.to_csv(folder / f"{name}.csv", index=False)
        else:
            df.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def rejection_lines(result: Any, table: str | None = None) -> set[tuple[str, int, str, str]]:
    """A load's rejections as (table, row, column, reason), of one table or all."""
    return {
        (str(r["table"]), int(r["row"]), str(r["column"]), str(r["reason"]))
        for r in result.rejections.to_dict("records")
        if table is None or r["table"] == table
    }
