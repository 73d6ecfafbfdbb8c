"""`leadscore import`: an export and a mapping to the contract's tables, validated.

Reads the export's files (every column as text), converts them (``convert``), validates
the result with the loader's own rules (``features.loader.validate_tables``), writes the
valid rows as one Parquet file per table, and reports every rejected row against the
export: its file, its row (0-based, as the loader counts), its column and the reason.
Beside the tables, ``known_at.json`` says when each mapped attribute is known and which
export-only ones were left out of features or kept (``features.mapping.timing``).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from features.loader import LeafChecker, LoadResult, Progress, validate_checked
from features.mapping.convert import (
    DERIVED,
    ActivityStream,
    Converted,
    ConvertError,
    Source,
    convert,
    text_frame,
)
from features.mapping.document import MappingError
from features.mapping.load import load_mapping
from features.mapping.own_columns import valid_only
from features.mapping.spec import Mapping, SourceFile
from features.mapping.timing import write_timing
from features.mapping.values import as_arrow_text, loose_name
from features.own import OwnFeature, OwnFeatures, write_own
from features.reading import DataContractError
from features.report import sorted_rejections
from features.rules import CheckedTable
from features.schema import TABLES

_T = TypeVar("_T")

REPORT_COLUMNS = ["file", "row", "column", "reason", "table", "field"]
SUMMARY_FILE = "import_report.json"


class ImportSettings(BaseSettings):
    """One import (CLI flags, or ``LEADSCORE_IMPORT_*`` variables)."""

    model_config = SettingsConfigDict(env_prefix="LEADSCORE_IMPORT_", extra="forbid")

    mapping: Path
    source: Path
    out: Path
    report: Path | None = Field(
        default=None, description="rejections CSV (default OUT/rejections.csv)"
    )
    now: str | None = Field(
        default=None, description="the latest time an event may have (default: now)"
    )

    @property
    def report_path(self) -> Path:
        return self.report if self.report is not None else self.out / "rejections.csv"


def import_settings(**values: Any) -> ImportSettings:
    return ImportSettings(**{k: v for k, v in values.items() if v is not None})


class ExportError(ValueError):
    """The export cannot be imported with this mapping at all (exit 2)."""


@dataclass(frozen=True)
class ImportResult:
    load: LoadResult
    converted: Converted
    rejections: pd.DataFrame
    """One line per problem: file, row, column (of the export), reason, table, field."""
    out: Path
    report: Path
    summary_file: Path

    @property
    def ok(self) -> bool:
        return self.rejections.empty

    def summary(self) -> dict[str, Any]:
        counts = self.load.summary().to_dict("records")
        return {
            "tables": counts,
            "rejected_rows": int(self.load.rejections.groupby("table")["row"].nunique().sum()),
            "problems": len(self.rejections),
            "derived": self.converted.notes,
            "unplaced_values": self.converted.unplaced,
            "skipped_rows": self.converted.skipped,
            "not_in_export": self.converted.not_in_export,
            "own_features": [own_summary(f, self.converted.own) for f in
                             self.converted.own.features],
            "known_at": self.converted.timing.known_at,
            "known_at_notes": self.converted.timing.notes,
            "export_only_left_out": self.converted.timing.left_out,
            "current_values_allowed": self.converted.timing.allowed,
        }


def own_summary(f: OwnFeature, own: OwnFeatures) -> dict[str, Any]:
    """One own feature as the import report gives it: where it came from, how it is
    known, how often it holds a value, and whether training will read it."""
    values = own.values[f.table][f.name]
    use = ("yes" if f.known_at == "creation" else "yes, by opt-in: a leak risk"
           if f.allowed else "no: known only at export")
    return {"name": f.name, "table": f.table, "column": f.column, "type": f.kind,
            "known_at": f.known_at, "filled": float(values.notna().mean()) if len(values)
            else 0.0, "use": use}


# ---------------------------------------------------------------------------------------
# Reading the export.


def read_sources(mapping: Mapping, folder: Path,
                 streamed: dict[str, Path] | None = None) -> dict[str, Source]:
    """Each declared source whose file is in ``folder``, every column as text; those in
    ``streamed`` with their columns and no rows (they are read later, block by block)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ExportError(f"{folder}: not a folder")
    files = {p.name: p for p in folder.iterdir() if p.is_file()}
    out: dict[str, Source] = {}
    wanted_columns = _mentioned(mapping)
    for name, spec in mapping.sources.items():
        path = _file_of(spec, files)
        if path is None:
            continue
        if streamed is not None and name in streamed:
            header = tuple(_header(path, spec.delimiter, spec.encoding))
            cols = [h for h in header if wanted_columns(h)]
            empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in cols})
            out[name] = Source(name, path.name, empty, {}, header)
            continue
        frame, emptied, header = _read_file(path, spec.delimiter, spec.encoding, spec.missing,
                                            wanted_columns)
        out[name] = Source(name, path.name, frame, emptied, header)
    if not out:
        wanted = sorted({f for s in mapping.sources.values() for f in s.file})
        raise ExportError(f"{folder}: none of the mapping's files is there "
                           f"(looked for {', '.join(wanted)}; found {', '.join(sorted(files))})")
    return out


