"""An export's files to the contract's tables, as text, with where every row came from.

Pure: ``convert(mapping, sources)`` reads nothing and writes nothing. Each output row
remembers its file and row in the export, and each column the export's column it was made
from, so that the loader's rejections can be reported against the export. What the export
lacks and the importer derives (accounts from company names, a deal's stage history from
its dates, outcome dates) is said in ``Converted.notes``; values that nothing placed are in
``Converted.unplaced``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.keys import KeyIndex
from features.mapping.own_columns import OWN_PREFIX, own_history, own_values
from features.mapping.spec import (
    HISTORY_TABLES,
    ContactRoles,
    FieldHistory,
    FieldMap,
    Mapping,
    StageTable,
    StatusHistory,
    TableMap,
    plain,
)
from features.mapping.timing import Timing, leave_out_current_values, resolve
from features.mapping.values import (
    ISO_AWARE,
    Unplaced,
    apply_lookup,
    apply_value_map,
    as_arrow_text,
    clean_text,
    find_column,
    iso_text,
    loose_name,
    map_values_arrow,
    prefixed_arrow,
    sequence_times,
    to_number_text,
    to_utc_text,
    utc_text_arrow,
)
from features.own import NONE as NO_OWN
from features.own import OwnFeatures
from features.parsing import np_mask
from features.schema import CRM_DEFAULT_STAGE_PROBABILITY, OPEN_STAGES, TABLES, Column
from features.sets import CATEGORY_LEVELS

# Contract columns that feed a category feature with fixed levels (features/sets.py).
FEATURE_LEVEL_COLUMNS = ("source", "seniority", "job_function", "industry", "country", "product")
DERIVED = "(derived)"


@dataclass(frozen=True)
class Source:
    """One export file as read: every column as text (missing as None)."""

    name: str
    file: str
    frame: pd.DataFrame
    emptied: dict[str, int] = field(default_factory=dict)
    """Cells emptied because their text means 'no value' here (``sources.<name>.missing``)."""
    header: tuple[str, ...] = ()
    """Every column of the file (``frame`` holds those the mapping can read)."""


class ConvertError(ValueError):
    """A mapping that the export cannot satisfy (a required column is in no file)."""


@dataclass
class Converted:
    tables: dict[str, pd.DataFrame]
    """Per contract table, every contract column as text (None where empty)."""
    origin: dict[str, pd.DataFrame]
    """Per contract table, per row: ``file``, ``row`` (0-based data row) and ``part``."""
    columns: dict[str, list[dict[str, str]]]
    """Per contract table and part: contract column -> the export's column it came from."""
    notes: list[str] = field(default_factory=list)
    unplaced: list[dict[str, object]] = field(default_factory=list)
    skipped: list[dict[str, object]] = field(default_factory=list)
    not_in_export: dict[str, list[str]] = field(default_factory=dict)
    own: OwnFeatures = NO_OWN
    """The export's own columns (the mapping's ``features:``), typed, by contract key."""
    timing: Timing = field(default_factory=Timing)
    """When each mapped attribute is known, and the export-only ones left out or kept."""
    run: _Run | None = field(default=None, repr=False, compare=False)
    """The conversion's state, for converting activities chunk by chunk afterwards."""

    def source_column(self, table: str, row: int, column: str) -> str:
        part = int(self.origin[table]["part"].iat[row])
        return self.columns[table][part].get(column, DERIVED)


@dataclass
class _Part:
    frame: pd.DataFrame
    file: str
    rows: np.ndarray
    columns: dict[str, str]


@dataclass
class _ArrowPart:
    frame: pa.Table
    """Every contract column as Arrow text, in the contract's order."""
    file: str
    rows: np.ndarray
    columns: dict[str, str]


