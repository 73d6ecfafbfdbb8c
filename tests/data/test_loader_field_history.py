"""The optional field-history tables: absent is fine, present is checked like the rest, and
every old or new value is checked by its field's own contract type."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from features.loader import LoadResult, load_crm
from features.schema import LEAD_FIELD_HISTORY, OPPORTUNITY_FIELD_HISTORY
from tests.data.crm_builder import (
    NOW,
    rejection_lines,
    set_cell,
    valid_field_history,
    valid_tables,
    write_folder,
)

FORMATS = ["csv", "parquet"]
HISTORIES = ["lead_field_history", "opportunity_field_history"]


def _with_history() -> dict[str, pd.DataFrame]:
    return {**valid_tables(), **valid_field_history()}


def _load(tables: dict[str, pd.DataFrame], folder: Path, fmt: str = "csv") -> LoadResult:
    return load_crm(write_folder(tables, folder, fmt), now=NOW)


_lines = rejection_lines


def test_a_folder_without_field_history_loads_them_empty_and_typed(tmp_path: Path) -> None:
    result = _load(valid_tables(), tmp_path)

    assert result.rejections.empty
    assert "lead_field_history" not in result.summary()["table"].tolist()
    for name, table in (("lead_field_history", LEAD_FIELD_HISTORY),
                        ("opportunity_field_history", OPPORTUNITY_FIELD_HISTORY)):
        frame = result.tables.get(name)
        assert len(frame) == 0
        assert list(frame.columns) == table.column_names


@pytest.mark.parametrize("fmt", FORMATS)
def test_valid_field_history_loads_as_written_and_counted(tmp_path: Path, fmt: str) -> None:
    result = _load(_with_history(), tmp_path, fmt)

    assert result.rejections.empty
    expected = valid_field_history()
    for name in HISTORIES:
        pd.testing.assert_frame_equal(result.tables.get(name), expected[name],
                                      check_dtype=False)
    got = result.tables.lead_field_history
    assert got["new_value"].tolist()[:2] == ["true", "30"]  # text: read by the field's type
    counts = result.summary().set_index("table")
    assert counts.loc["lead_field_history"].to_dict() == {"read": 5, "valid": 5, "rejected": 0}
    assert counts.loc["opportunity_field_history", "valid"] == 2


BAD_ROWS: list[tuple[str, int, str, Any, str]] = [
    ("lead_field_history", 0, "lead_id", None, "missing required value"),
    ("lead_field_history", 0, "changed_at", None, "missing required value"),
    ("lead_field_history", 0, "field", None, "missing required value"),
    ("lead_field_history", 0, "field", "qualified_at",
     "unknown value: 'qualified_at'"),
    ("lead_field_history", 0, "new_value", "maybe",
     "bad type: expected boolean for budget_confirmed, got 'maybe'"),
    ("lead_field_history", 1, "new_value", "soon",
     "bad type: expected integer for timeline_days, got 'soon'"),
    ("lead_field_history", 2, "old_value", "-5", "negative value: employees -5"),
    ("lead_field_history", 2, "changed_at", "2025-06-01T00:00:00Z",
     "timestamp in the future: 2025-06-01T00:00:00Z is after 2025-01-01T00:00:00Z"),
    ("lead_field_history", 3, "lead_id", "L9", "orphan foreign key: no leads.lead_id 'L9'"),
    ("lead_field_history", 3, "changed_at", "2024-01-01T00:00:00Z",
     "before record created: changed_at 2024-01-01T00:00:00Z is before the leads row's "
     "created_at 2024-02-01T00:00:00Z"),
    ("opportunity_field_history", 0, "field", "amount", "unknown value: 'amount'"),
    ("opportunity_field_history", 0, "opportunity_id", "O9",
     "orphan foreign key: no opportunities.opportunity_id 'O9'"),
    ("opportunity_field_history", 1, "changed_at", "2024-01-02T00:00:00Z",
     "before record created: changed_at 2024-01-02T00:00:00Z is before the opportunities "
     "row's created_at 2024-01-20T00:00:00Z"),
]


@pytest.mark.parametrize(("table", "row", "column", "value", "reason"), BAD_ROWS)
def test_each_bad_change_is_reported_with_row_column_and_reason(
    tmp_path: Path, table: str, row: int, column: str, value: Any, reason: str
) -> None:
    tables = _with_history()
    set_cell(tables, table, row, column, value)
    result = _load(tables, tmp_path)
    assert _lines(result) == {(table, row, column, reason)}
    assert len(result.tables.get(table)) == len(tables[table]) - 1


def test_a_rejected_lead_takes_its_changes_with_it(tmp_path: Path) -> None:
    tables = _with_history()
    set_cell(tables, "leads", 0, "employees", -1)  # L1: three changes
    result = _load(tables, tmp_path)
    lines = _lines(result, "lead_field_history")
    assert {(row, column) for _, row, column, _ in lines} == {
        (0, "lead_id"), (1, "lead_id"), (2, "lead_id")}
    assert all("leads.lead_id 'L1' was rejected" in reason for *_, reason in lines)
