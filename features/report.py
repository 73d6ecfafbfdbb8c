"""The rejection report: its reason codes, the text of its reasons, its order, its file.

Every rejected cell is one line: ``table, row, column, reason``. A reason starts with one
of the codes below and may go on, after a colon, with what was found (the value, the
date, the key), so a line can be acted on without opening the file. ``features/loader.py``
lists which rule writes which code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.schema import TABLES

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
VALUE_OUT_OF_RANGE = "value out of range"
BEFORE_ACCOUNT_CREATED = "before account created"
BEFORE_ENTITY_CREATED = "before record created"

REJECTION_COLUMNS = ["table", "row", "column", "reason"]

_DETAIL_CHARS = 60


# ---------------------------------------------------------------------------------------
# The text of reasons, built per row from Arrow arrays (no per-row Python).


def quoted(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Values as ``'text'`` for reasons, cut to a readable length."""
    text = pc.utf8_slice_codeunits(pc.cast(values, pa.string()), 0, _DETAIL_CHARS)
    return pc.binary_join_element_wise("'", pc.fill_null(text, ""), "'", "")


def joined(*parts: str | pa.Array | pa.ChunkedArray) -> pa.Array:
    """Fixed text and per-row values, concatenated row by row."""
    return pc.binary_join_element_wise(*parts, "")


def iso(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Timestamps as ISO 8601 to the second (Arrow's %S would print nanoseconds)."""
    seconds = pc.cast(values, pa.timestamp("s", tz="UTC"), safe=False)
    return pc.strftime(seconds, format="%Y-%m-%dT%H:%M:%SZ")


def iso_scalar(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------
# The report as a frame and as a file.


def empty_rejections() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "table": pd.Series([], dtype=object),
            "row": pd.Series([], dtype=np.int64),
            "column": pd.Series([], dtype=object),
            "reason": pd.Series([], dtype=object),
        }
    )


def sorted_rejections(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """All rejections, ordered by table (dependency order), row, then as found."""
    frames = [f for f in frames if not f.empty]
    if not frames:
        return empty_rejections()
    out = pd.concat(frames, ignore_index=True)
    order = {name: i for i, name in enumerate(TABLES)}
    table_rank = out["table"].map(order).to_numpy()
    idx = np.lexsort((np.arange(len(out)), out["row"].to_numpy(), table_rank))
    return out.iloc[idx].reset_index(drop=True)[REJECTION_COLUMNS]


def write_rejection_csv(rejections: pd.DataFrame, path: Path) -> Path:
    """Write ``rejections`` to ``path`` as CSV with the columns table,row,column,reason."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    rejections[REJECTION_COLUMNS].to_csv(path, index=False)
    return path