class _Run:
    """One conversion: the mapping, the sources, and what it has to say."""

    def __init__(self, mapping: Mapping, sources: dict[str, Source]) -> None:
        self.m = mapping
        self.sources = sources
        self.notes: list[str] = []
        self.unplaced: dict[tuple[str, str, str], Unplaced] = {}
        self.skipped: list[dict[str, object]] = []
        self.not_in_export: dict[str, list[str]] = {}
        # Where the notes on activities go (for ActivityStream): those of reading them, and
        # of filling their links.
        self.acts_at = (0, 0)
        self.links_at = 0

    # -- one field ----------------------------------------------------------------------

    def placed(self, table: str, column: str, what: str) -> Unplaced:
        key = (table, column, what)
        if key not in self.unplaced:
            self.unplaced[key] = Unplaced(what)
        return self.unplaced[key]

    def field(self, table: str, column: str, kind: str, fm: FieldMap, src: Source,
              where: str) -> tuple[pd.Series | None, str]:
        """A column's values from ``src`` as text, and the export column used."""
        df = src.frame
        if fm.value is not None:
            const = pd.Series(_text(fm.value), index=df.index, dtype=object)
            return const, f"(constant {fm.value})"
        if fm.row_id is not None:
            ids = pd.Series([f"{fm.row_id}{i}" for i in range(len(df))], index=df.index,
                            dtype=object)
            return ids, "(row number)"
        if fm.sequence is not None:
            seq = fm.sequence
            if seq.column == "row":
                order = pd.Series(np.arange(len(df), dtype=float), index=df.index)
                used = "(row order)"
            else:
                col = find_column(df.columns, (seq.column,))
                if col is None:
                    raise ConvertError(f"{where}.sequence.column: no column {seq.column!r} "
                                       f"in {src.file}")
                order, used = df[col], col
            order_of = "the rows' order" if seq.column == "row" else f"the order of {used}"
            self.notes.append(
                f"{table}.{column}: not in the export; made from {order_of}, "
                f"{seq.every} apart from {seq.start}: an order, not a calendar"
            )
            return sequence_times(order, seq.start, seq.every), used
        col = find_column(df.columns, fm.column)
        if col is None:
            return None, ""
        s = clean_text(df[col])
        if fm.prefix is not None:
            starts = pc.fill_null(pc.starts_with(as_arrow_text(s), fm.prefix), False)
            s = s.where(np.asarray(starts), None)
        what = f"{col}: not in the value map, " + (
            f"set to the default {fm.default!r}" if fm.default is not None else "kept as written")
        s = apply_value_map(s, fm, self.placed(table, column, what))
        if fm.lookup is not None:
            lk = fm.lookup
            other = self.sources.get(lk.source)
            if other is None:
                raise ConvertError(f"{where}.lookup.source: the file of {lk.source!r} "
                                   f"is not in the export")
            key = find_column(other.frame.columns, (lk.key,))
            value = find_column(other.frame.columns, (lk.value,))
            if key is None or value is None:
                raise ConvertError(f"{where}.lookup: {other.file} has no column "
                                   f"{lk.key if key is None else lk.value!r}")
            s = apply_lookup(s, other.frame, key, value, self.placed(
                table, column, f"{col}: no match in {other.file} {key}"))
        if kind == "timestamp":
            s, n_dates = to_utc_text(s, fm, self.m.timezone)
            self._dates_noted(table, column, col, fm, n_dates)
        elif kind in ("float", "int"):
            codes = None
            if fm.currency and self.m.currency.column:
                code_col = find_column(df.columns, self.m.currency.column)
                codes = df[code_col] if code_col is not None else None
            s = to_number_text(s, fm, self.m.currency, codes,
                               self.placed(table, column, "currency without a rate"))
        return s, col

    def _dates_noted(self, table: str, column: str, col: str, fm: FieldMap,
                     n_dates: int) -> None:
        """The note of a timestamp field's values that were dates without a time."""
        if n_dates:
            tz = fm.timezone or self.m.timezone
            self.notes.append(
                f"{table}.{column}: {n_dates:,} date(s) without a time from {col}, taken "
                f"as the {fm.date_only} of the day in {tz}"
            )

    def _not_in_export(self, table: str, c: Column, got: FieldMap, where: str, file: str,
                       columns: Sequence[str]) -> None:
        """A mapped field none of whose columns the file has: an error for a required
        contract column that cannot be derived, else listed as not in the export."""
        if not c.nullable and c.name not in _DERIVABLE.get(table, ()):
            raise ConvertError(
                f"{where}: none of {', '.join(map(repr, got.column))} is a column of {file} "
                f"(its columns: {', '.join(tuple(columns)[:30])})"
            )
        self.not_in_export.setdefault(table, []).append(c.name)

    # -- one table part -----------------------------------------------------------------

    def part(self, table: str, name: str, tm: TableMap) -> _Part | None:
        src = self.sources.get(tm.source)
        if src is None:
            return None
        df = src.frame
        keep = pd.Series(True, index=df.index)
        for col_name, skip in tm.skip_rows.items():
            col = find_column(df.columns, (col_name,))
            if col is None:
                continue
            hit = clean_text(df[col]).isin(skip) & keep
            if hit.any():
                self.skipped.append({"table": table, "file": src.file, "column": col,
                                     "rows": int(hit.sum()),
                                     "values": clean_text(df[col])[hit].value_counts().to_dict()})
            keep &= ~hit
        if not keep.all():
            src = Source(src.name, src.file, df.loc[keep])
        contract = TABLES[table]
        out: dict[str, pd.Series] = {}
        used: dict[str, str] = {}
        base = f"tables.{table}.{name}" if name != table else f"tables.{table}"
        for c in contract.columns:
            got = tm.fields.get(c.name)
            if got is None:
                continue
            values, col = self.field(table, c.name, c.kind, got, src, f"{base}.fields.{c.name}")
            if values is None:
                self._not_in_export(table, c, got, f"{base}.fields.{c.name}", src.file,
                                    src.header or tuple(src.frame.columns))
                continue
            out[c.name], used[c.name] = values, col
        extra: dict[str, tuple[FieldMap | None, str]] = {
            "status": (tm.status, "category"), "status_at": (tm.status_at, "timestamp"),
            "stage": (tm.stage, "category"),
        }
        for pseudo, (pm, kind) in extra.items():
            if pm is None:
                continue
            values, col = self.field(table, pseudo, kind, pm, src, f"{base}.{pseudo}")
            if values is not None:
                out[f"_{pseudo}"], used[pseudo] = values, col
        for oname, om in self.m.features.get(table, {}).items():
            where = f"features.{table}.{oname}"
            values, col = self.field(table, oname, "float" if om.type == "number" else
                                     "category", om, src, where)
            if values is None:
                raise ConvertError(
                    f"{where}: none of {', '.join(map(repr, om.column))} is a column of "
                    f"{src.file}")
            out[f"{OWN_PREFIX}{oname}"], used[f"{OWN_PREFIX}{oname}"] = values, col
        frame = pd.DataFrame(out, index=src.frame.index)
        for c in contract.columns:
            if c.name not in frame:
                frame[c.name] = None
        rows = np.flatnonzero(keep.to_numpy())
        frame.index = pd.RangeIndex(len(frame))  # the frame is new: no copy to renumber
        return _Part(frame, src.file, rows, used)

    # -- the same on Arrow text (a block of a large activity file) ------------------------

    def field_arrow(self, table: str, column: str, kind: str, fm: FieldMap, tbl: pa.Table,
                    ) -> tuple[pa.Array | None, str]:
        """``field`` for the maps ``arrow_ready`` accepts, on Arrow text."""
        if fm.value is not None:
            return pa.repeat(pa.scalar(_text(fm.value)), tbl.num_rows), f"(constant {fm.value})"
        col = find_column(pd.Index(tbl.column_names), fm.column)
        if col is None:
            return None, ""
        s = tbl.column(col).combine_chunks()  # trimmed, empty as null already
        if fm.prefix is not None:
            s = prefixed_arrow(s, fm.prefix)
        what = f"{col}: not in the value map, " + (
            f"set to the default {fm.default!r}" if fm.default is not None else "kept as written")
        s = map_values_arrow(s, fm, self.placed(table, column, what))
        if kind == "timestamp":
            s, n_dates = utc_text_arrow(s, fm, self.m.timezone)
            self._dates_noted(table, column, col, fm, n_dates)
        return s, col

    def part_arrow(self, table: str, name: str, tm: TableMap, file: str, tbl: pa.Table,
                   header: tuple[str, ...]) -> _ArrowPart:
        """``part`` for the maps ``arrow_ready`` accepts, on a file's columns as the reader
        gives them: Arrow text already trimmed, empty as null (as ``clean_text`` leaves it)."""
        keep = np.ones(tbl.num_rows, dtype=bool)
        columns = pd.Index(tbl.column_names)
        for col_name, skip in tm.skip_rows.items():
            col = find_column(columns, (col_name,))
            if col is None:
                continue
            cleaned = tbl.column(col).combine_chunks()
            hit = np_mask(pc.is_in(cleaned, value_set=pa.array(list(skip), type=pa.string())))
            hit &= keep
            if hit.any():
                values = pd.Series(cleaned.filter(pa.array(hit)).to_numpy(zero_copy_only=False),
                                   dtype=object)
                self.skipped.append({"table": table, "file": file, "column": col,
                                     "rows": int(hit.sum()),
                                     "values": values.value_counts().to_dict()})
            keep &= ~hit
        if not keep.all():
            tbl = tbl.filter(pa.array(keep))
            header = ()
        contract = TABLES[table]
        out: dict[str, pa.Array] = {}
        used: dict[str, str] = {}
        base = f"tables.{table}.{name}" if name != table else f"tables.{table}"
        for c in contract.columns:
            got = tm.fields.get(c.name)
            if got is None:
                continue
            values, col = self.field_arrow(table, c.name, c.kind, got, tbl)
            if values is None:
                self._not_in_export(table, c, got, f"{base}.fields.{c.name}", file,
                                    header or tuple(tbl.column_names))
                continue
            out[c.name], used[c.name] = values, col
        nulls = pa.nulls(tbl.num_rows, type=pa.string())
        frame = pa.table({c.name: out.get(c.name, nulls) for c in contract.columns})
        return _ArrowPart(frame, file, np.flatnonzero(keep), used)

    def table(self, table: str) -> list[_Part]:
        parts = []
        for name, tm in self.m.parts(table):
            p = self.part(table, name, tm)
            if p is None:
                files = self.m.sources.get(tm.source)
                names = ", ".join(files.file) if files else tm.source
                self.notes.append(f"{table}: no file {names} in the export; not read")
                continue
            parts.append(p)
        return parts


_DERIVABLE: dict[str, tuple[str, ...]] = {
    "accounts": ("created_at",),
    "activities": ("account_id",),
}


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _iso_min(values: pd.Series, keys: pd.Series) -> pd.Series:
    """The earliest well-formed time per key, as ISO text (a value that does not parse is
    one the loader will reject: not a time here)."""
    ok = keys.notna().to_numpy()
    text = as_arrow_text(values[ok])
    shaped = pc.fill_null(pc.match_substring_regex(text, ISO_AWARE), False)
    times = pc.cast(text.filter(shaped), pa.timestamp("ns", tz="UTC"))
    ns = pd.Series(times.cast(pa.int64()).to_numpy(zero_copy_only=False))
    first = ns.groupby(keys[ok].to_numpy()[np.asarray(shaped)]).min()
    stamps = pa.array(first.to_numpy(), type=pa.int64()).cast(pa.timestamp("ns", tz="UTC"))
    return pd.Series(iso_text(stamps).to_numpy(zero_copy_only=False), index=first.index,
                     dtype=object)


# ---------------------------------------------------------------------------------------
# Table by table.