def _file_of(spec: SourceFile, files: dict[str, Path]) -> Path | None:
    lower = {k.lower(): v for k, v in files.items()}
    return next((files.get(f) or lower.get(f.lower()) for f in spec.file
                 if (files.get(f) or lower.get(f.lower())) is not None), None)


def _mentioned(mapping: Mapping) -> Callable[[str], bool]:
    """Whether a file's column is one the mapping could read: its name, loosely, is text
    somewhere in the mapping, or it matches a stage-entry pattern. The others are not read
    (an export's object files hold dozens of columns a mapping never names)."""
    names: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str):
            names.add(loose_name(value))
        elif isinstance(value, dict):
            for k, v in value.items():
                names.add(loose_name(str(k)))
                walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)

    walk(mapping.model_dump())
    patterns = [
        re.compile("^" + re.escape(head) + ".+" + re.escape(tail) + "$")
        for _, parts in mapping.tables.items() for tm in parts.values()
        for head, _, tail in (p.partition("{stage}") for p in tm.stage_entered)
    ]
    return lambda col: loose_name(col) in names or any(rx.match(col) for rx in patterns)


def _read_file(
    path: Path, delimiter: str, encoding: str, missing: tuple[str, ...],
    wanted: Callable[[str], bool],
) -> tuple[pd.DataFrame, dict[str, int], tuple[str, ...]]:
    """The columns of the file that ``wanted`` names, as trimmed text (empty as None); how
    many cells each of ``missing`` emptied; and every column of the file, as its header
    names them. CSV is read by Arrow, every column as text."""
    try:
        if path.suffix.lower() == ".parquet":
            names = [str(n) for n in pq.ParquetFile(path).schema_arrow.names]
            tbl = pq.read_table(path, columns=[n for n in names if wanted(n.strip())])
            tbl = pa.table({n: pc.cast(tbl.column(n), pa.string()) for n in tbl.column_names})
        else:
            names = _header(path, delimiter, encoding)
            tbl = pacsv.read_csv(
                path,
                read_options=pacsv.ReadOptions(column_names=names, skip_rows=1,
                                               encoding=_arrow_encoding(encoding)),
                parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(
                    column_types={n: pa.string() for n in names}, null_values=[""],
                    include_columns=[n for n in names if wanted(n)],
                    strings_can_be_null=True, quoted_strings_can_be_null=True),
            )
    except (OSError, ValueError, UnicodeDecodeError, csv.Error, pa.ArrowException) as exc:
        raise ExportError(f"{path}: cannot be read: {exc}") from None
    frame, emptied = _as_text(tbl, missing)
    return frame, emptied, tuple(n.strip() for n in names)


def _as_text(tbl: pa.Table, missing: tuple[str, ...]) -> tuple[pd.DataFrame, dict[str, int]]:
    """A file's columns as trimmed text (empty as None), and how many cells each of
    ``missing`` emptied."""
    text, emptied = _trimmed(tbl, missing)
    return text_frame(text), emptied


