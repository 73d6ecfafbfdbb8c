"""Read a folder of CRM tables, validate every row, and report what was rejected.

A folder holds one file per table, named after it (``leads.parquet`` or ``leads.csv``).
``load_crm`` returns the valid rows, typed per ``features/schema.py``, and a rejection
report with one line per problem: ``table, row, column, reason``. ``row`` is the 0-based
position of the data row in the file as read. Nothing is dropped without a line in the
report; a file that cannot be read at all raises one ``DataContractError`` naming it.

Why plain vectorised checks on Arrow arrays and not pandera: the column checks pandera
would take over (dtype, nullability, allowed values) are a few lines each here, while the
work that matters is outside what it does: parsing strings cell by cell so that one bad
value rejects one row and not the file, foreign keys across five tables with a
leads <-> opportunities cycle and a cascade of rejections, history rows checked against
their deal's dates, and a row number that is the position in the file. At the target
scale (about 1M leads and 20M activities) it would also cost a pandas conversion of every
string column to Python objects, where Arrow keeps them as buffers: ``pc.is_in`` and
``pc.dictionary_encode`` do the key and duplicate checks in a few seconds, with no
per-row Python.

CSV is read with every column as text, then parsed per the contract: an empty cell is
empty; in number, boolean and timestamp columns so are ``NA``, ``null``, ``NaN``,
``None`` (any case) and surrounding spaces are ignored; booleans are true/false, t/f,
yes/no, y/n or 1/0; timestamps are ISO 8601. Text columns keep the text as written
(``NA`` stays a country code), except that whitespace-only is empty. Parquet columns are
read as typed and go through the same checks; a column of an impossible type (a float
where a timestamp belongs) is a ``DataContractError``.

The rules, with the reason each one writes (text before the first colon is the code):

- ``bad type``: a value that is not a number, integer, boolean or ISO 8601 timestamp.
  Timestamps without an offset are taken as UTC, as the contract says.
- ``missing required value``: a non-nullable column is empty.
- ``unknown value``: a category column outside its allowed values (stage, activity type,
  direction).
- ``negative value``: a count or an amount below zero.
- ``date order``: an outcome dated before the row's creation (a lead qualified or
  disqualified before it was created, a deal closed before it was created).
- ``timestamp in the future``: an event after ``now``. Expected close dates are plans and
  may be in the future.
- ``duplicate id``: a key seen earlier in the file; the first occurrence is kept.
- ``orphan foreign key``: a non-null reference to a row that is absent or was rejected.
  Parents are resolved before children and the leads <-> opportunities cycle is iterated
  until nothing changes, so a rejected account takes its leads, deals, history and
  activities with it, each reported.
- ``inconsistent outcome``: a deal with ``is_won`` but no ``closed_at``, or the reverse.
- ``before deal created`` / ``after deal closed``: an opportunity_history row dated
  outside its deal's life.

The output keeps referential integrity: every non-null reference in the valid tables
resolves to a valid row. That includes the back-reference ``leads.opportunity_id``, so a
rejected deal also rejects the lead that points at it (and that lead's activities); the
report says so on each of those rows.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features.schema import PANDAS_DTYPES, TABLES, Column, CRMTables, ForeignKey, Table

# Reason codes: the text before the first colon of every reason.
BAD_TYPE = "bad type"
MISSING_VALUE = "missing required value"
UNKNOWN_VALUE = "unknown value"
NEGATIVE_VALUE = "negative value"
DATE_ORDER = "date order"
FUTURE_TIMESTAMP = "timestamp in the future"
DUPLICATE_ID = "duplicate id"
ORPHAN_FK = "orphan foreign key"
BEFORE_DEAL_CREATED = "before deal created"
AFTER_DEAL_CLOSED = "after deal closed"
OUTCOME_MISMATCH = "inconsistent outcome"

REJECTION_COLUMNS = ["table", "row", "column", "reason"]

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
# Values read as empty in non-text columns (compared lower-cased, after trimming).
NULL_TOKENS = ("", "na", "n/a", "nan", "null", "none", "nat", "#n/a")
TRUE_TOKENS = ("true", "t", "yes", "y", "1")
FALSE_TOKENS = ("false", "f", "no", "n", "0")

_TS = pa.timestamp("ns", tz="UTC")
_ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "category": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": _TS,
}
_KIND_WORDS = {"int": "integer", "float": "number", "bool": "boolean", "timestamp": "timestamp"}
_DETAIL_CHARS = 60
_FORMATS = ("parquet", "csv")

Progress = Callable[[str], None]


class DataContractError(ValueError):
    """A data folder or file that cannot be read as the contract's tables at all."""