def _stack(parts: list[_Part], table: str) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    cols = TABLES[table].column_names
    if not parts:
        empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in cols})
        origin = pd.DataFrame({"file": pd.Series([], dtype=object),
                               "row": pd.Series([], dtype=np.int64),
                               "part": pd.Series([], dtype=np.int64)})
        return empty, origin, []
    frame = pd.concat([p.frame for p in parts], ignore_index=True)
    origin = pd.concat(
        [pd.DataFrame({"file": p.file, "row": p.rows.astype(np.int64), "part": i})
         for i, p in enumerate(parts)], ignore_index=True)
    return frame, origin, [p.columns for p in parts]


def _stage_map_from_table(run: _Run, st: StageTable, fm: FieldMap) -> FieldMap:
    """The stage map with the stage table's stages added where the mapping is silent:
    won -> closed_won, closed -> closed_lost, open -> the project's stage whose CRM default
    probability is nearest the stage's own."""
    src = run.sources.get(st.source)
    if src is None:
        return fm
    df = src.frame
    name_col = find_column(df.columns, st.name)
    won_col, closed_col = (find_column(df.columns, (c,)) for c in (st.is_won, st.is_closed))
    if name_col is None or won_col is None or closed_col is None:
        run.notes.append(f"stage table {src.file}: needs columns {st.name}, {st.is_won}, "
                         f"{st.is_closed}; not used")
        return fm
    prob_col = find_column(df.columns, (st.probability,)) if st.probability else None
    truthy = {"true", "1", "yes", "y", "t"}
    values = dict(fm.values or {})
    added = []
    for _, r in df.iterrows():
        name = str(r[name_col]).strip()
        if not name or name in values:
            continue
        if str(r[won_col]).strip().lower() in truthy:
            target = "closed_won"
        elif str(r[closed_col]).strip().lower() in truthy:
            target = "closed_lost"
        else:
            p = pd.to_numeric(pd.Series([r[prob_col] if prob_col else None]), errors="coerce")[0]
            if pd.isna(p):
                continue  # an open stage with no probability: left for the user's map
            p = float(p) / 100.0 if float(p) > 1 else float(p)
            target = min(CRM_DEFAULT_STAGE_PROBABILITY,
                         key=lambda s: abs(CRM_DEFAULT_STAGE_PROBABILITY[s] - p))
        values[name] = target
        added.append(f"{name} -> {target}")
    if added:
        run.notes.append(f"stages from {src.file}: " + ", ".join(added))
    return fm.model_copy(update={"values": values})


def _complete_stage_maps(run: _Run, mapping: Mapping) -> Mapping:
    """Add a stage table's stages to the deals' stage map, and give the history's stage
    map what the deals' has (its own entries win)."""
    tables = dict(mapping.tables)
    deal_values: dict[str, object] = {}
    fixed = {}
    for name, tm in mapping.parts("opportunities"):
        if tm.stage is not None and tm.stage_table is not None:
            tm = tm.model_copy(update={"stage": _stage_map_from_table(run, tm.stage_table,
                                                                      tm.stage)})
        if tm.stage is not None and tm.stage.values and not deal_values:
            deal_values = dict(tm.stage.values)
        fixed[name] = tm
    if fixed:
        tables["opportunities"] = fixed
    hist = {}
    for name, tm in mapping.parts("opportunity_history"):
        fm = tm.fields.get("stage")
        if fm is not None and deal_values:
            values = {**deal_values, **(fm.values or {})}
            tm = tm.model_copy(update={"fields": {**tm.fields, "stage": fm.model_copy(
                update={"values": values})}})
        hist[name] = tm
    if hist:
        tables["opportunity_history"] = hist
    return mapping.model_copy(update={"tables": tables})


def convert(mapping: Mapping, sources: dict[str, Source]) -> Converted:
    """Every contract table from the export's sources, per ``mapping``."""
    run = _Run(mapping, sources)
    for src in sources.values():
        for token, n in src.emptied.items():
            run.notes.append(f"{src.file}: {token!r} read as empty in {n:,} cell(s) of the "
                             f"columns the mapping reads (sources.{src.name}.missing)")
    # The stage map may be completed from a stage table before anything reads it.
    mapping = _complete_stage_maps(run, mapping)
    run.m = mapping
    parts_of = {}
    for table in TABLES:
        parts_of[table] = run.table(table)
        if table == "activities":
            run.acts_at = (len(run.notes), len(run.skipped))

    tables: dict[str, pd.DataFrame] = {}
    origin: dict[str, pd.DataFrame] = {}
    columns: dict[str, list[dict[str, str]]] = {}
    for table, parts in parts_of.items():
        tables[table], origin[table], columns[table] = _stack(parts, table)
    own = own_values(mapping, tables, run.placed)

    _lead_outcomes(run, mapping, tables["leads"], parts_of["leads"])
    closed_from_date = _deal_outcomes(run, tables["opportunities"])
    _deal_leads(run, tables["opportunities"], tables["leads"])
    for cols in columns["opportunities"]:
        if "stage" in cols:
            cols.setdefault("is_won", f"{cols['stage']} (derived)")
            cols.setdefault("closed_at", _derived_from(cols, "close_date"))
    hist_parts = parts_of["opportunity_history"]
    if not hist_parts:
        h, o, c = _derived_history(run, mapping, tables["opportunities"],
                                   origin["opportunities"], parts_of["opportunities"])
        tables["opportunity_history"], origin["opportunity_history"] = h, o
        columns["opportunity_history"] = c
    _closed_at_from_history(run, tables["opportunities"], tables["opportunity_history"],
                            closed_from_date)
    run.links_at = len(run.notes)
    _fill_activity_links(run, mapping, tables)
    _accounts(run, tables, origin, columns)
    for t in ("leads", "opportunities"):
        tables[t] = tables[t].drop(columns=[c for c in tables[t] if c.startswith("_")])
    present = set(sources)
    timing = resolve(mapping, present)
    for table, name in HISTORY_TABLES.items():
        tms = [tm for _, tm in mapping.parts(table) if tm.source in sources]
        if parts_of[name] or not tms:
            continue  # mapped as a table of its own, or no records
        part = _field_changes(run, table, tms[0], timing.history_fields(table))
        if part is not None:
            tables[name], origin[name], columns[name] = _stack([part], name)
        own_changes = _own_changes(run, table, tms[0])
        if own_changes is not None:
            own = own_history(own, table, own_changes, run.placed)
    leave_out_current_values(mapping, present, timing, tables)
    _feature_levels(run, tables)
    for name in ("leads", "opportunities", "opportunity_history", "activities"):
        if tables[name].empty and not any(n.startswith(f"{name}:") for n in run.notes):
            run.notes.append(f"{name}: nothing in the export maps to it: written empty")
    for name in TABLES:
        tables[name] = tables[name][TABLES[name].column_names]
    return Converted(tables, origin, columns, run.notes, _unplaced(run), run.skipped,
                     run.not_in_export, own, timing, run)


def _unplaced(run: _Run) -> list[dict[str, object]]:
    return [
        {"table": t, "column": c, "what": u.what, "rows": u.rows, "examples": u.examples()}
        for (t, c, _), u in run.unplaced.items() if u.rows
    ]


_COUNT = re.compile(r"\d[\d,]*")


def _merged_notes(chunks: list[list[str]]) -> list[str]:
    """Notes said once per chunk, said once: the same words with their counts added up, in
    the order the chunks said them in (each chunk says them in the code's order)."""
    sums: dict[str, list[int]] = {}
    order: list[str] = []
    for notes in chunks:
        shapes = [_COUNT.sub("\0", note) for note in notes]
        for i, (shape, note) in enumerate(zip(shapes, notes, strict=True)):
            counts = [int(n.replace(",", "")) for n in _COUNT.findall(note)]
            if shape not in sums:
                later = [order.index(x) for x in shapes[i + 1:] if x in sums]
                earlier = [order.index(x) for x in shapes[:i] if x in sums]
                at = later[0] if later else earlier[-1] + 1 if earlier else len(order)
                order.insert(at, shape)
                sums[shape] = [0] * len(counts)
            sums[shape] = [a + b for a, b in zip(sums[shape], counts, strict=True)]
    merged = []
    for shape in order:
        pieces = shape.split("\0")
        text = pieces[0]
        for n, piece in zip(sums[shape], pieces[1:], strict=True):
            text += f"{n:,}{piece}"
        merged.append(text)
    return merged


