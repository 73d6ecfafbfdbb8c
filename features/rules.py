"""The checks within one table: each row on its own, and keys repeated within the file.

Each rule writes its reason per rejected cell and marks the row invalid; a row can fail
several rules and is reported once for each (and counted once). What needs another table
(foreign keys, a deal's dates) is in ``features/integrity.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.parsing import TIMESTAMP_TYPE, ParsedColumn, absent_column, np_mask, parse_column
from features.point_in_time import arrow_id_numbers
from features.report import (
    BAD_TYPE,
    DATE_ORDER,
    DUPLICATE_ID,
    FUTURE_TIMESTAMP,
    MISSING_VALUE,
    NEGATIVE_VALUE,
    OUTCOME_MISMATCH,
    UNKNOWN_VALUE,
    VALUE_OUT_OF_RANGE,
    empty_rejections,
    iso,
    iso_scalar,
    joined,
    quoted,
)
from features.schema import (
    FIELD_HISTORIES,
    INTEGER_SIGNALS,
    PANDAS_DTYPES,
    SIGNAL_RANGES,
    SIGNALS,
    Table,
)

# Counts and amounts cannot be negative (in every table that has them).
NON_NEGATIVE_COLUMNS = frozenset({"employees", "annual_revenue", "amount", "timeline_days"})
# Planned dates, not events: allowed to be in the future.
PLANNED_DATE_COLUMNS = frozenset({"close_date"})
# (table, later column, earlier column): the later one may not precede the earlier one.
DATE_ORDER_RULES: tuple[tuple[str, str, str], ...] = (
    ("leads", "qualified_at", "created_at"),
    ("leads", "disqualified_at", "created_at"),
    ("opportunities", "closed_at", "created_at"),
)
# (table, a, b): both filled or both empty. A closed deal is won or lost, and only a
# closed one is.
PAIRED_COLUMNS: tuple[tuple[str, str, str], ...] = (("opportunities", "is_won", "closed_at"),)
# (table, signal column, value column): the value must lie in its signal's range in
# SIGNAL_RANGES, and be a whole number for the INTEGER_SIGNALS.
SIGNAL_VALUE_RULES: tuple[tuple[str, str, str], ...] = (("account_signals", "signal", "value"),)

_KIND_WORDS = {"int": "integer", "float": "number", "bool": "boolean", "timestamp": "timestamp"}


@dataclass
class CheckedTable:
    """One table being checked: parsed columns, which rows survive, problems found."""

    table: Table
    n_rows: int
    columns: dict[str, ParsedColumn]
    valid: np.ndarray
    problems: list[tuple[np.ndarray, str, pa.Array | str]] = field(default_factory=list)

    def values(self, name: str) -> pa.ChunkedArray:
        return self.columns[name].values

    def reject(self, mask: np.ndarray, column: str, reason: pa.Array | str) -> bool:
        """Reject the rows in ``mask`` for ``reason`` (one per row, or one for all)."""
        rows = np.flatnonzero(mask)
        if rows.size == 0:
            return False
        self.problems.append((rows, column, reason))
        before = int(self.valid.sum())
        self.valid[rows] = False
        return int(self.valid.sum()) != before

    def rejections(self) -> pd.DataFrame:
        if not self.problems:
            return empty_rejections()
        frames = []
        for rows, column, reason in self.problems:
            reasons: object = (
                reason
                if isinstance(reason, str)
                else np.asarray(reason.to_numpy(zero_copy_only=False), dtype=object)
            )
            frames.append(
                pd.DataFrame(
                    {
                        "table": self.table.name,
                        "row": rows.astype(np.int64),
                        "column": column,
                        "reason": reasons,
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)

    def frame(self) -> pd.DataFrame:
        """The valid rows, in file order, with the contract's pandas dtypes."""
        data = pa.table({c.name: self.columns[c.name].values for c in self.table.columns})
        if not self.valid.all():
            data = data.filter(pa.array(self.valid))
        df = data.to_pandas(types_mapper=_pandas_type, split_blocks=True)
        for c in self.table.columns:  # an all-null column may come back as another dtype
            if df[c.name].dtype != PANDAS_DTYPES[c.kind]:
                df[c.name] = df[c.name].astype(PANDAS_DTYPES[c.kind])
        return df  # to_pandas gives a fresh RangeIndex: no reset (a copy) needed


def _pandas_type(typ: pa.DataType) -> object:
    if pa.types.is_string(typ):
        return pd.StringDtype("pyarrow")
    if pa.types.is_int64(typ):
        return pd.Int64Dtype()
    if pa.types.is_boolean(typ):
        return pd.BooleanDtype()
    return None


