"""Arrow columns from simulated arrays: sequential ids, nullable references, UTC times."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DAY_NS = 86_400 * 10**9


def ids(prefix: str, n: int, width: int) -> pa.Array:
    """``prefix`` + a zero-padded 1-based sequence number: ACC0000001, ..."""
    digits = pc.utf8_lpad(pc.cast(pa.array(np.arange(1, n + 1, dtype=np.int64)), pa.string()),
                          width=width, padding="0")
    return pc.binary_join_element_wise(pa.scalar(prefix), digits, "")


def take_ids(id_column: pa.Array, idx: np.ndarray) -> pa.Array:
    """id_column[idx], with idx < 0 meaning null."""
    mask = idx < 0
    if len(id_column) == 0:
        return pa.nulls(idx.size, pa.string())
    out = id_column.take(pa.array(np.where(mask, 0, idx)))
    if mask.any():
        out = pc.if_else(pa.array(mask), pa.scalar(None, pa.string()), out)
    return out


def timestamps(start_ns: int, days: np.ndarray) -> pa.Array:
    """Day offsets to UTC timestamps, rounded to the second; NaN becomes null."""
    mask = np.isnan(days)
    secs = np.round(np.where(mask, 0.0, days) * 86_400.0).astype(np.int64)
    ns = start_ns + secs * 10**9
    return pa.array(ns, type=pa.timestamp("ns", tz="UTC"), mask=mask)


def dates(start_ns: int, days: np.ndarray) -> pa.Array:
    """Day offsets to midnight UTC of that day (expected close dates are dates)."""
    mask = np.isnan(days)
    start_day = start_ns // DAY_NS
    whole = np.floor(np.where(mask, 0.0, days)).astype(np.int64)
    ns = (start_day + whole) * DAY_NS
    return pa.array(ns, type=pa.timestamp("ns", tz="UTC"), mask=mask)
