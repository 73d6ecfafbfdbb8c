"""One contract column's values from an export's columns: pure functions on Series.

Every value that a map, a lookup or a parser cannot place is counted with examples
(``Unplaced``), never turned into missing without a word. Values go out as text in the
contract's own spelling (ISO 8601 UTC times, ``true``/``false``, plain numbers), which the
loader then parses and checks as it checks any folder; a value that could not be converted
is passed on as written, so the loader rejects its row and says why.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.mapping.spec import Currency, FieldMap

ISO_UTC = "%Y-%m-%dT%H:%M:%SZ"
_OFFSET = r"(?:Z|[+-]\d{2}:?\d{2})$"
_DATE_ONLY = r"^\d{4}-\d{2}-\d{2}$"
ISO_AWARE = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$"
_ISO_NAIVE = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?$"
_MONEY_NOISE = r"^[A-Z]{3}\s+|[$€£¥,\s]"


@dataclass
class Unplaced:
    """Values of one field that nothing placed: how many rows, and the commonest values."""

    what: str  # e.g. "not in the value map", "no match in products.product"
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, values: pd.Series) -> None:
        if len(values):
            self.counts.update(values.astype(str).value_counts().to_dict())

    @property
    def rows(self) -> int:
        return int(sum(self.counts.values()))

    def examples(self, n: int = 5) -> list[tuple[str, int]]:
        return [(k, int(v)) for k, v in self.counts.most_common(n)]


def find_column(columns: pd.Index, names: tuple[str, ...]) -> str | None:
    """The first of ``names`` present in ``columns``: exactly, else ignoring case, spaces
    and punctuation (a report's "Lead Source" for a preset's "lead source")."""
    present = [str(c) for c in columns]
    for name in names:
        if name in present:
            return name
    loose = {loose_name(c): c for c in reversed(present)}
    for name in names:
        hit = loose.get(loose_name(name))
        if hit is not None:
            return hit
    return None


def loose_name(name: str) -> str:
    """A column name compared loosely: lower case, letters and digits only."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


def clean_text(s: pd.Series) -> pd.Series:
    """Text with surrounding spaces removed; empty is missing (None). Vectorised in Arrow;
    a column with nothing to trim is returned as it is."""
    arr = as_arrow_text(s)
    trimmed = pc.utf8_trim_whitespace(arr)
    blank = pc.equal(pc.binary_length(trimmed), 0)
    changed = pc.any(pc.or_(pc.not_equal(trimmed, arr), blank)).as_py()
    if not changed and s.dtype == object:
        return s
    cleaned = pc.if_else(blank, pa.scalar(None, pa.string()), trimmed)
    return pd.Series(cleaned.to_numpy(zero_copy_only=False), index=s.index, dtype=object)


def as_arrow_text(s: pd.Series) -> pa.Array:
    """A column as Arrow text (None and NaN as null); what is not text is written as text."""
    values = s.to_numpy(dtype=object)
    try:
        return pa.array(values, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None or v is pd.NA or (isinstance(v, float) and v != v)
                         else str(v) for v in values], type=pa.string())


def _objects(arr: pa.Array | pa.ChunkedArray, index: pd.Index) -> pd.Series:
    return pd.Series(arr.to_numpy(zero_copy_only=False), index=index, dtype=object)


def apply_value_map(s: pd.Series, fm: FieldMap, unplaced: Unplaced) -> pd.Series:
    """Map values through ``fm.values`` (exactly, else ignoring case); the rest become
    ``fm.default`` or stay as written, and are counted either way. Each distinct value is
    looked up once."""
    if not fm.values:
        return s
    exact = {k: _text(v) for k, v in fm.values.items()}
    loose = {k.strip().lower(): v for k, v in exact.items()}
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    targets = []
    for u in uniques:
        hit = exact.get(u)
        if hit is None:
            hit = loose.get(str(u).strip().lower())
        targets.append(hit)
    placed = np.array([t is not None for t in targets] + [True], dtype=bool)
    default = _text(fm.default) if fm.default is not None else None
    final = np.array([t if t is not None else (default if default is not None else u)
                      for t, u in zip(targets, uniques, strict=True)] + [None], dtype=object)
    left = ~placed[codes]
    if left.any():
        unplaced.add(s[left])
    return pd.Series(final[codes], index=s.index, dtype=object)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def apply_lookup(s: pd.Series, table: pd.DataFrame, key: str, value: str,
                 unplaced: Unplaced) -> pd.Series:
    """Values looked up in another table's key column: exactly, else ignoring case, spaces
    and punctuation (an export's "GTXPro" finds "GTX Pro")."""
    keys = clean_text(table[key])
    found = pd.Series(clean_text(table[value]).to_numpy(), index=keys.to_numpy())
    found = found[~found.index.duplicated()]
    out = s.map(found)
    loose = pd.Series(found.to_numpy(), index=[loose_name(str(k)) for k in found.index])
    loose = loose[~loose.index.duplicated()]
    todo = s.notna() & out.isna()
    if todo.any():
        out[todo] = s[todo].map(lambda v: loose.get(loose_name(str(v))))
    unplaced.add(s[s.notna() & out.isna()])
    return out.astype(object).where(out.notna(), None)


