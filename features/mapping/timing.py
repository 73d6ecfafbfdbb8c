"""When each mapped attribute is known, and what that does to the imported tables.

An export's record holds today's values. An attribute is known at ``creation`` (the
record's value held from the start), from ``history`` (the export's field history gives
its past values, written to the contract's field-history table and read as of t), or only
as of the ``export``: then nothing says what it was at an earlier snapshot, and reading
today's value there leaks what happened since (BANT filled in during qualification says
the lead was qualified). Such attributes are left out of features by default: their
values are blanked in the contract table (the column stays), the import report lists
them, and ``allow_current_values`` keeps one on purpose, which the model card then names
as a leak risk. The choices are written beside the tables (``known_at.json``) so that
training can say so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from features.mapping.spec import ATTRIBUTES, CHANGED_LATER, Mapping, TableMap

TIMING_FILE = "known_at.json"
"""Written beside the imported tables: each attribute's known_at and the opt-ins."""


@dataclass
class Timing:
    """Each mapped attribute's ``known_at``, and what was left out or kept for it."""

    known_at: dict[str, dict[str, str]] = field(default_factory=dict)
    left_out: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per table: export-only attributes blanked, with how many values were."""
    allowed: dict[str, list[str]] = field(default_factory=dict)
    """Per table: export-only attributes kept on purpose (``allow_current_values``)."""
    notes: list[str] = field(default_factory=list)

    def history_fields(self, table: str) -> list[str]:
        return [c for c, k in self.known_at.get(table, {}).items() if k == "history"]

    def current_values(self) -> list[str]:
        """The opt-ins as ``table.attribute``: what the model card names as a leak risk."""
        return [f"{t}.{c}" for t, cols in self.allowed.items() for c in cols]

    def to_json(self) -> dict[str, Any]:
        return {"known_at": self.known_at, "left_out": self.left_out,
                "allow_current_values": self.allowed}


def _present_part(mapping: Mapping, table: str, present: set[str]) -> TableMap | None:
    parts = [tm for _, tm in mapping.parts(table) if tm.source in present]
    return parts[0] if parts else None


def resolve(mapping: Mapping, present: set[str]) -> Timing:
    """Each mapped attribute's ``known_at``: the field's own, else ``history`` for those
    CRMs change later (``CHANGED_LATER``) and ``creation`` for the rest. ``history``
    without the records' field history in the export (``present``: the sources found)
    falls back to ``export``, said in the notes."""
    timing = Timing()
    for table, attributes in ATTRIBUTES.items():
        tm = _present_part(mapping, table, present)
        if tm is None:
            continue
        has_changes = tm.changes is not None and tm.changes.source in present
        fallback: list[str] = []
        for col in attributes:
            fm = tm.fields.get(col)
            if fm is None:
                continue
            when = fm.known_at or ("history" if col in CHANGED_LATER.get(table, ()) else
                                   "creation")
            if when == "history" and not has_changes:
                when = "export"
                fallback.append(col)
            timing.known_at.setdefault(table, {})[col] = when
        if fallback:
            where = (f"its file {mapping.sources[tm.changes.source].file[0]} is not in the "
                     "export" if tm.changes is not None and tm.changes.source in mapping.sources
                     else "the mapping names none (`changes:`)")
            timing.notes.append(
                f"{table}: no field history ({where}): {', '.join(fallback)} known only as "
                "of the export")
    return timing


def leave_out_current_values(mapping: Mapping, present: set[str], timing: Timing,
                             tables: dict[str, pd.DataFrame]) -> None:
    """Blank the export-only attributes that are not opted in (the column stays), and say
    which were left out and which kept."""
    for table, cols in timing.known_at.items():
        tm = _present_part(mapping, table, present)
        allowed = set(tm.allow_current_values) if tm is not None else set()
        frame = tables[table]
        for col, when in cols.items():
            if when != "export" or col not in frame:
                continue
            if col in allowed:
                timing.allowed.setdefault(table, []).append(col)
                continue
            n = int(frame[col].notna().sum())
            frame[col] = None
            timing.left_out.setdefault(table, {})[col] = n
    for table, counts in timing.left_out.items():
        listed = ", ".join(f"{c} ({n:,} value{'' if n == 1 else 's'})"
                           for c, n in counts.items())
        timing.notes.append(
            f"{table}: known only as of the export, left out of features (blanked): {listed}; "
            f"keep one with tables.{table}.allow_current_values")
    for table, kept in timing.allowed.items():
        timing.notes.append(
            f"{table}: known only as of the export, kept by allow_current_values: "
            f"{', '.join(kept)} (a leak risk, named in the model card)")


def write_timing(timing: Timing, folder: Path) -> Path:
    path = Path(folder) / TIMING_FILE
    path.write_text(json.dumps(timing.to_json(), indent=2) + "\n")
    return path


def read_current_values(folder: Path) -> list[str]:
    """The attributes an import kept although known only as of the export
    (``table.attribute``), from ``known_at.json`` beside the tables; none without it."""
    path = Path(folder) / TIMING_FILE
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    allowed = data.get("allow_current_values") or {}
    return [f"{t}.{c}" for t, cols in allowed.items() for c in cols]
