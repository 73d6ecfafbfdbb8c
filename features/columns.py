"""Contract tables as plain numpy columns, for inputs of a few rows.

A serving request carries one entity's rows: a handful. Turning them into pandas
DataFrames, and reading those back column by column inside ``build_features``, cost more
than computing every feature from them (pandas spends ~10-40 µs per column or index it
builds; a one-lead request built and read a few hundred). ``ColumnTables`` holds the same
contract tables as numpy arrays, in the only forms the feature code reads:

- timestamps as int64 UTC nanoseconds (``NAT`` = int64 min where missing),
- numbers and yes/no answers as float64 (NaN where missing; yes = 1.0),
- ids and text as object arrays of ``str`` (``None`` where missing).

``build_features`` reads either form through the accessors below, so training (DataFrames
of millions of rows) and serving (these) run the same feature code; the data tests hold
both forms to identical features.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pandas as pd

from features.point_in_time import NAT, ns
from features.schema import (
    ACCOUNT_SIGNALS,
    ACCOUNTS,
    ACTIVITIES,
    LEAD_FIELD_HISTORY,
    LEADS,
    OPPORTUNITIES,
    OPPORTUNITY_FIELD_HISTORY,
    OPPORTUNITY_HISTORY,
    CRMTables,
    Table,
)

if TYPE_CHECKING:
    from features.own import OwnFeatures

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_FLOAT_KINDS = frozenset({"int", "float", "bool"})


@dataclass(frozen=True)
class ColumnTable:
    """One table as named numpy columns of equal length (see the module for the forms)."""

    data: Mapping[str, np.ndarray]
    length: int

    def __getitem__(self, name: str) -> np.ndarray:
        return self.data[name]

    def __len__(self) -> int:
        return self.length

    @property
    def columns(self) -> list[str]:
        return list(self.data)

    @property
    def empty(self) -> bool:
        return self.length == 0


Frame: TypeAlias = pd.DataFrame | ColumnTable
"""What the feature code reads a table from."""


@dataclass(frozen=True)
class ColumnTables:
    """The contract tables as :class:`ColumnTable` s (what a request becomes)."""

    accounts: ColumnTable
    leads: ColumnTable
    opportunities: ColumnTable
    opportunity_history: ColumnTable
    activities: ColumnTable
    account_signals: ColumnTable = field(
        default_factory=lambda: table_from_rows([], ACCOUNT_SIGNALS)
    )
    lead_field_history: ColumnTable = field(
        default_factory=lambda: table_from_rows([], LEAD_FIELD_HISTORY)
    )
    opportunity_field_history: ColumnTable = field(
        default_factory=lambda: table_from_rows([], OPPORTUNITY_FIELD_HISTORY)
    )
    own: OwnFeatures | None = None
    """The request's own columns (``attributes``), if any (``features.own``)."""


AnyTables: TypeAlias = CRMTables | ColumnTables