def _trimmed(tbl: pa.Table, missing: tuple[str, ...]) -> tuple[pa.Table, dict[str, int]]:
    """``_as_text`` in Arrow: the columns (names stripped) as trimmed Arrow text, empty
    as null."""
    emptied: dict[str, int] = {}
    columns: dict[str, pa.Array] = {}
    tokens = pa.array(list(missing), type=pa.string()) if missing else None
    for name in tbl.column_names:
        arr = pc.utf8_trim_whitespace(tbl.column(name).combine_chunks())
        drop = pc.equal(pc.binary_length(arr), 0)
        if tokens is not None:
            hit = pc.is_in(arr, value_set=tokens)
            drop = pc.or_(drop, hit)
            if pc.any(hit).as_py():
                for item in pc.value_counts(arr.filter(hit)).to_pylist():
                    emptied[item["values"]] = emptied.get(item["values"], 0) + item["counts"]
        columns[name.strip()] = pc.if_else(drop, pa.scalar(None, pa.string()), arr)
    out = tbl.select([])  # no columns yet, the file's rows
    for name, arr in columns.items():
        out = out.append_column(name, arr)
    return out, emptied


def _read_ahead(items: Iterator[_T]) -> Iterator[_T]:
    """``items``, each next one made in a thread while the caller works on the one before
    (reading and trimming a CSV block is Arrow's code, without the interpreter's lock, so
    it runs beside the conversion and checks of the block before it)."""
    done = object()
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        ahead = pool.submit(next, items, done)
        while True:
            item = ahead.result()
            if item is done:
                return
            ahead = pool.submit(next, items, done)
            yield item  # type: ignore[misc]
    finally:
        pool.shutdown(wait=True)


def _csv_chunks(path: Path, spec: SourceFile, wanted: Callable[[str], bool],
                block_bytes: int) -> Iterator[tuple[pa.Table, dict[str, int], int]]:
    """A CSV file as ``_read_file`` reads it, a block of rows at a time: each block's
    columns as trimmed Arrow text (``_trimmed``), the cells its ``missing`` texts
    emptied, and its first data row."""
    names = _header(path, spec.delimiter, spec.encoding)
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1,
                                           encoding=_arrow_encoding(spec.encoding),
                                           block_size=block_bytes),
            parse_options=pacsv.ParseOptions(delimiter=spec.delimiter, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, null_values=[""],
                include_columns=[n for n in names if wanted(n)],
                strings_can_be_null=True, quoted_strings_can_be_null=True),
        )
        first = 0
        for batch in reader:
            block, emptied = _trimmed(pa.Table.from_batches([batch]), spec.missing)
            yield block, emptied, first
            first += batch.num_rows
    except (OSError, ValueError, UnicodeDecodeError, csv.Error, pa.ArrowException) as exc:
        raise ExportError(f"{path}: cannot be read: {exc}") from None


def _header(path: Path, delimiter: str, encoding: str) -> list[str]:
    with path.open(newline="", encoding=encoding) as fh:
        header = next(csv.reader(fh, delimiter=delimiter), None)
    if not header:
        raise ExportError(f"{path}: empty file, expected a header row")
    names = [h.strip() for h in header]
    dupes = sorted({h for h in names if names.count(h) > 1})
    if dupes:
        raise ExportError(f"{path}: repeated column(s) in the header: {', '.join(dupes)}")
    return names


def _arrow_encoding(encoding: str) -> str:
    return "utf8" if encoding.lower().replace("-", "") in ("utf8", "utf8sig") else encoding


# ---------------------------------------------------------------------------------------
# Running it.


def _arrow_text(frame: pd.DataFrame) -> pa.Table:
    return pa.table({c: as_arrow_text(frame[c]) for c in frame.columns})


def against_export(load: LoadResult, converted: Converted) -> pd.DataFrame:
    """The loader's rejections (table, row, column, reason) as lines about the export."""
    rej = load.rejections
    if rej.empty:
        return _no_lines()
    lines = [_lines(str(table), group, converted.origin[str(table)], converted.columns[str(table)])
             for table, group in rej.groupby("table", sort=False)]
    return pd.concat(lines, ignore_index=True)[REPORT_COLUMNS]


def _no_lines() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in REPORT_COLUMNS})


def _lines(table: str, group: pd.DataFrame, origin: pd.DataFrame,
           columns: list[dict[str, str]], first: int = 0) -> pd.DataFrame:
    """One table's rejections as lines about the export (``origin`` starting at the
    loader's row ``first``)."""
    rows = group["row"].to_numpy() - first
    files = origin["file"].to_numpy()[rows]
    src_rows = origin["row"].to_numpy()[rows]
    parts = origin["part"].to_numpy()[rows]
    cols = [columns[int(p)].get(str(c), DERIVED)
            for p, c in zip(parts, group["column"], strict=True)]
    return pd.DataFrame({
        "file": files, "row": src_rows, "column": cols, "reason": group["reason"].to_numpy(),
        "table": table, "field": group["column"].to_numpy(),
    })