def to_utc_text(s: pd.Series, fm: FieldMap, default_tz: str) -> tuple[pd.Series, int]:
    """Times as ISO 8601 UTC text. Times without an offset are in ``fm.timezone`` (else
    ``default_tz``); a date alone is the start (or end) of that day there. A value that
    does not parse is kept as written. Returns the texts and how many were date-only."""
    tz = fm.timezone or default_tz
    out = s.copy().astype(object)
    valid = s.notna()
    if not valid.any():
        return out, 0
    fast = _fast_times(as_arrow_text(s[valid]), fm, tz)
    if fast is not None:
        text, n_dates = fast
        out[valid] = text.to_numpy(zero_copy_only=False)
        return out, n_dates
    text = s[valid].astype(str)
    aware = text.str.contains(_OFFSET)
    fmt = fm.format or "ISO8601"
    parsed = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    if aware.any():
        parsed[aware] = pd.to_datetime(text[aware], format=fmt, utc=True, errors="coerce")
    naive = ~aware
    date_only = pd.Series(False, index=text.index)
    if naive.any():
        local = pd.to_datetime(text[naive], format=fmt, errors="coerce")
        if fm.format is not None:
            date_only[naive] = not any(d in fm.format for d in ("%H", "%I", "%M", "%S", "%X"))
        else:
            date_only[naive] = text[naive].str.match(_DATE_ONLY).to_numpy(dtype=bool)
        if fm.date_only == "end":
            shift = pd.Timedelta(days=1) - pd.Timedelta(seconds=1)
            local = local.where(~date_only[naive], local + shift)
        if isinstance(local.dtype, pd.DatetimeTZDtype):
            parsed[naive] = local.dt.tz_convert("UTC")
        else:
            parsed[naive] = local.dt.tz_localize(
                tz, ambiguous="NaT", nonexistent="shift_forward"
            ).dt.tz_convert("UTC")
    good = parsed.notna()
    where = good[good].index
    out.loc[where] = iso_text(pa.array(parsed[good].dt.tz_convert("UTC"))).to_numpy(
        zero_copy_only=False)
    return out, int((date_only & good).sum())


def iso_text(ts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """UTC timestamps as ISO 8601 text to the second, in Arrow."""
    seconds = pc.cast(ts, pa.timestamp("s", tz="UTC"), safe=False)
    return pc.strftime(seconds, format=ISO_UTC)


# Shapes of ISO 8601 UTC text that ``ISO_AWARE`` matches, checked a byte position at a
# time for a whole column (``d`` a digit, ``T`` a 'T' or a space, the rest as written).
_ISO_SHAPES = ("dddd-dd-ddTdd:dd:ddZ", "dddd-dd-ddTdd:dd:dd.dddZ")


def _all_iso_aware(arr: pa.Array) -> bool:
    """Whether every value (no nulls) matches ``ISO_AWARE``: at once from the bytes where
    every value has the length of one of ``_ISO_SHAPES``, else by the pattern."""
    if _one_iso_shape(arr):
        return True
    return bool(pc.all(pc.match_substring_regex(arr, ISO_AWARE)).as_py())


def _one_iso_shape(arr: pa.Array) -> bool:
    """Whether every value has one of ``_ISO_SHAPES`` (False: not known, ask the pattern)."""
    n = len(arr)
    if n == 0 or arr.null_count or arr.type != pa.string():
        return False
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4)
    width = int(offsets[1] - offsets[0])
    shape = next((s for s in _ISO_SHAPES if len(s) == width), None)
    if shape is None or not bool((np.diff(offsets) == width).all()):
        return False
    data = np.frombuffer(bufs[2], dtype=np.uint8, count=width * n,
                         offset=int(offsets[0])).reshape(n, width)
    digits = [i for i, ch in enumerate(shape) if ch == "d"]
    seps = [i for i, ch in enumerate(shape) if ch == "T"]
    fixed = [i for i, ch in enumerate(shape) if ch not in "dT"]
    if not bool(((data[:, digits] - np.uint8(48)) <= 9).all()):
        return False
    sep = data[:, seps]
    if not bool(((sep == ord("T")) | (sep == ord(" "))).all()):
        return False
    want = np.frombuffer("".join(shape[i] for i in fixed).encode(), dtype=np.uint8)
    return bool((data[:, fixed] == want).all())


def _fast_times(arr: pa.Array, fm: FieldMap, tz: str) -> tuple[pa.Array, int] | None:
    """The usual case in Arrow: every value ISO 8601 with an offset, or every value ISO
    8601 without one (a time or a date alone). None when anything needs the careful path."""
    if fm.format is not None or len(arr) == 0:
        return None
    try:
        if _all_iso_aware(arr):
            pc.cast(arr, pa.timestamp("ns", tz="UTC"))  # raises if any is no time
            return arr, 0  # already what the loader reads: kept as written
        dates = pc.all(pc.match_substring_regex(arr, _DATE_ONLY)).as_py()
        if dates or pc.all(pc.match_substring_regex(arr, _ISO_NAIVE)).as_py():
            local = pc.cast(arr, pa.timestamp("ns"))
            if dates and fm.date_only == "end":
                local = pc.add(local, pa.scalar(pd.Timedelta(days=1) - pd.Timedelta(seconds=1)))
            if tz != "UTC":
                return None  # daylight-saving gaps and folds: pandas' careful localisation
            return iso_text(pc.assume_timezone(local, "UTC")), len(arr) if dates else 0
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return None