@dataclass
class ActivityChunk:
    table: pa.Table
    """The chunk's activities, every contract column as Arrow text (what the loader
    checks), as ``Converted.tables`` would hold them."""
    origin: pd.DataFrame
    """Per row: ``file``, ``row`` (0-based data row of the whole file) and ``part``."""


class ActivityStream:
    """Activities converted chunk by chunk after ``convert`` ran on the rest of the export
    (with empty activity files), exactly as ``convert`` would have converted them at once.

    ``chunk`` converts some rows of one activity file; ``finish`` puts what the chunks had
    to say (notes, unplaced values, skipped rows) into ``converted``. Only for mappings
    where no activity value depends on the whole file (``streamable``).
    """

    def __init__(self, converted: Converted, sources: dict[str, Source]) -> None:
        assert converted.run is not None
        self.converted = converted
        self.run = converted.run
        self.sources = sources  # the activity files' empty stand-ins, by source name
        self.notes: list[list[str]] = []  # per chunk
        self.link_notes: list[list[str]] = []
        self.skipped: dict[tuple[object, object, object], dict[str, object]] = {}
        self.at = self.run.links_at
        self.rows = 0
        self.arrow = arrow_ready(self.run, sources)
        # The parents' keys and accounts, for the activities' links (``_fill_links_arrow``).
        self.parents: dict[str, tuple[KeyIndex, pa.Array]] = {}
        if self.arrow:
            for table, key in (("opportunities", "opportunity_id"), ("leads", "lead_id")):
                frame = converted.tables[table]
                self.parents[table] = (KeyIndex(as_arrow_text(frame[key])),
                                       as_arrow_text(frame["account_id"]))
        self.roles: tuple[KeyIndex, pa.Array, str] | None = None
        deal_of = _deal_of_contact(self.run, self.run.m) if self.arrow else None
        if deal_of is not None:
            single, file = deal_of
            self.roles = (KeyIndex(as_arrow_text(pd.Series(single.index, dtype=object))),
                          as_arrow_text(single), file)

    def chunk(self, name: str, block: pa.Table, first_row: int) -> ActivityChunk:
        """Convert a block of the file of source ``name`` (its columns as the reader gives
        them: trimmed Arrow text, empty as null) that starts at the file's ``first_row``."""
        if self.arrow:
            return self._chunk_arrow(name, block, first_row)
        return self._chunk_frame(name, text_frame(block), first_row)

    def _chunk_arrow(self, name: str, block: pa.Table, first_row: int) -> ActivityChunk:
        run = self.run
        notes, skipped = len(run.notes), len(run.skipped)
        absent = {k: list(v) for k, v in run.not_in_export.items()}
        parts: list[_ArrowPart] = []
        for pname, tm in run.m.parts("activities"):
            src = self.sources.get(tm.source)
            if src is None:
                files = run.m.sources.get(tm.source)
                names = ", ".join(files.file) if files else tm.source
                run.notes.append(f"activities: no file {names} in the export; not read")
                continue
            tbl = block if tm.source == name else pa.table(
                {c: pa.array([], type=pa.string()) for c in src.frame.columns})
            p = run.part_arrow("activities", pname, tm, src.file, tbl, src.header)
            if tm.source == name:
                p.rows = p.rows + first_row
            parts.append(p)
        if parts:
            acts = pa.concat_tables([p.frame for p in parts])
        else:
            acts = pa.table({c: pa.array([], type=pa.string())
                             for c in TABLES["activities"].column_names})
        _, origin, _ = _stack([_Part(pd.DataFrame(), p.file, p.rows, p.columns)
                               for p in parts], "activities")
        self.notes.append(run.notes[notes:])
        del run.notes[notes:]
        acts = _fill_links_arrow(run, acts, self.parents, self.roles)
        self.link_notes.append(run.notes[notes:])
        del run.notes[notes:]
        self._merge_skipped(skipped)
        run.not_in_export = absent
        self.rows += acts.num_rows
        return ActivityChunk(acts, origin)

    def _chunk_frame(self, name: str, frame: pd.DataFrame, first_row: int) -> ActivityChunk:
        run = self.run
        src = self.sources[name]
        run.sources = {**run.sources, **self.sources,
                       name: Source(src.name, src.file, frame, {}, src.header)}
        notes, skipped = len(run.notes), len(run.skipped)
        absent = {k: list(v) for k, v in run.not_in_export.items()}
        parts = run.table("activities")
        for p in parts:
            if p.file == src.file:
                p.rows = p.rows + first_row
        acts, origin, _ = _stack(parts, "activities")
        self.notes.append(run.notes[notes:])
        del run.notes[notes:]
        tables = {**self.converted.tables, "activities": acts}
        _fill_activity_links(run, run.m, tables)
        self.link_notes.append(run.notes[notes:])
        del run.notes[notes:]
        self._merge_skipped(skipped)
        run.not_in_export = absent
        self.rows += len(acts)
        cols = TABLES["activities"].column_names
        return ActivityChunk(pa.table({c: as_arrow_text(acts[c]) for c in cols}), origin)

    def _merge_skipped(self, skipped: int) -> None:
        """The rows this chunk skipped, added to those of the chunks before it."""
        run = self.run
        for item in run.skipped[skipped:]:
            key = (item["table"], item["file"], item["column"])
            got = self.skipped.setdefault(key, {**item, "rows": 0, "values": {}})
            got["rows"] = int(got["rows"]) + int(item["rows"])  # type: ignore[call-overload]
            values = got["values"]
            assert isinstance(values, dict)
            for v, n in item["values"].items():  # type: ignore[attr-defined]
                values[v] = values.get(v, 0) + n
        del run.skipped[skipped:]

    def finish(self) -> None:
        run = self.run
        if self.rows:
            run.notes.remove("activities: nothing in the export maps to it: written empty")
        run.notes[self.at:self.at] = _merged_notes(self.link_notes)
        at, skipped_at = run.acts_at
        run.notes[at:at] = _merged_notes(self.notes)
        run.skipped[skipped_at:skipped_at] = list(self.skipped.values())
        self.converted.notes = run.notes
        self.converted.skipped = run.skipped
        self.converted.unplaced = _unplaced(run)


def text_frame(block: pa.Table) -> pd.DataFrame:
    """Arrow text columns as the pandas frame of a ``Source`` (Python strings, None)."""
    return pd.DataFrame(
        {c: pd.Series(block.column(c).combine_chunks().to_numpy(zero_copy_only=False),
                      dtype=object) for c in block.column_names},
        index=pd.RangeIndex(block.num_rows))


_ARROW_KINDS = ("string", "category", "timestamp")


def arrow_ready(run: _Run, streamed: dict[str, Source]) -> bool:
    """Whether the activities' maps are ones ``_Run.part_arrow`` converts as ``part``
    does: columns read as written, by prefix, by value map or as times; no lookup, no
    made-up values, no own features."""
    m = run.m
    if m.features.get("activities"):
        return False
    contract = TABLES["activities"]
    for _, tm in m.parts("activities"):
        if tm.source in run.sources and tm.source not in streamed:
            return False
        if any(x is not None for x in (tm.status, tm.status_at, tm.stage)):
            return False
        for c in contract.columns:
            fm = tm.fields.get(c.name)
            if fm is None:
                continue
            if c.kind not in _ARROW_KINDS or fm.lookup is not None or fm.row_id is not None \
                    or fm.sequence is not None:
                return False
    return True


