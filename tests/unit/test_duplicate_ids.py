"""Telling that ids do not repeat by their numbers: ids of one shape (a fixed prefix and
digits) are distinct exactly when their numbers are."""

from __future__ import annotations

import pyarrow as pa

from features.rules import _distinct_numbers


def _ids(*values: str | None) -> pa.ChunkedArray:
    return pa.chunked_array([pa.array(values[:2], pa.string()),
                             pa.array(values[2:], pa.string())])


def test_ids_of_one_shape_with_distinct_numbers_are_distinct() -> None:
    assert _distinct_numbers(_ids("ACT000003", "ACT000001", "ACT000002", None, "ACT000007"))


def test_a_repeated_id_is_never_called_distinct() -> None:
    assert not _distinct_numbers(_ids("ACT000003", "ACT000001", "ACT000003"))
    assert not _distinct_numbers(_ids("7", "1", "7"))


def test_ids_of_other_shapes_are_left_to_hashing() -> None:
    assert not _distinct_numbers(_ids("ACT01", "ACT001", "ACT002"))  # widths differ
    assert not _distinct_numbers(_ids("ACT001", "TSK002", "ACT003"))  # prefixes differ
    assert not _distinct_numbers(_ids("a-1", "a-2", "b-x"))
    assert not _distinct_numbers(_ids("ACT000000001", "ACT900000000"))  # too sparse to count