@dataclass(frozen=True)
class LoadResult:
    """Valid rows of every table, and one rejection line per problem found."""

    tables: CRMTables
    rejections: pd.DataFrame
    rows_read: dict[str, int] = field(default_factory=dict)
    # Nullable columns absent from a file: read as empty, listed so it is not silent.
    missing_columns: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """Per table: rows read, valid and rejected (a row with several problems counts once)."""
        rejected = self.rejections.groupby("table", sort=False)["row"].nunique()
        rows = []
        for name in TABLES:
            n_rej = int(rejected.get(name, 0))
            rows.append(
                {
                    "table": name,
                    "read": int(self.rows_read.get(name, n_rej + len(self.tables.get(name)))),
                    "valid": len(self.tables.get(name)),
                    "rejected": n_rej,
                }
            )
        return pd.DataFrame(rows, columns=["table", "read", "valid", "rejected"])

    def top_reasons(self, n: int = 10) -> pd.DataFrame:
        """The most frequent (table, column, reason code) triples, most frequent first."""
        if self.rejections.empty:
            return pd.DataFrame(columns=["table", "column", "reason", "count"])
        codes = self.rejections["reason"].str.split(":", n=1).str[0]
        counts = (
            self.rejections.assign(reason=codes)
            .groupby(["table", "column", "reason"], sort=False)
            .size()
            .rename("count")
            .reset_index()
            .sort_values("count", ascending=False, kind="stable")
        )
        return counts.head(n).reset_index(drop=True)

    @property
    def ok(self) -> bool:
        return self.rejections.empty


# ---------------------------------------------------------------------------------------
# Finding and reading files.


def find_table_files(data_dir: Path) -> dict[str, Path]:
    """The one file per table in ``data_dir``; other files and sub-folders are ignored."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataContractError(f"{data_dir}: not a folder")
    found: dict[str, Path] = {}
    for name in TABLES:
        candidates = [data_dir / f"{name}.{ext}" for ext in _FORMATS]
        present = [p for p in candidates if p.is_file()]
        if len(present) > 1:
            raise DataContractError(
                f"{data_dir}: both {present[0].name} and {present[1].name} exist; "
                f"keep one file per table"
            )
        if not present:
            raise DataContractError(
                f"{data_dir}: missing table file {name}.parquet or {name}.csv"
            )
        found[name] = present[0]
    return found


def _csv_header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataContractError(f"{path}: cannot read the header: {exc}") from exc
    if not header:
        raise DataContractError(f"{path}: empty file, expected a header row")
    return [h.strip() for h in header]


def _read_csv(path: Path, table: Table) -> tuple[pa.Table, list[str]]:
    header = _csv_header(path)
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataContractError(f"{path}: repeated column(s) in the header: {', '.join(dupes)}")
    wanted = [c for c in table.column_names if c in header]
    try:
        tbl = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=header, skip_rows=1),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={h: pa.string() for h in header},
                include_columns=wanted,
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise DataContractError(f"{path}: cannot be read as CSV: {exc}") from exc
    return tbl, header


def _read_parquet(path: Path, table: Table) -> tuple[pa.Table, list[str]]:
    try:
        pf = pq.ParquetFile(path)
        names = list(pf.schema_arrow.names)
        wanted = [c for c in table.column_names if c in names]
        tbl = pf.read(columns=wanted)
    except (pa.ArrowException, OSError) as exc:
        raise DataContractError(f"{path}: cannot be read as Parquet: {exc}") from exc
    return tbl, names


def read_table_file(path: Path, table: Table) -> tuple[pa.Table, tuple[str, ...]]:
    """Read one table's file as Arrow: the contract's columns present, in file order.

    Returns the columns read and the nullable contract columns absent from the file.
    A missing non-nullable column is a ``DataContractError``.
    """
    path = Path(path)
    tbl, names = _read_csv(path, table) if path.suffix == ".csv" else _read_parquet(path, table)
    absent = [c for c in table.columns if c.name not in names]
    required = [c.name for c in absent if not c.nullable]
    if required:
        raise DataContractError(f"{path}: missing required column(s): {', '.join(required)}")
    return tbl, tuple(c.name for c in absent)


# ---------------------------------------------------------------------------------------
# Parsing one column to its contract type: values, and which present values were bad.


def _np_mask(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A boolean Arrow array as a numpy mask (null counts as False)."""
    filled = pc.fill_null(arr, False)
    if isinstance(filled, pa.ChunkedArray):
        filled = filled.combine_chunks()
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=bool)