def _fill_links_arrow(run: _Run, acts: pa.Table, parents: dict[str, tuple[KeyIndex, pa.Array]],
                      roles: tuple[KeyIndex, pa.Array, str] | None) -> pa.Table:
    """``_fill_activity_links`` on Arrow text: ``parents`` holds the keys and accounts of
    the deals and leads, ``roles`` each contact's one deal (``_deal_of_contact``)."""
    if acts.num_rows == 0:
        return acts
    lead = acts.column("lead_id").combine_chunks()
    contact = acts.column("contact_id").combine_chunks()
    lead_ids, _ = parents["leads"]
    lead_at = lead_ids.positions(lead)  # -1 for a lead not among the leads (or none)
    not_lead = np_mask(pc.and_(pc.is_valid(lead), pc.equal(lead, contact))) & (lead_at < 0)
    n_not = int(not_lead.sum())
    if n_not:
        lead = pc.if_else(pa.array(not_lead), pa.scalar(None, pa.string()), lead)
        acts = acts.set_column(acts.schema.get_field_index("lead_id"), "lead_id", lead)
        run.notes.append(f"activities: {n_not:,} with a contact that is not "
                         "among the leads: kept with the contact, no lead")
    if roles is not None:
        contacts, deals, file = roles
        deal = acts.column("opportunity_id").combine_chunks()
        fill = pc.and_(pc.is_null(deal), pc.is_valid(contact))
        got = pc.take(deals, contacts.index_in(contact))
        ok = pc.and_(fill, pc.is_valid(got))
        n_put = int(pc.sum(pc.cast(ok, pa.int64())).as_py() or 0)
        if n_put:
            acts = acts.set_column(acts.schema.get_field_index("opportunity_id"),
                                   "opportunity_id", pc.if_else(ok, got, deal))
            run.notes.append(f"activities: {n_put:,} put on the one deal their contact is "
                             f"on ({file})")
    account = acts.column("account_id").combine_chunks()
    filled = 0
    for table, key in (("opportunities", "opportunity_id"), ("leads", "lead_id")):
        keys, accounts = parents[table]
        ref = acts.column(key).combine_chunks()
        need = pc.and_(pc.is_null(account), pc.is_valid(ref))
        if not pc.any(need).as_py():
            continue
        # (a lead set to none above was not among the leads: it finds no account either)
        at = lead_at if table == "leads" else keys.positions(ref)
        got = pc.take(accounts, pa.array(at, type=pa.int64(), mask=at < 0))
        ok = pc.and_(need, pc.is_valid(got))
        account = pc.if_else(ok, got, account)
        filled += int(pc.sum(pc.cast(ok, pa.int64())).as_py() or 0)
    if filled:
        acts = acts.set_column(acts.schema.get_field_index("account_id"), "account_id", account)
        run.notes.append(f"activities: account_id from the activity's deal or lead for "
                         f"{filled:,} row(s)")
    return acts


# ---------------------------------------------------------------------------------------
# Leads: outcomes from a status.


def _lead_outcomes(run: _Run, mapping: Mapping, leads: pd.DataFrame,
                   parts: list[_Part]) -> None:
    if "_status" not in leads or leads.empty:
        return
    status = leads["_status"]
    when = leads["_status_at"] if "_status_at" in leads else pd.Series(None, index=leads.index)
    tms = [tm for _, tm in mapping.parts("leads") if tm.source in run.sources]
    tm = tms[0] if tms else None
    if tm is not None and tm.status_history is not None:
        when = when.where(when.notna(), _status_dates(run, tm.status_history, leads))
    undated = status.isin(["qualified", "disqualified"]) & when.isna()
    if undated.any() and tm is not None and tm.undated_outcome_days is not None:
        created = pd.to_datetime(leads["created_at"], utc=True, errors="coerce",
                                 format="ISO8601")
        days = pd.Timedelta(days=tm.undated_outcome_days)
        fill = (created + days).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        when = when.where(~undated, fill)
        run.notes.append(
            f"leads: {int(undated.sum()):,} outcome(s) with no date in the export, dated "
            f"{tm.undated_outcome_days:g} day(s) after creation (undated_outcome_days)"
        )
    elif undated.any():
        run.notes.append(
            f"leads: {int(undated.sum()):,} outcome(s) with no date in the export and no "
            "undated_outcome_days: left open"
        )
    for col, word in (("qualified_at", "qualified"), ("disqualified_at", "disqualified")):
        fill = leads[col].isna() & status.eq(word) & when.notna()
        leads.loc[fill, col] = when[fill]
        absent = run.not_in_export.get("leads", [])
        if fill.any() and col in absent:
            absent.remove(col)
        _to_the_second(run, leads, col, status.eq(word), when)


def _to_the_second(run: _Run, leads: pd.DataFrame, col: str, took: pd.Series,
                   when: pd.Series) -> None:
    """An outcome dated by a date alone (Salesforce's ConvertedDate: the day's start)
    takes the time of day from the status history when that falls on the same day."""
    have = took & leads[col].notna() & when.notna()
    if not have.any():
        return
    day = pd.to_datetime(leads.loc[have, col], utc=True, errors="coerce", format="ISO8601")
    at = pd.to_datetime(when[have], utc=True, errors="coerce", format="ISO8601")
    same = (day == day.dt.floor("D")) & (at.dt.floor("D") == day) & (at != day)
    if same.any():
        idx = same[same].index
        leads.loc[idx, col] = at[idx].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        run.notes.append(f"leads: {col} of {len(idx):,} lead(s) to the second from the "
                         "status history (the export dates it by the day)")


def _status_dates(run: _Run, sh: StatusHistory, leads: pd.DataFrame) -> pd.Series:
    """When each lead first took its current status, from a field-history table."""
    src = run.sources.get(sh.source)
    empty = pd.Series(None, index=leads.index, dtype=object)
    if src is None:
        return empty
    df = src.frame
    cols = [find_column(df.columns, n) for n in (sh.id, sh.field, sh.new_value, sh.changed_at)]
    if any(c is None for c in cols):
        run.notes.append(f"{src.file}: not the columns of a lead history; not used")
        return empty
    id_c, f_c, v_c, t_c = cols
    fields = clean_text(df[f_c])
    rows = df[fields.isin(sh.field_name)]
    at, _ = to_utc_text(clean_text(rows[t_c]), plain("x"), run.m.timezone)
    hist = pd.DataFrame({"id": clean_text(rows[id_c]), "value": clean_text(rows[v_c]),
                         "at": at})
    tm = next(t for _, t in run.m.parts("leads"))
    if tm.status is not None:
        hist["value"] = apply_value_map(hist["value"], tm.status, Unplaced("history"))
    first = hist.sort_values("at").drop_duplicates(["id", "value"])
    look = first.set_index(["id", "value"])["at"]
    keys = pd.MultiIndex.from_arrays([leads["lead_id"], leads["_status"]])
    found = look.reindex(keys).to_numpy()
    run.notes.append(f"leads: status dates read from {src.file}")
    return pd.Series(found, index=leads.index, dtype=object)


# ---------------------------------------------------------------------------------------
# Deals: outcomes from the stage, and a history where the export has none.


def _deal_outcomes(run: _Run, opps: pd.DataFrame) -> pd.Series:
    """is_won and closed_at from the stage where the export lacks them; returns which
    deals' closed_at was taken from the close date (a date, often only the day)."""
    none = pd.Series(False, index=opps.index)
    if "_stage" not in opps or opps.empty:
        return none
    stage = opps["_stage"]
    won = stage.eq("closed_won")
    closed = won | stage.eq("closed_lost")
    fill = opps["is_won"].isna() & closed
    opps.loc[fill, "is_won"] = np.where(won[fill], "true", "false")
    fill_at = opps["closed_at"].isna() & closed & opps["close_date"].notna()
    opps.loc[fill_at, "closed_at"] = opps.loc[fill_at, "close_date"]
    if fill.any():
        run.notes.append(f"opportunities: is_won from the stage for {int(fill.sum()):,} "
                         "closed deal(s)")
    if fill_at.any():
        run.notes.append(f"opportunities: closed_at from the close date for "
                         f"{int(fill_at.sum()):,} closed deal(s)")
    return fill_at