def no_rows(table: Table) -> CheckedTable:
    """An optional table the folder left out: no rows, every column in its contract type."""
    columns = {c.name: absent_column(0, c) for c in table.columns}
    return CheckedTable(table, 0, columns, np.ones(0, dtype=bool))


def check_rows(tbl: pa.Table, table: Table, path: Path, now: pd.Timestamp) -> CheckedTable:
    """Parse every column and apply the checks that need no other table."""
    n = tbl.num_rows
    parsed: dict[str, ParsedColumn] = {}
    for c in table.columns:
        if c.name in tbl.column_names:
            parsed[c.name] = parse_column(tbl.column(c.name), c, path)
        else:
            parsed[c.name] = absent_column(n, c)
    checked = CheckedTable(table, n, parsed, np.ones(n, dtype=bool))
    now_scalar = pa.scalar(now.as_unit("ns"), type=TIMESTAMP_TYPE)

    for c in table.columns:
        p = parsed[c.name]
        if p.bad.any():
            word = _KIND_WORDS.get(c.kind, c.kind)
            got = quoted(p.bad_text)
            checked.reject(p.bad, c.name, joined(f"{BAD_TYPE}: expected {word}, got ", got))
        if not c.nullable:
            checked.reject(p.missing, c.name, MISSING_VALUE)
        if c.allowed is not None:
            unknown = np_mask(
                pc.and_(pc.is_valid(p.values), pc.invert(pc.is_in(p.values, pa.array(c.allowed))))
            )
            if unknown.any():
                vals = p.values.filter(pa.array(unknown))
                checked.reject(unknown, c.name, joined(f"{UNKNOWN_VALUE}: ", quoted(vals)))
        if c.name in NON_NEGATIVE_COLUMNS and c.kind in ("int", "float"):
            neg = np_mask(pc.less(p.values, 0))
            if neg.any():
                vals = p.values.filter(pa.array(neg))
                text = pc.cast(vals, pa.string())
                checked.reject(neg, c.name, joined(f"{NEGATIVE_VALUE}: ", text))
        if c.kind == "timestamp" and c.name not in PLANNED_DATE_COLUMNS:
            future = np_mask(pc.greater(p.values, now_scalar))
            if future.any():
                vals = p.values.filter(pa.array(future))
                checked.reject(
                    future,
                    c.name,
                    joined(f"{FUTURE_TIMESTAMP}: ", iso(vals), f" is after {iso_scalar(now)}"),
                )

    for name, later, earlier in DATE_ORDER_RULES:
        if name != table.name:
            continue
        late, early = parsed[later].values, parsed[earlier].values
        wrong = np_mask(pc.less(late, early))
        if wrong.any():
            m = pa.array(wrong)
            checked.reject(
                wrong,
                later,
                joined(
                    f"{DATE_ORDER}: {later} ",
                    iso(late.filter(m)),
                    f" is before {earlier} ",
                    iso(early.filter(m)),
                ),
            )

    for name, a, b in PAIRED_COLUMNS:
        if name != table.name:
            continue
        for one, other in ((a, b), (b, a)):
            lone = np_mask(pc.is_valid(parsed[one].values)) & parsed[other].missing
            checked.reject(lone, one, f"{OUTCOME_MISMATCH}: {one} is set but {other} is empty")

    for name, signal, value in SIGNAL_VALUE_RULES:
        if name == table.name:
            _check_signal_values(checked, signal, value)

    entity = FIELD_HISTORIES.get(table.name)
    if entity is not None:
        _check_field_values(checked, entity, path)

    if table.key is not None:
        _check_duplicates(checked, table.key)
    return checked


def _check_signal_values(checked: CheckedTable, signal: str, value: str) -> None:
    """Reject values outside their signal's range, and fractions where a grade belongs.

    A row whose signal is unknown or whose value is missing has no range to check: it is
    rejected for that already, once.
    """
    signals, values = checked.values(signal), checked.values(value)
    pos = pc.index_in(signals, value_set=pa.array(SIGNALS))
    lows = pa.array([SIGNAL_RANGES[s][0] for s in SIGNALS], pa.float64())
    highs = pa.array([SIGNAL_RANGES[s][1] for s in SIGNALS], pa.float64())
    outside = np_mask(
        pc.or_(pc.less(values, pc.take(lows, pos)), pc.greater(values, pc.take(highs, pos)))
    )
    if outside.any():
        m = pa.array(outside)
        # Bounds printed as Arrow prints the values, so 1e7 reads 10000000 on both sides.
        ranges = joined(pc.cast(lows, pa.string()), " to ", pc.cast(highs, pa.string()))
        checked.reject(
            outside,
            value,
            joined(
                f"{VALUE_OUT_OF_RANGE}: ",
                signals.filter(m),
                " ",
                pc.cast(values.filter(m), pa.string()),
                " is outside ",
                pc.take(ranges, pos.filter(m)),
            ),
        )
    whole = pc.is_in(signals, value_set=pa.array(sorted(INTEGER_SIGNALS)))
    fraction = np_mask(pc.and_(whole, pc.not_equal(values, pc.floor(values))))
    if fraction.any():
        m = pa.array(fraction)
        checked.reject(
            fraction,
            value,
            joined(
                f"{BAD_TYPE}: expected integer for ",
                signals.filter(m),
                ", got ",
                quoted(values.filter(m)),
            ),
        )


