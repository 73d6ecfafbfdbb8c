"""Batch input files checked a column at a time give what the row-by-row check gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

import serving.batch as batch
from features.schema import LEADS, OPPORTUNITIES
from serving.batch import BatchInputError, read_table_file, validated_rows
from serving.schemas import LeadIn, OpportunityIn
from tests.data.toy_crm import toy_crm


def _by_rows(frame: pd.DataFrame, task: str, monkeypatch: pytest.MonkeyPatch) -> pd.DataFrame:
    with monkeypatch.context() as m:
        m.setattr(batch, "_by_column", lambda *_: None)
        return validated_rows(frame, task, "file")


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize(("task", "table", "model"), [
    ("lead_qualification", LEADS, LeadIn), ("deal_close", OPPORTUNITIES, OpportunityIn),
])
def test_columns_give_the_rows_answer(
    fmt: str, task: str, table: object, model: type, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frame = toy_crm(3, n_leads=60).get(table.name)  # type: ignore[attr-defined]
    path = tmp_path / f"rows.{fmt}"
    frame.to_parquet(path) if fmt == "parquet" else frame.to_csv(path, index=False)
    read = read_table_file(path)
    assert batch._by_column(read, table, model) is not None  # type: ignore[arg-type]
    fast = validated_rows(read, task, "file")
    pd.testing.assert_frame_equal(fast, _by_rows(read, task, monkeypatch))


def test_naive_times_and_absent_optional_columns_as_the_rows_read_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frame = pd.DataFrame({
        "lead_id": ["L1", "L2", "L3"],
        "created_at": pd.to_datetime(
            ["2024-01-01 10:00:00", "2024-02-01 00:00:00", "2024-03-01 00:00:01"]),
        "employees": [12.0, np.nan, 3.0],
        "budget_confirmed": [True, None, False],
    })
    assert batch._by_column(frame, LEADS, LeadIn) is not None
    pd.testing.assert_frame_equal(validated_rows(frame, "lead_qualification", "f"),
                                  _by_rows(frame, "lead_qualification", monkeypatch))


@pytest.mark.parametrize(("column", "values"), [
    ("employees", [12.0, 2.5]),
    ("employees", [12.0, -1.0]),
    ("created_at", pd.to_datetime(["2024-01-01", "2201-01-01"], utc=True)),
    ("created_at", pd.to_datetime(["2024-01-01", None], utc=True)),
    ("lead_id", ["L1", ""]),
    ("lead_id", ["L1", "L\x002"]),
    ("lead_id", ["L1", "L\ud8002"]),
    ("source", ["webinar", "web\x00inar"]),
    ("source", ["webinar", "x" * 257]),
    ("budget_confirmed", [True, "maybe"]),
])
def test_a_bad_value_is_reported_by_row(column: str, values: object) -> None:
    frame = pd.DataFrame({"lead_id": ["L1", "L2"],
                          "created_at": pd.to_datetime(["2024-01-01", "2024-01-02"], utc=True)})
    frame[column] = values
    assert batch._by_column(frame, LEADS, LeadIn) is None
    with pytest.raises(BatchInputError, match=rf"row 1: {column}: "):
        validated_rows(frame, "lead_qualification", "file")



@pytest.mark.parametrize(("model", "name"), [
    (LeadIn, "lead_id"), (LeadIn, "source"), (LeadIn, "title"), (OpportunityIn, "product"),
])
def test_the_text_check_runs_once_a_column_for_optional_text_too(model: type, name: str) -> None:
    """An optional text field (``Text | None``) holds its check inside the union: it is taken
    out of the column's validator as a required one's is (a NUL passes the validator, the
    whole column's ``_clean_column`` refuses it), its other rules kept."""
    adapter, taken_out = batch._field_adapter(model, name)
    assert taken_out
    assert adapter.validate_python(["a", "b\x00c"]) == ["a", "b\x00c"]
    assert not batch._clean_column(["a", "b\x00c"])
    with pytest.raises(ValidationError):
        adapter.validate_python(["x" * 300])