def _deal_leads(run: _Run, opps: pd.DataFrame, leads: pd.DataFrame) -> None:
    """A deal's lead, where the export names it only on the lead (Salesforce's
    ConvertedOpportunityId): the one lead converted into the deal."""
    if opps.empty or leads.empty or not opps["lead_id"].isna().any():
        return
    pairs = leads[["opportunity_id", "lead_id"]].dropna()
    pairs = pairs[~pairs["opportunity_id"].duplicated(keep=False)]
    look = pd.Series(pairs["lead_id"].to_numpy(), index=pairs["opportunity_id"].to_numpy())
    need = opps["lead_id"].isna()
    got = opps.loc[need, "opportunity_id"].map(look)
    got = got[got.notna()]
    if len(got):
        opps.loc[got.index, "lead_id"] = got
        run.notes.append(f"opportunities: lead_id from the lead converted into the deal for "
                         f"{len(got):,} deal(s)")
        absent = run.not_in_export.get("opportunities", [])
        if "lead_id" in absent:
            absent.remove("lead_id")


def _closed_at_from_history(run: _Run, opps: pd.DataFrame, hist: pd.DataFrame,
                            from_date: pd.Series) -> None:
    """A closed deal whose closed_at came from its close date (a date: the end of that
    day) closed when its history entered the closed stage, to the second: that time
    wins where the history has it."""
    if not from_date.any() or hist.empty:
        return
    stage_of = pd.Series(opps["_stage"].to_numpy() if "_stage" in opps else None,
                         index=opps["opportunity_id"].to_numpy())
    h = hist[hist["stage"].isin(("closed_won", "closed_lost"))]
    h = h[h["stage"].to_numpy() == stage_of.reindex(h["opportunity_id"]).to_numpy()]
    at = pd.to_datetime(h["changed_at"], utc=True, errors="coerce", format="ISO8601")
    first = at.groupby(h["opportunity_id"].to_numpy()).min().dropna()
    got = opps.loc[from_date, "opportunity_id"].map(first)
    got = got[got.notna()]
    if len(got):
        opps.loc[got.index, "closed_at"] = got.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        run.notes.append(f"opportunities: closed_at from the stage history for "
                         f"{len(got):,} of those deal(s) (the time it entered its closed stage)")


def _derived_history(run: _Run, mapping: Mapping, opps: pd.DataFrame,
                     opp_origin: pd.DataFrame, parts: list[_Part]
                     ) -> tuple[pd.DataFrame, pd.DataFrame, list[dict[str, str]]]:
    cols = TABLES["opportunity_history"].column_names
    tms = [tm for _, tm in mapping.parts("opportunities") if tm.source in run.sources]
    tm = tms[0] if tms else None
    pieces: list[pd.DataFrame] = []
    if tm is not None and tm.field_history is not None and tm.field_history.source in run.sources:
        pieces.append(_from_field_history(run, tm, opps))
    if tm is not None and tm.stage_entered and "_stage" in opps:
        pieces.append(_from_stage_columns(run, tm, opps, parts))
    # Whatever the export says, every deal starts somewhere and a closed one ends closed.
    have = pd.concat(pieces, ignore_index=True) if pieces else pd.DataFrame(columns=cols + ["i"])
    stage = opps["_stage"] if "_stage" in opps else pd.Series(None, index=opps.index)
    is_open = stage.isin(OPEN_STAGES) | stage.isna()
    start_stage = tm.created_stage if tm is not None else "prospecting"
    first_known = set(have["i"]) if len(have) else set()
    idx = np.arange(len(opps))
    need_start = np.array([i not in first_known for i in idx], dtype=bool)
    # An open deal with no dated history: its current stage is all that is known.
    start = np.where(is_open.to_numpy() & stage.notna().to_numpy(), stage.to_numpy(object),
                     start_stage)
    created_rows = pd.DataFrame({
        "opportunity_id": opps["opportunity_id"], "changed_at": opps["created_at"],
        "stage": start, "amount": opps["amount"], "close_date": opps["close_date"], "i": idx,
    })[need_start]
    moved = int((need_start & is_open.to_numpy() & stage.notna().to_numpy()
                 & (stage.to_numpy(object) != start_stage)).sum())
    closed = ~is_open & opps["closed_at"].notna()
    closing = pd.DataFrame({
        "opportunity_id": opps["opportunity_id"], "changed_at": opps["closed_at"],
        "stage": stage, "amount": opps["amount"], "close_date": opps["close_date"], "i": idx,
    })[closed.to_numpy()]
    if len(have):
        seen = set(zip(have["i"], have["stage"], strict=True))
        closing = closing[[(i, s) not in seen for i, s in zip(closing["i"], closing["stage"],
                                                               strict=True)]]
    hist = pd.concat([created_rows, have, closing], ignore_index=True)
    hist = hist.drop_duplicates(["i", "changed_at", "stage"])
    hist = hist.sort_values(["i", "changed_at"], kind="stable").reset_index(drop=True)
    if len(opps):
        run.notes.append(
            "opportunity_history: not in the export; made from each deal's dates: "
            f"{len(created_rows):,} row(s) at creation (stage {start_stage}"
            + (f"; {moved:,} open deal(s) at their current stage, known only as of the export"
               if moved else "")
            + f"), {len(closing):,} at close"
            + (f", {len(have):,} from the export's stage dates or field history"
               if len(have) else "")
        )
    i = hist.pop("i").to_numpy(dtype=np.int64)
    origin = opp_origin.iloc[i].reset_index(drop=True) if len(i) else pd.DataFrame(
        {"file": pd.Series([], dtype=object), "row": pd.Series([], dtype=np.int64),
         "part": pd.Series([], dtype=np.int64)})
    part_cols = [
        {"opportunity_id": p.columns.get("opportunity_id", DERIVED),
         "stage": p.columns.get("stage", DERIVED),
         "changed_at": _derived_from(p.columns, "created_at", "closed_at", "close_date"),
         "amount": p.columns.get("amount", DERIVED),
         "close_date": p.columns.get("close_date", DERIVED)} for p in parts
    ]
    return hist[cols].astype(object).where(hist[cols].notna(), None), origin, part_cols


def _derived_from(columns: dict[str, str], *names: str) -> str:
    used = [columns[n] for n in names if n in columns]
    return f"{' / '.join(dict.fromkeys(used))} (derived)" if used else DERIVED


def _from_stage_columns(run: _Run, tm: TableMap, opps: pd.DataFrame,
                        parts: list[_Part]) -> pd.DataFrame:
    """One history row per filled `date entered <stage>` column (HubSpot's shape)."""
    assert tm.stage is not None
    src = run.sources[tm.source]
    frame = src.frame.iloc[parts[0].rows].reset_index(drop=True) if parts else src.frame
    out = []
    for pattern in tm.stage_entered:
        head, _, tail = pattern.partition("{stage}")
        rx = re.compile("^" + re.escape(head) + "(.+)" + re.escape(tail) + "$")
        for col in frame.columns:
            hit = rx.match(str(col))
            if not hit:
                continue
            crm_stage = hit.group(1)
            dates = clean_text(frame[col].reset_index(drop=True))
            has = dates.notna().to_numpy()
            if not has.any():
                continue
            mapped = apply_value_map(pd.Series([crm_stage]), tm.stage, run.placed(
                "opportunity_history", "stage", f"{col}: stage not in the value map"))
            at, _ = to_utc_text(dates, plain(col), run.m.timezone)
            out.append(pd.DataFrame({
                "opportunity_id": opps["opportunity_id"][has], "changed_at": at[has],
                "stage": mapped.iat[0], "amount": None, "close_date": None,
                "i": np.flatnonzero(has)}))
        if out:
            break  # the first pattern present wins (hs_v2_ before hs_)
    if not out:
        return pd.DataFrame(columns=[*TABLES["opportunity_history"].column_names, "i"])
    return pd.concat(out, ignore_index=True)


