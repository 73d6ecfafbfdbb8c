"""What a preset says about its export, read backwards: file names, column names, values.

A writer of a CRM's export format is the preset's inverse. Reading the names from the
preset (the first alternative of each field is the CRM's API name) keeps the two from
drifting: rename a column in the preset and the writer writes the new name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.mapping.load import mapping_from_document, preset_document
from features.mapping.spec import FieldMap, Mapping, TableMap
from features.schema import TABLES


class WriterError(ValueError):
    """The tables cannot be written in the export format as the preset reads it."""


def preset_mapping(name: str) -> Mapping:
    """A shipped preset, validated."""
    return mapping_from_document(preset_document(name))


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class PresetColumns:
    """One preset, asked for the names its export uses."""

    mapping: Mapping

    def file(self, source: str) -> str:
        """The file name a source is first read from."""
        return self.mapping.sources[source].file[0]

    def part(self, table: str, name: str | None = None) -> TableMap:
        parts = dict(self.mapping.parts(table))
        if name is None:
            if len(parts) != 1:
                raise WriterError(f"{table}: the preset has parts {', '.join(parts)}; name one")
            return next(iter(parts.values()))
        return parts[name]

    def column(self, fm: FieldMap) -> str:
        if not fm.column:
            raise WriterError(f"a field with no column ({fm}) cannot be written")
        return fm.column[0]

    def fields(self, table: str, part: TableMap) -> dict[str, str]:
        """Contract column -> the export column the preset reads it from first."""
        names = TABLES[table].column_names
        return {c: self.column(fm) for c, fm in part.fields.items() if c in names and fm.column}


def inverse(fm: FieldMap) -> dict[str, str]:
    """Contract value -> the first export value the map sends to it."""
    out: dict[str, str] = {}
    for key, target in (fm.values or {}).items():
        out.setdefault(_text(target), key)
    return out


def encode(values: pd.Series, fm: FieldMap | None) -> pd.Series:
    """Contract values as the export writes them, so that ``fm`` reads them back: through
    the inverse of its value map; a value the map does not reach is written as it is,
    unless the map would read that text as something else (then it cannot round-trip)."""
    out = values.astype(object).where(values.notna(), None)
    if fm is None or not fm.values:
        return out
    back = inverse(fm)
    loose = {k.strip().lower(): _text(v) for k, v in fm.values.items()}
    for value in pd.unique(out.dropna()):
        text = str(value)
        if text not in back and loose.get(text.strip().lower(), text) != text:
            raise WriterError(f"{text!r} would be read back as "
                              f"{loose[text.strip().lower()]!r}: add it to the preset's values")
    return out.map(lambda v: back.get(str(v), v) if v is not None else None)


def pair_inverse(first: FieldMap, second: FieldMap) -> dict[tuple[str, str], str]:
    """(contract value of ``first``, of ``second``) -> the first export value both maps
    read that way: one column that says two things (an activity's type and direction)."""
    out: dict[tuple[str, str], str] = {}
    default = _text(second.default) if second.default is not None else None
    seconds = {k: _text(v) for k, v in (second.values or {}).items()}
    for key, target in (first.values or {}).items():
        other = seconds.get(key, default)
        if other is not None:
            out.setdefault((_text(target), other), key)
    return out


def encode_pair(a: pd.Series, b: pd.Series, first: FieldMap, second: FieldMap) -> pd.Series:
    back = pair_inverse(first, second)
    pairs = list(zip(a.astype(str), b.astype(str), strict=True))
    missing = sorted({p for p in pairs if p not in back})
    if missing:
        raise WriterError(f"no export value is read as {missing[0]} (and {len(missing) - 1} "
                          "more): add one to the preset's values")
    return pd.Series([back[p] for p in pairs], index=a.index, dtype=object)


# ---------------------------------------------------------------------------------------
# Values as the export writes them.


def timestamp_text(s: pd.Series, fmt: str) -> pd.Series:
    """UTC times in ``fmt``; empty where missing."""
    t = pd.to_datetime(s, utc=True)
    return t.dt.strftime(fmt).where(t.notna(), None)


def scalar_text(s: pd.Series, kind: str) -> pd.Series:
    """A contract column's values as the CRM prints them: booleans as true/false, whole
    numbers without a decimal point, floats as written."""
    if kind == "bool":
        return s.map(lambda v: None if pd.isna(v) else ("true" if bool(v) else "false"))
    if kind == "int":
        return s.map(lambda v: None if pd.isna(v) else str(int(v)))
    if kind == "float":
        return s.map(lambda v: None if pd.isna(v) else (
            str(int(v)) if float(v).is_integer() else repr(float(v))))
    return s.astype(object).where(s.notna(), None)


def lead_status(leads: pd.DataFrame) -> pd.Series:
    """qualified, disqualified or open: the outcome the status field carries."""
    return pd.Series(np.where(leads["qualified_at"].notna(), "qualified",
                              np.where(leads["disqualified_at"].notna(), "disqualified",
                                       "open")), index=leads.index, dtype=object)


def outcome_at(leads: pd.DataFrame) -> pd.Series:
    return leads["qualified_at"].where(leads["qualified_at"].notna(), leads["disqualified_at"])


def current_stage(opps: pd.DataFrame, history: pd.DataFrame) -> pd.Series:
    """A deal's stage now: its outcome when closed, else the stage of its latest change."""
    last = (history.sort_values(["opportunity_id", "changed_at"], kind="stable")
            .drop_duplicates("opportunity_id", keep="last")
            .set_index("opportunity_id")["stage"])
    stage = opps["opportunity_id"].map(last).astype(object)
    won = opps["is_won"].astype("boolean")
    stage = stage.where(won.isna(), np.where(won.fillna(False), "closed_won", "closed_lost"))
    return stage.fillna("prospecting")


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """One file of the export: UTF-8 CSV, empty cells for missing values."""
    frame.to_csv(path, index=False, na_rep="")


def write_files(files: dict[str, pd.DataFrame], out: Path) -> list[Path]:
    """Every file of the export under ``out`` (:func:`write_csv`), in order; their paths."""
    written = []
    for file, frame in files.items():
        write_csv(frame, out / file)
        written.append(out / file)
    return written


def field_changes(names: PresetColumns, table: str, changes: pd.DataFrame, key: str,
                  ids: Any, time_format: str) -> pd.DataFrame:
    """The contract's field changes of ``table`` (``lead_field_history``...) as the
    preset's ``changes:`` source reads them: one row per change, the field under its own
    column name, old and new values through the field's value map (empty: no value)."""
    tm = names.part(table)
    fc = tm.changes
    if fc is None or changes.empty:
        return pd.DataFrame()
    parts = []
    for attr, rows in changes.groupby("field", sort=False):
        fm = tm.fields.get(str(attr))
        if fm is None or not fm.column:
            continue  # not in the export: nothing to say when it changed
        part = {
            fc.id[0]: ids.translate(key, rows[key]),
            fc.field[0]: names.column(fm),
            fc.new_value[0]: encode(rows["new_value"], fm),
            fc.changed_at[0]: timestamp_text(rows["changed_at"], time_format),
        }
        if fc.old_value:
            part[fc.old_value[0]] = encode(rows["old_value"], fm)
        parts.append(pd.DataFrame(part))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