# Activity files larger than this together are converted, checked and written a block at a
# time (``STREAM_BLOCK_BYTES`` of the file each), so that an export of tens of millions of
# activities needs the memory of one block, not of all of them.
STREAM_FILE_BYTES = 256 * 1024**2
STREAM_BLOCK_BYTES = 64 * 1024**2
STREAMED_TABLE = "activities"


def _stream_plan(mapping: Mapping, folder: Path) -> dict[str, Path] | None:
    """The activity files to read block by block (by source name, in the order of the
    table's parts), or None when they are small or the mapping needs them whole: a
    sequence or row number made from the file's rows, own features of activities, a file
    read by two parts or by anything else in the mapping, a Parquet file."""
    parts = mapping.parts(STREAMED_TABLE)
    names = [tm.source for _, tm in parts]
    if not names or len(set(names)) != len(names) or mapping.features.get(STREAMED_TABLE):
        return None
    if any(fm.sequence is not None or fm.row_id is not None
           for _, tm in parts for fm in [*tm.fields.values(), tm.status, tm.status_at, tm.stage]
           if fm is not None):
        return None
    dump = mapping.model_dump()
    dump.pop("sources")  # named by their names, of course
    acts = dump["tables"].pop(STREAMED_TABLE, {})
    for part in acts.values():
        part.pop("source", None)
    if _holds_text(dump, set(names)) or _holds_text(acts, set(names)):
        return None
    folder = Path(folder)
    if not folder.is_dir():
        return None
    files = {p.name: p for p in folder.iterdir() if p.is_file()}
    plan = {}
    for name in names:
        spec = mapping.sources.get(name)
        path = _file_of(spec, files) if spec is not None else None
        if path is not None:
            if path.suffix.lower() == ".parquet":
                return None
            plan[name] = path
    if sum(p.stat().st_size for p in plan.values()) <= STREAM_FILE_BYTES:
        return None
    return plan


def _holds_text(value: Any, texts: set[str]) -> bool:
    if isinstance(value, str):
        return value in texts
    if isinstance(value, dict):
        return any(_holds_text(k, texts) or _holds_text(v, texts) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds_text(v, texts) for v in value)
    return False


def _whole_accounts(converted: Converted) -> bool:
    """Whether the accounts came from the export with every creation time, so that the
    activities (converted later) can add nothing to them."""
    run = converted.run
    accounts = converted.tables["accounts"]
    return (run is not None and bool(run.m.parts("accounts")) and not accounts.empty
            and bool(accounts["created_at"].notna().all())
            and STREAMED_TABLE not in converted.timing.left_out)


def run_import(settings: ImportSettings, progress: Progress | None = None) -> ImportResult:
    """Import ``settings.source`` with ``settings.mapping`` into ``settings.out``.

    Raises ``MappingError`` for a mapping that does not pass its schema and
    ``ExportError`` for an export it cannot be applied to.
    """
    say = progress or (lambda _m: None)
    mapping = load_mapping(settings.mapping)
    say("reading the export")
    plan = _stream_plan(mapping, settings.source)
    sources = read_sources(mapping, settings.source, plan)
    say("converting")
    try:
        converted = convert(mapping, sources)
        if plan is not None and not _whole_accounts(converted):
            plan = None  # the activities' accounts or times are needed at once: read whole
            say("reading the activities whole")
            sources = read_sources(mapping, settings.source)
            converted = convert(mapping, sources)
    except ConvertError as exc:
        raise ExportError(f"{settings.mapping}: {exc}") from None
    arrow = {name: _arrow_text(frame) for name, frame in converted.tables.items()}
    origins = {name: Path(f"{name} (from the export)") for name in TABLES}
    now = pd.Timestamp(settings.now) if settings.now else None
    try:
        load, checked = validate_checked(arrow, origins, now=now, progress=progress)
    except DataContractError as exc:
        raise ExportError(str(exc)) from None
    rejections = against_export(load, converted)
    say("writing")
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        stale = out / f"{name}.csv"
        if stale.exists():
            stale.unlink()  # one file per table: a CSV left from an earlier run would clash
        if name == STREAMED_TABLE and plan is not None:
            load, rejections = _stream_activities(
                mapping, plan, sources, converted, checked, load, rejections,
                out / f"{name}.parquet", now, say)
            continue
        frame = load.tables.get(name)
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), out / f"{name}.parquet")
    del checked
    write_own(out, valid_only(converted.own, load.tables))
    write_timing(converted.timing, out)
    report = settings.report_path
    report.parent.mkdir(parents=True, exist_ok=True)
    rejections.to_csv(report, index=False)
    result = ImportResult(load, converted, rejections, out, report, out / SUMMARY_FILE)
    result.summary_file.write_text(json.dumps(result.summary(), indent=2, default=str) + "\n")
    return result


