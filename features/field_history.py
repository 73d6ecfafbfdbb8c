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

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features import point_in_time as pit
from features.columns import Frame, equals, keys, times
from features.parsing import FALSE_TOKENS, NULL_TOKENS, TRUE_TOKENS
from features.schema import Table


@dataclass(frozen=True)
class FieldAsOf:
    """Where each snapshot's value of one field comes from."""

    row: np.ndarray
    """The history row holding it (-1: the field never changed: read the record)."""
    new: np.ndarray
    """True where that row's new value holds it, False where its old value does."""


def field_as_of(
    history: Frame, key: str, vocabulary: pd.Series | np.ndarray, queries: pit.Queries,
    field: str,
) -> FieldAsOf | None:
    """Which history row (and side) gives each query's value of ``field``, or None when
    the field has no changes at all (every value is the record's).

    ``queries`` are (record code in ``vocabulary``, t) pairs; a query without a record
    (code -1) reads the record, which ``visible`` masks in the caller anyway.
    """
    if len(history) == 0:
        return None
    mine = equals(history, "field", field)
    if not mine.any():
        return None
    code = np.where(mine, pit.codes(keys(history, key), vocabulary), -1)
    idx = pit.index_events(code, times(history, "changed_at"))
    if len(idx) == 0:
        return None
    last = queries.last(idx)
    start = queries.starts(idx)
    # The record's first change is at its block start, if the block is its own.
    at = np.minimum(start, len(idx) - 1)
    has_any = (queries.keys >= 0) & (start < len(idx)) & (
        idx.composite[at] // idx.width == queries.keys)
    before = last >= 0
    pos = np.where(before, last, at)
    row = np.where(has_any, idx.rows[pos], -1)
    return FieldAsOf(row=row, new=before)


def _gather(found: FieldAsOf, new: np.ndarray, old: np.ndarray, current: np.ndarray
            ) -> np.ndarray:
    """Per query: the new or old value of its history row, ``current`` where it has none."""
    picked = found.row >= 0
    safe = np.where(picked, found.row, 0)
    if len(new) == 0:
        return current
    return np.where(picked, np.where(found.new, new[safe], old[safe]), current)


def as_numbers(texts: pd.Series | np.ndarray, kind: str) -> np.ndarray:
    """History values as the feature code reads numbers and yes/no answers: float64,
    NaN where empty (yes = 1.0). Bad text cannot reach here: the loader rejects it."""
    series = pd.Series(texts, copy=False).astype("string")
    clean = series.str.strip().str.lower()
    if kind == "bool":
        out = np.full(len(series), np.nan)
        out[clean.isin(TRUE_TOKENS).fillna(False).to_numpy(dtype=bool)] = 1.0
        out[clean.isin(FALSE_TOKENS).fillna(False).to_numpy(dtype=bool)] = 0.0
        return out
    clean = clean.mask(clean.isin(NULL_TOKENS).fillna(False))
    return pd.to_numeric(clean, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def numeric_as_of(
    current: np.ndarray, history: Frame, found: FieldAsOf | None, kind: str
) -> np.ndarray:
    """A numeric or yes/no attribute as of t: ``current`` (the record's, as float) where
    the field never changed, the history's value elsewhere."""
    if found is None:
        return current
    new = as_numbers(keys(history, "new_value"), kind)
    old = as_numbers(keys(history, "old_value"), kind)
    return _gather(found, new, old, current)


def codes_as_of(
    current: np.ndarray, history: Frame, found: FieldAsOf | None, levels: pd.Index
) -> np.ndarray:
    """A text attribute as of t, as codes of ``levels`` (-1: missing or unseen):
    ``current`` (the record's codes) where the field never changed. Text is compared as
    written, as the record's own is."""
    if found is None:
        return current
    new = pit.codes(keys(history, "new_value"), levels)
    old = pit.codes(keys(history, "old_value"), levels)
    return _gather(found, new, old, current).astype(current.dtype)


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