def _from_field_history(run: _Run, tm: TableMap, opps: pd.DataFrame) -> pd.DataFrame:
    """A deal's history from one row per field change (stage, amount, close date)."""
    fh: FieldHistory = tm.field_history  # type: ignore[assignment]
    src = run.sources[fh.source]
    df = src.frame
    names = [find_column(df.columns, n) for n in (fh.id, fh.field, fh.new_value, fh.changed_at)]
    if any(n is None for n in names):
        run.notes.append(f"{src.file}: not the columns of a field history; not used")
        return pd.DataFrame(columns=[*TABLES["opportunity_history"].column_names, "i"])
    id_c, f_c, v_c, t_c = (str(n) for n in names)
    old_c = find_column(df.columns, fh.old_value) if fh.old_value else None
    field_name = clean_text(df[f_c])
    kind = pd.Series(None, index=df.index, dtype=object)
    for k, alts in (("stage", fh.stage), ("amount", fh.amount), ("close_date", fh.close_date)):
        kind[field_name.isin(alts)] = k
    rows = df[kind.notna()].copy()
    rows["_kind"] = kind[kind.notna()]
    pos = pd.Series(np.arange(len(opps)), index=opps["opportunity_id"].to_numpy())
    pos = pos[~pos.index.duplicated()]
    rows["i"] = clean_text(rows[id_c]).map(pos)
    rows = rows[rows["i"].notna()]
    at, _ = to_utc_text(clean_text(rows[t_c]), plain(t_c), run.m.timezone)
    rows["_at"] = at
    rows = rows.sort_values(["i", "_at"], kind="stable")
    stage_fm = tm.stage or plain("x")
    new = clean_text(rows[v_c])
    is_stage = rows["_kind"].eq("stage")
    unplaced = run.placed("opportunity_history", "stage", f"{v_c}: stage not in the value map")
    mapped_new = apply_value_map(new.where(is_stage, None), stage_fm, unplaced)
    dates = tm.fields.get("close_date") or plain(v_c)
    is_date = rows["_kind"].eq("close_date")

    def as_date(text: pd.Series) -> pd.Series:
        # a close date in the history reads as the deal's own close date does (a date: the
        # end of that day where the preset says so)
        done, _ = to_utc_text(text.where(is_date, None), dates, run.m.timezone)
        return text.where(~is_date, done)

    new = as_date(new)
    out = pd.DataFrame({"i": rows["i"].astype(np.int64), "changed_at": rows["_at"],
                        "stage": mapped_new.where(is_stage, None)})
    for k in ("amount", "close_date"):
        out[k] = new.where(rows["_kind"].eq(k), None)
    # Before a field's first change it held the change's old value; a field that never
    # changed held its current value all along.
    first = ~rows.duplicated(subset=["i", "_kind"])
    current = {"stage": opps["_stage"] if "_stage" in opps else pd.Series(None, index=opps.index),
               "amount": opps["amount"], "close_date": opps["close_date"]}
    deals = np.unique(rows["i"].to_numpy(dtype=np.int64))
    initial: dict[str, pd.Series] = {}
    for k in ("stage", "amount", "close_date"):
        now = pd.Series(current[k].to_numpy(object)[deals], index=deals, dtype=object)
        if old_c is None:
            initial[k] = now
            continue
        hit = first & rows["_kind"].eq(k)
        old = clean_text(rows[old_c]).where(hit, None)
        old = apply_value_map(old, stage_fm, unplaced) if k == "stage" else as_date(old)
        before = pd.Series(old[hit].to_numpy(object), index=rows["i"][hit].to_numpy(np.int64))
        initial[k] = before.reindex(deals).where(lambda x: x.notna(), now)
    out["stage"] = out.groupby("i")["stage"].ffill()
    fill = out["stage"].isna()
    out.loc[fill, "stage"] = out.loc[fill, "i"].map(initial["stage"])
    out = out[out["stage"].notna()]
    # Changes saved together (a stage and an amount in one edit) are one history row.
    out = out.groupby(["i", "changed_at"], as_index=False, sort=False).agg(
        {"stage": "last", "amount": "first", "close_date": "first"})
    if old_c is not None:  # the deal as created, dated at its creation
        created = pd.DataFrame({"i": deals, "changed_at": opps["created_at"].to_numpy()[deals],
                                **{k: initial[k].to_numpy(object) for k in initial}})
        created = created[created["stage"].notna()]
        out = pd.concat([created, out], ignore_index=True)
    # A row holds the values as of its change: an amount or close date not changed in that
    # edit is the one set last.
    out = out.sort_values(["i", "changed_at"], kind="stable").reset_index(drop=True)
    out[["amount", "close_date"]] = out.groupby("i")[["amount", "close_date"]].ffill()
    out["opportunity_id"] = opps["opportunity_id"].to_numpy()[out["i"].to_numpy(dtype=np.int64)]
    run.notes.append(f"opportunity_history: from the field history in {src.file} "
                     f"({len(out):,} row(s))")
    return out


def _field_changes(run: _Run, table: str, tm: TableMap, fields: list[str]) -> _Part | None:
    """The records' changes of ``fields`` (attributes known from history) as rows of the
    contract's field-history table, each value read through the attribute's own field map;
    None when the export has no such history."""
    wanted = [(col, tm.fields[col], TABLES[table].column(col).kind) for col in fields]
    return _changes_of(run, table, tm, wanted, HISTORY_TABLES[table],
                       "features read these attributes as of each snapshot")


def _own_changes(run: _Run, table: str, tm: TableMap) -> pd.DataFrame | None:
    """The changes of the table's own ``history`` features (the mapping's ``features:``),
    their values read as each feature's column is: text, typed by ``own_history``."""
    wanted = [(name, om, "float" if om.type == "number" else "category")
              for name, om in run.m.features.get(table, {}).items() if om.known_at == "history"]
    part = _changes_of(run, table, tm, wanted, f"{table}' own features",
                       "read as of each snapshot")
    return None if part is None else part.frame