def _stream_activities(
    mapping: Mapping, plan: dict[str, Path], sources: dict[str, Source], converted: Converted,
    checked: dict[str, CheckedTable], load: LoadResult, rejections: pd.DataFrame, path: Path,
    now: pd.Timestamp | None, say: Callable[[str], None],
) -> tuple[LoadResult, pd.DataFrame]:
    """Convert, check and write the activities a block of their files at a time; the load
    result and the report as the whole table would have given them."""
    stream = ActivityStream(converted, {n: sources[n] for n in plan})
    leaf = LeafChecker(STREAMED_TABLE, checked, Path(f"{STREAMED_TABLE} (from the export)"),
                       now)
    wanted = _mentioned(mapping)
    emptied: dict[str, dict[str, int]] = {}
    found: list[pd.DataFrame] = []
    lines: list[pd.DataFrame] = []
    columns = converted.columns[STREAMED_TABLE]
    writer: pq.ParquetWriter | None = None
    # A block is written (encoded, compressed: Arrow's code, without the interpreter's
    # lock) while the next is read and converted; one block waits at most, in order.
    pool = ThreadPoolExecutor(max_workers=1)
    written: Future[None] | None = None
    blocks = ((name, file, *block) for name, file in plan.items()
              for block in _csv_chunks(file, mapping.sources[name], wanted, STREAM_BLOCK_BYTES))
    try:
        for name, file, block, cells, first_row in _read_ahead(blocks):
            say(f"activities: {file.name} from row {first_row:,}")
            for token, n in cells.items():
                emptied.setdefault(name, {})[token] = emptied.get(name, {}).get(token, 0) + n
            first = leaf.rows
            chunk = stream.chunk(name, block, first_row)
            del block
            valid, rej = leaf.check(chunk.table)
            if not rej.empty:
                found.append(rej)
                lines.append(_lines(STREAMED_TABLE, rej, chunk.origin, columns, first))
            tbl = pa.Table.from_pandas(valid, preserve_index=False)
            del valid
            if writer is None:
                writer = pq.ParquetWriter(path, tbl.schema)
            if written is not None:
                written.result()
            written = pool.submit(writer.write_table, tbl)
            del tbl
        if written is not None:
            written.result()
    finally:
        pool.shutdown(wait=True)
        if writer is not None:
            writer.close()
    if writer is None:
        pq.write_table(pa.Table.from_pandas(load.tables.get(STREAMED_TABLE),
                                            preserve_index=False), path)
    stream.finish()
    at = 0
    for src in sources.values():  # said first, in the order of the sources, as convert does
        cells = emptied.get(src.name, {}) if src.name in plan else src.emptied
        notes = [f"{src.file}: {token!r} read as empty in {n:,} cell(s) of the columns the "
                 f"mapping reads (sources.{src.name}.missing)" for token, n in cells.items()]
        if src.name in plan:
            converted.notes[at:at] = notes
        at += len(notes)
    load = dataclasses.replace(
        load, rejections=sorted_rejections([load.rejections, *found]),
        rows_read={**load.rows_read, STREAMED_TABLE: leaf.rows},
        valid_rows={**load.valid_rows, STREAMED_TABLE: leaf.valid})
    if lines:
        order = {name: i for i, name in enumerate(TABLES)}
        rank = rejections["table"].map(order).to_numpy()
        here = order[STREAMED_TABLE]
        pieces = [rejections[rank < here], *lines, rejections[rank > here]]
        rejections = pd.concat([p for p in pieces if not p.empty],
                               ignore_index=True)[REPORT_COLUMNS]
    return load, rejections


__all__ = ["ExportError", "ImportResult", "ImportSettings", "MappingError", "import_settings",
           "read_sources", "run_import"]
