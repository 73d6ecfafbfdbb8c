"""Point-in-time primitives: count and look up per-entity events strictly before a time.

Every feature reduces to "for entity k, what happened before t?". Events are indexed once
as a sorted int64 composite ``key * width + rank(time)``, where ``rank`` is the position of
the event's time among the distinct event times. A query (k, t) maps t to the number of
distinct event times strictly below it, so one ``np.searchsorted`` on the composite gives
the number of k's events with time < t, exactly, at nanosecond precision, with no
per-entity Python loop. Windowed counts are two such look-ups (``< t`` minus ``< t - w``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

try:  # a stable counting sort by small integer keys, O(n + keys)
    from pandas._libs.algos import groupsort_indexer
except ImportError:  # pragma: no cover - pandas internals moved
    groupsort_indexer = None

NAT = np.iinfo(np.int64).min
_INT32_MAX = np.iinfo(np.int32).max
NS_PER_DAY = 86_400 * 10**9


Values: TypeAlias = pd.Series | pd.Index | np.ndarray
"""An id or text column: a pandas column, or an object array of ``str`` / ``None``."""


def ns(values: pd.Series | pd.Index) -> np.ndarray:
    """UTC timestamps as int64 nanoseconds (NaT -> int64 min), without copying when possible."""
    return np.asarray(pd.DatetimeIndex(values).asi8, dtype=np.int64)


def arrow_strings(values: Values) -> pa.Array | pa.ChunkedArray:
    """Values as an Arrow string array, without copying Arrow-backed columns."""
    series = pd.Series(values, copy=False) if not isinstance(values, pd.Series) else values
    if isinstance(series.dtype, pd.StringDtype) and series.dtype.storage == "pyarrow":
        return pa.chunked_array(series.array._pa_array)
    return pa.array(series.astype("string[pyarrow]").array)


SMALL = 20_000
"""Below this many values, Python hashing beats the round trip through Arrow arrays
(a serving request holds one entity's rows, a training set millions)."""


def _text(value: object) -> str | None:
    """A value as the string it is compared as, or None when missing."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return value if isinstance(value, str) else str(value)


def _object_values(values: Values) -> list[str | None]:
    if isinstance(values, np.ndarray) and values.dtype == object:
        out: list[str | None] = values.tolist()  # column tables hold str or None already
        return out
    return [_text(v) for v in np.asarray(values, dtype=object)]


MAX_DIGITS = 18
"""Numeric tails up to 18 digits fit an int64."""


ID_BLOCK = 1 << 20
"""Rows parsed at a time by ``_id_numbers``: its temporaries stay small and reused."""

Shape = tuple[bytes, int]
"""An id shape: the fixed prefix and the total width in bytes."""


def _id_numbers(values: Values) -> tuple[bytes, int, np.ndarray] | None:
    """Ids shaped as one fixed prefix plus a fixed number of digits, as numbers.

    Returns (prefix, width, numbers with -1 where missing), or None when the ids are not
    all of that shape. Within one shape the number identifies the id exactly, so ids can
    be matched through integer arrays (a streaming parse and a look-up table) instead of a
    hash table of strings, whose random probes slow down about fourfold per row once 20M+
    ids and their table leave the CPU caches. Generated ids (``LEAD00000042``) and numeric
    CRM ids have this shape; anything else takes the hashing path. The column is parsed
    in blocks of ``ID_BLOCK`` rows, without joining Arrow chunks.
    """
    return arrow_id_numbers(arrow_strings(values))


def arrow_id_numbers(arr: pa.Array | pa.ChunkedArray) -> tuple[bytes, int, np.ndarray] | None:
    """:func:`_id_numbers` of an Arrow string column."""
    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    out = np.full(len(arr), -1, dtype=np.int64)
    shape: Shape | None = None
    at = 0
    for chunk in chunks:
        for begin in range(0, len(chunk), ID_BLOCK):
            part = chunk.slice(begin, ID_BLOCK)
            shape = _block_numbers(part, shape, out[at : at + len(part)])
            if shape is None:
                return None
            at += len(part)
    if shape is None or shape == (b"", 0):
        return None
    return shape[0], shape[1], out


def _block_numbers(arr: pa.Array, shape: Shape | None, out: np.ndarray) -> Shape | None:
    """Write one block's numbers into ``out``; its shape, or None if it differs from ``shape``.

    A block of nulls only keeps the shape so far (``(b"", 0)`` before any id was seen).
    """
    if pa.types.is_string(arr.type):
        offset_type: type = np.int32
    elif pa.types.is_large_string(arr.type):
        offset_type = np.int64
    else:
        return None
    n, valid_n = len(arr), len(arr) - arr.null_count
    if valid_n == 0:
        return shape or (b"", 0)
    buffers = arr.buffers()
    every_offset: np.ndarray = np.frombuffer(buffers[1], dtype=offset_type)
    offsets = every_offset[arr.offset : arr.offset + n + 1]
    lengths = np.diff(offsets)
    valid = (
        np.ones(n, dtype=bool)
        if arr.null_count == 0
        else np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    )
    width = int(lengths[int(np.argmax(valid))])
    # Every id `width` bytes and every null empty: the ids are one (valid_n, width) block.
    if width == 0 or not np.array_equal(lengths, np.where(valid, width, 0)):
        return None
    start = int(offsets[0])
    block = np.frombuffer(buffers[2], dtype=np.uint8)[start : start + valid_n * width]
    block = block.reshape(valid_n, width)
    first = bytes(block[0])
    tail = len(first) - len(first.rstrip(b"0123456789"))
    if tail == 0 or tail > MAX_DIGITS:
        return None
    head = width - tail
    found = (first[:head], width)
    if shape not in (None, (b"", 0), found):
        return None
    if head and not bool((block[:, :head] == block[0, :head]).all()):
        return None
    digits = block[:, head:] - np.uint8(ord("0"))
    if not bool((digits <= 9).all()):
        return None
    number = np.zeros(valid_n, dtype=np.int64)
    for j in range(tail):
        number *= 10
        number += digits[:, j]
    out[valid] = number
    return found


def _codes_by_number(values: Values, vocabulary: Values) -> np.ndarray | None:
    """``codes`` through the ids' numbers when both sides share one id shape (else None)."""
    vocab = _id_numbers(vocabulary)
    if vocab is None:
        return None
    found = _id_numbers(values)
    if found is None or found[:2] != vocab[:2]:
        return None
    keys, numbers = vocab[2], found[2]
    if (keys < 0).any():
        return None
    low, high = int(keys.min()), int(keys.max())
    if high - low + 1 > 4 * len(keys) + 1024:
        return None
    if int(np.bincount(keys - low).max()) > 1:
        return None  # a repeated key: the hashing path keeps its first position
    table = np.full(high - low + 2, -1, dtype=np.int64)
    table[keys - low] = np.arange(len(keys))
    slot = np.where((numbers >= low) & (numbers <= high), numbers - low, high - low + 1)
    return table[slot]


def codes(values: Values, vocabulary: Values) -> np.ndarray:
    """Integer code of each value: its position in ``vocabulary`` (-1 if missing or unknown).

    A table's key column as the vocabulary makes the code its row position. Large inputs
    are hashed in Arrow, so 20M Arrow-backed ids never become Python strings.
    """
    if len(values) == 0:
        return np.empty(0, dtype=np.int64)
    if len(values) <= SMALL and len(vocabulary) <= SMALL:
        lookup: dict[str, int] = {}
        for i, v in enumerate(_object_values(vocabulary)):
            if v is not None and v not in lookup:
                lookup[v] = i
        found = [lookup.get(v, -1) if v is not None else -1 for v in _object_values(values)]
        return np.asarray(found, dtype=np.int64)
    by_number = _codes_by_number(values, vocabulary)
    if by_number is not None:
        return by_number
    hits = pc.index_in(arrow_strings(values), value_set=arrow_strings(vocabulary))
    return np.asarray(pc.fill_null(hits, -1).to_numpy(), dtype=np.int64)


def factorize(values: Values) -> np.ndarray:
    """Dense integer codes of the distinct values (-1 where missing)."""
    if len(values) == 0:
        return np.empty(0, dtype=np.int64)
    if len(values) <= SMALL:
        seen: dict[str, int] = {}
        out = [-1 if v is None else seen.setdefault(v, len(seen)) for v in _object_values(values)]
        return np.asarray(out, dtype=np.int64)
    encoded = pc.dictionary_encode(arrow_strings(values))
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.unify_dictionaries().combine_chunks()
    indices = pc.fill_null(encoded.indices, -1)
    return np.asarray(indices.to_numpy(), dtype=np.int64)


def id_codes(values: Values) -> np.ndarray:
    """Non-negative integer codes, equal exactly where the ids are equal (-1 where missing).

    Unlike ``factorize`` the codes need not be dense or in first-seen order; ids of one
    numeric shape (see ``_id_numbers``) are coded by their number without hashing.
    """
    if len(values) > SMALL:
        found = _id_numbers(values)
        if found is not None:
            numbers = found[2]
            present = numbers >= 0
            if present.any():
                low = int(numbers[present].min())
                if int(numbers[present].max()) - low <= 4 * len(values) + 1024:
                    return np.where(present, numbers - low, -1)
    return factorize(values)


@dataclass(frozen=True)
class EventIndex:
    """Events of many entities, sorted by (entity code, time)."""

    composite: np.ndarray
    """Sorted ``key * width + rank``."""
    rows: np.ndarray
    """Positions of the sorted events in the original table."""
    times: np.ndarray
    """Event times (ns) in sorted order."""
    distinct_times: np.ndarray
    width: int

    def __len__(self) -> int:
        return len(self.composite)


def rank_times(times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct times (sorted) and each time's position among them, to share across indexes."""
    if len(times) > 1 and bool(np.all(times[1:] >= times[:-1])):
        # Exports are usually in time order: ranks without a sort.
        new = changes(times)
        return times[new], np.cumsum(new, dtype=np.int64) - 1
    distinct, rank = np.unique(times, return_inverse=True)
    return distinct, rank.astype(np.int64).reshape(-1)


def _order_by_key_then_rank(keys: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """The stable order of (key, rank): equal to ``np.argsort(composite, kind="stable")``.

    A stable sort by rank (linear when events arrive in time order) followed by a stable
    counting sort by key (linear in events plus keys), instead of an n log n sort of 20M+
    composites.
    """
    by_rank = np.argsort(rank, kind="stable")
    if groupsort_indexer is None or len(keys) == 0:
        return by_rank[np.argsort(keys[by_rank], kind="stable")]
    by_key, _ = groupsort_indexer(keys[by_rank].astype(np.intp), int(keys.max()) + 1)
    return by_rank[by_key]


def index_events(
    keys: np.ndarray,
    times: np.ndarray,
    ranked: tuple[np.ndarray, np.ndarray] | None = None,
) -> EventIndex:
    """Index events by entity code and time; rows with key -1 or NaT are left out.

    ``ranked`` (from ``rank_times`` over the same ``times``) lets several indexes over one
    table share a single ranking of its timestamps. Events at the same time keep their
    table order.
    """
    valid = (keys >= 0) & (times != NAT)
    rows = np.flatnonzero(valid)
    if ranked is None:
        distinct, rank = rank_times(times[rows])
    else:
        distinct, rank = ranked[0], ranked[1][rows]
    width = len(distinct) + 1
    k = keys[rows]
    order = _order_by_key_then_rank(k, rank)
    return EventIndex(
        composite=(k * width + rank)[order],
        rows=rows[order],
        times=times[rows][order],
        distinct_times=distinct,
        width=width,
    )


def running_count(flags: np.ndarray) -> np.ndarray:
    """``out[p]`` = how many of the first ``p`` flags are set (length ``len(flags) + 1``).

    The subset of an index where ``flags`` holds has ``out[p]`` events before position
    ``p`` of the whole index, so one search in the whole index answers a count for every
    subset (each activity type, inbound only) with a gather instead of a search of its own.
    Gathers at ascending positions read memory in order, which keeps them fast when the
    arrays no longer fit in the CPU caches. int32 when it fits, to halve the memory traffic.
    """
    dtype = np.int32 if len(flags) < _INT32_MAX else np.int64
    out = np.zeros(len(flags) + 1, dtype=dtype)
    np.cumsum(flags, dtype=dtype, out=out[1:])
    return out


def block_start(index: EventIndex, keys: np.ndarray) -> np.ndarray:
    """Position of each entity's first event in the index (its block start)."""
    safe = np.where(keys >= 0, keys, 0)
    return search(index.composite, safe * index.width)


def search(sorted_values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``np.searchsorted(..., side="left")``, with the queries sorted first.

    numpy's binary search reuses its previous bound when queries ascend, which makes
    sorted queries an order of magnitude faster on large arrays; snapshots of many entities
    rarely come in one global time order.
    """
    if len(queries) < 2 or bool(np.all(queries[1:] >= queries[:-1])):
        return np.searchsorted(sorted_values, queries, side="left")
    order = np.argsort(queries, kind="stable")
    out = np.empty(len(queries), dtype=np.int64)
    out[order] = np.searchsorted(sorted_values, queries[order], side="left")
    return out


def threshold(index: EventIndex, times: np.ndarray) -> np.ndarray:
    """How many of the index's distinct times lie strictly before each query time."""
    return search(index.distinct_times, times)


def position_at(index: EventIndex, keys: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``position_before`` with the time thresholds already computed (see ``threshold``)."""
    safe = np.where(keys >= 0, keys, 0)
    pos = search(index.composite, safe * index.width + thresholds)
    return np.where(keys >= 0, pos, 0)


def position_before(index: EventIndex, keys: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Position just past the entity's last event with time < t (== block start if none).

    Queries with key -1 get position 0; callers pair this with ``block_start`` so that
    their count is 0.
    """
    return position_at(index, keys, threshold(index, times))


def last_before(
    index: EventIndex, keys: np.ndarray, times: np.ndarray, start: np.ndarray | None = None
) -> np.ndarray:
    """Position in the index of the entity's last event before t, or -1 if none."""
    if start is None:
        start = block_start(index, keys)
    pos = position_before(index, keys, times)
    found = (keys >= 0) & (pos > start)
    return np.where(found, pos - 1, -1)


def changes(values: np.ndarray) -> np.ndarray:
    """True where a sorted run starts: the first element and each one unlike its predecessor."""
    out = np.ones(len(values), dtype=bool)
    if len(values) > 1:
        out[1:] = values[1:] != values[:-1]
    return out


def previous(values: np.ndarray, fill: object) -> np.ndarray:
    """Each element's predecessor (``fill`` for the first)."""
    out = np.empty_like(values)
    if len(values):
        out[0] = fill
        out[1:] = values[:-1]
    return out


def days_between(later: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    """(later - earlier) in days as float, NaN where either side is NaT."""
    bad = (later == NAT) | (earlier == NAT)
    out = (later - earlier) / NS_PER_DAY
    out = np.asarray(out, dtype=np.float64)
    out[bad] = np.nan
    return out


def _count_below_sorted(values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """For ascending ``queries``: how many of the sorted ``values`` lie strictly below each.

    Equal to ``np.searchsorted(values, queries, "left")``. When there are fewer values than
    queries it is cheaper the other way round: place each value among the queries, then
    accumulate.
    """
    if len(values) >= len(queries):
        return np.searchsorted(values, queries, side="left")
    slot = np.searchsorted(queries, values, side="right")
    return np.cumsum(np.bincount(slot, minlength=len(queries) + 1)[: len(queries)])


class Queries:
    """Query points (entity code, time), with their sort orders worked out once.

    Many look-ups share the same points (one per window, per activity type, per index);
    sorting the queries once and reusing the order keeps every ``searchsorted`` on
    ascending input.
    """

    def __init__(self, keys: np.ndarray, times: np.ndarray) -> None:
        self.keys = keys
        self.times = times
        self._time_order: np.ndarray | None = None
        self._key_order: np.ndarray | None = None
        self._time_sorted = len(times) < 2 or bool(np.all(times[1:] >= times[:-1]))
        k, t = keys, times
        self._key_sorted = len(k) < 2 or bool(
            np.all((k[1:] > k[:-1]) | ((k[1:] == k[:-1]) & (t[1:] >= t[:-1])))
        )

    def __len__(self) -> int:
        return len(self.keys)

    def _search(self, values: np.ndarray, queries: np.ndarray, by_key: bool) -> np.ndarray:
        if len(queries) < 2:
            return np.searchsorted(values, queries, side="left")
        if (self._key_sorted if by_key else self._time_sorted) and bool(
            np.all(queries[1:] >= queries[:-1])
        ):
            return _count_below_sorted(values, queries)
        if by_key:
            if self._key_order is None:
                self._key_order = np.lexsort((self.times, self.keys))
            order = self._key_order
        else:
            if self._time_order is None:
                self._time_order = np.argsort(self.times, kind="stable")
            order = self._time_order
        out = np.empty(len(queries), dtype=np.int64)
        out[order] = np.searchsorted(values, queries[order], side="left")
        return out

    def thresholds(self, distinct_times: np.ndarray, shift_ns: int = 0) -> np.ndarray:
        """How many of ``distinct_times`` lie strictly before each ``time - shift``."""
        return self._search(distinct_times, self.times - shift_ns, by_key=False)

    def positions(self, index: EventIndex, thresholds: np.ndarray) -> np.ndarray:
        """Index position just past each entity's last event before its threshold (0 if no key)."""
        safe = np.where(self.keys >= 0, self.keys, 0)
        pos = self._search(index.composite, safe * index.width + thresholds, by_key=True)
        return np.where(self.keys >= 0, pos, 0)

    def starts(self, index: EventIndex) -> np.ndarray:
        """Index position of each entity's first event (0 if no key)."""
        return self.positions(index, np.zeros(len(self.keys), dtype=np.int64))

    def count(self, index: EventIndex, shift_ns: int = 0) -> np.ndarray:
        """Each entity's events strictly before ``time - shift``."""
        before = self.positions(index, self.thresholds(index.distinct_times, shift_ns))
        return before - self.starts(index)

    def last(self, index: EventIndex, thresholds: np.ndarray | None = None) -> np.ndarray:
        """Index position of each entity's last event before its time, or -1 if none."""
        if thresholds is None:
            thresholds = self.thresholds(index.distinct_times)
        pos = self.positions(index, thresholds)
        return np.where((self.keys >= 0) & (pos > self.starts(index)), pos - 1, -1)