def to_number_text(s: pd.Series, fm: FieldMap, currency: Currency,
                   codes: pd.Series | None, unplaced: Unplaced) -> pd.Series:
    """Numbers as plain text, scaled and converted to USD where asked. A value that is
    not a number, or an amount in a currency without a rate, is kept as written (with the
    currency) so the loader rejects its row."""
    text = s.astype(object)
    raw = text.where(text.notna(), None)
    cleaned = raw.str.replace(_MONEY_NOISE, "", regex=True) if fm.currency else raw
    num = pd.to_numeric(cleaned, errors="coerce")
    factor = pd.Series(fm.scale or 1.0, index=s.index, dtype=float)
    no_rate = pd.Series(False, index=s.index)
    if fm.currency:
        if codes is not None:
            code = clean_text(codes).fillna(currency.code)
            rates = {**{"USD": 1.0}, **currency.rates}
            rate = code.map(rates)
            no_rate = rate.isna() & num.notna()
            unplaced.add(code[no_rate])
            factor = factor * rate.fillna(np.nan).astype(float)
        else:
            factor = factor * ({"USD": 1.0, **currency.rates}[currency.code])
    value = num * factor
    out = raw.copy()
    good = value.notna() & np.isfinite(value.fillna(0))
    out[good] = value[good].map(repr)
    if no_rate.any():
        out[no_rate] = raw[no_rate].astype(str) + " " + clean_text(codes)[no_rate].astype(str)
    return out


def sequence_times(order: pd.Series, start: str, every: str) -> pd.Series:
    """Times ``start + (rank - 1) x every`` from an ordering column (ties by position)."""
    begin = pd.Timestamp(start)
    begin = begin.tz_localize("UTC") if begin.tzinfo is None else begin.tz_convert("UTC")
    step = pd.Timedelta(every)
    rank = pd.to_numeric(order, errors="coerce").rank(method="first")
    times = begin + (rank - 1) * step
    out = times.dt.strftime(ISO_UTC).astype(object)
    return out.where(rank.notna(), order.astype(object))


# ---------------------------------------------------------------------------------------
# The same on Arrow text, for the activities of a large export (``ActivityStream``): the
# values stay in Arrow, and only those nothing placed become Python strings (to be
# counted exactly as ``Unplaced.add`` counts a Series).


def prefixed_arrow(arr: pa.Array, prefix: str) -> pa.Array:
    """Only the values that start with ``prefix``; the others null."""
    starts = pc.fill_null(pc.starts_with(arr, prefix), False)
    return pc.if_else(starts, arr, pa.scalar(None, pa.string()))


def map_values_arrow(arr: pa.Array, fm: FieldMap, unplaced: Unplaced) -> pa.Array:
    """``apply_value_map`` on Arrow text: each distinct value is looked up once in Python
    (the same rules), every row then takes its value by position."""
    if not fm.values:
        return arr
    exact = {k: _text(v) for k, v in fm.values.items()}
    loose = {k.strip().lower(): v for k, v in exact.items()}
    uniques = pc.unique(arr).drop_null()
    targets = []
    for u in uniques.to_pylist():
        hit = exact.get(u)
        if hit is None:
            hit = loose.get(str(u).strip().lower())
        targets.append(hit)
    default = _text(fm.default) if fm.default is not None else None
    final = [t if t is not None else (default if default is not None else u)
             for t, u in zip(targets, uniques.to_pylist(), strict=True)]
    at = pc.index_in(arr, value_set=uniques)
    left = pc.fill_null(pc.take(pa.array([t is None for t in targets], type=pa.bool_()), at),
                        False)
    if pc.any(left).as_py():
        unplaced.add(pd.Series(arr.filter(left).to_numpy(zero_copy_only=False), dtype=object))
    return pc.take(pa.array(final, type=pa.string()), at)


def utc_text_arrow(arr: pa.Array, fm: FieldMap, default_tz: str) -> tuple[pa.Array, int]:
    """``to_utc_text`` on Arrow text: Arrow's cast where every value has the usual shape,
    else the careful pandas path on the column."""
    valid = arr.drop_null()
    if len(valid) == 0:
        return arr, 0
    fast = _fast_times(valid, fm, fm.timezone or default_tz)
    if fast is None:
        text, n_dates = to_utc_text(pd.Series(arr.to_numpy(zero_copy_only=False),
                                              dtype=object), fm, default_tz)
        return as_arrow_text(text), n_dates
    times, n_dates = fast
    if times is valid:
        return arr, n_dates  # kept as written
    if len(valid) == len(arr):
        return times, n_dates
    return pc.replace_with_mask(arr, pc.is_valid(arr), times), n_dates
