"""The data contract: valid folders load clean; every bad row is reported where it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.loader import (
    REJECTION_COLUMNS,
    DataContractError,
    LoadResult,
    load_crm,
)
from features.schema import PANDAS_DTYPES, TABLES, empty_frame
from leadscore.cli import app
from tests.data.crm_builder import NOW, set_cell, valid_tables, write_folder

FORMATS = ["csv", "parquet"]
SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"


def _load(tables: dict[str, pd.DataFrame], folder: Path, fmt: str) -> LoadResult:
    return load_crm(write_folder(tables, folder, fmt), now=NOW)


def _lines(result: LoadResult) -> set[tuple[str, int, str, str]]:
    return {
        (str(r["table"]), int(r["row"]), str(r["column"]), str(r["reason"]))
        for r in result.rejections.to_dict("records")
    }


def _rejected_rows(result: LoadResult, table: str) -> set[int]:
    rej = result.rejections
    return set(rej.loc[rej["table"] == table, "row"].astype(int))


@pytest.mark.parametrize("fmt", FORMATS)
def test_valid_folder_loads_with_empty_report(tmp_path: Path, fmt: str) -> None:
    expected = valid_tables()
    result = _load(valid_tables(), tmp_path, fmt)

    assert list(result.rejections.columns) == REJECTION_COLUMNS
    assert result.rejections.empty
    for name, table in TABLES.items():
        got = result.tables.get(name)
        assert list(got.columns) == table.column_names
        wrong = {
            c.name: str(got[c.name].dtype)
            for c in table.columns
            if got[c.name].dtype != PANDAS_DTYPES[c.kind]
        }
        assert wrong == {}, name
        assert isinstance(got.index, pd.RangeIndex)
        # An optional table the folder leaves out loads empty, with its columns typed.
        want = expected.get(name, empty_frame(table))
        pd.testing.assert_frame_equal(got, want, check_dtype=False)
    summary = result.summary()
    assert summary["rejected"].sum() == 0
    assert summary.set_index("table")["read"].to_dict() == {k: len(v) for k, v in expected.items()}


def test_country_code_na_is_a_value_not_a_blank(tmp_path: Path) -> None:
    result = _load(valid_tables(), tmp_path, "csv")
    assert result.tables.accounts.loc[1, "country"] == "NA"


# (table, row, column, new value, exact reason)
CASES: list[tuple[str, int, str, Any, str]] = [
    ("leads", 1, "created_at", "yesterday", "bad type: expected timestamp, got 'yesterday'"),
    ("accounts", 0, "employees", "12 people", "bad type: expected integer, got '12 people'"),
    ("accounts", 0, "employees", "12.5", "bad type: expected integer, got '12.5'"),
    ("opportunities", 2, "amount", "ten", "bad type: expected number, got 'ten'"),
    ("opportunities", 2, "amount", "inf", "bad type: expected number, got 'inf'"),
    ("leads", 0, "budget_confirmed", "maybe", "bad type: expected boolean, got 'maybe'"),
    ("opportunities", 1, "owner_id", None, "missing required value"),
    ("leads", 2, "lead_id", None, "missing required value"),
    ("activities", 2, "type", None, "missing required value"),
    ("opportunity_history", 1, "stage", "won", "unknown value: 'won'"),
    ("activities", 0, "type", "tweet", "unknown value: 'tweet'"),
    ("activities", 3, "direction", "sideways", "unknown value: 'sideways'"),
    ("accounts", 2, "account_id", "A1", "duplicate id: 'A1' first seen at row 0"),
    ("activities", 1, "account_id", "A9", "orphan foreign key: no accounts.account_id 'A9'"),
    (
        "opportunity_history",
        3,
        "opportunity_id",
        "O7",
        "orphan foreign key: no opportunities.opportunity_id 'O7'",
    ),
    (
        "activities",
        4,
        "occurred_at",
        pd.Timestamp("2025-02-01", tz="UTC"),
        "timestamp in the future: 2025-02-01T00:00:00Z is after 2025-01-01T00:00:00Z",
    ),
    (
        "opportunity_history",
        3,
        "changed_at",
        pd.Timestamp("2024-03-01", tz="UTC"),
        "before deal created: changed_at 2024-03-01T00:00:00Z is before the deal's created_at "
        "2024-04-01T00:00:00Z",
    ),
    (
        "opportunity_history",
        5,
        "changed_at",
        pd.Timestamp("2024-06-01", tz="UTC"),
        "after deal closed: changed_at 2024-06-01T00:00:00Z is after the deal's closed_at "
        "2024-05-10T00:00:00Z",
    ),
    ("opportunities", 0, "amount", -5.5, "negative value: -5.5"),
    ("accounts", 1, "employees", -3, "negative value: -3"),
    (
        "leads",
        0,
        "qualified_at",
        pd.Timestamp("2024-01-01", tz="UTC"),
        "date order: qualified_at 2024-01-01T00:00:00Z is before created_at 2024-01-05T00:00:00Z",
    ),
    (
        "opportunities",
        1,
        "is_won",
        True,
        "inconsistent outcome: is_won is set but closed_at is empty",
    ),
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("table", "row", "column", "value", "reason"), CASES)
def test_each_bad_row_is_reported_with_row_column_and_reason(
    tmp_path: Path, fmt: str, table: str, row: int, column: str, value: Any, reason: str
) -> None:
    tables = valid_tables()
    set_cell(tables, table, row, column, value)
    result = _load(tables, tmp_path, fmt)

    assert (table, row, column, reason) in _lines(result)
    valid = result.tables.get(table)
    assert len(valid) == len(tables[table]) - len(_rejected_rows(result, table))
    assert row in _rejected_rows(result, table)
    counts = result.summary().set_index("table").to_dict("index")[table]
    assert counts["valid"] + counts["rejected"] == counts["read"] == len(tables[table])


def test_future_close_date_is_a_plan_not_an_error(tmp_path: Path) -> None:
    result = _load(valid_tables(), tmp_path, "parquet")
    assert result.tables.opportunities["close_date"].max() > NOW
    assert result.rejections.empty


def test_rows_are_positions_in_the_file_even_with_quoted_newlines(tmp_path: Path) -> None:
    tables = valid_tables()
    set_cell(tables, "accounts", 0, "name", "Acme\nHoldings")
    set_cell(tables, "accounts", 1, "annual_revenue", "lots")
    result = _load(tables, tmp_path, "csv")
    assert ("accounts", 1, "annual_revenue", "bad type: expected number, got 'lots'") in _lines(
        result
    )
    assert result.tables.accounts.loc[0, "name"] == "Acme\nHoldings"


def test_text_values_are_parsed_as_a_crm_export_writes_them(tmp_path: Path) -> None:
    tables = valid_tables()
    set_cell(tables, "leads", 0, "budget_confirmed", "Yes")
    set_cell(tables, "leads", 0, "employees", " 120 ")
    set_cell(tables, "leads", 1, "qualified_at", "NULL")
    set_cell(tables, "leads", 2, "created_at", "2024-02-10 02:00:00+02:00")
    set_cell(tables, "leads", 3, "timeline_days", "90.0")
    set_cell(tables, "opportunities", 2, "amount", "NaN")
    result = _load(tables, tmp_path, "csv")
    assert result.rejections.empty
    leads = result.tables.leads
    assert bool(leads.loc[0, "budget_confirmed"]) is True
    assert leads.loc[0, "employees"] == 120
    assert leads["qualified_at"].isna().iloc[1]
    assert leads.loc[2, "created_at"] == pd.Timestamp("2024-02-10", tz="UTC")
    assert leads.loc[3, "timeline_days"] == 90
    assert result.tables.opportunities["amount"].isna().tolist() == [False, False, True]


def test_rejected_account_takes_its_children_with_it(tmp_path: Path) -> None:
    tables = valid_tables()
    set_cell(tables, "accounts", 0, "created_at", "not a date")
    result = _load(tables, tmp_path, "parquet")
    lines = _lines(result)

    gone = "orphan foreign key: accounts.account_id 'A1' was rejected"
    assert ("leads", 0, "account_id", gone) in lines
    assert ("opportunities", 0, "account_id", gone) in lines
    assert ("activities", 0, "account_id", gone) in lines
    assert ("activities", 1, "account_id", gone) in lines
    deal_gone = "orphan foreign key: opportunities.opportunity_id 'O1' was rejected"
    for hist_row in (0, 1, 2):
        assert ("opportunity_history", hist_row, "opportunity_id", deal_gone) in lines
    assert ("activities", 1, "opportunity_id", deal_gone) in lines

    counts = result.summary().set_index("table")["rejected"].to_dict()
    assert counts == {
        "accounts": 1,
        "leads": 1,
        "opportunities": 1,
        "opportunity_history": 3,
        "activities": 2,
    }
    assert "A1" not in set(result.tables.accounts["account_id"])
    assert set(result.tables.leads["lead_id"]) == {"L2", "L3", "L4"}
    assert set(result.tables.activities["activity_id"]) == {"X3", "X4", "X5"}


def test_leads_and_deals_cycle_is_resolved_both_ways(tmp_path: Path) -> None:
    """A lead pointing at a missing deal is rejected, and so is the deal made from it."""
    tables = valid_tables()
    set_cell(tables, "leads", 3, "opportunity_id", "O9")
    result = _load(tables, tmp_path, "csv")
    lines = _lines(result)

    assert (
        "leads",
        3,
        "opportunity_id",
        "orphan foreign key: no opportunities.opportunity_id 'O9'",
    ) in lines
    assert (
        "opportunities",
        2,
        "lead_id",
        "orphan foreign key: leads.lead_id 'L4' was rejected",
    ) in lines
    o3_gone = "orphan foreign key: opportunities.opportunity_id 'O3' was rejected"
    assert ("opportunity_history", 4, "opportunity_id", o3_gone) in lines
    assert ("opportunity_history", 5, "opportunity_id", o3_gone) in lines
    assert (
        "activities",
        4,
        "lead_id",
        "orphan foreign key: leads.lead_id 'L4' was rejected",
    ) in lines
    assert ("activities", 4, "opportunity_id", o3_gone) in lines
    # Rejected once per row, however many lines it has.
    assert result.summary().set_index("table").loc["activities", "rejected"] == 1
    # What is left still joins: every reference resolves.
    t = result.tables
    assert set(t.opportunities["lead_id"].dropna()) <= set(t.leads["lead_id"])
    assert set(t.leads["opportunity_id"].dropna()) <= set(t.opportunities["opportunity_id"])


def test_a_rejected_deal_rejects_the_lead_that_points_at_it(tmp_path: Path) -> None:
    tables = valid_tables()
    set_cell(tables, "opportunities", 0, "amount", -1.0)
    result = _load(tables, tmp_path, "parquet")
    assert (
        "leads",
        0,
        "opportunity_id",
        "orphan foreign key: opportunities.opportunity_id 'O1' was rejected",
    ) in _lines(result)
    # L1's activities go with it.
    assert {0, 1} <= _rejected_rows(result, "activities")


def test_a_row_with_two_problems_is_reported_twice_and_rejected_once(tmp_path: Path) -> None:
    tables = valid_tables()
    set_cell(tables, "activities", 2, "type", "tweet")
    set_cell(tables, "activities", 2, "direction", "up")
    result = _load(tables, tmp_path, "csv")
    rej = result.rejections
    assert len(rej[(rej["table"] == "activities") & (rej["row"] == 2)]) == 2
    assert result.summary().set_index("table").loc["activities", "rejected"] == 1
    assert len(result.tables.activities) == 4


def test_missing_nullable_column_is_read_as_empty_and_said(tmp_path: Path) -> None:
    tables = valid_tables()
    tables["leads"] = tables["leads"].drop(columns=["title"])
    result = _load(tables, tmp_path, "csv")
    assert result.rejections.empty
    assert result.missing_columns == {"leads": ("title",)}
    assert result.tables.leads["title"].isna().all()
    assert result.tables.leads["title"].dtype == "string"


def test_missing_required_column_names_the_file_and_column(tmp_path: Path) -> None:
    tables = valid_tables()
    tables["activities"] = tables["activities"].drop(columns=["occurred_at"])
    with pytest.raises(DataContractError, match=r"activities\.csv.*occurred_at"):
        _load(tables, tmp_path, "csv")


def test_corrupt_parquet_names_the_file(tmp_path: Path) -> None:
    folder = write_folder(valid_tables(), tmp_path, "parquet")
    (folder / "leads.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataContractError, match=r"leads\.parquet"):
        load_crm(folder, now=NOW)


def test_wrongly_typed_parquet_column_names_the_file_and_column(tmp_path: Path) -> None:
    tables = valid_tables()
    tables["accounts"]["created_at"] = 3.5
    with pytest.raises(DataContractError, match=r"accounts\.parquet.*created_at"):
        _load(tables, tmp_path, "parquet")


def test_missing_table_file_is_named(tmp_path: Path) -> None:
    folder = write_folder(valid_tables(), tmp_path, "csv")
    (folder / "opportunity_history.csv").unlink()
    with pytest.raises(
        DataContractError,
        match=r"opportunity_history\.parquet or "
        r"opportunity_history\.csv",
    ):
        load_crm(folder, now=NOW)


def test_both_formats_for_one_table_is_an_error_naming_both(tmp_path: Path) -> None:
    folder = write_folder(valid_tables(), tmp_path, "csv")
    valid_tables()["leads"].to_parquet(folder / "leads.parquet")
    with pytest.raises(DataContractError, match=r"leads\.parquet and leads\.csv"):
        load_crm(folder, now=NOW)


def test_subfolders_and_other_files_are_ignored(tmp_path: Path) -> None:
    folder = write_folder(valid_tables(), tmp_path, "parquet")
    (folder / "_truth").mkdir()
    (folder / "_truth" / "leads.parquet").write_bytes(b"not read")
    (folder / "README.md").write_text("notes")
    (folder / "leads.csv.bak").write_text("junk")
    assert load_crm(folder, now=NOW).rejections.empty


def test_mixed_formats_in_one_folder(tmp_path: Path) -> None:
    tables = valid_tables()
    write_folder({k: v for k, v in tables.items() if k != "activities"}, tmp_path, "parquet")
    write_folder({"activities": tables["activities"]}, tmp_path, "csv")
    result = load_crm(tmp_path, now=NOW)
    assert result.rejections.empty
    assert len(result.tables.activities) == 5


# ---------------------------------------------------------------------------------------
# The command line.


def test_cli_validate_exits_0_and_writes_an_empty_report(tmp_path: Path) -> None:
    folder = write_folder(valid_tables(), tmp_path / "crm", "csv")
    report = tmp_path / "report.csv"
    out = CliRunner().invoke(app, ["validate", "--data", str(folder), "--report", str(report)])
    assert out.exit_code == 0, out.output
    assert report.read_text().strip() == "table,row,column,reason"
    assert "activities" in out.output


def test_cli_validate_exits_1_and_reports_every_rejection(tmp_path: Path) -> None:
    tables = valid_tables()
    set_cell(tables, "opportunity_history", 1, "stage", "won")
    set_cell(tables, "activities", 1, "account_id", "A9")
    folder = write_folder(tables, tmp_path / "crm", "parquet")
    report = tmp_path / "out" / "report.csv"
    out = CliRunner().invoke(app, ["validate", "--data", str(folder), "--report", str(report)])
    assert out.exit_code == 1, out.output
    written = pd.read_csv(report, dtype={"row": int}, keep_default_na=False)
    assert list(written.columns) == REJECTION_COLUMNS
    assert set(written.itertuples(index=False, name=None)) == {
        ("opportunity_history", 1, "stage", "unknown value: 'won'"),
        ("activities", 1, "account_id", "orphan foreign key: no accounts.account_id 'A9'"),
    }
    assert "unknown value" in out.output


def test_cli_validate_exits_2_with_one_clear_line_on_an_unreadable_file(tmp_path: Path) -> None:
    folder = write_folder(valid_tables(), tmp_path / "crm", "parquet")
    (folder / "accounts.parquet").write_bytes(b"garbage")
    out = CliRunner().invoke(
        app, ["validate", "--data", str(folder), "--report", str(tmp_path / "r.csv")]
    )
    assert out.exit_code == 2
    assert "accounts.parquet" in out.output
    assert "Traceback" not in out.output
    assert out.exception is None or isinstance(out.exception, SystemExit)


def test_one_bad_timestamp_does_not_spoil_its_neighbours(tmp_path: Path) -> None:
    """The slow parser (taken once a chunk has a bad value) reads every ISO shape."""
    tables = valid_tables()
    set_cell(tables, "leads", 0, "created_at", "2024-01-05 01:00:00+01:00")
    set_cell(tables, "leads", 1, "created_at", "13/02/2024")
    set_cell(tables, "leads", 2, "created_at", "2024-02-10T00:00:00.250Z")
    set_cell(tables, "leads", 3, "created_at", "2024-03-01")
    result = _load(tables, tmp_path, "csv")
    assert _lines(result) == {
        ("leads", 1, "created_at", "bad type: expected timestamp, got '13/02/2024'"),
        ("activities", 2, "lead_id", "orphan foreign key: leads.lead_id 'L2' was rejected"),
    }
    created = result.tables.leads.set_index("lead_id")["created_at"]
    assert created["L1"] == pd.Timestamp("2024-01-05", tz="UTC")
    assert created["L3"] == pd.Timestamp("2024-02-10 00:00:00.250", tz="UTC")
    assert created["L4"] == pd.Timestamp("2024-03-01", tz="UTC")


def test_committed_sample_loads_with_an_empty_report() -> None:
    result = load_crm(SAMPLE)
    assert list(result.rejections.columns) == REJECTION_COLUMNS
    assert result.rejections.empty, result.top_reasons().to_string()
    summary = result.summary().set_index("table")
    assert summary.loc["leads", "valid"] == 5000
    assert (summary["valid"] > 0).all()


def test_timestamps_without_offset_are_utc(tmp_path: Path) -> None:
    tables = valid_tables()
    expected = tables["activities"]["occurred_at"].copy()
    tables["activities"]["occurred_at"] = expected.dt.strftime("%Y-%m-%d %H:%M:%S")
    result = _load(tables, tmp_path, "csv")
    assert result.rejections.empty
    pd.testing.assert_series_equal(result.tables.activities["occurred_at"], expected)


def test_typed_parquet_variants_are_read_as_the_contract_says(tmp_path: Path) -> None:
    """Naive timestamps are UTC, dates are midnight, integral floats are integers."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = write_folder(valid_tables(), tmp_path, "parquet")
    accounts = pq.read_table(folder / "accounts.parquet")
    naive = accounts["created_at"].cast(pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us"))
    accounts = accounts.set_column(
        accounts.schema.get_field_index("created_at"), "created_at", naive
    ).set_column(
        accounts.schema.get_field_index("employees"), "employees",
        pa.array([120.0, 40.5, None], type=pa.float64()),
    )
    pq.write_table(accounts, folder / "accounts.parquet")
    opps = pq.read_table(folder / "opportunities.parquet")
    dates = opps["close_date"].cast(pa.timestamp("s", tz="UTC")).cast(pa.date32())
    opps = opps.set_column(opps.schema.get_field_index("close_date"), "close_date", dates)
    pq.write_table(opps, folder / "opportunities.parquet")

    result = load_crm(folder, now=NOW)
    bad = ("accounts", 1, "employees", "bad type: expected integer, got '40.5'")
    assert bad in _lines(result)
    expected = valid_tables()
    got = result.tables.accounts.set_index("account_id")
    assert got.loc["A1", "employees"] == 120
    assert got.loc["A1", "created_at"] == expected["accounts"].loc[0, "created_at"]
    close = result.tables.opportunities.set_index("opportunity_id")["close_date"]
    want = expected["opportunities"].set_index("opportunity_id")["close_date"]
    assert close.index.tolist() == ["O1", "O3"]  # O2's account A2 was rejected
    assert close.tolist() == want.loc[["O1", "O3"]].tolist()
    assert close.dtype == "datetime64[ns, UTC]"


def test_a_header_only_csv_is_an_empty_table(tmp_path: Path) -> None:
    tables = valid_tables()
    tables["activities"] = tables["activities"].iloc[0:0]
    result = _load(tables, tmp_path, "csv")
    assert result.rejections.empty
    assert len(result.tables.activities) == 0
    assert list(result.tables.activities.columns) == TABLES["activities"].column_names


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", r"accounts\.csv: empty file"),
     (b"account_id,name,created_at\nA1,Acme,2024-01-01,extra\n", r"accounts\.csv: cannot be read")],
)
def test_an_unreadable_csv_names_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    folder = write_folder(valid_tables(), tmp_path, "csv")
    (folder / "accounts.csv").write_bytes(content)
    with pytest.raises(DataContractError, match=message):
        load_crm(folder, now=NOW)
