"""Find a folder's table files and read each one as Arrow, header checks included.

A folder holds one file per table, named after it (``leads.parquet`` or ``leads.csv``);
an optional table may have none. Other files and sub-folders are ignored. CSV is read
with every column as text so that one bad cell rejects one row later on, not the file
here; Parquet is read as typed. A file that cannot be read at all raises one
``DataContractError`` naming it.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features.schema import TABLES, Table

_FORMATS = ("parquet", "csv")


class DataContractError(ValueError):
    """A data folder or file that cannot be read as the contract's tables at all."""


def find_table_files(data_dir: Path) -> dict[str, Path]:
    """The one file per table in ``data_dir``; other files and sub-folders are ignored.

    An optional table without a file is left out of the result; any other is an error.
    """
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
        if not present and TABLES[name].optional:
            continue
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