def _changes_of(run: _Run, table: str, tm: TableMap,
                wanted: Sequence[tuple[str, FieldMap, str]], what: str,
                how: str) -> _Part | None:
    """The rows of the table's field history (``changes:``) that change one of ``wanted``
    (name, its field map, its kind), each value read through that field map; None when
    the export has none. The import report says where ``what`` came from and ``how``
    it is read."""
    ch = tm.changes
    if ch is None or not wanted or ch.source not in run.sources:
        return None
    src = run.sources[ch.source]
    df = src.frame
    found = [find_column(df.columns, n) for n in (ch.id, ch.field, ch.new_value, ch.changed_at)]
    if any(c is None for c in found):
        run.notes.append(f"{src.file}: not the columns of a field history (id, field, new "
                         "value, time); not used")
        return None
    id_c, f_c, v_c, t_c = (str(c) for c in found)
    old_c = find_column(df.columns, ch.old_value) if ch.old_value else None
    names = clean_text(df[f_c])
    loose = pd.Series({v: loose_name(str(v)) for v in names.dropna().unique()}, dtype=object)
    key = TABLES[table].key
    assert key is not None
    out: list[pd.DataFrame] = []
    where: list[np.ndarray] = []
    counts: list[str] = []
    for col, fm, kind in wanted:
        if not fm.column:
            continue  # a constant or a made-up value has no history
        named = {loose_name(n) for n in (ch.names.get(col) or fm.column)}
        hit = names.map(loose).isin(named).to_numpy()
        if not hit.any():
            continue
        rows = df.loc[hit]

        def read(column: str, rows: pd.DataFrame = rows, fm: FieldMap = fm,
                 col: str = col, kind: str = kind) -> pd.Series:
            probe = Source(src.name, src.file, pd.DataFrame({column: rows[column]}))
            values, _ = run.field(table, col, kind, fm.model_copy(update={"column": (column,)}),
                                  probe, f"tables.{table}.changes")
            assert values is not None
            return values

        at, _ = to_utc_text(clean_text(rows[t_c]), plain(t_c), run.m.timezone)
        piece = pd.DataFrame({key: clean_text(rows[id_c]), "changed_at": at, "field": col,
                              "old_value": read(old_c) if old_c is not None else None,
                              "new_value": read(v_c)})
        if old_c is None:  # the value before a change is the one the previous change set
            piece = piece.sort_values([key, "changed_at"], kind="stable")
            piece["old_value"] = piece.groupby(key, sort=False)["new_value"].shift(1)
        out.append(piece)
        where.append(piece.index.to_numpy())  # the rows of the file (its frame's index)
        counts.append(f"{col} {len(piece):,}")
    if not out:
        run.notes.append(f"{what}: no change of {', '.join(w[0] for w in wanted)} in "
                         f"{src.file}")
        return None
    frame = pd.concat(out, ignore_index=True).astype(object)
    frame = frame.where(frame.notna(), None)
    used = {key: id_c, "changed_at": t_c, "field": f_c, "new_value": v_c,
            "old_value": old_c or f"{v_c} (derived: the previous change's)"}
    run.notes.append(f"{what}: from {src.file} ({', '.join(counts)} change(s)); {how}")
    return _Part(frame, src.file, np.concatenate(where).astype(np.int64), used)


# ---------------------------------------------------------------------------------------
# Activities and accounts.


def _deal_of_contact(run: _Run, mapping: Mapping) -> tuple[pd.Series, str] | None:
    """Per contact of the contact roles (``contact_roles``), its one deal (None for a
    contact on several), and the roles' file; None when the export has no such roles."""
    roles: list[ContactRoles] = [tm.contact_roles for _, tm in mapping.parts("activities")
                                 if tm.contact_roles is not None]
    if not roles or roles[0].source not in run.sources:
        return None
    src = run.sources[roles[0].source]
    cr = src.frame
    c_col = find_column(cr.columns, roles[0].contact)
    o_col = find_column(cr.columns, roles[0].opportunity)
    if not c_col or not o_col:
        return None
    pairs = pd.DataFrame({"c": clean_text(cr[c_col]), "o": clean_text(cr[o_col])})
    pairs = pairs.dropna().drop_duplicates()
    single = pairs.groupby("c")["o"].agg(lambda s: s.iat[0] if len(s) == 1 else None)
    return single, src.file


def _fill_activity_links(run: _Run, mapping: Mapping, tables: dict[str, pd.DataFrame]) -> None:
    acts = tables["activities"]
    if acts.empty:
        return
    # A person column read as both lead and contact (HubSpot's associated contact) names a
    # contact the leads do not hold: the activity keeps the contact, not a lead.
    not_lead = (acts["lead_id"].notna() & acts["lead_id"].eq(acts["contact_id"])
                & ~acts["lead_id"].isin(tables["leads"]["lead_id"]))
    if not_lead.any():
        acts.loc[not_lead, "lead_id"] = None
        run.notes.append(f"activities: {int(not_lead.sum()):,} with a contact that is not "
                         "among the leads: kept with the contact, no lead")
    deal_of = _deal_of_contact(run, mapping)
    if deal_of is not None:
        single, file = deal_of
        fill = acts["opportunity_id"].isna() & acts["contact_id"].notna()
        got = acts.loc[fill, "contact_id"].map(single)
        acts.loc[got[got.notna()].index, "opportunity_id"] = got[got.notna()]
        if got.notna().any():
            run.notes.append(f"activities: {int(got.notna().sum()):,} put on the one deal "
                             f"their contact is on ({file})")
    filled = 0
    for table, key in (("opportunities", "opportunity_id"), ("leads", "lead_id")):
        parent = tables[table]
        look = pd.Series(parent["account_id"].to_numpy(), index=parent[key].to_numpy())
        look = look[~look.index.duplicated()]
        need = acts["account_id"].isna() & acts[key].notna()
        got = acts.loc[need, key].map(look)
        ok = got[got.notna()]
        acts.loc[ok.index, "account_id"] = ok
        filled += len(ok)
    if filled:
        run.notes.append(f"activities: account_id from the activity's deal or lead for "
                         f"{filled:,} row(s)")


def _accounts(run: _Run, tables: dict[str, pd.DataFrame], origin: dict[str, pd.DataFrame],
              columns: dict[str, list[dict[str, str]]]) -> None:
    """Accounts the export does not list are derived from the names and ids that leads,
    deals and activities refer to; an account's missing creation time is the first time
    anything refers to it."""
    refs = []
    for table, time_col in (("leads", "created_at"), ("opportunities", "created_at"),
                            ("activities", "occurred_at")):
        t = tables[table]
        if len(t):
            refs.append(pd.DataFrame({"id": t["account_id"], "at": t[time_col],
                                      "file": origin[table]["file"], "row": origin[table]["row"]}))
    ref = pd.concat(refs, ignore_index=True) if refs else pd.DataFrame(
        columns=["id", "at", "file", "row"])
    ref = ref[ref["id"].notna()]
    first_at = _iso_min(ref["at"], ref["id"])
    accounts = tables["accounts"]
    if not run.m.parts("accounts") or (accounts.empty and len(ref)):
        ids = ref.drop_duplicates("id")
        derived = pd.DataFrame({c: None for c in TABLES["accounts"].column_names},
                               index=range(len(ids)))
        derived["account_id"] = ids["id"].to_numpy()
        derived["name"] = ids["id"].to_numpy()
        derived["created_at"] = ids["id"].map(first_at).to_numpy()
        tables["accounts"] = derived.astype(object).where(derived.notna(), None)
        origin["accounts"] = pd.DataFrame({"file": ids["file"].to_numpy(),
                                           "row": ids["row"].to_numpy(dtype=np.int64),
                                           "part": 0})
        columns["accounts"] = [{"account_id": "(account named by leads, deals, activities)"}]
        run.notes.append(
            f"accounts: not in the export; {len(ids):,} derived, one per account the leads, "
            "deals and activities name, created when first named" if len(ids) else
            "accounts: not in the export, and nothing names one: written empty"
        )
        return
    need = accounts["created_at"].isna()
    if need.any():
        accounts.loc[need, "created_at"] = accounts.loc[need, "account_id"].map(first_at)
        got = int(accounts.loc[need, "created_at"].notna().sum())
        run.notes.append(f"accounts: created_at not in the export; for {got:,} account(s) the "
                         "first time a lead, deal or activity names it")


def _feature_levels(run: _Run, tables: dict[str, pd.DataFrame]) -> None:
    """Say which values the features will read as unknown (outside their fixed levels)."""
    for table in ("accounts", "leads", "opportunities"):
        t = tables[table]
        for col in FEATURE_LEVEL_COLUMNS:
            if col not in t or col not in CATEGORY_LEVELS:
                continue
            s = t[col]
            told = {v for (tb, c, what), u in run.unplaced.items()
                    if tb == table and c == col and what.endswith("kept as written")
                    for v in u.counts}
            outside = s.notna() & ~s.isin(CATEGORY_LEVELS[col]) & ~s.isin(told)
            if outside.any():
                run.placed(table, col, "outside the feature levels: features read it as "
                           "unknown").add(s[outside])
