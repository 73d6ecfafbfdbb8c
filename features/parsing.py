"""Text and typed file columns to the contract's Arrow types, one column at a time.

CSV is read with every column as text, then parsed per the contract: an empty cell is
empty; in number, boolean and timestamp columns so are ``NA``, ``null``, ``NaN``,
``None`` (any case) and surrounding spaces are ignored; booleans are true/false, t/f,
yes/no, y/n or 1/0; timestamps are ISO 8601. Text columns keep the text as written
(``NA`` stays a country code), except that whitespace-only is empty. Parquet columns are
read as typed and go through the same checks; a column of an impossible type (a float
where a timestamp belongs) is a ``DataContractError``.

Parsing never rejects: it returns the values, null where a value is missing or bad, and
says which cells were bad, so the rules can write one line per bad cell.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.reading import DataContractError
from features.schema import Column

# Values read as empty in non-text columns (compared lower-cased, after trimming).
NULL_TOKENS = ("", "na", "n/a", "nan", "null", "none", "nat", "#n/a")
TRUE_TOKENS = ("true", "t", "yes", "y", "1")
FALSE_TOKENS = ("false", "f", "no", "n", "0")

TIMESTAMP_TYPE = pa.timestamp("ns", tz="UTC")
ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "category": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": TIMESTAMP_TYPE,
}


def np_mask(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
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
    return pc.cast(text, TIMESTAMP_TYPE)


def _parse_text(text: pa.Array, kind: str) -> pa.Array:
    """Parse cleaned text into ``kind``; unparseable values become null."""
    target = ARROW_TYPES[kind]
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
    todo = np_mask(pc.is_valid(text))
    casts: tuple[tuple[str, Callable[[pa.Array], pa.Array]], ...] = (
        (_ISO_WITH_OFFSET, lambda a: pc.cast(a, TIMESTAMP_TYPE)),
        (_ISO_NAIVE, lambda a: pc.assume_timezone(pc.cast(a, pa.timestamp("ns")), "UTC")),
    )
    for pattern, cast in casts:
        shaped = todo & np_mask(pc.match_substring_regex(text, pattern))
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
    return pc.cast(pa.array(out, mask=~ok), TIMESTAMP_TYPE)


def _text_to_kind(text: pa.ChunkedArray, kind: str) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    """(cleaned text, parsed values) for a text column of a non-text kind.

    The whole column is parsed at once: Arrow's cast when every value is good, the slow
    parser when any is not (about ten times slower, still vectorised).
    """
    cleaned = _null_tokens(text.combine_chunks())
    parsed = _parse_text(cleaned, kind)
    return pa.chunked_array([cleaned]), pa.chunked_array([parsed], type=ARROW_TYPES[kind])


def _column_type_error(path: Path, column: Column, typ: pa.DataType) -> DataContractError:
    return DataContractError(
        f"{path}: column {column.name} has type {typ}, expected {column.kind}"
    )


@dataclass
class ParsedColumn:
    """One column in its contract type, and what the checks need to know of the source."""

    values: pa.ChunkedArray  # the contract type; null where missing or bad
    bad: np.ndarray  # present in the file but not a valid value of the type
    missing: np.ndarray  # empty in the file
    bad_text: pa.Array | None  # the bad values as written, in row order, for reasons


def _parsed(values: pa.ChunkedArray, source: pa.ChunkedArray, bad: np.ndarray) -> ParsedColumn:
    """Keep only masks and the few bad values of ``source``, so the column can be freed."""
    bad_text = pc.cast(source.filter(pa.array(bad)), pa.string()) if bad.any() else None
    return ParsedColumn(values, bad, np_mask(pc.is_null(source)), bad_text)


def _blank_to_null(text: pa.ChunkedArray) -> pa.ChunkedArray:
    """Empty or whitespace-only text as null; no copy when there is none."""
    blank = pc.or_(pc.equal(pc.binary_length(text), 0), pc.utf8_is_space(text))
    if not pc.any(blank).as_py():
        return text
    return pc.if_else(blank, pa.scalar(None, pa.string()), text)


def parse_column(arr: pa.ChunkedArray, column: Column, path: Path) -> ParsedColumn:
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
        bad = np_mask(pc.and_(pc.is_valid(cleaned), pc.is_null(values)))
        if kind == "float":  # "inf" parses but is no amount
            bad |= np_mask(pc.is_inf(values))
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
        return _parsed(values, source, np_mask(pc.and_(pc.is_valid(arr), pc.is_null(values))))
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
        return _parsed(values, arr, np_mask(pc.and_(pc.is_valid(arr), pc.is_null(values))))
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
        return _parsed(values, as_float, np_mask(inf))
    ok = pc.and_(pc.equal(pc.round(as_float), as_float), pc.less(pc.abs(as_float), 2.0**62))
    values = pc.if_else(ok, pc.cast(pc.if_else(ok, as_float, 0.0), pa.int64()), None)
    values = pc.cast(values, pa.int64())
    return _parsed(values, as_float, np_mask(pc.and_(pc.is_valid(as_float), pc.invert(ok))))


def _cast_clean_text(text: pa.ChunkedArray, kind: str) -> pa.ChunkedArray | None:
    """The usual case first: Arrow's own cast of the text as read, or None if any value
    needs cleaning or is bad. Spares copying a 20M-row column three times to trim it."""
    if kind not in ("int", "float", "timestamp"):
        return None
    try:
        values = _cast_timestamps(text) if kind == "timestamp" else pc.cast(text, ARROW_TYPES[kind])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if kind == "float" and pc.any(pc.or_(pc.is_inf(values), pc.is_nan(values))).as_py():
        return None  # "inf" is bad and "nan" is empty: the careful path says which
    return values


def _to_ns(arr: pa.ChunkedArray) -> pa.ChunkedArray:
    """UTC timestamps in nanoseconds; values outside the ns range become null."""
    if arr.type.unit == "ns":
        return pc.cast(arr, TIMESTAMP_TYPE)
    per_unit = {"s": 10**9, "ms": 10**6, "us": 10**3}[arr.type.unit]
    ints = pc.cast(arr, pa.int64())
    limit = (2**63 - 1) // per_unit
    ok = pc.and_(pc.less_equal(ints, limit), pc.greater_equal(ints, -limit))
    scaled = pc.multiply(pc.if_else(ok, ints, 0), per_unit)
    return pc.cast(pc.if_else(ok, scaled, pa.scalar(None, pa.int64())), TIMESTAMP_TYPE)



def absent_column(n_rows: int, column: Column) -> ParsedColumn:
    """A nullable column missing from the file: every value empty, none bad."""
    empty = pa.chunked_array([pa.nulls(n_rows, type=ARROW_TYPES[column.kind])])
    return _parsed(empty, empty, np.zeros(n_rows, dtype=bool))