def _null_tokens(text: pa.Array) -> pa.Array:
    """Trimmed text with empty-meaning tokens (``NA``, ``null``...) turned into nulls."""
    trimmed = pc.utf8_trim_whitespace(text)
    is_null = pc.is_in(pc.utf8_lower(trimmed), value_set=pa.array(NULL_TOKENS))
    return pc.if_else(is_null, pa.scalar(None, pa.string()), trimmed)


def _cast_timestamps(text: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Arrow's cast of ISO 8601 text to UTC; raises ``ArrowInvalid`` if any value fails."""
    # Values without an offset (UTC by contract) need their own cast. Pick one by the
    # first values' shape, as a failing cast can take seconds per million values; a
    # column mixing both shapes fails here and goes to the careful parser.
    head = text.slice(0, 1000).drop_null()
    if len(head) and pc.all(pc.match_substring_regex(head, _ISO_NAIVE)).as_py():
        return pc.assume_timezone(pc.cast(text, pa.timestamp("ns")), "UTC")
    return pc.cast(text, _TS)


def _parse_text(text: pa.Array, kind: str) -> pa.Array:
    """Parse cleaned text into ``kind``; unparseable values become null."""
    target = _ARROW_TYPES[kind]
    if kind == "bool":
        low = pc.utf8_lower(text)
        true = pc.is_in(low, value_set=pa.array(TRUE_TOKENS))
        false = pc.is_in(low, value_set=pa.array(FALSE_TOKENS))
        return pc.if_else(true, True, pc.if_else(false, False, pa.scalar(None, pa.bool_())))
    try:  # fast path: Arrow's own cast, all or nothing
        if kind == "timestamp":
            return _cast_timestamps(text)
        return pc.cast(text, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    if kind == "timestamp":
        return _parse_timestamps_slow(text)
    series = pd.Series(text.to_numpy(zero_copy_only=False), dtype=object)
    num = pd.to_numeric(series, errors="coerce")
    values = np.asarray(num, dtype="float64")
    if kind == "int":
        ok = np.isfinite(values) & (values == np.round(values)) & (np.abs(values) < 2.0**62)
        return pa.array(np.where(ok, values, 0).astype(np.int64), mask=~ok)
    return pa.array(values, type=target, from_pandas=True)


# ISO 8601 shapes Arrow's cast reads; anything else goes to pandas' parser.
_ISO_WITH_OFFSET = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$"
_ISO_NAIVE = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?$"


def _parse_timestamps_slow(text: pa.Array) -> pa.Array:
    """Timestamps from text with some bad values: null where a value does not parse.

    Values shaped like ISO 8601 are cast by Arrow in bulk; only the rest (mostly the bad
    ones) go through pandas, so a few bad cells do not make the whole chunk slow.
    """
    n = len(text)
    out = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    todo = _np_mask(pc.is_valid(text))
    casts: tuple[tuple[str, Callable[[pa.Array], pa.Array]], ...] = (
        (_ISO_WITH_OFFSET, lambda a: pc.cast(a, _TS)),
        (_ISO_NAIVE, lambda a: pc.assume_timezone(pc.cast(a, pa.timestamp("ns")), "UTC")),
    )
    for pattern, cast in casts:
        shaped = todo & _np_mask(pc.match_substring_regex(text, pattern))
        if not shaped.any():
            continue
        try:
            values = cast(text.filter(pa.array(shaped)))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue  # e.g. month 13: leave these to pandas
        out[shaped] = values.cast(pa.int64()).to_numpy(zero_copy_only=False)
        ok |= shaped
        todo &= ~shaped
    if todo.any():
        rest = pd.to_datetime(
            pd.Series(text.filter(pa.array(todo)).to_numpy(zero_copy_only=False), dtype=object),
            utc=True, format="ISO8601", errors="coerce",
        )
        parsed = np.asarray(rest.notna())
        where = np.flatnonzero(todo)[parsed]
        out[where] = pd.DatetimeIndex(rest[parsed]).asi8
        ok[where] = True
    return pc.cast(pa.array(out, mask=~ok), _TS)


def _text_to_kind(text: pa.ChunkedArray, kind: str) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    """(cleaned text, parsed values) for a text column of a non-text kind.

    The whole column is parsed at once: Arrow's cast when every value is good, the slow
    parser when any is not (about ten times slower, still vectorised).
    """
    cleaned = _null_tokens(text.combine_chunks())
    parsed = _parse_text(cleaned, kind)
    return pa.chunked_array([cleaned]), pa.chunked_array([parsed], type=_ARROW_TYPES[kind])


def _column_type_error(path: Path, column: Column, typ: pa.DataType) -> DataContractError:
    return DataContractError(
        f"{path}: column {column.name} has type {typ}, expected {column.kind}"
    )


@dataclass
class _Parsed:
    """One column in its contract type, and what the checks need to know of the source."""

    values: pa.ChunkedArray  # the contract type; null where missing or bad
    bad: np.ndarray  # present in the file but not a valid value of the type
    missing: np.ndarray  # empty in the file
    bad_text: pa.Array | None  # the bad values as written, in row order, for reasons


def _parsed(values: pa.ChunkedArray, source: pa.ChunkedArray, bad: np.ndarray) -> _Parsed:
    """Keep only masks and the few bad values of ``source``, so the column can be freed."""
    bad_text = pc.cast(source.filter(pa.array(bad)), pa.string()) if bad.any() else None
    return _Parsed(values, bad, _np_mask(pc.is_null(source)), bad_text)


def _blank_to_null(text: pa.ChunkedArray) -> pa.ChunkedArray:
    """Empty or whitespace-only text as null; no copy when there is none."""
    blank = pc.or_(pc.equal(pc.binary_length(text), 0), pc.utf8_is_space(text))
    if not pc.any(blank).as_py():
        return text
    return pc.if_else(blank, pa.scalar(None, pa.string()), text)


def _parse_column(arr: pa.ChunkedArray, column: Column, path: Path) -> _Parsed:
    """Parse a column as read (text from CSV, typed from Parquet) into its contract type."""
    kind, typ = column.kind, arr.type
    n = len(arr)
    if pa.types.is_dictionary(typ):
        arr = arr.cast(typ.value_type)
        typ = arr.type
    if pa.types.is_large_string(typ) or pa.types.is_string_view(typ):
        arr = arr.cast(pa.string())
        typ = arr.type
    is_text = pa.types.is_string(typ)
    no_bad = np.zeros(n, dtype=bool)

    if kind in ("string", "category"):
        if not (is_text or pa.types.is_integer(typ)):
            raise _column_type_error(path, column, typ)
        # Whitespace-only is as empty as empty; values are otherwise kept as written.
        values = _blank_to_null(arr.cast(pa.string()))
        return _parsed(values, values, no_bad)

    if is_text:
        fast = _cast_clean_text(arr, kind)
        if fast is not None:
            return _parsed(fast, arr, no_bad)
        cleaned, values = _text_to_kind(arr, kind)
        bad = _np_mask(pc.and_(pc.is_valid(cleaned), pc.is_null(values)))
        if kind == "float":  # "inf" parses but is no amount
            bad |= _np_mask(pc.is_inf(values))
            values = pc.if_else(pc.is_inf(values), pa.scalar(None, pa.float64()), values)
        return _parsed(values, cleaned, bad)

    if kind == "timestamp":
        source = arr
        if pa.types.is_date(typ):
            arr = pc.cast(pc.cast(arr, pa.timestamp("ms")), pa.timestamp("ns"))
            typ = arr.type
        if not pa.types.is_timestamp(typ):
            raise _column_type_error(path, column, typ)
        if typ.tz is None:
            arr = pc.assume_timezone(arr, "UTC")
        values = _to_ns(arr)
        return _parsed(values, source, _np_mask(pc.and_(pc.is_valid(arr), pc.is_null(values))))
    if kind == "bool":
        if pa.types.is_boolean(typ):
            return _parsed(arr, arr, no_bad)
        if not pa.types.is_integer(typ):
            raise _column_type_error(path, column, typ)
        values = pc.if_else(
            pc.equal(arr, 1),
            True,
            pc.if_else(pc.equal(arr, 0), False, pa.scalar(None, pa.bool_())),
        )
        return _parsed(values, arr, _np_mask(pc.and_(pc.is_valid(arr), pc.is_null(values))))
    numeric = pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ)
    if not numeric:
        raise _column_type_error(path, column, typ)
    if pa.types.is_integer(typ) and kind == "int":
        values = arr.cast(pa.int64())
        return _parsed(values, values, no_bad)
    as_float = arr.cast(pa.float64())
    # NaN is how pandas writes a missing float: missing, not bad.
    as_float = pc.if_else(pc.is_nan(as_float), pa.scalar(None, pa.float64()), as_float)
    if kind == "float":
        inf = pc.is_inf(as_float)
        values = pc.if_else(inf, pa.scalar(None, pa.float64()), as_float)
        return _parsed(values, as_float, _np_mask(inf))
    ok = pc.and_(pc.equal(pc.round(as_float), as_float), pc.less(pc.abs(as_float), 2.0**62))
    values = pc.if_else(ok, pc.cast(pc.if_else(ok, as_float, 0.0), pa.int64()), None)
    values = pc.cast(values, pa.int64())
    return _parsed(values, as_float, _np_mask(pc.and_(pc.is_valid(as_float), pc.invert(ok))))


def _cast_clean_text(text: pa.ChunkedArray, kind: str) -> pa.ChunkedArray | None:
    """The usual case first: Arrow's own cast of the text as read, or None if any value
    needs cleaning or is bad. Spares copying a 20M-row column three times to trim it."""
    if kind not in ("int", "float", "timestamp"):
        return None
    try:
        if kind == "timestamp":
            values = _cast_timestamps(text)
        else:
            values = pc.cast(text, _ARROW_TYPES[kind])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if kind == "float" and pc.any(pc.or_(pc.is_inf(values), pc.is_nan(values))).as_py():
        return None  # "inf" is bad and "nan" is empty: the careful path says which
    return values


def _to_ns(arr: pa.ChunkedArray) -> pa.ChunkedArray:
    """UTC timestamps in nanoseconds; values outside the ns range become null."""
    if arr.type.unit == "ns":
        return pc.cast(arr, _TS)
    per_unit = {"s": 10**9, "ms": 10**6, "us": 10**3}[arr.type.unit]
    ints = pc.cast(arr, pa.int64())
    limit = (2**63 - 1) // per_unit
    ok = pc.and_(pc.less_equal(ints, limit), pc.greater_equal(ints, -limit))
    scaled = pc.multiply(pc.if_else(ok, ints, 0), per_unit)
    return pc.cast(pc.if_else(ok, scaled, pa.scalar(None, pa.int64())), _TS)


# ---------------------------------------------------------------------------------------
# Per-table state while checking.


def _quoted(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Values as ``'text'`` for reasons, cut to a readable length."""
    text = pc.utf8_slice_codeunits(pc.cast(values, pa.string()), 0, _DETAIL_CHARS)
    return pc.binary_join_element_wise("'", pc.fill_null(text, ""), "'", "")


def _join(*parts: str | pa.Array | pa.ChunkedArray) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _iso(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Timestamps as ISO 8601 to the second (Arrow's %S would print nanoseconds)."""
    seconds = pc.cast(values, pa.timestamp("s", tz="UTC"), safe=False)
    return pc.strftime(seconds, format="%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Checked:
    """One table being checked: parsed columns, which rows survive, problems found."""

    table: Table
    n_rows: int
    columns: dict[str, _Parsed]
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
            return _empty_rejections()
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


def _empty_rejections() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "table": pd.Series([], dtype=object),
            "row": pd.Series([], dtype=np.int64),
            "column": pd.Series([], dtype=object),
            "reason": pd.Series([], dtype=object),
        }
    )


# ---------------------------------------------------------------------------------------
# Checks within one table.


def _check_rows(tbl: pa.Table, table: Table, path: Path, now: pd.Timestamp) -> _Checked:
    """Parse every column and apply the checks that need no other table."""
    n = tbl.num_rows
    parsed: dict[str, _Parsed] = {}
    for c in table.columns:
        if c.name in tbl.column_names:
            parsed[c.name] = _parse_column(tbl.column(c.name), c, path)
        else:
            empty = pa.chunked_array([pa.nulls(n, type=_ARROW_TYPES[c.kind])])
            parsed[c.name] = _parsed(empty, empty, np.zeros(n, dtype=bool))
    checked = _Checked(table, n, parsed, np.ones(n, dtype=bool))
    now_scalar = pa.scalar(now.as_unit("ns"), type=_TS)

    for c in table.columns:
        p = parsed[c.name]
        if p.bad.any():
            word = _KIND_WORDS.get(c.kind, c.kind)
            got = _quoted(p.bad_text)
            checked.reject(p.bad, c.name, _join(f"{BAD_TYPE}: expected {word}, got ", got))
        if not c.nullable:
            checked.reject(p.missing, c.name, MISSING_VALUE)
        if c.allowed is not None:
            unknown = _np_mask(
                pc.and_(pc.is_valid(p.values), pc.invert(pc.is_in(p.values, pa.array(c.allowed))))
            )
            if unknown.any():
                vals = p.values.filter(pa.array(unknown))
                checked.reject(unknown, c.name, _join(f"{UNKNOWN_VALUE}: ", _quoted(vals)))
        if c.name in NON_NEGATIVE_COLUMNS and c.kind in ("int", "float"):
            neg = _np_mask(pc.less(p.values, 0))
            if neg.any():
                vals = p.values.filter(pa.array(neg))
                text = pc.cast(vals, pa.string())
                checked.reject(neg, c.name, _join(f"{NEGATIVE_VALUE}: ", text))
        if c.kind == "timestamp" and c.name not in PLANNED_DATE_COLUMNS:
            future = _np_mask(pc.greater(p.values, now_scalar))
            if future.any():
                vals = p.values.filter(pa.array(future))
                checked.reject(
                    future,
                    c.name,
                    _join(f"{FUTURE_TIMESTAMP}: ", _iso(vals), f" is after {_iso_scalar(now)}"),
                )

    for name, later, earlier in DATE_ORDER_RULES:
        if name != table.name:
            continue
        late, early = parsed[later].values, parsed[earlier].values
        wrong = _np_mask(pc.less(late, early))
        if wrong.any():
            m = pa.array(wrong)
            checked.reject(
                wrong,
                later,
                _join(
                    f"{DATE_ORDER}: {later} ",
                    _iso(late.filter(m)),
                    f" is before {earlier} ",
                    _iso(early.filter(m)),
                ),
            )

    for name, a, b in PAIRED_COLUMNS:
        if name != table.name:
            continue
        for one, other in ((a, b), (b, a)):
            lone = _np_mask(pc.is_valid(parsed[one].values)) & parsed[other].missing
            checked.reject(lone, one, f"{OUTCOME_MISMATCH}: {one} is set but {other} is empty")

    if table.key is not None:
        _check_duplicates(checked, table.key)
    return checked


def _iso_scalar(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _strictly_increasing(ids: pa.ChunkedArray) -> bool:
    """True when no id is null and each is greater than the one before."""
    if ids.null_count:
        return False
    n = len(ids)
    return bool(pc.all(pc.greater(ids.slice(1), ids.slice(0, n - 1))).as_py())


def _check_duplicates(checked: _Checked, key: str) -> None:
    """Reject every later occurrence of a key; the first occurrence is kept."""
    ids = checked.values(key)
    if len(ids) < 2 or _strictly_increasing(ids):
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
    reason = _join(
        f"{DUPLICATE_ID}: ", _quoted(keys.take(pa.array(dup_rows))), " first seen at row ", where
    )
    checked.reject(dup, key, reason)


# ---------------------------------------------------------------------------------------
# Checks across tables.


def _check_foreign_keys(checked: dict[str, _Checked]) -> None:
    """Reject rows whose references are absent or rejected, until nothing changes.

    Each foreign key is re-checked only when its parent lost rows since the last check,
    always taking the first such key in dependency order: accounts before leads and
    opportunities (whose mutual references settle first), then history and activities.
    """
    fks: list[tuple[str, ForeignKey]] = [
        (name, fk) for name, t in TABLES.items() for fk in t.foreign_keys
    ]
    version = dict.fromkeys(TABLES, 0)
    checked_at = [-1] * len(fks)
    reported = [np.zeros(checked[name].n_rows, dtype=bool) for name, _ in fks]
    while True:
        stale = [i for i, (_, fk) in enumerate(fks) if checked_at[i] != version[fk.table]]
        if not stale:
            return
        i = stale[0]
        child_name, fk = fks[i]
        checked_at[i] = version[fk.table]
        child, parent = checked[child_name], checked[fk.table]
        refs = child.values(fk.column)
        all_keys = parent.values(fk.ref_column)
        valid_keys = all_keys.filter(pa.array(parent.valid))
        orphan = _np_mask(pc.and_(pc.is_valid(refs), pc.invert(pc.is_in(refs, valid_keys))))
        orphan &= ~reported[i]
        if not orphan.any():
            continue
        reported[i] |= orphan
        missing = refs.filter(pa.array(orphan))
        existed = pc.is_in(missing, all_keys)
        target = f"{fk.table}.{fk.ref_column}"
        reason = pc.if_else(
            existed,
            _join(f"{ORPHAN_FK}: {target} ", _quoted(missing), " was rejected"),
            _join(f"{ORPHAN_FK}: no {target} ", _quoted(missing)),
        )
        if child.reject(orphan, fk.column, reason):
            version[child_name] += 1


def _check_history_dates(checked: dict[str, _Checked]) -> None:
    """Reject history rows dated before their deal was created or after it closed."""
    hist, opps = checked["opportunity_history"], checked["opportunities"]
    keep = pa.array(opps.valid)
    opp_ids = opps.values("opportunity_id").filter(keep)
    created = opps.values("created_at").filter(keep)
    closed = opps.values("closed_at").filter(keep)
    pos = pc.index_in(hist.values("opportunity_id"), value_set=opp_ids)
    deal_created = created.take(pos)
    deal_closed = closed.take(pos)
    changed = hist.values("changed_at")
    for code, cmp, bound, word in (
        (BEFORE_DEAL_CREATED, pc.less, deal_created, "created_at"),
        (AFTER_DEAL_CLOSED, pc.greater, deal_closed, "closed_at"),
    ):
        wrong = _np_mask(cmp(changed, bound))
        if wrong.any():
            m = pa.array(wrong)
            hist.reject(
                wrong,
                "changed_at",
                _join(
                    f"{code}: changed_at ",
                    _iso(changed.filter(m)),
                    f" is {'before' if cmp is pc.less else 'after'} the deal's {word} ",
                    _iso(bound.filter(m)),
                ),
            )


# ---------------------------------------------------------------------------------------
# Entry point.


def load_crm(
    data_dir: Path,
    *,
    now: pd.Timestamp | None = None,
    progress: Progress | None = None,
) -> LoadResult:
    """Read and validate the five tables in ``data_dir``.

    ``now`` (default: the current time) is the latest an event may be dated. ``progress``
    is told which step runs, for a status line on large folders.
    """
    say = progress or (lambda _msg: None)
    now_utc = _utc(now if now is not None else pd.Timestamp.now(tz="UTC"))
    files = find_table_files(Path(data_dir))
    checked: dict[str, _Checked] = {}
    absent: dict[str, tuple[str, ...]] = {}
    for name, path in files.items():
        say(f"reading {path.name}")
        tbl, missing = read_table_file(path, TABLES[name])
        if missing:
            absent[name] = missing
        say(f"checking {name}")
        checked[name] = _check_rows(tbl, TABLES[name], path, now_utc)
        del tbl
    say("checking foreign keys")
    _check_foreign_keys(checked)
    _check_history_dates(checked)
    say("collecting valid rows")
    rejections = _sorted_rejections([c.rejections() for c in checked.values()])
    frames = {name: c.frame() for name, c in checked.items()}
    return LoadResult(
        tables=CRMTables(**frames),
        rejections=rejections,
        rows_read={name: c.n_rows for name, c in checked.items()},
        missing_columns=absent,
    )


def _utc(ts: pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _sorted_rejections(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """All rejections, ordered by table (dependency order), row, then as found."""
    frames = [f for f in frames if not f.empty]
    if not frames:
        return _empty_rejections()
    out = pd.concat(frames, ignore_index=True)
    order = {name: i for i, name in enumerate(TABLES)}
    table_rank = out["table"].map(order).to_numpy()
    idx = np.lexsort((np.arange(len(out)), out["row"].to_numpy(), table_rank))
    return out.iloc[idx].reset_index(drop=True)[REJECTION_COLUMNS]


def write_rejections(result: LoadResult, path: Path) -> Path:
    """Write every rejection to ``path`` as CSV with the columns table,row,column,reason."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    result.rejections[REJECTION_COLUMNS].to_csv(path, index=False)
    return path


def validate_folder(
    data_dir: Path,
    report: Path,
    *,
    now: pd.Timestamp | None = None,
    progress: Progress | None = None,
) -> LoadResult:
    """Load ``data_dir`` and write its rejection report: what ``leadscore validate`` runs."""
    result = load_crm(data_dir, now=now, progress=progress)
    write_rejections(result, report)
    return result
