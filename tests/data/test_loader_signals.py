"""The optional account_signals table: absent is fine, present is checked like the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.loader import DataContractError, LoadResult, load_crm
from features.schema import TABLES, CRMTables
from features.snapshots import crm_as_of
from leadscore.cli import app
from tests.data.crm_builder import (
    NOW,
    rejection_lines,
    set_cell,
    valid_signals,
    valid_tables,
    write_folder,
)

FORMATS = ["csv", "parquet"]
REQUIRED = ["accounts", "leads", "opportunities", "opportunity_history", "activities"]
SIGNAL_DTYPES = {
    "signal_id": "string",
    "account_id": "string",
    "observed_at": "datetime64[ns, UTC]",
    "signal": "string",
    "value": "float64",
    "detail": "string",
}


def _with_signals() -> dict[str, pd.DataFrame]:
    return {**valid_tables(), "account_signals": valid_signals()}


def _load(tables: dict[str, pd.DataFrame], folder: Path, fmt: str) -> LoadResult:
    return load_crm(write_folder(tables, folder, fmt), now=NOW)


_lines = rejection_lines


def _dtypes(frame: pd.DataFrame) -> dict[str, str]:
    return {str(c): str(d) for c, d in frame.dtypes.items()}


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_folder_without_signals_loads_as_before(tmp_path: Path, fmt: str) -> None:
    result = _load(valid_tables(), tmp_path, fmt)

    assert result.rejections.empty
    assert result.missing_columns == {}
    assert list(result.rows_read) == REQUIRED
    expected = valid_tables()
    for name in REQUIRED:
        pd.testing.assert_frame_equal(result.tables.get(name), expected[name], check_dtype=False)
    summary = result.summary()
    assert summary["table"].tolist() == REQUIRED  # nothing to count for an absent table
    signals = result.tables.account_signals
    assert len(signals) == 0
    assert _dtypes(signals) == SIGNAL_DTYPES
    assert isinstance(signals.index, pd.RangeIndex)


@pytest.mark.parametrize("fmt", FORMATS)
def test_valid_signals_load_typed_and_counted(tmp_path: Path, fmt: str) -> None:
    result = _load(_with_signals(), tmp_path, fmt)

    assert result.rejections.empty
    got = result.tables.account_signals
    assert _dtypes(got) == SIGNAL_DTYPES
    pd.testing.assert_frame_equal(got, valid_signals(), check_dtype=False)
    assert got.loc[2, "observed_at"] == pd.Timestamp("2024-05-02 10:15", tz="UTC")
    assert got["value"].tolist() == [0.0, 410.0, 4.0, 10.0, 1.0, 12.5]
    counts = result.summary().set_index("table").loc["account_signals"].to_dict()
    assert counts == {"read": 6, "valid": 6, "rejected": 0}
    assert result.summary()["table"].tolist() == [*REQUIRED, "account_signals"]


def test_range_ends_are_inside_the_range(tmp_path: Path) -> None:
    tables = _with_signals()
    set_cell(tables, "account_signals", 0, "value", 1e7)
    set_cell(tables, "account_signals", 1, "value", 1e9)
    result = _load(tables, tmp_path, "parquet")
    assert result.rejections.empty
    assert result.tables.account_signals["value"].tolist()[:2] == [1e7, 1e9]


# Rows of valid_signals(): 0 S1 A1 active_users, 1 S2 A1 logins, 2 S3 A1 ticket_opened,
# 3 S4 A2 nps, 4 S5 A3 csat, 5 S6 A3 active_users. (row, column, new value, exact reason)
CASES: list[tuple[int, str, Any, str]] = [
    (5, "value", "many", "bad type: expected number, got 'many'"),
    (1, "observed_at", "last week", "bad type: expected timestamp, got 'last week'"),
    (0, "signal_id", None, "missing required value"),
    (1, "account_id", None, "missing required value"),
    (2, "observed_at", None, "missing required value"),
    (3, "signal", None, "missing required value"),
    (4, "value", None, "missing required value"),
    (0, "signal", "churn_risk", "unknown value: 'churn_risk'"),
    (3, "value", 11.0, "value out of range: nps 11 is outside 0 to 10"),
    (4, "value", 0.0, "value out of range: csat 0 is outside 1 to 5"),
    (2, "value", 5.0, "value out of range: ticket_opened 5 is outside 1 to 4"),
    (0, "value", -1.0, "value out of range: active_users -1 is outside 0 to 10000000"),
    (1, "value", 2e9, "value out of range: logins 2000000000 is outside 0 to 1000000000"),
    (3, "value", 7.5, "bad type: expected integer for nps, got '7.5'"),
    (2, "value", 2.5, "bad type: expected integer for ticket_opened, got '2.5'"),
    (4, "value", 3.5, "bad type: expected integer for csat, got '3.5'"),
    (
        5,
        "observed_at",
        pd.Timestamp("2025-02-01", tz="UTC"),
        "timestamp in the future: 2025-02-01T00:00:00Z is after 2025-01-01T00:00:00Z",
    ),
    (2, "signal_id", "S1", "duplicate id: 'S1' first seen at row 0"),
    (4, "account_id", "A9", "orphan foreign key: no accounts.account_id 'A9'"),
    (
        3,
        "observed_at",
        pd.Timestamp("2024-01-10", tz="UTC"),
        "before account created: observed_at 2024-01-10T00:00:00Z is before the account's "
        "created_at 2024-01-15T00:00:00Z",
    ),
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("row", "column", "value", "reason"), CASES)
def test_each_bad_signal_is_reported_with_row_column_and_reason(
    tmp_path: Path, fmt: str, row: int, column: str, value: Any, reason: str
) -> None:
    tables = _with_signals()
    set_cell(tables, "account_signals", row, column, value)
    result = _load(tables, tmp_path, fmt)

    assert _lines(result) == {("account_signals", row, column, reason)}
    # Only the spoilt row goes; the others keep their ids and their order.
    want = valid_signals()["signal_id"].drop(index=row).tolist()
    assert result.tables.account_signals["signal_id"].tolist() == want
    counts = result.summary().set_index("table").loc["account_signals"].to_dict()
    assert counts == {"read": 6, "valid": 5, "rejected": 1}


def test_a_fraction_out_of_range_is_two_lines_on_one_rejected_row(tmp_path: Path) -> None:
    tables = _with_signals()
    set_cell(tables, "account_signals", 3, "value", 10.5)
    result = _load(tables, tmp_path, "parquet")
    assert _lines(result) == {
        ("account_signals", 3, "value", "value out of range: nps 10.5 is outside 0 to 10"),
        ("account_signals", 3, "value", "bad type: expected integer for nps, got '10.5'"),
    }
    assert result.summary().set_index("table").loc["account_signals", "rejected"] == 1


@pytest.mark.parametrize(
    ("account_row", "column", "value", "account", "signal_rows"),
    [
        (0, "created_at", "not a date", "A1", [0, 1, 2]),
        (2, "employees", -3, "A3", [4, 5]),
    ],
)
def test_a_rejected_account_takes_its_signals_with_it(
    tmp_path: Path, account_row: int, column: str, value: Any, account: str, signal_rows: list[int]
) -> None:
    tables = _with_signals()
    set_cell(tables, "accounts", account_row, column, value)
    result = _load(tables, tmp_path, "csv")

    gone = f"orphan foreign key: accounts.account_id '{account}' was rejected"
    assert _lines(result, "account_signals") == {
        ("account_signals", r, "account_id", gone) for r in signal_rows
    }
    left = valid_signals().drop(index=signal_rows)["signal_id"].tolist()
    assert result.tables.account_signals["signal_id"].tolist() == left
    assert set(result.tables.account_signals["account_id"]) <= set(
        result.tables.accounts["account_id"]
    )


def test_a_signal_of_a_rejected_account_is_an_orphan_not_early(tmp_path: Path) -> None:
    """With its account gone there is no creation date to compare with: one line, not two."""
    tables = _with_signals()
    set_cell(tables, "accounts", 0, "employees", -3)
    set_cell(tables, "account_signals", 0, "observed_at", pd.Timestamp("2023-06-01", tz="UTC"))
    result = _load(tables, tmp_path, "parquet")
    gone = "orphan foreign key: accounts.account_id 'A1' was rejected"
    assert _lines(result, "account_signals") == {
        ("account_signals", r, "account_id", gone) for r in (0, 1, 2)
    }


def test_a_header_only_signals_file_is_read_and_counted(tmp_path: Path) -> None:
    tables = {**valid_tables(), "account_signals": valid_signals().iloc[0:0]}
    result = _load(tables, tmp_path, "csv")
    assert result.rejections.empty
    assert result.rows_read["account_signals"] == 0
    counts = result.summary().set_index("table").loc["account_signals"].to_dict()
    assert counts == {"read": 0, "valid": 0, "rejected": 0}
    assert _dtypes(result.tables.account_signals) == SIGNAL_DTYPES


def test_signals_file_without_a_required_column_names_it(tmp_path: Path) -> None:
    tables = _with_signals()
    tables["account_signals"] = tables["account_signals"].drop(columns=["value"])
    with pytest.raises(DataContractError, match=r"account_signals\.csv.*value"):
        _load(tables, tmp_path, "csv")


def test_signals_in_both_formats_is_an_error_naming_both(tmp_path: Path) -> None:
    folder = write_folder(_with_signals(), tmp_path, "csv")
    valid_signals().to_parquet(folder / "account_signals.parquet")
    with pytest.raises(
        DataContractError, match=r"account_signals\.parquet and account_signals\.csv"
    ):
        load_crm(folder, now=NOW)


def test_signals_without_detail_read_it_as_empty_and_say_so(tmp_path: Path) -> None:
    tables = _with_signals()
    tables["account_signals"] = tables["account_signals"].drop(columns=["detail"])
    result = _load(tables, tmp_path, "parquet")
    assert result.rejections.empty
    assert result.missing_columns == {"account_signals": ("detail",)}
    assert result.tables.account_signals["detail"].isna().all()


def test_cli_validate_reports_signal_rows(tmp_path: Path) -> None:
    tables = _with_signals()
    set_cell(tables, "account_signals", 4, "value", 6.0)
    folder = write_folder(tables, tmp_path / "crm", "csv")
    report = tmp_path / "report.csv"
    out = CliRunner().invoke(app, ["validate", "--data", str(folder), "--report", str(report)])
    assert out.exit_code == 1, out.output
    written = pd.read_csv(report, dtype={"row": int}, keep_default_na=False)
    assert set(written.itertuples(index=False, name=None)) == {
        ("account_signals", 4, "value", "value out of range: csat 6 is outside 1 to 5"),
    }
    assert "account_signals" in out.output
    assert "value out of range" in out.output


def test_crm_tables_built_without_signals_get_an_empty_typed_table() -> None:
    frames = {name: valid_tables()[name] for name in REQUIRED}
    crm = CRMTables(**frames)
    assert len(crm.account_signals) == 0
    assert list(crm.account_signals.columns) == TABLES["account_signals"].column_names
    assert _dtypes(crm.account_signals) == SIGNAL_DTYPES


def test_crm_as_of_drops_signals_observed_at_or_after_the_cutoff(tmp_path: Path) -> None:
    tables = _load(_with_signals(), tmp_path, "parquet").tables
    past = crm_as_of(tables, pd.Timestamp("2024-06-01", tz="UTC"))  # S4 is observed then
    assert past.account_signals["signal_id"].tolist() == ["S1", "S2", "S3"]
    assert len(tables.account_signals) == 6  # the input is not changed