def epoch_ns(value: datetime) -> int:
    """A timestamp as UTC nanoseconds, exactly (naive ones are UTC, as the API reads them)."""
    if isinstance(value, pd.Timestamp):
        return int((value.tz_localize("UTC") if value.tzinfo is None else value).value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return ((value - _EPOCH) // _MICROSECOND) * 1000


def column_array(values: Sequence[Any], kind: str) -> np.ndarray:
    """Python values (None: missing) of one contract column kind in the form above."""
    if kind == "timestamp":
        return np.array([NAT if v is None else epoch_ns(v) for v in values], dtype=np.int64)
    if kind in _FLOAT_KINDS:
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    out = np.empty(len(values), dtype=object)
    out[:] = [None if v is None else str(v) for v in values]
    return out


def table_from_rows(rows: Sequence[Mapping[str, Any]], table: Table) -> ColumnTable:
    """A contract table from validated rows (``None``: missing; extra keys are ignored)."""
    return ColumnTable(
        {c.name: column_array([r.get(c.name) for r in rows], c.kind) for c in table.columns},
        len(rows),
    )


def first_per_key(table: ColumnTable, key: str | None) -> ColumnTable:
    """Keep the first row of each key: later rows (context) never override earlier ones."""
    if key is None or table.length < 2:
        return table
    seen: set[Any] = set()
    keep = []
    for i, k in enumerate(table[key].tolist()):
        if k not in seen:
            seen.add(k)
            keep.append(i)
    if len(keep) == table.length:
        return table
    idx = np.asarray(keep, dtype=np.int64)
    return ColumnTable({c: v[idx] for c, v in table.data.items()}, len(keep))


def _column_from_series(series: pd.Series, kind: str) -> np.ndarray:
    if kind == "timestamp":
        return ns(series)
    if kind in _FLOAT_KINDS:
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.array([None if v is None or v is pd.NA or v != v else str(v)
                     for v in series.astype(object)], dtype=object)


def table_from_frame(frame: pd.DataFrame, table: Table) -> ColumnTable:
    """A contract DataFrame as a :class:`ColumnTable` (tests and tools; not a hot path)."""
    return ColumnTable(
        {c.name: _column_from_series(frame[c.name], c.kind) for c in table.columns},
        len(frame),
    )


CONTRACT = (ACCOUNTS, LEADS, OPPORTUNITIES, OPPORTUNITY_HISTORY, ACTIVITIES, ACCOUNT_SIGNALS,
            LEAD_FIELD_HISTORY, OPPORTUNITY_FIELD_HISTORY)


@dataclass(frozen=True)
class RowColumns:
    """Rows held a column at a time: each column a list of Python values (None: missing),
    ``length`` long; a column not held is missing in every row. Cheaper to make from
    thousands of validated records than a dict per row."""

    columns: Mapping[str, list[Any]]
    length: int

    def plus(self, rows: Sequence[Mapping[str, Any]], table: Table) -> RowColumns:
        """These rows, then ``rows`` (as :func:`table_from_rows` reads them)."""
        if not rows:
            return self
        missing = [None] * self.length
        return RowColumns({c.name: self.columns.get(c.name, missing)
                           + [r.get(c.name) for r in rows] for c in table.columns},
                          self.length + len(rows))

    def table(self, table: Table) -> ColumnTable:
        missing = [None] * self.length
        return ColumnTable({c.name: column_array(self.columns.get(c.name, missing), c.kind)
                            for c in table.columns}, self.length)


def tables_from_rows(
    rows: Mapping[str, Iterable[Mapping[str, Any]] | RowColumns],
) -> ColumnTables:
    """The contract's tables from rows per table name (absent names: empty tables)."""
    tables: dict[str, Any] = {}
    for t in CONTRACT:
        given = rows.get(t.name, ())
        if isinstance(given, RowColumns):
            table = given.table(t) if given.length else _empty_table(t.name)
        else:
            listed = list(given)
            table = table_from_rows(listed, t) if listed else _empty_table(t.name)
        tables[t.name] = first_per_key(table, t.key)
    return ColumnTables(**tables)


@functools.cache
def _empty_table(name: str) -> ColumnTable:
    """A contract table without rows, built once (most of a request's tables are empty,
    and an array of no values holds nothing to change)."""
    table = next(t for t in CONTRACT if t.name == name)
    return table_from_rows([], table)


def tables_from_frames(tables: CRMTables) -> ColumnTables:
    """Contract DataFrames as :class:`ColumnTables` (the data tests compare both forms)."""
    columns: dict[str, Any] = {t.name: table_from_frame(tables.get(t.name), t) for t in CONTRACT}
    return ColumnTables(**columns, own=tables.own)


# -- what the feature code reads: either form -----------------------------------------


def times(frame: Frame, column: str) -> np.ndarray:
    """A timestamp column as int64 UTC nanoseconds (``NAT`` where missing)."""
    if isinstance(frame, ColumnTable):
        return frame[column]
    return ns(frame[column])


def floats(frame: Frame, column: str) -> np.ndarray:
    """A numeric or yes/no column as float64 (NaN where missing)."""
    if isinstance(frame, ColumnTable):
        return frame[column]
    return frame[column].to_numpy(dtype="float64", na_value=np.nan)


def keys(frame: Frame, column: str) -> pd.Series | np.ndarray:
    """An id or text column as the id helpers in ``features.point_in_time`` take it."""
    return frame[column]


def equals(frame: Frame, column: str, value: str) -> np.ndarray:
    """Where a text column equals ``value`` (False where missing)."""
    if isinstance(frame, ColumnTable):
        return np.asarray(frame[column] == value, dtype=bool)
    return frame[column].eq(value).fillna(False).to_numpy(dtype=bool)
