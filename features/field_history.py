"""An attribute's value as of t, from its record and the record's field history.

A lead's BANT answers, its firmographics and a deal's product can change after creation;
the record holds only the latest value. The field-history tables (``lead_field_history``,
``opportunity_field_history``) hold one row per change: when, which field, the value
before and after. The value of a field as of t is then:

1. the new value of its last change strictly before t; else
2. the old value of its first change at or after t (what it was until then); else
3. the record's own value: the field never changed, so it always held it.

A field filled in during qualification (old value blank) therefore reads as missing before
its fill, and an edit after t is invisible at t. A record without any change reads as
before, so data without field history gives exactly the features it always did.

Values are text in the history and are read by the field's contract type, as the loader
checked them (``features/rules.py``). Each look-up is one search per snapshot in an index
of the field's changes (``features.point_in_time``): vectorised over every snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features import point_in_time as pit
from features.columns import Frame, keys, times
from features.parsing import FALSE_TOKENS, NULL_TOKENS, TRUE_TOKENS, np_mask
from features.schema import Table


@dataclass(frozen=True)
class FieldAsOf:
    """Where each snapshot's value of one field comes from."""

    row: np.ndarray
    """The history row holding it (-1: the field never changed: read the record)."""
    new: np.ndarray
    """True where that row's new value holds it, False where its old value does."""


@dataclass(frozen=True)
class Changes:
    """One field-history table, its rows coded once per build (record, field, time):
    every attribute's look-up then shares them."""

    history: Frame
    record: np.ndarray
    """Each row's record as its code in the vocabulary (-1: none)."""
    field: np.ndarray
    """Each row's field as its position in ``fields`` (-1: another)."""
    fields: tuple[str, ...]
    changed_at: np.ndarray

    @classmethod
    def of(cls, history: Frame, key: str, vocabulary: pd.Series | np.ndarray,
           fields: tuple[str, ...]) -> Changes | None:
        """The coded table, or None when it has no rows (every value is the record's)."""
        if len(history) == 0:
            return None
        return cls(history, pit.codes(keys(history, key), vocabulary),
                   pit.codes(keys(history, "field"), pd.Index(fields)), fields,
                   times(history, "changed_at"))

    def lookup(self, queries: pit.Queries, field: str) -> FieldAsOf | None:
        """Which history row (and side) gives each query's value of ``field``, or None
        when the field has no changes at all.

        ``queries`` are (record code, t) pairs; a query without a record (code -1) reads
        the record, which the caller masks anyway.
        """
        mine = self.field == self.fields.index(field)
        if not mine.any():
            return None
        idx = pit.index_events(np.where(mine, self.record, -1), self.changed_at)
        if len(idx) == 0:
            return None
        last = queries.last(idx)
        start = queries.starts(idx)
        # The record's first change is at its block start, if the block is its own.
        at = np.minimum(start, len(idx) - 1)
        has_any = (queries.keys >= 0) & (start < len(idx)) & (
            idx.composite[at] // idx.width == queries.keys)
        before = last >= 0
        row = np.where(has_any, idx.rows[np.where(before, last, at)], -1)
        return FieldAsOf(row=row, new=before)

    def _texts(self, column: str, rows: np.ndarray) -> pa.Array | pa.ChunkedArray:
        return pit.arrow_strings(keys(self.history, column)).take(pa.array(rows))

    def _gather(self, found: FieldAsOf, current: np.ndarray,
                parse: Callable[[pa.Array | pa.ChunkedArray], np.ndarray]) -> np.ndarray:
        """Per query: its row's new or old value (parsed only for the rows asked about),
        ``current`` where it has none."""
        picked = found.row >= 0
        rows, inverse = np.unique(found.row[picked], return_inverse=True)
        new = parse(self._texts("new_value", rows))
        old = parse(self._texts("old_value", rows))
        out = current.copy()
        out[picked] = np.where(found.new[picked], new[inverse], old[inverse])
        return out

    def numbers(self, found: FieldAsOf | None, current: np.ndarray, kind: str) -> np.ndarray:
        """A numeric or yes/no attribute as of t: ``current`` (the record's, as float)
        where the field never changed, the history's value elsewhere."""
        if found is None:
            return current
        return self._gather(found, current, lambda text: as_numbers(text, kind))

    def texts(self, found: FieldAsOf | None, current: np.ndarray) -> np.ndarray:
        """A text attribute as of t, as text (None: empty): ``current`` (the record's
        text) where the field never changed."""
        if found is None:
            return current
        return self._gather(found, current,
                            lambda text: np.asarray(text.to_numpy(zero_copy_only=False),
                                                    dtype=object))

    def codes(self, found: FieldAsOf | None, current: np.ndarray,
              levels: pd.Index) -> np.ndarray:
        """A text attribute as of t, as codes of ``levels`` (-1: missing or unseen):
        ``current`` (the record's codes) where the field never changed. Text is compared
        as written, as the record's own is."""
        if found is None:
            return current
        return self._gather(found, current,
                            lambda text: pit.codes(text.to_numpy(zero_copy_only=False),
                                                   levels))


def as_numbers(text: pa.Array | pd.Series | np.ndarray, kind: str) -> np.ndarray:
    """History values as the feature code reads numbers and yes/no answers: float64,
    NaN where empty (yes = 1.0). Bad text cannot reach here: the loader rejects it."""
    arr = text if isinstance(text, pa.Array | pa.ChunkedArray) else pit.arrow_strings(text)
    low = pc.utf8_lower(pc.utf8_trim_whitespace(arr))
    if kind == "bool":
        yes = np_mask(pc.is_in(low, value_set=pa.array(TRUE_TOKENS)))
        no = np_mask(pc.is_in(low, value_set=pa.array(FALSE_TOKENS)))
        return np.where(yes, 1.0, np.where(no, 0.0, np.nan))
    empty = pc.is_in(low, value_set=pa.array(NULL_TOKENS))
    low = pc.if_else(empty, pa.scalar(None, pa.string()), low)
    try:
        values = pc.cast(low, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        series = pd.Series(low.to_numpy(zero_copy_only=False), dtype=object)
        return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
    return np.asarray(pc.fill_null(values, np.nan).to_numpy(zero_copy_only=False),
                      dtype=np.float64)


def typed_values(texts: pd.Series, kind: str) -> pd.Series:
    """History values in the contract dtype of their field (``schema.PANDAS_DTYPES``)."""
    if kind in ("string", "category"):
        return texts.astype("string")
    numbers = pd.Series(as_numbers(texts, kind), index=texts.index)
    if kind == "bool":
        return numbers.astype("boolean")
    if kind == "int":
        return numbers.round().astype("Int64")
    return numbers


def record_as_of(record: pd.DataFrame, history: pd.DataFrame, entity: Table,
                 cut: pd.Timestamp) -> pd.DataFrame:
    """``record`` with every field that changed at or after ``cut`` set back to its value
    then: the old value of its first such change (a copy; ``record`` is left alone)."""
    key = entity.key
    assert key is not None
    later = history.loc[history["changed_at"] >= cut].sort_values("changed_at", kind="stable")
    first = later.drop_duplicates([key, "field"], keep="first")
    out = record.copy()
    for name, rows in first.groupby("field", sort=False):
        field = str(name)
        then = typed_values(rows["old_value"], entity.column(field).kind)
        then.index = pd.Index(rows[key].astype(object))
        has = out[key].isin(then.index).fillna(False).to_numpy(dtype=bool)
        values = then.loc[out.loc[has, key].astype(object)].to_numpy()
        column = out[field].copy()
        column.loc[has] = values
        out[field] = column
    return out
