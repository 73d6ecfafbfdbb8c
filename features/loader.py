"""Read a folder of CRM tables, validate every row, and report what was rejected.

A folder holds one file per table, named after it (``leads.parquet`` or ``leads.csv``);
an optional table (``account_signals``, ``lead_field_history``,
``opportunity_field_history``) may be left out and then loads as an empty table.
``load_crm`` returns the valid rows, typed per ``features/schema.py``, and a rejection
report with one line per problem: ``table, row, column, reason``. ``row`` is the 0-based
position of the data row in the file as read. Nothing is dropped without a line in the
report; a file that cannot be read at all raises one ``DataContractError`` naming it.

Why plain vectorised checks on Arrow arrays and not pandera: the column checks pandera
would take over (dtype, nullability, allowed values) are a few lines each here, while the
work that matters is outside what it does: parsing strings cell by cell so that one bad
value rejects one row and not the file, foreign keys across the tables with a
leads <-> opportunities cycle and a cascade of rejections, history rows checked against
their deal's dates, and a row number that is the position in the file. At the target
scale (about 1M leads and 20M activities) it would also cost a pandas conversion of every
string column to Python objects, where Arrow keeps them as buffers: ``pc.is_in`` and
``pc.dictionary_encode`` do the key and duplicate checks in a few seconds, with no
per-row Python.

How text becomes typed values (empty tokens, booleans, timestamps, Parquet types) is
described in ``features/parsing.py``. The work is split by concern: ``reading`` finds and
reads the files, ``parsing`` types each column, ``rules`` checks rows within a table,
``integrity`` checks references and dates across tables, ``report`` holds the reason codes
and writes the report; this module runs them in order.

The rules, with the reason each one writes (text before the first colon is the code):

- ``bad type``: a value that is not a number, integer, boolean or ISO 8601 timestamp
  (or a fraction where a signal is a whole number: a severity, an NPS or CSAT answer;
  or a field history's old or new value that is not of its field's type).
  Timestamps without an offset are taken as UTC, as the contract says.
- ``missing required value``: a non-nullable column is empty.
- ``unknown value``: a category column outside its allowed values (stage, activity type,
  direction, account signal, a field history's field: only the attributes the contract
  lets change, ``LEAD_CHANGEABLE`` and ``OPPORTUNITY_CHANGEABLE``).
- ``value out of range``: an account signal's value outside its signal's range
  (``SIGNAL_RANGES``; the reason names the signal and the range).
- ``negative value``: a count or an amount below zero.
- ``date order``: an outcome dated before the row's creation (a lead qualified or
  disqualified before it was created, a deal closed before it was created).
- ``timestamp in the future``: an event after ``now``. Expected close dates are plans and
  may be in the future.
- ``duplicate id``: a key seen earlier in the file; the first occurrence is kept.
- ``orphan foreign key``: a non-null reference to a row that is absent or was rejected.
  Parents are resolved before children and the leads <-> opportunities cycle is iterated
  until nothing changes, so a rejected account takes its leads, deals, history,
  activities and signals with it, each reported.
- ``inconsistent outcome``: a deal with ``is_won`` but no ``closed_at``, or the reverse.
- ``before deal created`` / ``after deal closed``: an opportunity_history row dated
  outside its deal's life.
- ``before account created``: an account signal observed before its account was created.
- ``before record created``: a field change dated before its lead or deal was created.

The output keeps referential integrity: every non-null reference in the valid tables
resolves to a valid row. That includes the back-reference ``leads.opportunity_id``, so a
rejected deal also rejects the lead that points at it (and that lead's activities); the
report says so on each of those rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.integrity import check_references, orphan_reasons
from features.keys import KeyIndex, text_hashes
from features.parsing import FALSE_TOKENS, NULL_TOKENS, TRUE_TOKENS, np_mask
from features.reading import DataContractError, find_table_files, read_table_file
from features.report import (
    AFTER_DEAL_CLOSED,
    BAD_TYPE,
    BEFORE_DEAL_CREATED,
    DATE_ORDER,
    DUPLICATE_ID,
    FUTURE_TIMESTAMP,
    MISSING_VALUE,
    NEGATIVE_VALUE,
    ORPHAN_FK,
    OUTCOME_MISMATCH,
    REJECTION_COLUMNS,
    UNKNOWN_VALUE,
    joined,
    quoted,
    sorted_rejections,
    write_rejection_csv,
)
from features.rules import (
    DATE_ORDER_RULES,
    NON_NEGATIVE_COLUMNS,
    PAIRED_COLUMNS,
    PLANNED_DATE_COLUMNS,
    CheckedTable,
    check_rows,
    no_rows,
)
from features.schema import TABLES, CRMTables

# Everything this module offered before it was split stays importable from here.
__all__ = [
    "AFTER_DEAL_CLOSED",
    "BAD_TYPE",
    "BEFORE_DEAL_CREATED",
    "DATE_ORDER",
    "DATE_ORDER_RULES",
    "DUPLICATE_ID",
    "FALSE_TOKENS",
    "FUTURE_TIMESTAMP",
    "MISSING_VALUE",
    "NEGATIVE_VALUE",
    "NON_NEGATIVE_COLUMNS",
    "NULL_TOKENS",
    "ORPHAN_FK",
    "OUTCOME_MISMATCH",
    "PAIRED_COLUMNS",
    "PLANNED_DATE_COLUMNS",
    "REJECTION_COLUMNS",
    "TRUE_TOKENS",
    "UNKNOWN_VALUE",
    "DataContractError",
    "LeafChecker",
    "LoadResult",
    "Progress",
    "find_table_files",
    "load_crm",
    "read_table_file",
    "validate_checked",
    "validate_folder",
    "validate_tables",
    "write_rejections",
]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class LoadResult:
    """Valid rows of every table, and one rejection line per problem found."""

    tables: CRMTables
    rejections: pd.DataFrame
    rows_read: dict[str, int] = field(default_factory=dict)
    # Nullable columns absent from a file: read as empty, listed so it is not silent.
    missing_columns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Valid rows of a table checked and written chunk by chunk (``LeafChecker``), whose
    # rows ``tables`` does not hold.
    valid_rows: dict[str, int] = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """Per table: rows read, valid and rejected (a row with several problems counts once)."""
        rejected = self.rejections.groupby("table", sort=False)["row"].nunique()
        rows = []
        for name, table in TABLES.items():
            n_rej = int(rejected.get(name, 0))
            n_valid = self.valid_rows.get(name, len(self.tables.get(name)))
            if table.optional and name not in self.rows_read and n_rej + n_valid == 0:
                continue  # an optional table the folder does not have: nothing to count
            rows.append(
                {
                    "table": name,
                    "read": int(self.rows_read.get(name, n_rej + n_valid)),
                    "valid": n_valid,
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


def load_crm(
    data_dir: Path,
    *,
    now: pd.Timestamp | None = None,
    progress: Progress | None = None,
) -> LoadResult:
    """Read and validate the contract's tables in ``data_dir``.

    An optional table without a file loads as an empty table and is not counted as read.
    ``now`` (default: the current time) is the latest an event may be dated. ``progress``
    is told which step runs, for a status line on large folders.
    """
    say = progress or (lambda _msg: None)
    files = find_table_files(Path(data_dir))
    read: dict[str, pa.Table] = {}
    absent: dict[str, tuple[str, ...]] = {}
    for name, table in TABLES.items():
        path = files.get(name)
        if path is None:  # an optional table left out
            continue
        say(f"reading {path.name}")
        tbl, missing = read_table_file(path, table)
        if missing:
            absent[name] = missing
        read[name] = tbl
        del tbl
    return validate_tables(read, files, now=now, progress=progress, missing_columns=absent)


def validate_tables(
    read: dict[str, pa.Table],
    origins: dict[str, Path],
    *,
    now: pd.Timestamp | None = None,
    progress: Progress | None = None,
    missing_columns: dict[str, tuple[str, ...]] | None = None,
) -> LoadResult:
    """Validate tables already in memory (text or typed Arrow columns), as ``load_crm`` does.

    ``read`` holds a table per name (an optional one may be left out: it loads empty);
    ``origins`` names where each came from, for the messages of unreadable columns.
    ``read`` is emptied as the tables are checked, so each can be freed early.
    """
    result, _ = validate_checked(read, origins, now=now, progress=progress,
                                 missing_columns=missing_columns)
    return result


def validate_checked(
    read: dict[str, pa.Table],
    origins: dict[str, Path],
    *,
    now: pd.Timestamp | None = None,
    progress: Progress | None = None,
    missing_columns: dict[str, tuple[str, ...]] | None = None,
) -> tuple[LoadResult, dict[str, CheckedTable]]:
    """``validate_tables``, and every table as checked (for ``LeafChecker``)."""
    say = progress or (lambda _msg: None)
    now_utc = _utc(now if now is not None else pd.Timestamp.now(tz="UTC"))
    checked: dict[str, CheckedTable] = {}
    for name, table in TABLES.items():
        tbl = read.pop(name, None)
        if tbl is None:
            if not table.optional:
                raise DataContractError(f"missing table {name}")
            checked[name] = no_rows(table)
            continue
        say(f"checking {name}")
        checked[name] = check_rows(tbl, table, origins.get(name, Path(name)), now_utc)
        del tbl
    say("checking foreign keys")
    check_references(checked)
    say("collecting valid rows")
    rejections = sorted_rejections([c.rejections() for c in checked.values()])
    frames = {name: c.frame() for name, c in checked.items()}
    return LoadResult(
        tables=CRMTables(**frames),
        rejections=rejections,
        rows_read={name: checked[name].n_rows for name in origins if name in checked},
        missing_columns=missing_columns or {},
    ), checked


class LeafChecker:
    """Check a table that no other table refers to (activities) chunk by chunk, after the
    other tables were checked (``validate_checked``) with none of its rows: each chunk
    gets the rules ``check_rows`` applies, its foreign keys against its parents' rows, and
    its keys against those of every chunk before it, so that the chunks together get the
    very rejections (rows numbered across the chunks) that the whole table would.
    """

    def __init__(self, name: str, checked: dict[str, CheckedTable], origin: Path,
                 now: pd.Timestamp | None = None) -> None:
        self.table = TABLES[name]
        if any(fk.table == name for t in TABLES.values() for fk in t.foreign_keys):
            raise ValueError(f"{name}: other tables refer to it; it cannot be checked alone")
        self.origin = origin
        self.now = _utc(now if now is not None else pd.Timestamp.now(tz="UTC"))
        self.parents = {}
        for fk in self.table.foreign_keys:
            parent = checked[fk.table]
            keys = parent.values(fk.ref_column)
            self.parents[fk.column] = (fk, KeyIndex(keys.filter(pa.array(parent.valid))), keys)
        self.rows = 0
        self.valid = 0
        self.seen: list[tuple[np.ndarray, np.ndarray]] = []  # sorted key hashes, first rows
        self.keys: list[tuple[int, pa.Array]] = []  # each chunk's first row and keys
        # One bit per slice of the hash space, set for every hash seen: a key whose bit is
        # clear is new without a search of the hashes seen.
        self.seen_bits = np.zeros(0, dtype=np.uint8)
        self.levels: list[int] = []  # of each run in ``seen``

    def check(self, tbl: pa.Table) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The chunk's valid rows (as ``LoadResult.tables`` types them) and its rejections
        (rows numbered from the first chunk's first row)."""
        first = self.rows
        unkeyed = dataclasses.replace(self.table, key=None)
        chunk = check_rows(tbl, unkeyed, self.origin, self.now)
        chunk.table = self.table
        if self.table.key is not None:
            self._check_keys(chunk, self.table.key, first)
        for column, (fk, valid_keys, all_keys) in self.parents.items():
            refs = chunk.values(column)
            orphan = np_mask(pc.is_valid(refs)) & ~valid_keys.contains(refs)
            if not orphan.any():
                continue
            chunk.reject(orphan, column, orphan_reasons(refs, orphan, all_keys, fk))
        self.rows += chunk.n_rows
        rejections = chunk.rejections()
        rejections["row"] = rejections["row"].to_numpy(dtype=np.int64) + first
        frame = chunk.frame()
        self.valid += len(frame)
        return frame, sorted_rejections([rejections])

    def _check_keys(self, chunk: CheckedTable, key: str, first: int) -> None:
        """Reject every later occurrence of a key, in this chunk or an earlier one (by a
        hash of each key, confirmed on the keys themselves)."""
        ids = chunk.values(key).combine_chunks()
        self.keys.append((first, ids))
        present = np.flatnonzero(np_mask(pc.is_valid(ids)))
        if present.size == 0:
            return
        hashes = text_hashes(ids.filter(pc.is_valid(ids)))
        rows = present.astype(np.int64) + first
        order = np.argsort(hashes)
        h, r = hashes[order], rows[order]
        lead = np.concatenate(([True], h[1:] != h[:-1]))
        group = np.cumsum(lead) - 1
        # each hash once, with the row it is first at here (the sort kept no row order)
        uh, ur = h[lead], np.minimum.reduceat(r, np.flatnonzero(lead))
        earlier = np.full(uh.size, -1, dtype=np.int64)
        if self.seen_bits.size == 0:
            self.seen_bits = np.zeros(1 << (SEEN_BITS - 3), dtype=np.uint8)
        slot = uh >> np.uint64(64 - SEEN_BITS)
        byte, bit = (slot >> np.uint64(3)).astype(np.int64), (slot & np.uint64(7)).astype(np.uint8)
        maybe = np.flatnonzero(self.seen_bits[byte] & (np.uint8(1) << bit))
        for bh, br in self.seen:
            if maybe.size == 0:
                break
            at = np.minimum(np.searchsorted(bh, uh[maybe]), bh.size - 1)
            hit = bh[at] == uh[maybe]
            earlier[maybe[hit]] = br[at[hit]]
            maybe = maybe[~hit]  # a hash is in one run at most
        first_at = np.where(earlier >= 0, earlier, ur)[group]
        dup = r != first_at
        if dup.any():
            dup_rows, seen_at = r[dup], first_at[dup]
            mine = pc.take(ids, pa.array(dup_rows - first))
            theirs = pa.concat_arrays([self._key_at(int(x)) for x in seen_at])
            same = np_mask(pc.equal(mine, theirs))  # a hash collision is not a duplicate
            dup_rows, seen_at = dup_rows[same], seen_at[same]
            if dup_rows.size:
                by_row = np.argsort(dup_rows, kind="stable")
                dup_rows, seen_at = dup_rows[by_row], seen_at[by_row]
                mask = np.zeros(chunk.n_rows, dtype=bool)
                mask[dup_rows - first] = True
                reason = joined(f"{DUPLICATE_ID}: ", quoted(pc.take(ids, pa.array(
                    dup_rows - first))), " first seen at row ", pa.array(seen_at).cast(
                    pa.string()))
                chunk.reject(mask, key, reason)
        new = earlier < 0
        nb, nmask = byte[new], np.uint8(1) << bit[new]  # by byte, as the hashes are sorted
        if nb.size:
            at = np.flatnonzero(np.concatenate(([True], nb[1:] != nb[:-1])))
            self.seen_bits[nb[at]] |= np.bitwise_or.reduceat(nmask, at)
        self.seen.append((uh[new], ur[new]))
        self.levels.append(0)
        # Eight runs of a level become one of the next (few runs to search, and each hash
        # is moved about log8(blocks) times).
        while len(self.levels) >= MERGED_RUNS and len(set(self.levels[-MERGED_RUNS:])) == 1:
            runs = self.seen[-MERGED_RUNS:]
            del self.seen[-MERGED_RUNS:]
            level = self.levels[-1] + 1
            del self.levels[-MERGED_RUNS:]
            mh = np.concatenate([run[0] for run in runs])
            mr = np.concatenate([run[1] for run in runs])
            order = np.argsort(mh, kind="stable")  # a merge of sorted runs
            self.seen.append((mh[order], mr[order]))
            self.levels.append(level)

    def _key_at(self, row: int) -> pa.Array:
        for first, ids in reversed(self.keys):
            if row >= first:
                return ids.slice(row - first, 1)
        raise IndexError(row)


# The hash space is cut into 2**SEEN_BITS slices for the keys seen so far (2**30 bits:
# 128 MB; at 40 million keys about 4 % of new keys need a search).
SEEN_BITS = 30
MERGED_RUNS = 8


def _utc(ts: pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def write_rejections(result: LoadResult, path: Path) -> Path:
    """Write every rejection to ``path`` as CSV with the columns table,row,column,reason."""
    return write_rejection_csv(result.rejections, path)


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