def _check_field_values(checked: CheckedTable, entity: Table, path: Path) -> None:
    """Reject old and new values that are not of their field's contract type.

    A field-history value is text whatever the field; it is read as the entity's own
    column reads it (``employees`` as an integer, ``budget_confirmed`` as a yes/no answer),
    so a value the entity table would reject is rejected here, with the field named. A
    row whose field is unknown is rejected for that already, once.
    """
    fields = checked.values("field")
    for name in checked.table.column("field").allowed or ():
        column = entity.column(name)
        if column.kind in ("string", "category"):
            continue  # any text is a value
        rows = np_mask(pc.equal(fields, name))
        if not rows.any():
            continue
        where = np.flatnonzero(rows)
        for side in ("old_value", "new_value"):
            text = checked.values(side).filter(pa.array(rows))
            parsed = parse_column(text, column, path)
            if parsed.bad.any():
                bad = np.zeros(checked.n_rows, dtype=bool)
                bad[where[parsed.bad]] = True
                word = _KIND_WORDS.get(column.kind, column.kind)
                checked.reject(bad, side, joined(f"{BAD_TYPE}: expected {word} for {name}, got ",
                                                 quoted(parsed.bad_text)))
            if name in NON_NEGATIVE_COLUMNS:
                neg = np_mask(pc.less(parsed.values, 0))
                if neg.any():
                    below = np.zeros(checked.n_rows, dtype=bool)
                    below[where[neg]] = True
                    vals = pc.cast(parsed.values.filter(pa.array(neg)), pa.string())
                    checked.reject(below, side, joined(f"{NEGATIVE_VALUE}: {name} ", vals))


def _strictly_increasing(ids: pa.ChunkedArray) -> bool:
    """True when no id is null and each is greater than the one before."""
    if ids.null_count:
        return False
    n = len(ids)
    return bool(pc.all(pc.greater(ids.slice(1), ids.slice(0, n - 1))).as_py())


def _distinct_numbers(ids: pa.ChunkedArray) -> bool:
    """Ids of one shape (a fixed prefix and digits, ``point_in_time.arrow_id_numbers``),
    whose numbers are all different: no id repeats, told by counting the numbers instead
    of hashing the strings (26M activity ids: a fraction of a second)."""
    found = arrow_id_numbers(ids) if pa.types.is_string(ids.type) or \
        pa.types.is_large_string(ids.type) else None
    if found is None:
        return False
    numbers = found[2][found[2] >= 0]
    if numbers.size == 0:
        return False
    low = int(numbers.min())
    if int(numbers.max()) - low > 4 * len(numbers) + 1024:
        return False
    return int(np.bincount(numbers - low).max()) <= 1


def _check_duplicates(checked: CheckedTable, key: str) -> None:
    """Reject every later occurrence of a key; the first occurrence is kept."""
    ids = checked.values(key)
    if len(ids) < 2 or _strictly_increasing(ids) or _distinct_numbers(ids):
        return  # sorted ids (as most exports are) cannot repeat: skip hashing them
    keys = ids.combine_chunks()
    encoded = pc.dictionary_encode(keys)
    codes = np.asarray(pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False))
    if codes.size == 0:
        return
    # Codes are handed out in order of first appearance, so a row is a first occurrence
    # exactly when its code is larger than every code before it.
    seen_max = np.maximum.accumulate(codes)
    first = codes > np.concatenate(([-1], seen_max[:-1]))
    dup = (codes >= 0) & ~first
    if not dup.any():
        return
    first_rows = np.flatnonzero(first)  # first_rows[code] is where that key first appeared
    dup_rows = np.flatnonzero(dup)
    where = pa.array(first_rows[codes[dup_rows]]).cast(pa.string())
    reason = joined(
        f"{DUPLICATE_ID}: ", quoted(keys.take(pa.array(dup_rows))), " first seen at row ", where
    )
    checked.reject(dup, key, reason)

